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

mod lets;
mod lex;
mod parse;

use std::fmt;
use std::sync::Arc;

use crate::agg::Env;
use crate::event::Aggregate;
use parse::{ArithOp, Expr, ExprKind};

pub(crate) use lets::{LetMemory, LetProgram};
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
const FUNCTIONS: &str = "abs, min, max, clamp, sqrt, ln, prev, ewma";

/// A compiled condition, evaluated when a window closes.
#[derive(Clone)]
pub(crate) struct Condition {
    test: BoolFn,
    /// The left side of the leftmost comparison: the number reported with an alert.
    value: NumFn,
    /// Whether the condition reads `prev(...)`, so the engine keeps the previous window.
    pub uses_prev: bool,
    /// The aggregates it reads (directly, through `let` values or `prev`), so the rule's
    /// windows keep what those need (a percentile sketch, the higher moments).
    pub reads: Vec<Aggregate>,
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
    #[cfg(test)]
    pub fn compile(src: &str) -> Result<Condition, ExprError> {
        Condition::compile_in(src, &Scope::default())
    }

    /// As [`Condition::compile`], with the rule's named values (`let:`) in scope.
    pub fn compile_in(src: &str, sc: &Scope) -> Result<Condition, ExprError> {
        let expr = parse(src)?;
        if !is_bool(&expr) {
            return err(
                expr.span.end,
                "expected a comparison operator (>, >=, <, <=, ==, !=) after the value",
            );
        }
        let test = boolean(&expr, sc)?;
        let value = match decider(&expr) {
            Some(lhs) => num(lhs, sc)?,
            None => Arc::new(|_: &Env<'_>| f64::NAN),
        };
        Ok(Condition {
            test,
            value,
            uses_prev: uses_prev(&expr, sc),
            reads: reads(&expr, sc),
        })
    }

    /// Whether the condition holds, and the value that decided it.
    pub fn eval(&self, env: &Env<'_>) -> (bool, f64) {
        ((self.test)(env), (self.value)(env))
    }
}

/// A compiled number expression: the value a detector watches (`detect.value`).
#[derive(Clone)]
pub(crate) struct Number {
    f: NumFn,
    /// Whether the expression reads `prev(...)`, so the engine keeps the previous window.
    pub uses_prev: bool,
    /// The aggregates it reads, so the rule's windows keep what they need.
    pub reads: Vec<Aggregate>,
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Number")
            .field("uses_prev", &self.uses_prev)
            .finish_non_exhaustive()
    }
}

impl Number {
    /// Parses, type-checks and compiles `src`, which must be a number, with the rule's
    /// named values in scope.
    pub fn compile_in(src: &str, sc: &Scope) -> Result<Number, ExprError> {
        let expr = parse(src)?;
        let f = num(&expr, sc)?;
        Ok(Number {
            f,
            uses_prev: uses_prev(&expr, sc),
            reads: reads(&expr, sc),
        })
    }

    pub fn eval(&self, env: &Env<'_>) -> f64 {
        (self.f)(env)
    }
}

/// A rule's named values (`let:`), each compiled once. They are computed once per closed
/// window, in order (see [`LetProgram`]); a reference reads the computed value.
#[derive(Clone, Default)]
pub(crate) struct Scope {
    values: Vec<Value>,
    /// How to compute each value, in `values` order.
    program: LetProgram,
    /// The rule's `band_energy.<name>` aggregates (from its `fft.bands`).
    pub bands: Vec<Aggregate>,
    /// Other metrics of the device the rule's expressions read (`metric.<name>`), in order
    /// of first use. Filled while compiling, hence a cell.
    others: std::cell::RefCell<Vec<Box<str>>>,
    /// The aggregates of those metrics read, `(index into others, aggregate)`, in order of
    /// first use: `Env::others` follows this order.
    peer_reads: std::cell::RefCell<Vec<(usize, Aggregate)>>,
}

#[derive(Clone)]
struct Value {
    name: String,
    /// Its position in `let:` (and in `Env::lets`).
    index: usize,
    uses_prev: bool,
    reads: Vec<Aggregate>,
}

