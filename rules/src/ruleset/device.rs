//! The file-level sections that work on alerts rather than samples: `fuse:` (a `k` of `n`
//! condition over other rules' alert states) and `incidents:` (grouping one device's alerts
//! into incidents). The runtime side is module `incident`.
//!
//! ```yaml
//! fuse:
//!   - name: pump-bearing-confirmed
//!     select: { device: "pump-*" }
//!     of: [pump-vibration, pump-bearing-temp, pump-device]   # rule names (globs)
//!     k: 2
//!     within: 10m
//!     severity: critical
//! incidents:
//!   select: { device: "*" }
//!   gap: 10m
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use super::Compiler;
use crate::error::Diagnostic;
use crate::event::Severity;
use crate::incident::{DeviceRules, FuseSpec, IncidentSpec};
use crate::schema::{Glob, parse_duration};
use crate::tree::{Loc, Node, NodeKind};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeviceSelect {
    #[serde(default = "all")]
    device: String,
}

fn all() -> String {
    "*".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFuse {
    name: String,
    #[serde(default)]
    select: Option<RawDeviceSelect>,
    /// Rule names (globs) whose alerts count.
    of: Vec<String>,
    k: u64,
    within: String,
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIncidents {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    select: Option<RawDeviceSelect>,
    /// Rule names (globs) whose alerts join incidents (default: every rule).
    #[serde(default)]
    rules: Option<Vec<String>>,
    gap: String,
}

impl Compiler<'_> {
    /// Compiles `fuse:` and `incidents:` of the file's root mapping.
    pub(super) fn device_rules(&mut self, root: &Node) -> DeviceRules {
        let mut out = DeviceRules::default();
        if let Some(list) = root.get("fuse") {
            match &list.kind {
                NodeKind::Seq(items) => {
                    out.fuse = items.iter().filter_map(|n| self.fuse(n)).collect();
                }
                NodeKind::Null => {}
                _ => self.report(list.loc, None, "`fuse` must be a list"),
            }
        }
        if let Some(node) = root.get("incidents")
            && let Some(section) = self.incidents(node)
        {
            out.incidents.push(section);
            out.incidents_at.push((self.file.clone(), node.loc));
        }
        out
    }

    fn fuse(&mut self, node: &Node) -> Option<FuseSpec> {
        let raw: RawFuse = match node.deserialize() {
            Ok(raw) => raw,
            Err(e) => {
                let name = node.get("name").and_then(Node::as_str);
                self.report(e.loc.unwrap_or(node.loc), name, e.message);
                return None;
            }
        };
        let before = self.diagnostics.len();
        let name = raw.name.as_str();
        let device = raw.select.map_or_else(all, |s| s.device);
        let device = self.pattern(node, &["select", "device"], Some(name), &device);
        let of: Vec<Option<Glob>> = raw
            .of
            .iter()
            .map(|p| self.pattern(node, &["of"], Some(name), p))
            .collect();
        if raw.k == 0 || raw.k > u64::from(u16::MAX) {
            let msg = "`k` (how many member alerts must count) must be at least 1";
            self.report(node.locate(&["k"]), Some(name), msg);
        }
        let within = parse_duration(&raw.within)
            .map_err(|m| self.report(node.locate(&["within"]), Some(name), m))
            .ok();
        let severity = self.severity_of(node, name, raw.severity.as_deref());
        if self.diagnostics.len() != before {
            return None;
        }
        let text = format!(
            "{} of [{}] within {}",
            raw.k,
            raw.of.join(", "),
            raw.within.trim()
        );
        Some(FuseSpec {
            name: Arc::from(name),
            device: device?,
            of: of.into_iter().collect::<Option<Vec<_>>>()?,
            k: u32::try_from(raw.k).ok()?,
            within: within?,
            severity: severity?,
            text: Arc::from(text),
            at: (self.file.clone(), node.locate(&["name"])),
        })
    }

    fn incidents(&mut self, node: &Node) -> Option<IncidentSpec> {
        let raw: RawIncidents = match node.deserialize() {
            Ok(raw) => raw,
            Err(e) => {
                self.report(e.loc.unwrap_or(node.loc), None, e.message);
                return None;
            }
        };
        let before = self.diagnostics.len();
        let device = raw.select.map_or_else(all, |s| s.device);
        let device = self.pattern(node, &["select", "device"], None, &device);
        let rules: Vec<Option<Glob>> = raw
            .rules
            .unwrap_or_else(|| vec![all()])
            .iter()
            .map(|p| self.pattern(node, &["rules"], None, p))
            .collect();
        let gap = parse_duration(&raw.gap)
            .map_err(|m| self.report(node.locate(&["gap"]), None, m))
            .ok();
        if self.diagnostics.len() != before {
            return None;
        }
        Some(IncidentSpec {
            name: Arc::from(raw.name.as_deref().unwrap_or("incident")),
            device: device?,
            rules: rules.into_iter().collect::<Option<Vec<_>>>()?,
            gap: gap?,
        })
    }

    fn pattern(
        &mut self,
        node: &Node,
        path: &[&str],
        rule: Option<&str>,
        text: &str,
    ) -> Option<Glob> {
        Glob::new(text)
            .map_err(|(_, msg)| self.report(node.locate(path), rule, msg))
            .ok()
    }

    fn severity_of(&mut self, node: &Node, rule: &str, text: Option<&str>) -> Option<Severity> {
        match text.unwrap_or("warning") {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            s => {
                let msg = format!("unknown severity `{s}` (expected info, warning or critical)");
                self.report(node.locate(&["severity"]), Some(rule), msg);
                None
            }
        }
    }
}

/// Names a fuse rule shares with a rule or another fuse rule, and two `incidents:` sections
/// for the same devices, across every file of a rule set.
pub(super) fn clashes(rules: &[super::Rule], device: &DeviceRules) -> Vec<Diagnostic> {
    let mut first: HashMap<&str, (&str, Loc)> = rules
        .iter()
        .map(|r| (&*r.name, (&*r.file, r.name_loc)))
        .collect();
    let mut out = Vec::new();
    for f in &device.fuse {
        let (file, loc) = (&*f.at.0, f.at.1);
        match first.get(&*f.name) {
            Some((ofile, oloc)) => out.push(Diagnostic::new(
                file,
                loc.line,
                loc.column,
                Some(f.name.to_string()),
                format!(
                    "duplicate rule name (first defined at {ofile}:{}:{})",
                    oloc.line, oloc.column
                ),
            )),
            None => {
                first.insert(&f.name, (file, loc));
            }
        }
    }
    // Two sections may govern different devices (a pump file and a motor file); two that
    // select the same devices would leave the second with nothing to do.
    for (i, (spec, (file, loc))) in device
        .incidents
        .iter()
        .zip(&device.incidents_at)
        .enumerate()
    {
        let earlier = device.incidents[..i]
            .iter()
            .zip(&device.incidents_at)
            .find(|(other, _)| other.device == spec.device);
        if let Some((_, (ofile, oloc))) = earlier {
            out.push(Diagnostic::new(
                &**file,
                loc.line,
                loc.column,
                None,
                format!(
                    "a second `incidents:` section for the same devices (the first is at \
                     {ofile}:{}:{}): give each section its own `select.device`",
                    oloc.line, oloc.column
                ),
            ));
        }
    }
    out
}
