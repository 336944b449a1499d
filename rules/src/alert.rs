//! The alert lifecycle: raise/clear transitions, storm control and the alert's message.
//!
//! Every alert transition — from a `when` condition or from a detector — goes through
//! [`transition`], so the lifecycle rules hold for both:
//!
//! * **Deduplication**: an alert is raised once per episode and cleared once; verdicts that
//!   do not change the state emit nothing.
//! * **`suppress: D`**: at most one raise per `D` on a series. A raise within `D` of the last
//!   raise that was sent is swallowed, and so is the clear that ends it.
//! * **`cooldown: D`**: a quiet time after a clear. A raise within `D` of the last clear
//!   that was sent is swallowed, with its clear.
//!
//! Both measure from transitions that were *sent*, so a condition that keeps flapping still
//! gets through once per period instead of being hidden for as long as it flaps. Swallowed
//! raises are counted (`EngineStats::alerts_suppressed`, `weir_engine_alerts_suppressed_total`). The state for this (two timestamps
//! and a flag) is boxed per (rule, series) only for rules that use either key.
//!
//! **`message:`** is a template rendered into each transition: `{name}` or `{name:.N}` (N
//! decimals) where `name` is `value`, `score`, `device`, `metric`, `rule`, `severity`,
//! `state`, a parameter of the rule's detector (`raise`, `clear`, `z`, `k`, `h`, `max`...),
//! or any number expression of the rule language (`{max - min:.2}`, a `let` name). `{{` and
//! `}}` are literal braces. It is compiled when the rules load, so a bad placeholder is a
//! load error at its column.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::agg::Env;
use crate::detect::{Note, Verdict};
use crate::engine::EngineStats;
use crate::event::{AlertState, Event, EventKind, SeriesId};
use crate::expr::{ExprError, Number, Scope};
use crate::ruleset::{AlertRule, Rule};

/// The series a transition is about, with its names for the message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub id: SeriesId,
    pub device: &'a str,
    pub metric: &'a str,
}

/// Per (rule, series) storm-control state. 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Lifecycle {
    /// Event time of the last raise and clear sent; `i64::MIN` before the first.
    last_raise: i64,
    last_clear: i64,
    /// The current episode's raise was swallowed, so its clear is too.
    muted: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            last_raise: i64::MIN,
            last_clear: i64::MIN,
            muted: false,
        }
    }
}

/// Applies a verdict to the alert of `rule` on `target`: emits its prediction, if it carries
/// one, then a transition when it changes the state and the lifecycle lets it through. `env` is the closed window the verdict came
/// from (for expressions in the message), when there is one.
#[expect(
    clippy::too_many_arguments,
    reason = "split borrows of the engine and the slot"
)]
pub(crate) fn transition(
    rule: &Rule,
    alert: &AlertRule,
    raised: &mut bool,
    life: Option<&mut Lifecycle>,
    stats: &mut EngineStats,
    target: Target<'_>,
    v: Verdict,
    env: Option<&Env<'_>>,
    out: &mut Vec<Event>,
) {
    match v.forecast {
        Some(Note::Forecast(f)) => out.push(Event {
            rule: rule.name.clone(),
            series: target.id,
            ts: v.ts,
            kind: EventKind::Prediction {
                threshold: f.threshold,
                seconds_to_threshold: f.seconds,
                slope: f.slope,
                r2: f.r2,
                points: f.points,
                level: f.level,
                early_seconds: f.early,
                late_seconds: f.late,
                model: f.model,
            },
        }),
        Some(Note::Change(c)) => out.push(Event {
            rule: rule.name.clone(),
            series: target.id,
            ts: v.ts,
            kind: EventKind::Changepoint {
                change: c.kind,
                onset: c.onset,
                before: c.before,
                after: c.after,
                score: v.score,
            },
        }),
        None => {}
    }
    let state = match (v.anomalous, *raised) {
        (true, false) => AlertState::Raised,
        (false, true) => AlertState::Cleared,
        _ => return,
    };
    *raised = v.anomalous;
    if let Some(l) = life {
        let within = |last: i64, d: i64| last != i64::MIN && v.ts.saturating_sub(last) < d;
        match state {
            AlertState::Raised => {
                l.muted =
                    within(l.last_raise, alert.suppress) || within(l.last_clear, alert.cooldown);
                if l.muted {
                    stats.alerts_suppressed += 1;
                    return;
                }
                l.last_raise = v.ts;
            }
            AlertState::Cleared => {
                if std::mem::take(&mut l.muted) {
                    return;
                }
                l.last_clear = v.ts;
            }
        }
    }
    match state {
        AlertState::Raised => stats.alerts_raised += 1,
        AlertState::Cleared => stats.alerts_cleared += 1,
    }
    let message = alert.message.as_ref().map(|m| {
        m.render(&Fill {
            rule,
            alert,
            target,
            state,
            v,
            env,
        })
    });
    out.push(Event {
        rule: rule.name.clone(),
        series: target.id,
        ts: v.ts,
        kind: EventKind::Alert {
            state,
            severity: alert.severity,
            value: v.value,
            condition: alert.text.clone(),
            score: v.score,
            message,
            contributions: Vec::new(),
        },
    });
}

