//! Compiling rule files into a validated [`RuleSet`].
//!
//! A rule file goes through three steps: YAML text → located tree (`tree`), each rule's subtree
//! → raw serde structs (`schema`), raw structs → runtime [`Rule`]s. Each step keeps going after
//! a problem where it safely can, so one pass reports every problem in the file — each as a
//! [`Diagnostic`] with `file:line:column` and the rule's name. Errors inside a string value
//! (a glob, a `when` expression) point at the character inside the string, taking YAML
//! quoting into account.
//!
//! This file holds the compiled types, loading, merging and the file-level pass (the `rules:`
//! list, duplicate names, the helpers every section uses); one rule entry is compiled in
//! `rule`, and its larger sections in the sibling modules (`alert`, `detect`, `fft`, `group`,
//! `time`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::agg::AccSpec;
use crate::alert::Template;
use crate::detect::DetectRule;
use crate::error::{Diagnostic, RuleError};
use crate::event::{Aggregate, Severity};
use crate::expr::Condition;
use crate::schema::{Glob, parse_duration};
use crate::tree::{Loc, Node, NodeKind};
use crate::window::WindowSpec;

/// A validated set of rules, ready to give to [`crate::Engine::new`].
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    /// `fuse:` and `incidents:` (module `incident`).
    pub(crate) device: crate::incident::DeviceRules,
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub name: Arc<str>,
    pub device: Glob,
    pub metric: Glob,
    /// Label name → value pattern, all required (`select.labels`).
    pub labels: Vec<(Box<str>, Glob)>,
    pub window: WindowSpec,
    /// Smoothing factor of `ewma`, in (0, 1].
    pub ewma_alpha: f64,
    /// `late: emit`: samples too late for every window become `Late` events.
    pub emit_late: bool,
    /// Aggregates to emit per closed window, in the order written; may be empty. May name
    /// `let` values (`Aggregate::Let`).
    pub aggregates: Vec<Aggregate>,
    /// The `let` values, computed once per closed window (module `expr::lets`).
    pub lets: crate::expr::LetProgram,
    pub alert: Option<AlertRule>,
    /// The state its windows keep beyond the fixed-size totals (percentile sketch).
    pub acc: AccSpec,
    /// An anomaly detector deciding the alert instead of a `when` condition.
    pub detect: Option<DetectRule>,
    /// Other metrics of the same device its expressions read (`metric.<name>`).
    pub others: Vec<Box<str>>,
    /// The aggregates of those it reads over the rule's window, `(index into others,
    /// aggregate)`, in the order of `Env::others`.
    pub peer_reads: Vec<(usize, Aggregate)>,
    /// The rule as written (every key of its YAML entry, not where it was written): a reload
    /// keeps a rule's state only when this is unchanged.
    pub definition: Box<str>,
    /// Whether the rule has a `window` (a detector without one judges each sample).
    pub windowed: bool,
    /// `group_by`: one window per group of the series it selects, not per series.
    pub group: Option<Group>,
    /// Where the rule's name was written, to report duplicates across files.
    file: Arc<str>,
    name_loc: Loc,
}

impl Rule {
    /// Whether the rule runs on the series `(device, metric)` of a device with `labels`.
    pub fn selects(&self, device: &str, metric: &str, labels: &[(&str, &str)]) -> bool {
        self.device.matches(device)
            && self.metric.matches(metric)
            && self.labels.iter().all(|(k, glob)| {
                labels
                    .iter()
                    .any(|(name, value)| *name == &**k && glob.matches(value))
            })
    }

