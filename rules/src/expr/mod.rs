//! The expression language of `when:` conditions: tokens (`lex`), a located tree (`parse`),
//! then a type check and a lowering to closures (here).
//!
//! Expressions are typed — numbers and conditions (true/false) — and the type check runs at
//! load time, so `mean + (max > 3)` or a bare `mean` as a condition is a load error pointing
//! at the offending column, never a surprise at run time. Each node is then lowered once to a
//! boxed closure; evaluating a condition when a window closes is a walk over those closures
//! with no allocation and no name lookups.
//!
//! Closures rather than bytecode: a condition runs once per window close, not per sample, so
//! the few nanoseconds a bytecode interpreter might save are invisible, while closures need no
//! stack bookkeeping that could be got wrong.
//!
//! NaN semantics: arithmetic follows IEEE 754 (`ln(-1)` and `prev(x)` without a previous
//! window are NaN) and every comparison with NaN is false, so such a condition does not hold.

mod lex;
mod parse;

use std::fmt;
use std::sync::Arc;

use crate::agg::Env;
use crate::event::Aggregate;
use parse::{ArithOp, Expr, ExprKind};

pub(crate) use parse::parse;

/// A half-open range of character offsets into the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

/// A problem in an expression: where (character offset into the text) and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExprError {
    pub offset: usize,
    pub message: String,
}

pub(crate) fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        offset,
        message: message.into(),
    })
}

type NumFn = Arc<dyn Fn(&Env<'_>) -> f64 + Send + Sync>;
type BoolFn = Arc<dyn Fn(&Env<'_>) -> bool + Send + Sync>;

/// The functions an expression may call, for error messages.
const FUNCTIONS: &str = "abs, min, max, clamp, sqrt, ln, prev";

/// A compiled condition, evaluated when a window closes.
#[derive(Clone)]
pub(crate) struct Condition {
    test: BoolFn,
    /// The left side of the leftmost comparison: the number reported with an alert.
    value: NumFn,
    /// Whether the condition reads `prev(...)`, so the engine keeps the previous window.
    pub uses_prev: bool,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("uses_prev", &self.uses_prev)
            .finish_non_exhaustive()
    }
}

impl Condition {
    /// Parses, type-checks and compiles `src`, which must be a condition (true/false).
    pub fn compile(src: &str) -> Result<Condition, ExprError> {
        let expr = parse(src)?;
        if !is_bool(&expr) {
            return err(
                expr.span.end,
                "expected a comparison operator (>, >=, <, <=, ==, !=) after the value",
            );
        }
        let test = boolean(&expr)?;
        let value = match decider(&expr) {
            Some(lhs) => num(lhs)?,
            None => Arc::new(|_: &Env<'_>| f64::NAN),
        };
        Ok(Condition {
            test,
            value,
            uses_prev: uses_prev(&expr),
        })
    }

    /// Whether the condition holds, and the value that decided it.
    pub fn eval(&self, env: &Env<'_>) -> (bool, f64) {
        ((self.test)(env), (self.value)(env))
    }
}

fn is_bool(e: &Expr) -> bool {
    matches!(
        e.kind,
        ExprKind::Not(_) | ExprKind::Compare(..) | ExprKind::And(..) | ExprKind::Or(..)
    )
}

fn decider(e: &Expr) -> Option<&Expr> {
    match &e.kind {
        ExprKind::Compare(_, lhs, _) => Some(lhs),
        ExprKind::Not(inner) => decider(inner),
        ExprKind::And(a, b) | ExprKind::Or(a, b) => decider(a).or_else(|| decider(b)),
        _ => None,
    }
}

fn uses_prev(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Number(_) | ExprKind::Ident(_) => false,
        ExprKind::Call { name, args } => name == "prev" || args.iter().any(uses_prev),
        ExprKind::Neg(a) | ExprKind::Not(a) => uses_prev(a),
        ExprKind::Arith(_, a, b)
        | ExprKind::Compare(_, a, b)
        | ExprKind::And(a, b)
        | ExprKind::Or(a, b) => uses_prev(a) || uses_prev(b),
    }
}

fn aggregate(name: &str, at: usize) -> Result<Aggregate, ExprError> {
    Aggregate::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Aggregate::ALL.iter().map(|a| a.as_str()).collect();
        ExprError {
            offset: at,
            message: format!(
                "unknown aggregate `{name}` (expected one of: {})",
                known.join(", ")
            ),
        }
    })
}

