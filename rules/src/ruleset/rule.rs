//! Compiling one entry of a rule file into a [`Rule`].
//!
//! `Compiler::rule` reads the entry into its raw struct, compiles each section — the sections
//! with more to say have their own modules (`alert`, `detect`, `fft`, `group`, `time`); the
//! select globs, the window kind, the aggregates and the `let` values are compiled here — and
//! then checks what only the sections together can tell (a `let` without an alert, a rule
//! that would never emit anything). Every section is compiled even after another failed, so
//! one pass reports all of an entry's problems; the rule is built only when none was found.
//! It lives apart from the file-level pass in `ruleset.rs` because it is most of the
//! compiler and grows with every new rule key.

use std::sync::Arc;

use super::{Compiler, Rule};
use crate::agg::{AccSpec, DEFAULT_EWMA_ALPHA};
use crate::event::Aggregate;
use crate::expr::{Scope, check_name};
use crate::schema::{Glob, RawRule, RawWindow};
use crate::tree::{Node, NodeKind};
use crate::window::{DEFAULT_MAX_SAMPLES, MAX_OVERLAP, MAX_SAMPLES, WindowSpec, overlap};

/// Longest rule name accepted, in bytes. A name travels in every event, log line, action
/// topic and metric label of the rule; 128 is far beyond a readable name.
pub const MAX_RULE_NAME: usize = 128;

