//! Baselines learned from a healthy recording (`weir learn`) and referenced by rules.
//!
//! A statistical detector normally learns what is normal online, from its first `baseline`
//! values — whatever the machine was doing then. An engineer who has a recording of the
//! machine known to be healthy can instead learn each detector's baseline from it once:
//!
//! ```text
//! weir learn --rules pump.yaml healthy.csv -o pump-baseline.yaml
//! ```
//!
//! runs the rules over the recording and writes, per (rule, device, metric) of every
//! `zscore`, `ewma_chart`, `cusum` and `changepoint` detector, the count, mean, σ, median,
//! MAD and the smallest step of the values that detector judged (its input: each sample,
//! or each closed window's `value`). A rule then references the file in place of a count:
//!
//! ```yaml
//! detect: { cusum: { baseline: pump-baseline.yaml } }
//! ```
//!
//! (the path relative to the rule file). Such a detector starts ready — no warm-up — with
//! the learned mean and σ (σ still floored, and the learned step used as the sensor's
//! resolution when the rule gives none), and never learns again (`learn: frozen`: the fixed
//! reference of a textbook chart). A series the file does not name learns online as usual,
//! from the rule's default warm-up. Median and MAD are written for the reader (and for a
//! robust detector later); the detectors here use mean and σ.
//!
//! The file is YAML: one entry per line, so it diffs well and an engineer can read it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One series' learned figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub n: u64,
    pub mean: f64,
    pub sigma: f64,
    pub median: f64,
    pub mad: f64,
    /// The smallest non-zero step between consecutive values; absent when they never moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
}

/// A rule's learned figures by (device, metric).
pub(crate) type ByName = HashMap<(Box<str>, Box<str>), Stats>;

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub rule: String,
    pub device: String,
    pub metric: String,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineFile {
    pub baselines: Vec<Entry>,
}

impl BaselineFile {
    /// The file as written by `weir learn`: a comment line, then one flow mapping per entry.
    pub fn to_yaml(&self, comment: &str) -> String {
        let mut s = String::new();
        for line in comment.lines() {
            s.push_str("# ");
            s.push_str(line);
            s.push('\n');
        }
        s.push_str("baselines:\n");
        let num = |x: f64| {
            if x.is_nan() {
                ".nan".to_owned()
            } else if x.is_infinite() {
                if x > 0.0 { ".inf" } else { "-.inf" }.to_owned()
            } else {
                format!("{x:?}")
            }
        };
        for e in &self.baselines {
            let st = &e.stats;
            let step = st
                .step
                .map_or(String::new(), |q| format!(", step: {}", num(q)));
            s.push_str(&format!(
                "  - {{ rule: {}, device: {}, metric: {}, n: {}, mean: {}, sigma: {}, median: {}, mad: {}{step} }}\n",
                quote(&e.rule),
                quote(&e.device),
                quote(&e.metric),
                st.n,
                num(st.mean),
                num(st.sigma),
                num(st.median),
                num(st.mad),
            ));
        }
        s
    }

    /// Parses a baseline file; the error names line and column.
    pub fn parse(text: &str) -> Result<BaselineFile, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// The entries of `rule`, by (device, metric).
    pub(crate) fn of_rule(&self, rule: &str) -> ByName {
        self.baselines
            .iter()
            .filter(|e| e.rule == rule)
            .map(|e| {
                (
                    (e.device.as_str().into(), e.metric.as_str().into()),
                    e.stats,
                )
            })
            .collect()
    }
}

/// A YAML double-quoted string.
fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if c.is_control() => q.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Values kept per series for the median and MAD (a day at 1 Hz); beyond that the mean, σ
/// and step still see every value, the median and MAD the first `MAX_KEPT`.
pub(crate) const MAX_KEPT: usize = 86_400;

/// What a statistical detector's input looked like over a recording: the state of the
/// recording detector [`crate::RuleSet::for_learning`] puts in its place.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Running {
    n: u64,
    mean: f64,
    m2: f64,
    last: Option<f64>,
    step: Option<f64>,
    kept: Vec<f64>,
}

impl Running {
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
        if let Some(last) = self.last {
            let step = (x - last).abs();
            if step > 0.0 && self.step.is_none_or(|s| step < s) {
                self.step = Some(step);
            }
        }
        self.last = Some(x);
        if self.kept.len() < MAX_KEPT {
            self.kept.push(x);
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.kept.capacity() * size_of::<f64>()
    }

