//! Constant sensitivity: the score when each constant of a rule file moves one step.
//!
//! A rule file whose score falls off a cliff when one constant moves a little was fitted to
//! the benchmark, not to machines. `weir eval --sensitivity` finds every numeric constant in
//! the rule files' text (parameters, durations, and numbers inside `when:` expressions), moves
//! each one step down and one step up, reruns the whole corpus, and prints the score each
//! time. One step is:
//!
//! * a count (an integer below 16, e.g. `bins: 8`, `context: 3`, but not the spans `recent`,
//!   `memory`, `warmup`, `range`, `baseline`, `window`, `points`, `max_samples`): ±1;
//! * a limit in standard deviations (a key named `z`): ±1 σ, since ×1.5 on a z moves the
//!   tail probability by orders of magnitude;
//! * every other number and every duration (`6h`): ÷1.5 and ×1.5 (integers rounded).
//!
//! Names, selectors, severities and comments are not constants; neither is a number that is
//! part of a word (`ec2`) or of a quoted glob.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::config::rule_files;
use anyhow::Context;

use super::corpus;

/// One constant of a rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// 1-based line and column of the constant, and the key it is the value of (or `""`
    /// inside an expression).
    pub line: usize,
    pub col: usize,
    pub key: String,
    /// Byte span of the number in the text; the unit (`h`, `ms`) is kept when it moves.
    pub span: Range<usize>,
    pub value: f64,
    pub integer: bool,
    pub unit: String,
}

impl Constant {
    /// The constant one step down and one step up, as text.
    pub fn steps(&self) -> [String; 2] {
        let fmt = |v: f64| {
            if self.integer {
                format!("{}", v.round().max(0.0) as i64)
            } else {
                let s = format!("{v:.4}");
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
        };
        let counted = self.integer
            && self.unit.is_empty()
            && self.value < 16.0
            && !SCALES.contains(&self.key.as_str());
        if self.key == "z" || counted {
            [fmt(self.value - 1.0), fmt(self.value + 1.0)]
        } else if self.integer && !self.unit.is_empty() {
            // A duration: ×/÷ 1.5 in seconds' precision would need unit changes; keep the
            // unit and move to the nearest whole count of it, in minutes when that is finer.
            [self.duration(1.0 / 1.5), self.duration(1.5)]
        } else {
            [fmt(self.value / 1.5), fmt(self.value * 1.5)]
        }
    }

    fn duration(&self, factor: f64) -> String {
        let v = self.value * factor;
        if (v - v.round()).abs() < 1e-9 || self.unit == "s" || self.unit == "ms" {
            return format!("{}{}", v.round() as i64, self.unit);
        }
        let seconds = match self.unit.as_str() {
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604800.0,
            _ => 1.0,
        };
        format!("{}m", (v * seconds / 60.0).round() as i64)
    }

    /// `text` with this constant replaced by `value` (the unit included when it has one).
    pub fn replaced(&self, text: &str, value: &str) -> String {
        let end = self.span.end + self.unit.len();
        format!("{}{}{}", &text[..self.span.start], value, &text[end..])
    }
}

/// One constant of a rule file and the scores with it moved one step down and up.
pub struct Row {
    /// `file:line:col key: value`.
    pub here: String,
    /// Per step: the moved value as text, and the scores (or why the moved file is invalid).
    pub cells: Vec<(String, Result<Vec<f64>, String>)>,
}

/// Moves each constant of each rule file one step either way and asks `score` for the
/// figures of the rules with that one move (the other files as they are, all through the
/// one rule-file loader, so baseline files and name clashes work as everywhere).
pub fn moves(
    paths: &[PathBuf],
    score: &mut dyn FnMut(&weir_rules::RuleSet) -> anyhow::Result<Vec<f64>>,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for c in constants(&text) {
            let here = format!(
                "{}:{}:{} {}{}{}",
                path.display(),
                c.line,
                c.col,
                c.key,
                if c.key.is_empty() { "" } else { ": " },
                &text[c.span.start..c.span.end + c.unit.len()]
            );
            let mut cells = Vec::new();
            for step in c.steps() {
                let moved = c.replaced(&text, &step);
                let files = paths.iter().enumerate().map(|(j, other)| {
                    if i == j {
                        Ok(crate::config::RuleFile {
                            name: path.display().to_string(),
                            text: moved.clone(),
                        })
                    } else {
                        rule_files::read(other)
                    }
                });
                let scores = match rule_files::compile(files).all_or_nothing() {
                    Ok(rules) => Ok(score(&rules)?),
                    Err(problems) => Err(problems.join("; ")),
                };
                cells.push((step, scores));
            }
            rows.push(Row { here, cells });
        }
    }
    Ok(rows)
}