    /// Whether the rule reads `prev(...)` anywhere, so the engine keeps the previous window.
    pub fn uses_prev(&self) -> bool {
        let when = self
            .alert
            .as_ref()
            .and_then(|a| a.condition.as_ref())
            .is_some_and(|c| c.uses_prev);
        let value = self
            .detect
            .as_ref()
            .and_then(|d| d.value.as_ref())
            .is_some_and(|v| v.uses_prev);
        when || value || self.lets.uses_prev
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AlertRule {
    /// `None` when the rule's detector decides instead.
    pub condition: Option<Condition>,
    /// The condition as written (or the detector described), carried into alert events.
    pub text: Arc<str>,
    pub severity: Severity,
    /// Storm control in µs (0: off): see `alert`.
    pub suppress: i64,
    pub cooldown: i64,
    pub message: Option<Template>,
    /// Where the agent also publishes transitions locally (`alert.local_topic`).
    pub local_topic: Option<Arc<str>>,
}

impl RuleSet {
    /// Attaches the baseline files rules reference (`baseline: <file>`, relative to `dir`, the
    /// rule file's directory) to each rule (module `learned`). The crate does no I/O: `read`
    /// fetches a file's text (the agent's rule-file loader passes `std::fs::read_to_string`).
    /// A file that cannot be read or parsed is an error at the `baseline` key; a file naming
    /// no series of the rule is not (those series learn online).
    pub fn attach_baselines(
        &mut self,
        dir: &Path,
        read: &mut dyn FnMut(&Path) -> std::io::Result<String>,
    ) -> Result<(), RuleError> {
        let mut diagnostics = Vec::new();
        let mut cache: HashMap<PathBuf, Arc<crate::learned::BaselineFile>> = HashMap::new();
        for rule in &mut self.rules {
            let Some(detect) = &mut rule.detect else {
                continue;
            };
            let Some((file, loc)) = &detect.baseline_file else {
                continue;
            };
            let path = dir.join(&**file);
            let parsed = match cache.get(&path) {
                Some(f) => Ok(f.clone()),
                None => read(&path)
                    .map_err(|e| format!("cannot read baseline file {}: {e}", path.display()))
                    .and_then(|text| {
                        crate::learned::BaselineFile::parse(&text)
                            .map_err(|e| format!("baseline file {}: {e}", path.display()))
                    })
                    .map(Arc::new),
            };
            match parsed {
                Ok(f) => {
                    cache.insert(path, f.clone());
                    detect.learned = Some(Arc::new(f.of_rule(&rule.name)));
                }
                Err(msg) => diagnostics.push(Diagnostic::new(
                    &*rule.file,
                    loc.line,
                    loc.column,
                    Some(rule.name.to_string()),
                    msg,
                )),
            }
        }
        if diagnostics.is_empty() {
            Ok(())
        } else {
            Err(RuleError::new(diagnostics))
        }
    }

    /// Compiles rule text; `origin` names it in diagnostics (usually the file path).
    pub fn parse_str(src: &str, origin: &str) -> Result<RuleSet, RuleError> {
        let file: Arc<str> = Arc::from(origin);
        let root: Node = match serde_saphyr::from_str(src) {
            Ok(root) => root,
            Err(e) => return Err(RuleError::new(vec![yaml_diagnostic(&e, origin)])),
        };
        let mut cx = Compiler {
            src,
            file,
            diagnostics: Vec::new(),
        };
        let rules = cx.file(&root);
        let device = cx.device_rules(&root);
        let mut diagnostics = cx.diagnostics;
        diagnostics.extend(device::clashes(&rules, &device));
        if diagnostics.is_empty() {
            Ok(RuleSet { rules, device })
        } else {
            diagnostics.sort_by_key(|d| (d.line, d.column));
            Err(RuleError::new(diagnostics))
        }
    }

    /// The same rules with every statistical detector (`zscore`, `ewma_chart`, `cusum`,
    /// `changepoint`) replaced by one that records its input, for `weir learn`: run an
    /// [`crate::Engine`] with these over a healthy recording, then read
    /// [`crate::Engine::learned_baselines`]. Other rules are left out.
    pub fn for_learning(&self) -> RuleSet {
        let rules = self
            .rules
            .iter()
            .filter(|r| r.detect.as_ref().is_some_and(|d| d.kind.learns_baseline()))
            .cloned()
            .map(|mut r| {
                if let Some(d) = &mut r.detect {
                    d.kind = crate::detect::DetectKind::Record;
                    d.learned = None;
                }
                r.alert = r.alert.map(|a| AlertRule {
                    suppress: 0,
                    cooldown: 0,
                    message: None,
                    ..a
                });
                r.aggregates.clear();
                r
            })
            .collect();
        // Learning feeds detectors only: no fused alerts, no incidents.
        RuleSet {
            rules,
            device: Default::default(),
        }
    }

    /// Joins rule sets (usually one per file); a rule name defined twice is an error.
    pub fn merge(sets: Vec<RuleSet>) -> Result<RuleSet, RuleError> {
        let mut device = crate::incident::DeviceRules::default();
        let mut rules = Vec::new();
        for set in sets {
            rules.extend(set.rules);
            device.merge(set.device);
        }
        let mut diagnostics = duplicates(&rules);
        diagnostics.extend(device::clashes(&rules, &device));
        if diagnostics.is_empty() {
            Ok(RuleSet { rules, device })
        } else {
            Err(RuleError::new(diagnostics))
        }
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The local topic a rule's alert transitions are also published on (`alert.local_topic`,
    /// placeholders unfilled), if it has one.
    pub fn local_topic(&self, rule: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| &*r.name == rule)?
            .alert
            .as_ref()?
            .local_topic
            .as_deref()
    }

    /// Rule names in definition order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.name)
    }
}

fn duplicates(rules: &[Rule]) -> Vec<Diagnostic> {
    let mut first: HashMap<&str, &Rule> = HashMap::new();
    let mut out = Vec::new();
    for rule in rules {
        match first.get(&*rule.name) {
            Some(orig) => out.push(Diagnostic::new(
                &*rule.file,
                rule.name_loc.line,
                rule.name_loc.column,
                Some(rule.name.to_string()),
                format!(
                    "duplicate rule name (first defined at {}:{}:{})",
                    orig.file, orig.name_loc.line, orig.name_loc.column
                ),
            )),
            None => {
                first.insert(&rule.name, rule);
            }
        }
    }
    out
}

/// serde-saphyr appends the position to its messages; the diagnostic carries it already.
fn yaml_diagnostic(e: &serde_saphyr::Error, origin: &str) -> Diagnostic {
    let loc = e
        .location()
        .map(Loc::from)
        .unwrap_or(Loc { line: 0, column: 0 });
    let text = e.without_snippet().to_string();
    let suffix = format!(" at line {}, column {}", loc.line, loc.column);
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    Diagnostic::new(
        origin,
        loc.line,
        loc.column,
        None,
        format!("invalid YAML: {message}"),
    )
}

struct Compiler<'a> {
    src: &'a str,
    file: Arc<str>,
    diagnostics: Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn report(&mut self, loc: Loc, rule: Option<&str>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(
            &*self.file,
            loc.line,
            loc.column,
            rule.map(str::to_owned),
            message,
        ));
    }

    fn file(&mut self, root: &Node) -> Vec<Rule> {
        let NodeKind::Map(entries) = &root.kind else {
            self.report(root.loc, None, "expected a mapping with a `rules:` list");
            return Vec::new();
        };
        let mut list = None;
        for (key, value) in entries {
            if key.as_str() == Some("rules") {
                list = Some(value);
            } else if !matches!(key.as_str(), Some("fuse" | "incidents")) {
                let msg = match key.as_str() {
                    Some(k) => {
                        format!("unknown key `{k}` (expected `rules`, `fuse` or `incidents`)")
                    }
                    None => "unknown key (expected `rules`, `fuse` or `incidents`)".to_owned(),
                };
                self.report(key.loc, None, msg);
            }
        }
        let Some(list) = list else {
            self.report(root.loc, None, "missing `rules:` list");
            return Vec::new();
        };
        let items = match &list.kind {
            NodeKind::Seq(items) => items.as_slice(),
            NodeKind::Null => &[],
            _ => {
                self.report(list.loc, None, "`rules` must be a list");
                return Vec::new();
            }
        };
        self.duplicate_names(items);
        items.iter().filter_map(|item| self.rule(item)).collect()
    }

    /// Checked on the tree rather than on compiled rules, so a duplicate is reported even
    /// when one of the two rules has other problems.
    fn duplicate_names(&mut self, items: &[Node]) {
        let mut seen: HashMap<&str, Loc> = HashMap::new();
        for item in items {
            let Some(name_node) = item.get("name") else {
                continue;
            };
            let Some(name) = name_node.as_str() else {
                continue;
            };
            match seen.get(name) {
                Some(first) => {
                    let msg = format!(
                        "duplicate rule name (first defined at {}:{}:{})",
                        self.file, first.line, first.column
                    );
                    self.report(name_node.loc, Some(name), msg);
                }
                None => {
                    seen.insert(name, name_node.loc);
                }
            }
        }
    }

    fn duration(&mut self, node: &Node, path: &[&str], rule: &str, text: &str) -> Option<i64> {
        parse_duration(text)
            .map_err(|msg| self.report(node.locate(path), Some(rule), msg))
            .ok()
    }

    /// The file position of character `offset` inside the string scalar starting at `loc`.
    fn inside(&self, loc: Loc, offset: usize) -> Loc {
        column_inside(self.src, loc, offset)
    }
}