fn boolean(e: &Expr) -> Result<BoolFn, ExprError> {
    Ok(match &e.kind {
        ExprKind::Compare(op, a, b) => {
            let (op, a, b) = (*op, num(a)?, num(b)?);
            Arc::new(move |env| op.apply(a(env), b(env)))
        }
        ExprKind::And(a, b) => {
            let (a, b) = (boolean(a)?, boolean(b)?);
            Arc::new(move |env| a(env) && b(env))
        }
        ExprKind::Or(a, b) => {
            let (a, b) = (boolean(a)?, boolean(b)?);
            Arc::new(move |env| a(env) || b(env))
        }
        ExprKind::Not(a) => {
            let a = boolean(a)?;
            Arc::new(move |env| !a(env))
        }
        _ => {
            return err(
                e.span.start,
                "expected a condition (a comparison, `and`, `or` or `not`), found a number",
            );
        }
    })
}

fn num(e: &Expr) -> Result<NumFn, ExprError> {
    Ok(match &e.kind {
        ExprKind::Number(n) => {
            let n = *n;
            Arc::new(move |_| n)
        }
        ExprKind::Ident(name) => {
            let a = aggregate(name, e.span.start)?;
            Arc::new(move |env| env.get(a))
        }
        ExprKind::Neg(a) => {
            let a = num(a)?;
            Arc::new(move |env| -a(env))
        }
        ExprKind::Arith(op, a, b) => {
            let (a, b) = (num(a)?, num(b)?);
            match op {
                ArithOp::Add => Arc::new(move |env| a(env) + b(env)),
                ArithOp::Sub => Arc::new(move |env| a(env) - b(env)),
                ArithOp::Mul => Arc::new(move |env| a(env) * b(env)),
                ArithOp::Div => Arc::new(move |env| a(env) / b(env)),
            }
        }
        ExprKind::Call { name, args } => call(e, name, args)?,
        ExprKind::Not(_) | ExprKind::Compare(..) | ExprKind::And(..) | ExprKind::Or(..) => {
            return err(
                e.span.start,
                "expected a number, found a condition (true/false)",
            );
        }
    })
}

fn arity(e: &Expr, name: &str, args: &[Expr], want: &str, ok: bool) -> Result<(), ExprError> {
    if ok {
        return Ok(());
    }
    err(
        e.span.start,
        format!(
            "`{name}` takes {want}, found {} argument{}",
            args.len(),
            if args.len() == 1 { "" } else { "s" }
        ),
    )
}

fn call(e: &Expr, name: &str, args: &[Expr]) -> Result<NumFn, ExprError> {
    match name {
        "abs" | "sqrt" | "ln" => {
            arity(e, name, args, "1 argument", args.len() == 1)?;
            let a = num(&args[0])?;
            Ok(match name {
                "abs" => Arc::new(move |env| a(env).abs()),
                "sqrt" => Arc::new(move |env| a(env).sqrt()),
                _ => Arc::new(move |env| a(env).ln()),
            })
        }
        "min" | "max" => {
            arity(e, name, args, "at least 2 arguments", args.len() >= 2)?;
            let fs = args.iter().map(num).collect::<Result<Vec<_>, _>>()?;
            // IEEE `min`/`max` ignore NaN; a rule author comparing against a missing value
            // should see NaN (condition false) instead, so NaN propagates here.
            let pick: fn(f64, f64) -> f64 = if name == "min" {
                |x, y| {
                    if x.is_nan() || y.is_nan() {
                        f64::NAN
                    } else {
                        x.min(y)
                    }
                }
            } else {
                |x, y| {
                    if x.is_nan() || y.is_nan() {
                        f64::NAN
                    } else {
                        x.max(y)
                    }
                }
            };
            Ok(Arc::new(move |env| {
                let mut it = fs.iter();
                let first = it.next().map_or(f64::NAN, |f| f(env));
                it.fold(first, |acc, f| pick(acc, f(env)))
            }))
        }
        "clamp" => {
            arity(
                e,
                name,
                args,
                "3 arguments (value, low, high)",
                args.len() == 3,
            )?;
            let (x, lo, hi) = (num(&args[0])?, num(&args[1])?, num(&args[2])?);
            // Not `f64::clamp`: it panics when low > high, and bounds may be computed.
            Ok(Arc::new(move |env| {
                let (x, lo, hi) = (x(env), lo(env), hi(env));
                if x.is_nan() || lo.is_nan() || hi.is_nan() || lo > hi {
                    f64::NAN
                } else {
                    x.max(lo).min(hi)
                }
            }))
        }
        "prev" => {
            arity(e, name, args, "1 argument (an aggregate)", args.len() == 1)?;
            let ExprKind::Ident(agg) = &args[0].kind else {
                return err(
                    args[0].span.start,
                    "`prev` takes the name of an aggregate, e.g. `prev(mean)`",
                );
            };
            let a = aggregate(agg, args[0].span.start)?;
            Ok(Arc::new(move |env| env.prev(a)))
        }
        _ => err(
            e.span.start,
            format!("unknown function `{name}` (expected one of: {FUNCTIONS})"),
        ),
    }
}

#[cfg(test)]
mod tests;