impl Scope {
    fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|v| v.name == name)
    }

    /// The index of `agg(metric.<metric>)` among the peer aggregates read (`Env::others`),
    /// adding it on first use.
    fn other(&self, metric: &str, agg: Aggregate) -> usize {
        let mut others = self.others.borrow_mut();
        let m = match others.iter().position(|m| &**m == metric) {
            Some(i) => i,
            None => {
                others.push(metric.into());
                others.len() - 1
            }
        };
        let mut reads = self.peer_reads.borrow_mut();
        match reads.iter().position(|r| *r == (m, agg)) {
            Some(i) => i,
            None => {
                reads.push((m, agg));
                reads.len() - 1
            }
        }
    }

    /// The other metrics read, in order of first use.
    pub fn others(&self) -> Vec<Box<str>> {
        self.others.borrow().clone()
    }

    /// The aggregates of other metrics read, `(index into others, aggregate)`, in
    /// `Env::others` order.
    pub fn peer_reads(&self) -> Vec<(usize, Aggregate)> {
        self.peer_reads.borrow().clone()
    }

    /// Compiles `src` (a number) as `name`, visible to later values and to the condition.
    /// The whole of `src` may be `ewma(x, alpha)`: `x` smoothed across windows. On error, the
    /// offset is inside `src`.
    pub fn define(&mut self, name: &str, src: &str) -> Result<(), ExprError> {
        let expr = parse(src)?;
        if is_bool(&expr) {
            return err(
                expr.span.start,
                "a named value must be a number, found a condition (true/false)",
            );
        }
        let (inner, alpha) = match lets::smoothing(&expr)? {
            Some((inner, alpha)) => (inner, Some(alpha)),
            None => (&expr, None),
        };
        let f = num(inner, self)?;
        let uses_prev = uses_prev(inner, self);
        let reads = reads(inner, self);
        self.program.push(f, alpha, uses_prev, &reads);
        self.values.push(Value {
            name: name.to_owned(),
            index: self.values.len(),
            uses_prev,
            reads,
        });
        Ok(())
    }

    /// The position of the `let` value `name`, if the rule defines one.
    pub fn let_index(&self, name: &str) -> Option<usize> {
        self.get(name).map(|v| v.index)
    }

    /// How to compute the rule's `let` values when a window closes.
    pub fn program(&self) -> LetProgram {
        self.program.clone()
    }
}

impl Scope {
    /// Defines `name` as NaN: stands in for a value that failed to compile, so references
    /// to it are not reported a second time.
    pub fn placeholder(&mut self, name: &str) {
        self.program.push(Arc::new(|_| f64::NAN), None, false, &[]);
        self.values.push(Value {
            name: name.to_owned(),
            index: self.values.len(),
            uses_prev: false,
            reads: Vec::new(),
        });
    }
}