/// Whether a rule needs per-series [`Lifecycle`] state.
pub(crate) fn needs_lifecycle(alert: &AlertRule) -> bool {
    alert.suppress > 0 || alert.cooldown > 0
}

/// A compiled `message:` template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// The aggregates its expressions read, so the rule's windows keep what they need.
    pub fn reads(&self) -> impl Iterator<Item = crate::event::Aggregate> + '_ {
        self.parts
            .iter()
            .flat_map(|p| match p {
                Part::Field {
                    field: Field::Expr(n),
                    ..
                } => n.reads.as_slice(),
                _ => &[],
            })
            .copied()
    }
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Field {
        field: Field,
        decimals: Option<usize>,
    },
}

#[derive(Debug, Clone)]
enum Field {
    Value,
    Score,
    Device,
    Metric,
    Rule,
    Severity,
    State,
    Const(f64),
    Expr(Number),
}

/// What a message is filled from.
struct Fill<'a, 'e> {
    rule: &'a Rule,
    alert: &'a AlertRule,
    target: Target<'a>,
    state: AlertState,
    v: Verdict,
    env: Option<&'a Env<'e>>,
}

impl Template {
    /// Compiles `src`; `param` resolves a detector parameter by name. Errors carry the
    /// character offset inside `src`.
    /// `windowed`: whether the rule has a window for expressions to read.
    pub fn compile(
        src: &str,
        scope: &Scope,
        param: &dyn Fn(&str) -> Option<f64>,
        windowed: bool,
    ) -> Result<Template, ExprError> {
        let chars: Vec<char> = src.chars().collect();
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            match (chars[i], chars.get(i + 1)) {
                ('{', Some('{')) | ('}', Some('}')) => {
                    text.push(chars[i]);
                    i += 2;
                }
                ('}', _) => return crate::expr::err(i, "unmatched `}` (write `}}` for a brace)"),
                ('{', _) => {
                    let Some(len) = chars[i + 1..].iter().position(|&c| c == '}') else {
                        return crate::expr::err(i, "unclosed `{` (write `{{` for a brace)");
                    };
                    let inner: String = chars[i + 1..i + 1 + len].iter().collect();
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    let part = field(&inner, i + 1, scope, param)?;
                    if !windowed
                        && matches!(
                            part,
                            Part::Field {
                                field: Field::Expr(_),
                                ..
                            }
                        )
                    {
                        return crate::expr::err(
                            i + 1,
                            format!(
                                "`{{{inner}}}` reads a window, and this rule judges each sample \
                                 (use `{{value}}`, `{{score}}` or a detector parameter)"
                            ),
                        );
                    }
                    parts.push(part);
                    i += len + 2;
                }
                (c, _) => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { parts })
    }

    fn render(&self, f: &Fill<'_, '_>) -> Arc<str> {
        let mut s = String::new();
        for part in &self.parts {
            let (field, decimals) = match part {
                Part::Text(t) => {
                    s.push_str(t);
                    continue;
                }
                Part::Field { field, decimals } => (field, *decimals),
            };
            let n = match field {
                Field::Value => f.v.value,
                Field::Score => f.v.score,
                Field::Const(c) => *c,
                Field::Expr(e) => f.env.map_or(f64::NAN, |env| e.eval(env)),
                Field::Device => {
                    s.push_str(f.target.device);
                    continue;
                }
                Field::Metric => {
                    s.push_str(f.target.metric);
                    continue;
                }
                Field::Rule => {
                    s.push_str(&f.rule.name);
                    continue;
                }
                Field::Severity => {
                    s.push_str(f.alert.severity.as_str());
                    continue;
                }
                Field::State => {
                    s.push_str(f.state.as_str());
                    continue;
                }
            };
            // Writing to a String cannot fail.
            let _ = match decimals {
                Some(d) => write!(s, "{n:.d$}"),
                None => write!(s, "{n}"),
            };
        }
        Arc::from(s)
    }
}

/// One `{...}`: `inner` starts at character `at` of the template.
fn field(
    inner: &str,
    at: usize,
    scope: &Scope,
    param: &dyn Fn(&str) -> Option<f64>,
) -> Result<Part, ExprError> {
    let (name, decimals) = match inner.rsplit_once(":.") {
        Some((name, d)) => match d.trim().parse::<usize>() {
            Ok(d) if d <= 12 => (name, Some(d)),
            _ => {
                let off = at + name.chars().count();
                return crate::expr::err(off, "expected `:.N` with N decimals, 0 to 12");
            }
        },
        None => (inner, None),
    };
    let field = match name.trim() {
        "" => return crate::expr::err(at, "empty `{}`: name a value, e.g. `{value:.1}`"),
        "value" => Field::Value,
        "score" => Field::Score,
        "device" => Field::Device,
        "metric" => Field::Metric,
        "rule" => Field::Rule,
        "severity" => Field::Severity,
        "state" => Field::State,
        other => match param(other) {
            Some(c) => Field::Const(c),
            None => Field::Expr(Number::compile_in(name, scope).map_err(|e| ExprError {
                offset: at + e.offset,
                message: e.message,
            })?),
        },
    };
    Ok(Part::Field { field, decimals })
}

#[cfg(test)]
mod tests;