/// Maps a character offset within a scalar's decoded value back to the source. Plain scalars
/// map one to one; quoted ones skip the opening quote and count each escape (`\t`, `''`) as
/// the one character it decodes to. Block scalars and values running over several lines fall
/// back to the scalar's own position: still the right line of the right value.
pub(crate) fn column_inside(src: &str, loc: Loc, offset: usize) -> Loc {
    let fallback = loc;
    let Some(line) = usize::try_from(loc.line)
        .ok()
        .and_then(|l| l.checked_sub(1))
        .and_then(|l| src.lines().nth(l))
    else {
        return fallback;
    };
    let skip = usize::try_from(loc.column.saturating_sub(1)).unwrap_or(usize::MAX);
    let raw: Vec<char> = line.chars().skip(skip).collect();
    let raw_index = match raw.first() {
        Some('"') => {
            let mut r = 1;
            for _ in 0..offset {
                match raw.get(r) {
                    Some('\\') => {
                        r += match raw.get(r + 1) {
                            Some('x') => 4,
                            Some('u') => 6,
                            Some('U') => 10,
                            Some(_) => 2,
                            None => return fallback,
                        }
                    }
                    Some('"') | None => return fallback,
                    Some(_) => r += 1,
                }
            }
            r
        }
        Some('\'') => {
            let mut r = 1;
            for _ in 0..offset {
                match (raw.get(r), raw.get(r + 1)) {
                    (Some('\''), Some('\'')) => r += 2,
                    (Some('\''), _) | (None, _) => return fallback,
                    _ => r += 1,
                }
            }
            r
        }
        Some('|' | '>') | None => return fallback,
        Some(_) if offset > raw.len() => return fallback,
        Some(_) => offset,
    };
    Loc {
        line: loc.line,
        column: loc.column + raw_index as u64,
    }
}

mod alert;
mod detect;
mod device;
mod fft;
mod group;
mod multivariate;
mod rule;
mod time;

pub(crate) use group::Group;
pub(crate) use group::GroupBy;

#[cfg(test)]
mod tests;
