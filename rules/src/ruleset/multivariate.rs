//! The shape a `multivariate` rule must have, checked at load.
//!
//! The detector judges several metrics of *one device* per closed window, from per-metric
//! sums it keeps beside the group's window. That needs `group_by: device` (a label or `all`
//! group would mix devices) and a `tumbling` window without `lateness` (exactly one window
//! open at a time, so the sums belong to the window that closes); `value:` has no meaning for
//! it (it judges every metric's mean, not one expression).

use super::Compiler;
use super::group::{Group, GroupBy};
use crate::detect::{DetectKind, DetectRule};
use crate::tree::Node;
use crate::window::WindowSpec;

impl Compiler<'_> {
    pub(super) fn multivariate_shape(
        &mut self,
        node: &Node,
        rule: &str,
        detect: Option<&DetectRule>,
        window: Option<&WindowSpec>,
        group: Option<&Group>,
    ) {
        let Some(d) = detect.filter(|d| matches!(d.kind, DetectKind::Multivariate(_))) else {
            return;
        };
        if group.is_none_or(|g| g.by != GroupBy::Device) {
            let msg = "a `multivariate` detector judges the metrics of one device together: \
                       the rule needs `group_by: device`";
            self.report(node.locate(&["group_by"]), Some(rule), msg);
        }
        if !matches!(window, Some(WindowSpec::Tumbling { .. })) {
            let msg = "a `multivariate` detector needs a `tumbling` window without `lateness` \
                       (it judges each closed window's per-metric means)";
            self.report(node.locate(&["window"]), Some(rule), msg);
        }
        if d.value.is_some() {
            let msg = "a `multivariate` detector judges every metric's mean: remove `value`";
            self.report(node.locate(&["detect", "value"]), Some(rule), msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ruleset::RuleSet;

    fn errors(src: &str) -> Vec<String> {
        let e = RuleSet::parse_str(src, "m.yaml").unwrap_err();
        e.diagnostics
            .into_iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect()
    }

    const GOOD: &str = r#"
rules:
  - name: pump
    select: { device: "pump-*" }
    group_by: device
    window: { tumbling: 1m }
    detect:
      multivariate:
        metrics: { flow: 1.0, current: 0.3 }
    alert: { severity: warning }
"#;

    #[test]
    fn a_device_group_with_a_tumbling_window_loads() {
        RuleSet::parse_str(GOOD, "m.yaml").unwrap();
    }

    #[test]
    fn a_wrong_shape_is_refused_where_it_is_written() {
        let src = GOOD.replace("group_by: device", "group_by: all");
        assert!(
            errors(&src)[0].contains("group_by: device"),
            "{:?}",
            errors(&src)
        );
        let src = GOOD.replace("tumbling: 1m", "hopping: { size: 2m, hop: 1m }");
        assert!(errors(&src)[0].starts_with("6:"), "{:?}", errors(&src));
        let src = GOOD.replace("    group_by: device\n", "");
        assert!(errors(&src)[0].contains("group_by"), "{:?}", errors(&src));
    }

    #[test]
    fn bad_parameters_name_their_line_and_column() {
        let src = GOOD.replace("flow: 1.0", "flow: 0");
        let e = errors(&src);
        assert!(
            e[0].starts_with("9:") && e[0].contains("noise floor of `flow`"),
            "{e:?}"
        );
        let src = GOOD.replace(
            "metrics: { flow: 1.0, current: 0.3 }",
            "metrics: { flow: 1.0 }",
        );
        assert!(
            errors(&src)[0].contains("between 2 and 8"),
            "{:?}",
            errors(&src)
        );
        let src = GOOD.replace(
            "metrics: { flow: 1.0, current: 0.3 }",
            "metrics: { flow: 1.0, current: 0.3 }\n        raise: 5\n        clear: 9",
        );
        assert!(errors(&src)[0].starts_with("11:"), "{:?}", errors(&src));
    }
}