/// Reruns the corpus with each constant of each rule file moved one step either way.
pub fn table(
    out: &mut impl Write,
    paths: &[PathBuf],
    data: &Path,
    labels: &corpus::Labels,
    max_series: usize,
    base: &[f64],
) -> anyhow::Result<()> {
    writeln!(
        out,
        "\nconstant sensitivity (each constant one step down and up: ±1 for counts and z, \
         ÷/× 1.5 otherwise; normalised standard / low FP / low FN, change in standard):"
    )?;
    let rows = moves(paths, &mut |rules| {
        let (series, _) = super::run_rules(rules, data, labels, max_series)?;
        let total = series.iter().map(|s| s.windows.len()).sum();
        Ok(super::evaluate(&series, total)
            .profiles
            .iter()
            .map(|p| p.normalised)
            .collect())
    })?;
    let mut worst: Option<(f64, String)> = None;
    for row in rows {
        let mut cells = Vec::new();
        for (step, scores) in row.cells {
            let scores = match scores {
                Ok(scores) => scores,
                Err(problems) => {
                    cells.push(format!("{step}: not valid ({problems})"));
                    continue;
                }
            };
            let delta = scores.first().copied().unwrap_or(f64::NAN)
                - base.first().copied().unwrap_or(f64::NAN);
            if worst.as_ref().is_none_or(|(w, _)| delta.abs() > w.abs()) {
                worst = Some((delta, format!("{} -> {step}", row.here)));
            }
            let all: Vec<String> = scores.iter().map(|s| format!("{s:.1}")).collect();
            cells.push(format!("{step}: {} ({delta:+.1})", all.join(" / ")));
        }
        writeln!(out, "  {:<56} {}", row.here, cells.join("   "))?;
    }
    if let Some((delta, at)) = worst {
        writeln!(
            out,
            "worst one-step move: {at}, {delta:+.1} points (standard){}",
            if delta.abs() > 3.0 {
                "  [cliff: more than 3 points]"
            } else {
                ""
            }
        )?;
    }
    Ok(())
}

/// Keys whose values are spans or scales even when small integers (`recent: 10`).
const SCALES: [&str; 8] = [
    "recent",
    "memory",
    "warmup",
    "range",
    "baseline",
    "window",
    "points",
    "max_samples",
];

/// Keys whose values are not constants to move.
const NOT_CONSTANTS: [&str; 8] = [
    "name", "select", "device", "metric", "severity", "labels", "message", "topic",
];

/// Every numeric constant of a rule file, in text order.
pub fn constants(text: &str) -> Vec<Constant> {
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, raw_line) in text.split_inclusive('\n').enumerate() {
        let line = raw_line.split('#').next().unwrap_or("");
        let skip = NOT_CONSTANTS.iter().any(|k| {
            line.trim_start()
                .trim_start_matches("- ")
                .starts_with(&format!("{k}:"))
        });
        if !skip {
            scan_line(line, i + 1, offset, &mut out);
        }
        offset += raw_line.len();
    }
    out
}

fn scan_line(line: &str, line_no: usize, offset: usize, out: &mut Vec<Constant>) {
    let bytes = line.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' {
            quoted = !quoted; // single-quoted strings are globs, not expressions
        }
        let starts = b.is_ascii_digit()
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric() || b"_.-".contains(&bytes[i - 1])))
            || (b == b'-'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
                && i > 0
                && b" [{:,(".contains(&bytes[i - 1]));
        if quoted || !starts {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let end = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &line[end..i];
        let is_unit = ["ms", "s", "m", "h", "d", "w", ""].contains(&unit);
        let (Ok(value), true) = (line[start..end].parse::<f64>(), is_unit) else {
            continue;
        };
        let key = line[..start]
            .rsplit(['{', ',', '\n'])
            .next()
            .and_then(|s| s.trim().strip_suffix(':'))
            .map(|k| k.trim().trim_start_matches("- ").to_owned())
            .unwrap_or_default();
        out.push(Constant {
            line: line_no,
            col: start + 1,
            key,
            span: offset + start..offset + end,
            value,
            integer: !line[start..end].contains('.'),
            unit: unit.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"rules:
  - name: nab-2            # a name, not a constant
    select: { device: 'ec2-*', metric: "*" }
    detect:
      novelty: { warmup: 200, margin: 0.02, z: 6, bins: 8 }
    alert:
      when: "count >= 288 and last > -1.5"
      suppress: 6h
      severity: warning
"#;

    #[test]
    fn finds_parameters_durations_and_expression_numbers_but_not_names() {
        let c = constants(FILE);
        let found: Vec<(&str, &str)> = c
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    &FILE[c.span.start..c.span.end + c.unit.len()],
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("warmup", "200"),
                ("margin", "0.02"),
                ("z", "6"),
                ("bins", "8"),
                ("", "288"),
                ("", "-1.5"),
                ("suppress", "6h"),
            ]
        );
        assert_eq!((c[0].line, c[0].col), (5, 26));
    }

    #[test]
    fn one_step_is_plus_minus_one_for_counts_and_z_and_times_1_5_otherwise() {
        let c = constants(FILE);
        let steps: Vec<[String; 2]> = c.iter().map(Constant::steps).collect();
        assert_eq!(steps[0], ["133", "300"]);
        assert_eq!(steps[1], ["0.0133", "0.03"]);
        assert_eq!(steps[2], ["5", "7"]);
        assert_eq!(steps[3], ["7", "9"]);
        assert_eq!(steps[4], ["192", "432"]);
        assert_eq!(steps[5], ["-1", "-2.25"]);
        assert_eq!(steps[6], ["4h", "9h"]);
        let moved = c[6].replaced(FILE, &steps[6][1]);
        assert!(moved.contains("suppress: 9h\n"));
        assert_eq!(moved.len(), FILE.len());
    }
}
