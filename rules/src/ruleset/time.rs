//! Event-time settings of a rule's window: allowed lateness and the late-data policy.
//!
//! Devices on a flaky link deliver out of order (a buffered burst after a reconnect). With
//! `lateness: D` a time window stays open until a sample `D` past its end arrives, so samples
//! up to `D` late still count; the price is that the window's result comes `D` later and that
//! several windows per series stay open, which is why `D` is bounded per window size.

use super::Compiler;
use crate::schema::RawWindow;
use crate::tree::Node;
use crate::window::{MAX_OPEN, WindowSpec};

impl Compiler<'_> {
    /// The window kind with its allowed lateness applied.
    pub(super) fn window(
        &mut self,
        node: &Node,
        rule: &str,
        raw: &RawWindow,
    ) -> Option<WindowSpec> {
        let kind = self.window_kind(node, rule, raw);
        let Some(text) = &raw.lateness else {
            return kind;
        };
        let path = ["window", "lateness"];
        let lateness = self.duration(node, &path, rule, text)?;
        let (size, hop) = match kind? {
            WindowSpec::Tumbling { size } => (size, size),
            WindowSpec::Hopping { size, hop, .. } => (size, hop),
            _ => {
                let msg = "`lateness` applies to `tumbling` and `hopping` windows (count, \
                           sliding and session windows take samples in arrival order)";
                self.report(node.locate(&path), Some(rule), msg);
                return None;
            }
        };
        let hop128 = i128::from(hop);
        let open = (i128::from(size) + i128::from(lateness) + hop128 - 1) / hop128;
        if open > i128::from(MAX_OPEN) {
            let msg = format!(
                "`lateness: {text}` would keep up to {open} windows open per series, at most \
                 {MAX_OPEN} are allowed: shorten the lateness or lengthen the hop"
            );
            self.report(node.locate(&path), Some(rule), msg);
            return None;
        }
        Some(WindowSpec::Hopping {
            size,
            hop,
            lateness,
        })
    }

    /// `late: drop` (the default: counted in `late_dropped`) or `late: emit` (also a `Late`
    /// event per refused sample, so nothing a device sent disappears without a trace).
    pub(super) fn late_policy(&mut self, node: &Node, rule: &str, raw: &RawWindow) -> Option<bool> {
        match raw.late.as_deref() {
            None | Some("drop") => Some(false),
            Some("emit") => Some(true),
            Some(other) => {
                let msg = format!("unknown `late` policy `{other}` (expected drop or emit)");
                self.report(node.locate(&["window", "late"]), Some(rule), msg);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Engine, EventKind, RuleSet, Sample};

    fn problems(src: &str) -> Vec<(u64, u64, String)> {
        let e = RuleSet::parse_str(src, "r.yaml").unwrap_err();
        e.diagnostics
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn lateness_errors_point_at_the_key() {
        let src = "\
rules:
  - name: sliding
    window: { sliding: 1m, lateness: 5s }
    aggregates: [mean]
  - name: huge
    window: { tumbling: 1s, lateness: 1h }
    aggregates: [mean]
  - name: policy
    window: { tumbling: 1s, late: keep }
    aggregates: [mean]
  - name: fine
    window: { hopping: { size: 1m, hop: 10s }, lateness: 30s, late: emit }
    aggregates: [mean]
";
        let got = problems(src);
        let at: Vec<(u64, u64)> = got.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(at, [(3, 38), (6, 39), (9, 35)], "{got:?}");
        assert!(got[0].2.contains("applies to `tumbling` and `hopping`"));
        assert!(got[1].2.contains("3601 windows open"), "{}", got[1].2);
        assert!(got[2].2.contains("unknown `late` policy `keep`"));
    }

    #[test]
    fn late_emit_turns_each_refused_sample_into_an_event() {
        let src = "\
rules:
  - name: t
    window: { tumbling: 10s, lateness: 5s, late: emit }
    aggregates: [count]
";
        let mut e = Engine::new(RuleSet::parse_str(src, "r.yaml").unwrap());
        let id = e.series("d", "m").unwrap();
        let mut out = Vec::new();
        let s = 1_000_000;
        for (ts, v) in [(1, 1.0), (12, 2.0), (3, 3.0), (16, 4.0), (4, 5.0)] {
            e.push(
                Sample {
                    series: id,
                    ts: ts * s,
                    value: v,
                },
                &mut out,
            );
        }
        // 3 s arrived within the lateness (12 - 5 < 10); 16 closed [0, 10); 4 s is late.
        let kinds: Vec<_> = out.iter().map(|e| (e.ts / s, e.kind.clone())).collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(matches!(&kinds[0], (10, EventKind::Window { values, .. }) if values[0].1 == 2.0));
        assert_eq!(kinds[1], (4, EventKind::Late { value: 5.0 }));
        assert_eq!(e.stats().late_dropped, 1);
    }
}
