//! `group_by:` — one window per device, per device-label value or for the whole selection,
//! instead of one per series.
//!
//! A grouped rule's window is fed by every series the rule selects within a group, in
//! arrival order, so its definition must make sense for a mix of series. What would not is
//! refused here, at load, rather than left to mean something surprising at run time:
//!
//! * a detector without a window judges each sample of *one* series (a silence, a range,
//!   run hours); a group has no such series, so grouped detectors need a `window`;
//! * `metric.<name>` reads another metric *of the same device*; a label or `all` group spans
//!   devices, so only `group_by: device` may use it.

use super::Compiler;
use crate::tree::Node;

/// What a grouped rule keeps one window for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupBy {
    /// `group_by: device`
    Device,
    /// `group_by: label.<name>`: devices without the label are not matched.
    Label(Box<str>),
    /// `group_by: all`: one window over every series the rule selects.
    All,
}

/// A rule's grouping and the metric name its groups' events carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub by: GroupBy,
    /// `select.metric` as written (`bearing_temp_*`): the group's events name it as metric.
    pub metric: Box<str>,
}

impl Group {
    /// The group a series of `device` (with `labels`) falls in, as the device name its events
    /// carry: the device, `<label>=<value>`, or `*`. `None`: the device lacks the label.
    pub fn key(&self, device: &str, labels: &[(&str, &str)]) -> Option<String> {
        match &self.by {
            GroupBy::Device => Some(device.to_owned()),
            GroupBy::Label(name) => labels
                .iter()
                .find(|(k, _)| *k == &**name)
                .map(|(k, v)| format!("{k}={v}")),
            GroupBy::All => Some("*".to_owned()),
        }
    }
}

impl Compiler<'_> {
    /// Validates `group_by`. `per_sample` tells whether the rule has a detector without a
    /// window, `reads_others` whether its expressions read `metric.<name>`.
    pub(super) fn group_by(
        &mut self,
        node: &Node,
        rule: &str,
        text: &str,
        metric: &str,
        per_sample: bool,
        reads_others: bool,
    ) -> Option<Group> {
        let at = node.locate(&["group_by"]);
        let by = match text.trim() {
            "device" => GroupBy::Device,
            "all" => GroupBy::All,
            t => match t.strip_prefix("label.") {
                Some(name) if !name.trim().is_empty() => GroupBy::Label(name.trim().into()),
                _ => {
                    let msg = format!(
                        "unknown `group_by` value `{text}` (expected `device`, `label.<name>` \
                         or `all`)"
                    );
                    self.report(at, Some(rule), msg);
                    return None;
                }
            },
        };
        let mut ok = true;
        if per_sample {
            let msg = "a detector without a `window` judges each sample of one series: a \
                       grouped rule needs a `window`";
            self.report(at, Some(rule), msg);
            ok = false;
        }
        if reads_others && by != GroupBy::Device {
            let msg = "`metric.<name>` reads another metric of the same device, and this group \
                       spans devices: only `group_by: device` may use it";
            self.report(at, Some(rule), msg);
            ok = false;
        }
        ok.then(|| Group {
            by,
            metric: metric.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::ruleset::{GroupBy, RuleSet};

    /// `(line, column, message)` of each problem.
    fn errors(src: &str) -> Vec<(u64, u64, String)> {
        let e = RuleSet::parse_str(src, "g.yaml").unwrap_err();
        e.diagnostics
            .into_iter()
            .map(|d| {
                assert_eq!(d.file, "g.yaml");
                assert_eq!(d.rule.as_deref(), Some("g"));
                (d.line, d.column, d.message)
            })
            .collect()
    }

    #[test]
    fn the_three_groupings_parse() {
        for (text, by) in [
            ("device", GroupBy::Device),
            ("all", GroupBy::All),
            ("label.site", GroupBy::Label("site".into())),
        ] {
            let src = format!(
                "rules:\n  - name: g\n    select: {{ metric: \"t_*\" }}\n    group_by: {text}\n    \
                 window: {{ tumbling: 1m }}\n    aggregates: [max]\n"
            );
            let set = RuleSet::parse_str(&src, "g.yaml").unwrap();
            let g = set.rules[0].group.as_ref().unwrap();
            assert_eq!(g.by, by);
            assert_eq!(&*g.metric, "t_*");
        }
    }

    #[test]
    fn an_unknown_grouping_is_pointed_at() {
        for text in ["site", "label.", "devices"] {
            let src = format!(
                "rules:\n  - name: g\n    group_by: {text}\n    window: {{ tumbling: 1m }}\n    \
                 aggregates: [max]\n"
            );
            let e = errors(&src);
            assert_eq!(e.len(), 1, "{e:?}");
            assert_eq!((e[0].0, e[0].1), (3, 15));
            assert!(e[0].2.contains("unknown `group_by` value"), "{}", e[0].2);
        }
    }

    #[test]
    fn a_grouped_detector_needs_a_window() {
        let e = errors(
            "rules:\n  - name: g\n    group_by: device\n    detect: { missing: 5m }\n    \
             alert: { severity: warning }\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (3, 15));
        assert!(
            e[0].2.contains("grouped rule needs a `window`"),
            "{}",
            e[0].2
        );
    }

    #[test]
    fn a_grouped_detector_with_a_window_judges_the_group_windows() {
        let src = "rules:\n  - name: g\n    group_by: label.line\n    window: { tumbling: 1m }\n    \
                   detect: { zscore: { z: 3 } }\n    alert: { severity: warning }\n";
        assert!(RuleSet::parse_str(src, "g.yaml").is_ok());
    }

    #[test]
    fn other_metrics_are_refused_in_groups_spanning_devices() {
        for by in ["all", "label.site"] {
            let src = format!(
                "rules:\n  - name: g\n    group_by: {by}\n    window: {{ tumbling: 1m }}\n    \
                 alert: {{ when: \"max > metric.limit\" }}\n"
            );
            let e = errors(&src);
            assert_eq!(e.len(), 1, "{e:?}");
            assert_eq!((e[0].0, e[0].1), (3, 15));
            assert!(e[0].2.contains("only `group_by: device`"), "{}", e[0].2);
        }
        let device = "rules:\n  - name: g\n    group_by: device\n    window: { tumbling: 1m }\n    \
                      alert: { when: \"max > metric.limit\" }\n";
        assert!(RuleSet::parse_str(device, "g.yaml").is_ok());
    }
}