/// Whether `name` can name a value: an identifier that is not an aggregate, a function or a
/// keyword (so a rule's meaning never depends on which of the two a name resolves to).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ident = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ident {
        return Err(format!(
            "`{name}` is not a valid name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    let reserved = Aggregate::from_name(name).is_some()
        || FUNCTIONS.split(", ").any(|f| f == name)
        || matches!(name, "and" | "or" | "not");
    if reserved {
        return Err(format!(
            "`{name}` is an aggregate, a function or a keyword; pick another name"
        ));
    }
    Ok(())
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

fn uses_prev(e: &Expr, sc: &Scope) -> bool {
    match &e.kind {
        ExprKind::Number(_) => false,
        ExprKind::Ident(name) => sc.get(name).is_some_and(|v| v.uses_prev),
        // `prev(<let name>)` reads the let values kept across windows, not the previous window.
        ExprKind::Call { name, args } if name == "prev" => {
            !matches!(args.as_slice(), [a] if matches!(&a.kind, ExprKind::Ident(id) if sc.get(id).is_some()))
        }
        ExprKind::Call { args, .. } => args.iter().any(|a| uses_prev(a, sc)),
        ExprKind::Neg(a) | ExprKind::Not(a) => uses_prev(a, sc),
        ExprKind::Arith(_, a, b)
        | ExprKind::Compare(_, a, b)
        | ExprKind::And(a, b)
        | ExprKind::Or(a, b) => uses_prev(a, sc) || uses_prev(b, sc),
    }
}

/// The aggregates `e` reads, directly or through `let` values (unknown names are left to
/// the type check to report).
fn reads(e: &Expr, sc: &Scope) -> Vec<Aggregate> {
    fn walk(e: &Expr, sc: &Scope, out: &mut Vec<Aggregate>) {
        match &e.kind {
            ExprKind::Number(_) => {}
            ExprKind::Ident(name) => match sc.get(name) {
                Some(v) => out.extend(&v.reads),
                None => out.extend(aggregate(name, 0, sc).ok()),
            },
            ExprKind::Call { args, .. } => args.iter().for_each(|a| walk(a, sc, out)),
            ExprKind::Neg(a) | ExprKind::Not(a) => walk(a, sc, out),
            ExprKind::Arith(_, a, b)
            | ExprKind::Compare(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b) => {
                walk(a, sc, out);
                walk(b, sc, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(e, sc, &mut out);
    out.sort_unstable();
    out.dedup();
    out
}

fn aggregate(name: &str, at: usize, sc: &Scope) -> Result<Aggregate, ExprError> {
    let band = sc.bands.iter().find(|b| b.as_str() == name).copied();
    band.or_else(|| Aggregate::from_name(name)).ok_or_else(|| {
        let known: Vec<&str> = Aggregate::ALL.iter().map(|a| a.as_str()).collect();
        ExprError {
            offset: at,
            message: format!(
                "unknown aggregate `{name}` (expected one of: {}, {})",
                known.join(", "),
                Aggregate::OTHER_NAMES
            ),
        }
    })
}

fn boolean(e: &Expr, sc: &Scope) -> Result<BoolFn, ExprError> {
    Ok(match &e.kind {
        ExprKind::Compare(op, a, b) => {
            let (op, a, b) = (*op, num(a, sc)?, num(b, sc)?);
            Arc::new(move |env| op.apply(a(env), b(env)))
        }
        ExprKind::And(a, b) => {
            let (a, b) = (boolean(a, sc)?, boolean(b, sc)?);
            Arc::new(move |env| a(env) && b(env))
        }
        ExprKind::Or(a, b) => {
            let (a, b) = (boolean(a, sc)?, boolean(b, sc)?);
            Arc::new(move |env| a(env) || b(env))
        }
        ExprKind::Not(a) => {
            let a = boolean(a, sc)?;
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

fn num(e: &Expr, sc: &Scope) -> Result<NumFn, ExprError> {
    Ok(match &e.kind {
        ExprKind::Number(n) => {
            let n = *n;
            Arc::new(move |_| n)
        }
        ExprKind::Ident(name) => {
            if let Some(v) = sc.get(name) {
                let i = v.index;
                return Ok(Arc::new(move |env| {
                    env.lets.get(i).copied().unwrap_or(f64::NAN)
                }));
            }
            // The lexer only joins `metric.` to a name, so `metric` is never empty here.
            // A bare `metric.<name>` is the mean of that metric over the same window.
            if let Some(metric) = name.strip_prefix("metric.") {
                return Ok(peer(sc, metric, Aggregate::Mean));
            }
            let a = aggregate(name, e.span.start, sc)?;
            Arc::new(move |env| env.get(a))
        }
        ExprKind::Neg(a) => {
            let a = num(a, sc)?;
            Arc::new(move |env| -a(env))
        }
        ExprKind::Arith(op, a, b) => {
            let (a, b) = (num(a, sc)?, num(b, sc)?);
            match op {
                ArithOp::Add => Arc::new(move |env| a(env) + b(env)),
                ArithOp::Sub => Arc::new(move |env| a(env) - b(env)),
                ArithOp::Mul => Arc::new(move |env| a(env) * b(env)),
                ArithOp::Div => Arc::new(move |env| a(env) / b(env)),
            }
        }
        ExprKind::Call { name, args } => call(e, name, args, sc)?,
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

/// `agg(metric.<name>)`: an aggregate of another metric of the device over the same window.
fn peer(sc: &Scope, metric: &str, agg: Aggregate) -> NumFn {
    let i = sc.other(metric, agg);
    Arc::new(move |env| env.others.get(i).copied().unwrap_or(f64::NAN))
}

/// What `agg(metric.<name>)` may ask: what an accumulator without a sketch, higher moments
/// or FFT frames computes (a peer window keeps only the fixed-size totals).
fn peer_aggregate(name: &str) -> Option<Aggregate> {
    Aggregate::from_name(name).filter(|a| !a.needs_sketch() && !a.needs_moments())
}

fn call(e: &Expr, name: &str, args: &[Expr], sc: &Scope) -> Result<NumFn, ExprError> {
    if let [arg] = args
        && let ExprKind::Ident(id) = &arg.kind
        && let Some(metric) = id.strip_prefix("metric.")
    {
        return match peer_aggregate(name) {
            Some(agg) => Ok(peer(sc, metric, agg)),
            None => err(
                e.span.start,
                format!(
                    "`{name}(metric.{metric})`: another metric enters as an aggregate over the \
                     same window, one of count, sum, mean, min, max, first, last, delta, rate, \
                     variance, stddev, rms, peak_to_peak, crest_factor, ewma, slope"
                ),
            ),
        };
    }
    match name {
        "abs" | "sqrt" | "ln" => {
            arity(e, name, args, "1 argument", args.len() == 1)?;
            let a = num(&args[0], sc)?;
            Ok(match name {
                "abs" => Arc::new(move |env| a(env).abs()),
                "sqrt" => Arc::new(move |env| a(env).sqrt()),
                _ => Arc::new(move |env| a(env).ln()),
            })
        }
        "min" | "max" => {
            arity(e, name, args, "at least 2 arguments", args.len() >= 2)?;
            let fs = args
                .iter()
                .map(|a| num(a, sc))
                .collect::<Result<Vec<_>, _>>()?;
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
            let (x, lo, hi) = (num(&args[0], sc)?, num(&args[1], sc)?, num(&args[2], sc)?);
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
                    "`prev` takes the name of an aggregate or a `let` value, e.g. `prev(mean)`",
                );
            };
            if let Some(v) = sc.get(agg) {
                let i = v.index;
                return Ok(Arc::new(move |env| {
                    env.prev_lets.get(i).copied().unwrap_or(f64::NAN)
                }));
            }
            let a = aggregate(agg, args[0].span.start, sc)?;
            Ok(Arc::new(move |env| env.prev(a)))
        }
        "ewma" => err(e.span.start, lets::EWMA_PLACE),
        _ => err(
            e.span.start,
            format!("unknown function `{name}` (expected one of: {FUNCTIONS})"),
        ),
    }
}

#[cfg(test)]
mod tests;