    pub fn stats(&self) -> Stats {
        let mut v = self.kept.clone();
        v.sort_by(f64::total_cmp);
        let median = median(&v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        Stats {
            n: self.n,
            mean: self.mean,
            sigma: (self.m2 / self.n.max(1) as f64).max(0.0).sqrt(),
            median,
            mad: median_of(&dev),
            step: self.step,
        }
    }
}

fn median(v: &[f64]) -> f64 {
    median_of(v)
}

fn median_of(v: &[f64]) -> f64 {
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the agent's rule-file loader does: read, compile, attach baseline files.
    fn load(path: &std::path::Path) -> Result<crate::RuleSet, crate::RuleError> {
        let src = std::fs::read_to_string(path).unwrap();
        let mut set = crate::RuleSet::parse_str(&src, &path.display().to_string())?;
        let dir = path.parent().unwrap().to_path_buf();
        set.attach_baselines(&dir, &mut |p| std::fs::read_to_string(p))?;
        Ok(set)
    }

    #[test]
    fn a_written_file_parses_back_to_the_same_entries() {
        let file = BaselineFile {
            baselines: vec![Entry {
                rule: "pump \"flow\"".into(),
                device: "pump-1".into(),
                metric: "flow".into(),
                stats: Stats {
                    n: 3,
                    mean: 50.5,
                    sigma: 0.25,
                    median: 50.0,
                    mad: 0.0,
                    step: None,
                },
            }],
        };
        let text = file.to_yaml("learned from x.csv");
        assert!(
            text.starts_with("# learned from x.csv\nbaselines:\n"),
            "{text}"
        );
        assert_eq!(BaselineFile::parse(&text).unwrap(), file);
    }

    /// Learn from a healthy run, write the file, reference it: the detector judges from its
    /// first value (no warm-up), against the learned level, and never learns again.
    #[test]
    fn a_learned_baseline_round_trips_through_a_file_and_starts_the_detector_ready() {
        use crate::{Engine, EventKind, RuleSet, Sample};
        const S: i64 = 1_000_000;
        let dir = std::env::temp_dir().join(format!("weir-learned-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = "rules:\n  - name: flow\n    select: { metric: flow }\n    detect: { cusum: { baseline: base.yaml } }\n    alert: { severity: warning }\n";
        let learn_rules = RuleSet::parse_str(
            &rules.replace("baseline: base.yaml", "baseline: 50"),
            "r.yaml",
        )
        .unwrap();
        let mut e = Engine::new(learn_rules.for_learning());
        let id = e.series("p1", "flow").unwrap();
        let mut out = Vec::new();
        for i in 0..1_000i64 {
            let value = 50.0 + [0.0, 1.0, -1.0, 0.5][(i % 4) as usize];
            e.push(
                Sample {
                    series: id,
                    ts: i * S,
                    value,
                },
                &mut out,
            );
        }
        assert!(out.is_empty(), "learning emits nothing: {out:?}");
        let file = e.learned_baselines();
        assert_eq!(file.baselines.len(), 1);
        let st = file.baselines[0].stats;
        assert_eq!((st.n, st.step), (1_000, Some(0.5)));
        assert!((st.mean - 50.125).abs() < 1e-9);
        std::fs::write(dir.join("base.yaml"), file.to_yaml("test")).unwrap();
        std::fs::write(dir.join("r.yaml"), rules).unwrap();
        let set = load(&dir.join("r.yaml")).unwrap();
        let mut e = Engine::new(set);
        let id = e.series("p1", "flow").unwrap();
        // A step of +3 (4σ) from the very first value: raised within a few values.
        let mut out = Vec::new();
        for i in 0..10i64 {
            e.push(
                Sample {
                    series: id,
                    ts: i * S,
                    value: 53.0,
                },
                &mut out,
            );
        }
        let raised = out
            .iter()
            .find(|ev| matches!(ev.kind, EventKind::Alert { .. }));
        assert!(raised.is_some_and(|ev| ev.ts <= 3 * S), "{out:?}");
        // A series the file does not name learns online (50 values of warm-up first).
        let other = e.series("p2", "flow").unwrap();
        let mut out = Vec::new();
        for i in 0..10i64 {
            e.push(
                Sample {
                    series: other,
                    ts: i * S,
                    value: 53.0,
                },
                &mut out,
            );
        }
        assert!(out.is_empty());
        // An unreadable file is an error at the `baseline` key.
        std::fs::write(dir.join("base.yaml"), "baselines: [ { rule: 1 } ]").unwrap();
        let err = load(&dir.join("r.yaml")).unwrap_err();
        assert_eq!(
            (err.diagnostics[0].line, err.diagnostics[0].column),
            (4, 34),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn running_stats_match_the_definitions() {
        let mut r = Running::default();
        for x in [50.0, 50.0, 51.0, 50.0, 53.0] {
            r.add(x);
        }
        let s = r.stats();
        assert_eq!((s.n, s.median, s.mad, s.step), (5, 50.0, 0.0, Some(1.0)));
        assert!((s.mean - 50.8).abs() < 1e-12);
        assert!((s.sigma - 1.16619037896906).abs() < 1e-9);
    }
}