impl Compiler<'_> {
    pub(super) fn rule(&mut self, node: &Node) -> Option<Rule> {
        let raw: RawRule = match node.deserialize() {
            Ok(raw) => raw,
            Err(e) => {
                let name = node
                    .get("name")
                    .and_then(Node::as_str)
                    .filter(|n| n.len() <= MAX_RULE_NAME);
                self.report(e.loc.unwrap_or(node.loc), name, e.message);
                return None;
            }
        };
        let before = self.diagnostics.len();
        let name = raw.name.as_str();
        let name_loc = node.locate(&["name"]);
        if name.trim().is_empty() {
            self.report(name_loc, None, "rule name must not be empty");
        }
        if name.len() > MAX_RULE_NAME {
            // Not echoed: every later diagnostic would repeat it.
            let start: String = name.chars().take(32).collect();
            self.report(
                name_loc,
                None,
                format!(
                    "rule name is {} bytes; at most {MAX_RULE_NAME} (it names the rule in events, \
                     metrics, logs and topics) — starts with {start:?}",
                    name.len()
                ),
            );
            return None;
        }
        let device = self.glob(node, &["select", "device"], name, &raw.select.device);
        let metric = self.glob(node, &["select", "metric"], name, &raw.select.metric);
        // Every pattern is checked (and reported) before any failure makes `labels` None.
        let checked: Vec<Option<(Box<str>, Glob)>> = raw
            .select
            .labels
            .iter()
            .map(|(k, v)| {
                let glob = self.glob(node, &["select", "labels", k], name, v);
                glob.map(|g| (k.as_str().into(), g))
            })
            .collect();
        let labels: Option<Vec<(Box<str>, Glob)>> = checked.into_iter().collect();
        let window = match &raw.window {
            Some(w) => self.window(node, name, w),
            // A detector without a window judges every sample: a one-sample count window
            // hands each one over as it arrives, with no other engine path needed.
            None if raw.detect.is_some() => Some(WindowSpec::Count { n: 1 }),
            None => {
                let msg = "missing field `window` (every rule needs one, unless it has `detect`)";
                self.report(node.loc, Some(name), msg);
                None
            }
        };
        let emit_late = match &raw.window {
            Some(w) => self.late_policy(node, name, w),
            None => Some(false),
        };
        let ewma_alpha = match raw.ewma_alpha {
            None => Some(DEFAULT_EWMA_ALPHA),
            Some(a) if a > 0.0 && a <= 1.0 => Some(a),
            Some(a) => {
                let msg = format!("`ewma_alpha` must be in (0, 1], found {a}");
                self.report(node.locate(&["ewma_alpha"]), Some(name), msg);
                None
            }
        };
        let fft = raw.fft.as_ref().map(|f| self.fft(node, name, f));
        let bands = match &fft {
            Some(Some((_, bands))) => bands.as_slice(),
            _ => &[],
        };
        let scope = self.lets(node, name, bands);
        let aggregates =
            self.aggregates(node, name, raw.aggregates.as_deref().unwrap_or(&[]), &scope);
        let detect = raw
            .detect
            .as_ref()
            .and_then(|d| self.detect(node, name, d, raw.window.is_some(), &scope));
        let windowed = raw.window.is_some();
        let alert = raw.alert.as_ref().and_then(|a| {
            self.alert(
                node,
                name,
                a,
                raw.detect.is_some(),
                detect.as_ref(),
                &scope,
                windowed,
            )
        });
        if raw.detect.is_some() && raw.alert.is_none() {
            let msg = "`detect` raises and clears the rule's alert: add `alert: { severity: ... }`";
            self.report(node.locate(&["detect"]), Some(name), msg);
        }
        let others = scope.others();
        let peer_reads = scope.peer_reads();
        let aligned = matches!(
            window,
            Some(WindowSpec::Tumbling { .. } | WindowSpec::Hopping { .. })
        );
        if !others.is_empty() && window.is_some() && !aligned {
            let msg = "`metric.<name>` reads another metric over the *same* window, which needs \
                       a time window every metric shares: `tumbling` or `hopping` (a count, \
                       sliding or session window of one metric has no counterpart on another)";
            let at = if raw.window.is_some() {
                node.locate(&["window"])
            } else {
                name_loc
            };
            self.report(at, Some(name), msg);
        }
        let group = raw.group_by.as_ref().map(|g| {
            let per_sample = raw.detect.is_some() && !windowed;
            let metric = &raw.select.metric;
            self.group_by(node, name, g, metric, per_sample, !others.is_empty())
        });
        let group = group.flatten();
        self.multivariate_shape(node, name, detect.as_ref(), window.as_ref(), group.as_ref());
        let has_aggregates = raw.aggregates.as_ref().is_some_and(|a| !a.is_empty());
        if raw.window.is_none() && raw.detect.is_some() && has_aggregates {
            let msg = "`aggregates` need a `window` to aggregate over";
            self.report(node.locate(&["aggregates"]), Some(name), msg);
        }
        let publishes_let = aggregates
            .as_ref()
            .is_some_and(|a| a.iter().any(|a| matches!(a, Aggregate::Let { .. })));
        if raw.lets.is_some() && raw.alert.is_none() && !publishes_let {
            let msg = "`let` values are used by `alert`, `detect.value` and `aggregates`, and \
                       this rule has no alert and publishes none of them";
            self.report(node.locate(&["let"]), Some(name), msg);
        }
        let silent = raw.aggregates.as_ref().is_none_or(Vec::is_empty) && raw.alert.is_none();
        if silent && raw.detect.is_none() {
            self.report(
                name_loc,
                Some(name),
                "rule has neither `aggregates` nor `alert`, so it would never emit anything",
            );
        }
        if self.diagnostics.len() != before {
            return None;
        }
        let aggregates = aggregates?;
        let lets = scope.program();
        let read = |f: fn(Aggregate) -> bool| {
            aggregates.iter().copied().any(f)
                || lets.reads.iter().copied().any(f)
                || alert
                    .as_ref()
                    .and_then(|a| a.condition.as_ref())
                    .is_some_and(|c| c.reads.iter().copied().any(f))
                || alert
                    .as_ref()
                    .and_then(|a| a.message.as_ref())
                    .is_some_and(|m| m.reads().any(f))
                || detect
                    .as_ref()
                    .and_then(|d| d.value.as_ref())
                    .is_some_and(|v| v.reads.iter().copied().any(f))
        };
        let acc = AccSpec {
            sketch: read(Aggregate::needs_sketch),
            moments: read(Aggregate::needs_moments),
            fft: fft.flatten().map(|(plan, _)| plan),
            lean: !read(|a| !a.is_lean()),
        };
        Some(Rule {
            name: Arc::from(name),
            device: device?,
            metric: metric?,
            labels: labels?,
            window: window?,
            ewma_alpha: ewma_alpha?,
            emit_late: emit_late?,
            aggregates,
            lets,
            alert,
            acc,
            detect,
            others,
            peer_reads,
            definition: format!("{raw:?}").into(),
            windowed: raw.window.is_some(),
            group,
            file: self.file.clone(),
            name_loc,
        })
    }

    /// Compiles `let:` in the order written; each value sees the ones before it.
    fn lets(&mut self, node: &Node, rule: &str, bands: &[Aggregate]) -> Scope {
        let mut scope = Scope::default();
        scope.bands = bands.to_vec();
        let Some(NodeKind::Map(entries)) = node.get("let").map(|n| &n.kind) else {
            return scope;
        };
        for (key, value) in entries {
            // The raw struct checked that keys and values are strings.
            let (Some(name), Some(src)) = (key.as_str(), value.as_str()) else {
                continue;
            };
            if let Err(msg) = check_name(name) {
                self.report(key.loc, Some(rule), msg);
                continue;
            }
            if let Err(e) = scope.define(name, src) {
                let at = self.inside(value.loc, e.offset);
                self.report(at, Some(rule), format!("in `let.{name}`: {}", e.message));
                // Keeps `when` from reporting the name as unknown on top of this.
                scope.placeholder(name);
            }
        }
        scope
    }

    /// Exactly one window kind, validated.
    pub(super) fn window_kind(
        &mut self,
        node: &Node,
        rule: &str,
        raw: &RawWindow,
    ) -> Option<WindowSpec> {
        let at = node.locate(&["window"]);
        let kinds = [
            raw.tumbling.is_some(),
            raw.hopping.is_some(),
            raw.count.is_some(),
            raw.sliding.is_some(),
            raw.session.is_some(),
        ];
        let one_of = "`tumbling`, `hopping`, `count`, `sliding` or `session`";
        match kinds.iter().filter(|k| **k).count() {
            0 => {
                self.report(at, Some(rule), format!("`window` needs one of {one_of}"));
                return None;
            }
            1 => {}
            _ => {
                let msg = format!("`window` takes exactly one of {one_of}");
                self.report(at, Some(rule), msg);
                return None;
            }
        }
        if raw.max_samples.is_some() && raw.sliding.is_none() {
            let at = node.locate(&["window", "max_samples"]);
            self.report(
                at,
                Some(rule),
                "`max_samples` only applies to `sliding` windows",
            );
            return None;
        }
        if let Some(t) = &raw.tumbling {
            let size = self.duration(node, &["window", "tumbling"], rule, t)?;
            return Some(WindowSpec::Tumbling { size });
        }
        if let Some(t) = &raw.session {
            let gap = self.duration(node, &["window", "session"], rule, t)?;
            return Some(WindowSpec::Session { gap });
        }
        if let Some(t) = &raw.sliding {
            let size = self.duration(node, &["window", "sliding"], rule, t)?;
            let cap = raw.max_samples.unwrap_or(DEFAULT_MAX_SAMPLES);
            if cap == 0 || cap > MAX_SAMPLES {
                let at = node.locate(&["window", "max_samples"]);
                let msg = format!("`max_samples` must be between 1 and {MAX_SAMPLES}");
                self.report(at, Some(rule), msg);
                return None;
            }
            // Checked just above: 1 ≤ cap ≤ MAX_SAMPLES fits in usize.
            let cap = usize::try_from(cap).unwrap_or(1);
            return Some(WindowSpec::Sliding { size, cap });
        }
        if let Some(n) = raw.count {
            if n == 0 {
                let at = node.locate(&["window", "count"]);
                self.report(at, Some(rule), "`count` must be greater than zero");
                return None;
            }
            return Some(WindowSpec::Count { n });
        }
        let h = raw.hopping.as_ref()?;
        let size = self.duration(node, &["window", "hopping", "size"], rule, &h.size);
        let hop = self.duration(node, &["window", "hopping", "hop"], rule, &h.hop);
        let (size, hop) = (size?, hop?);
        let at = node.locate(&["window", "hopping", "hop"]);
        if hop > size {
            let msg = format!("`hop` ({}) must not exceed `size` ({})", h.hop, h.size);
            self.report(at, Some(rule), msg);
            return None;
        }
        if overlap(size, hop) > MAX_OVERLAP {
            let msg = format!(
                "`size / hop` must be at most {MAX_OVERLAP} (each sample is in that many \
                 windows); use a longer hop"
            );
            self.report(at, Some(rule), msg);
            return None;
        }
        Some(WindowSpec::Hopping {
            size,
            hop,
            lateness: 0,
        })
    }

    /// The published form of `let` value `name`, at position `index` of `let:`.
    fn let_aggregate(&self, name: &str, index: usize) -> Result<Aggregate, String> {
        let index = u8::try_from(index)
            .map_err(|_| "only the first 256 `let` values can be published".to_owned())?;
        let name = crate::interned::name(name.to_owned())
            .ok_or("too many distinct published names in this process; restart the agent")?;
        Ok(Aggregate::Let { index, name })
    }

    fn glob(&mut self, node: &Node, path: &[&str], rule: &str, pattern: &str) -> Option<Glob> {
        Glob::new(pattern)
            .map_err(|(offset, msg)| {
                let at = self.inside(node.locate(path), offset);
                self.report(at, Some(rule), msg);
            })
            .ok()
    }

    fn aggregates(
        &mut self,
        node: &Node,
        rule: &str,
        names: &[String],
        scope: &Scope,
    ) -> Option<Vec<Aggregate>> {
        let items = match node.get("aggregates").map(|n| &n.kind) {
            Some(NodeKind::Seq(items)) => items.as_slice(),
            _ => &[],
        };
        let mut out: Vec<Aggregate> = Vec::with_capacity(names.len());
        let mut ok = true;
        for (i, name) in names.iter().enumerate() {
            let loc = items.get(i).map_or(node.loc, |n| n.loc);
            let band = scope.bands.iter().find(|b| b.as_str() == name).copied();
            let found = band.or_else(|| Aggregate::from_name(name));
            let found = match (found, scope.let_index(name)) {
                (Some(a), _) => Some(a),
                (None, Some(index)) => match self.let_aggregate(name, index) {
                    Ok(a) => Some(a),
                    Err(msg) => {
                        self.report(loc, Some(rule), msg);
                        ok = false;
                        continue;
                    }
                },
                (None, None) => None,
            };
            match found {
                Some(a) if out.contains(&a) => {
                    self.report(loc, Some(rule), format!("aggregate `{name}` listed twice"));
                    ok = false;
                }
                Some(a) => out.push(a),
                None => {
                    let known: Vec<&str> = Aggregate::ALL.iter().map(|a| a.as_str()).collect();
                    let msg = format!(
                        "unknown aggregate `{name}` (expected one of: {}, {}, or a `let` name)",
                        known.join(", "),
                        Aggregate::OTHER_NAMES
                    );
                    self.report(loc, Some(rule), msg);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}
