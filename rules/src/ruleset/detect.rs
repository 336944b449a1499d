//! Validation of the detector and alert-lifecycle parts of a rule (`detect:`, and
//! `alert.suppress`, `alert.cooldown`, `alert.message`), kept apart from the rest of the
//! compiler so `ruleset.rs` stays readable.

use std::sync::Arc;

use super::Compiler;
use crate::alert::Template;
use crate::detect::DetectRule;
use crate::expr::{Number, Scope};
use crate::schema::RawAlert;
use crate::tree::Node;

impl Compiler<'_> {
    /// Validates `detect:`; `windowed` tells whether the rule has a `window` (the detector
    /// then judges each closed window's `value`, default `mean`).
    pub(super) fn detect(
        &mut self,
        node: &Node,
        rule: &str,
        raw: &crate::detect::spec::RawDetect,
        windowed: bool,
        scope: &Scope,
    ) -> Option<DetectRule> {
        let before = self.diagnostics.len();
        let mut found = Vec::new();
        let compiled = crate::detect::spec::compile(node, raw, &mut |loc, msg| {
            found.push((loc, msg));
        });
        for (loc, msg) in found {
            self.report(loc, Some(rule), msg);
        }
        let (kind, mut text) = compiled?;
        if windowed && kind.per_sample_only() {
            let msg = "this detector judges each sample (NaN and gaps included): remove `window`";
            self.report(node.locate(&["window"]), Some(rule), msg);
        }
        let value = match (&raw.value, windowed) {
            (None, _) => None,
            (Some(_), false) => {
                let msg = "`value` picks what a window gives the detector; without a `window` \
                           the detector judges each sample";
                self.report(node.locate(&["detect", "value"]), Some(rule), msg);
                None
            }
            (Some(src), true) => match Number::compile_in(src, scope) {
                Ok(n) => {
                    text.push_str(&format!(" of {}", src.trim()));
                    Some(n)
                }
                Err(e) => {
                    let at = self.inside(node.locate(&["detect", "value"]), e.offset);
                    self.report(at, Some(rule), format!("in `value`: {}", e.message));
                    None
                }
            },
        };
        let joint = matches!(kind, crate::detect::DetectKind::Multivariate(_));
        if windowed && raw.value.is_none() && !joint {
            text.push_str(" of mean");
        }
        if self.diagnostics.len() != before {
            return None;
        }
        let baseline_file = raw
            .baseline_file()
            .map(|(f, at)| (Box::<str>::from(f), node.locate(&at)));
        Some(DetectRule {
            kind,
            value,
            text: Arc::from(text),
            baseline_file,
            learned: None,
        })
    }

    /// `suppress` and `cooldown` in µs (0: off) and the compiled `message`; `None` for each
    /// one that is invalid (already reported).
    pub(super) fn lifecycle(
        &mut self,
        node: &Node,
        name: &str,
        a: &RawAlert,
        detect: Option<&DetectRule>,
        scope: &Scope,
        windowed: bool,
    ) -> (Option<i64>, Option<i64>, Option<Option<Template>>) {
        let mut quiet = |key: &str, d: &Option<String>| match d {
            Some(t) => self.duration(node, &["alert", key], name, t),
            None => Some(0),
        };
        let suppress = quiet("suppress", &a.suppress);
        let cooldown = quiet("cooldown", &a.cooldown);
        let message = match &a.message {
            None => Some(None),
            Some(src) => {
                let kind = detect.map(|d| &d.kind);
                let param = |n: &str| kind.and_then(|k| k.param(n));
                match Template::compile(src, scope, &param, windowed) {
                    Ok(t) => Some(Some(t)),
                    Err(e) => {
                        let at = self.inside(node.locate(&["alert", "message"]), e.offset);
                        self.report(at, Some(name), format!("in `message`: {}", e.message));
                        None
                    }
                }
            }
        };
        (suppress, cooldown, message)
    }
}
