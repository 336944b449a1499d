//! A rule's `alert:` section: its condition (or the detector deciding instead), severity,
//! storm control, message and local routing, validated with the location of each problem.

use std::sync::Arc;

use super::{AlertRule, Compiler};
use crate::detect::DetectRule;
use crate::event::Severity;
use crate::expr::{Condition, Scope};
use crate::schema::RawAlert;
use crate::tree::Node;

impl Compiler<'_> {
    /// `has_detect`: the rule has a `detect` section (its verdict replaces `when`), compiled
    /// into `detect` unless it had errors of its own.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of the rule the alert depends on"
    )]
    pub(super) fn alert(
        &mut self,
        node: &Node,
        name: &str,
        a: &RawAlert,
        has_detect: bool,
        detect: Option<&DetectRule>,
        scope: &Scope,
        windowed: bool,
    ) -> Option<AlertRule> {
        let condition = match (&a.when, has_detect) {
            (Some(when), false) => match Condition::compile_in(when, scope) {
                Ok(c) => Some(Some(c)),
                Err(e) => {
                    let at = self.inside(node.locate(&["alert", "when"]), e.offset);
                    self.report(at, Some(name), format!("in `when`: {}", e.message));
                    None
                }
            },
            (None, true) => Some(None),
            (None, false) => {
                let msg = "`alert` needs `when` (or the rule a `detect` section)";
                self.report(node.locate(&["alert"]), Some(name), msg);
                None
            }
            (Some(_), true) => {
                let msg = "`alert.when` and `detect` cannot be combined: the detector decides \
                               when the alert is raised and cleared";
                self.report(node.locate(&["alert", "when"]), Some(name), msg);
                None
            }
        };
        let severity = match a.severity.as_deref() {
            None => Some(Severity::Warning),
            Some(s) => match [Severity::Info, Severity::Warning, Severity::Critical]
                .into_iter()
                .find(|v| v.as_str() == s)
            {
                Some(v) => Some(v),
                None => {
                    let at = node.locate(&["alert", "severity"]);
                    let msg =
                        format!("unknown severity `{s}` (expected info, warning or critical)");
                    self.report(at, Some(name), msg);
                    None
                }
            },
        };
        let (suppress, cooldown, message) = self.lifecycle(node, name, a, detect, scope, windowed);
        let text = match (&a.when, detect) {
            (Some(when), _) => Arc::from(when.trim()),
            (None, Some(d)) => d.text.clone(),
            (None, None) => Arc::from(""),
        };
        let local_topic = match a.local_topic.as_deref() {
            None => Some(None),
            Some(t) if !t.is_empty() && !t.contains(['+', '#', '\0']) => Some(Some(Arc::from(t))),
            Some(t) => {
                let msg = format!(
                    "`local_topic` `{t}` must be a non-empty MQTT topic without wildcards (+, #)"
                );
                self.report(node.locate(&["alert", "local_topic"]), Some(name), msg);
                None
            }
        };
        Some(AlertRule {
            condition: condition?,
            text,
            severity: severity?,
            suppress: suppress?,
            cooldown: cooldown?,
            message: message?,
            local_topic: local_topic?,
        })
    }
}
