//! `let` values as series of their own: computed once per closed window, in the order
//! written, kept for the next window, and optionally smoothed across windows.
//!
//! A health index built from several sensors (`hi: "0.5 * mean + 0.3 * metric.vibration"`)
//! is a series like any measured one: a maintenance team wants to publish it
//! (`aggregates: [hi]`), to smooth it (one noisy window should not move a remaining-life
//! forecast), and to hand it to a detector (`detect: { trend: ..., value: hi_smooth }`).
//! That needs each value computed exactly once per window — an average that kept state and
//! were evaluated once by the condition and again by a message would advance twice — so
//! values are not inlined into the expressions that read them: [`LetProgram::eval`] computes
//! them into a slice, in order, and a reference reads its slot ([`crate::agg::Env::lets`]).
//! The engine keeps the slice of the previous window per series and rule, which is both what
//! `prev(<name>)` reads and the state of every `ewma(x, alpha)`.
//!
//! **Why `ewma(x, alpha)` as the whole value of a `let`**, not a `smooth:` key or a function
//! allowed anywhere: a smoothed value must have a name, because it is what gets published,
//! watched and (with state snapshots) saved, and it must be computed exactly once per window,
//! which the `let` list guarantees and an expression inside `when` (short-circuited by
//! `and`/`or`) or a message (formatted only on transitions) does not. A separate `smooth:`
//! key would put a value's definition in two places and still need a second name for the
//! raw one. So `hi_s: "ewma(hi, 0.2)"` reads as the formula it is, and anywhere else `ewma`
//! with two arguments is a load error saying where it belongs. (`ewma` alone is still the
//! window aggregate, and `ewma(metric.x)` another metric's, as before.)
//!
//! Smoothing: `s = alpha·x + (1 − alpha)·s_prev`, seeded with the first finite `x`; a window
//! whose `x` is not finite (a sensor missing from that window) leaves `s` where it was, so a
//! gap neither resets nor poisons the index.

use super::parse::{Expr, ExprKind};
use super::{ExprError, NumFn, err};
use crate::agg::Env;
use crate::event::Aggregate;

/// Where `ewma(x, alpha)` may be written, for the error anywhere else.
pub(super) const EWMA_PLACE: &str = "`ewma(x, alpha)` smooths a value across windows and keeps \
    state: write it as the whole value of a `let` (e.g. `hi_smooth: \"ewma(hi, 0.2)\"`) and use \
    that name; `ewma` alone is the window's own EWMA aggregate";

/// The previous close's `let` values of a rule on one series (what `prev(<let>)` reads and
/// the state of every `ewma(x, alpha)`), boxed so an engine slot pays one pointer for it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LetMemory(pub Vec<f64>);

/// How to compute a rule's `let` values, in order.
#[derive(Clone, Default)]
pub(crate) struct LetProgram {
    steps: Vec<Step>,
    /// Whether any value reads `prev(<aggregate>)`, so the engine keeps the previous window.
    pub uses_prev: bool,
    /// The aggregates the values read, so the rule's windows keep what those need (every
    /// value is computed at every close, read or not).
    pub reads: Vec<Aggregate>,
}

#[derive(Clone)]
struct Step {
    f: NumFn,
    /// `ewma(x, alpha)`: the smoothing factor, in (0, 1].
    alpha: Option<f64>,
}

impl std::fmt::Debug for LetProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alphas: Vec<Option<f64>> = self.steps.iter().map(|s| s.alpha).collect();
        f.debug_struct("LetProgram")
            .field("smoothing", &alphas)
            .finish_non_exhaustive()
    }
}

impl LetProgram {
    pub(super) fn push(
        &mut self,
        f: NumFn,
        alpha: Option<f64>,
        uses_prev: bool,
        reads: &[Aggregate],
    ) {
        self.steps.push(Step { f, alpha });
        self.uses_prev |= uses_prev;
        self.reads.extend_from_slice(reads);
        self.reads.sort_unstable();
        self.reads.dedup();
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// This window's values into `out` (cleared first). `base.prev_lets` holds the previous
    /// window's values on the same series (empty before the first: every one NaN); the
    /// caller keeps `out` as the next window's `prev_lets`.
    pub fn eval(&self, base: &Env<'_>, out: &mut Vec<f64>) {
        out.clear();
        for (i, step) in self.steps.iter().enumerate() {
            let env = Env {
                lets: out.as_slice(),
                ..*base
            };
            let x = (step.f)(&env);
            let v = match step.alpha {
                None => x,
                Some(alpha) => {
                    let last = base.prev_lets.get(i).copied().unwrap_or(f64::NAN);
                    smooth(last, x, alpha)
                }
            };
            out.push(v);
        }
    }
}

/// One EWMA step: seeded with the first finite value; a non-finite one changes nothing.
fn smooth(last: f64, x: f64, alpha: f64) -> f64 {
    if !x.is_finite() {
        last
    } else if last.is_nan() {
        x
    } else {
        alpha * x + (1.0 - alpha) * last
    }
}

/// `Some((x, alpha))` when `e` is `ewma(x, alpha)` with a literal `alpha` in (0, 1].
pub(super) fn smoothing(e: &Expr) -> Result<Option<(&Expr, f64)>, ExprError> {
    let ExprKind::Call { name, args } = &e.kind else {
        return Ok(None);
    };
    match (name.as_str(), args.as_slice()) {
        ("ewma", [x, a]) => match a.kind {
            ExprKind::Number(alpha) if alpha > 0.0 && alpha <= 1.0 => Ok(Some((x, alpha))),
            _ => err(
                a.span.start,
                "the smoothing factor of `ewma(x, alpha)` must be a number in (0, 1] \
                 (0.2: each window moves the value a fifth of the way)",
            ),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agg::{Acc, Closed, Update};

    #[test]
    fn smoothing_seeds_averages_and_skips_gaps() {
        assert_eq!(smooth(f64::NAN, 4.0, 0.5), 4.0);
        assert_eq!(smooth(4.0, 2.0, 0.5), 3.0);
        assert_eq!(smooth(3.0, f64::NAN, 0.5), 3.0);
        assert_eq!(smooth(3.0, f64::INFINITY, 0.5), 3.0);
        assert!(smooth(f64::NAN, f64::NAN, 0.5).is_nan());
    }

    fn window(n: usize) -> Closed {
        let mut acc = Acc::EMPTY;
        for i in 0..n {
            acc.add(i as i64, 1.0, Update::FULL);
        }
        Closed { acc, secs: 1.0 }
    }

    #[test]
    fn values_see_earlier_ones_and_the_previous_window() {
        let mut scope = super::super::Scope::default();
        scope.define("a", "count * 2").unwrap();
        scope.define("b", "a + prev(a)").unwrap();
        scope.define("s", "ewma(a, 0.5)").unwrap();
        let program = scope.program();
        let mut prev = Vec::new();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for n in [2, 4, 4] {
            let cur = window(n);
            let env = Env {
                cur: &cur,
                prev: None,
                others: &[],
                lets: &[],
                prev_lets: &prev,
            };
            program.eval(&env, &mut out);
            seen.push(out.clone());
            prev.clone_from(&out);
        }
        assert_eq!([seen[0][0], seen[1][0]], [4.0, 8.0]);
        assert!(seen[0][1].is_nan(), "no previous window yet");
        assert_eq!(seen[1][1], 12.0);
        // Seeded with 4, then halfway to 8, then halfway again.
        assert_eq!([seen[0][2], seen[1][2], seen[2][2]], [4.0, 6.0, 7.0]);
    }

    #[test]
    fn ewma_belongs_to_a_let_and_takes_a_factor_in_range() {
        let mut scope = super::super::Scope::default();
        scope.define("a", "mean").unwrap();
        let e = scope.define("b", "1 + ewma(a, 0.2)").unwrap_err();
        assert!(
            e.message.contains("whole value of a `let`"),
            "{}",
            e.message
        );
        assert_eq!(e.offset, 4);
        let e = scope.define("c", "ewma(a, 1.5)").unwrap_err();
        assert!(e.message.contains("(0, 1]"), "{}", e.message);
        assert_eq!(e.offset, 8);
        let e = super::super::Condition::compile_in("ewma(a, 0.2) > 1", &scope).unwrap_err();
        assert!(
            e.message.contains("whole value of a `let`"),
            "{}",
            e.message
        );
        // The window aggregate and another metric's are still what they were.
        super::super::Condition::compile_in("ewma > 1 and ewma(metric.flow) > 1", &scope).unwrap();
    }
}
