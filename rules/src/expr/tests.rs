use super::*;
use crate::agg::{Acc, Closed, Update};

fn compile_err(src: &str) -> (usize, String) {
    let e = Condition::compile(src).unwrap_err();
    (e.offset, e.message)
}

/// A window holding 1, 2, 3, 4 at t = 0..4 s over a 10 s window, and optionally a previous
/// window holding `prev` values.
fn closed(values: &[f64]) -> Closed {
    let mut acc = Acc::EMPTY;
    for (i, v) in values.iter().enumerate() {
        let up = Update {
            alpha: 0.5,
            lean: false,
        };
        acc.add(i as i64 * 1_000_000, *v, up);
    }
    Closed { acc, secs: 10.0 }
}

fn eval_with(src: &str, prev: Option<&Closed>) -> (bool, f64) {
    let c = Condition::compile(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
    let cur = closed(&[1.0, 2.0, 3.0, 4.0]);
    let env = Env {
        cur: &cur,
        prev,
        others: &[],
        lets: &[],
        prev_lets: &[],
    };
    c.eval(&env)
}

fn holds(src: &str) -> bool {
    eval_with(src, None).0
}

#[test]
fn the_original_form_still_works() {
    for (src, want) in [
        ("mean > 2", true),
        ("max>=4e0", true),
        ("min < -5.5", false),
        ("count <= 3", false),
        ("mean == 2.5", true),
        ("mean != .5", true),
    ] {
        assert_eq!(holds(src), want, "{src}");
    }
    assert_eq!(eval_with("  mean > 80 ", None), (false, 2.5));
}

#[test]
fn arithmetic_precedence_and_functions() {
    for (src, want) in [
        ("1 + 2 * 3 == 7", true),
        ("(1 + 2) * 3 == 9", true),
        ("10 - 4 - 3 == 3", true),
        ("12 / 3 / 2 == 2", true),
        ("--2 == 2", true),
        ("-max == -4", true),
        ("abs(-3) == 3", true),
        ("min(3, 1, 2) == 1 and max(3, 1, 2) == 3", true),
        ("clamp(mean, 0, 1) == 1 and clamp(-1, 0, 1) == 0", true),
        ("sqrt(16) == 4 and ln(1) == 0", true),
        ("max - min == peak_to_peak", true),
        (
            "sum == 10 and first == 1 and last == 4 and delta == 3",
            true,
        ),
        ("rate == 0.3", true),
        ("variance == 1.25 and stddev == sqrt(1.25)", true),
        ("rms == sqrt(7.5)", true),
        ("ewma == 3.125", true),
        ("slope == 1", true),
    ] {
        assert_eq!(holds(src), want, "{src}");
    }
}

#[test]
fn boolean_logic_and_nan() {
    for (src, want) in [
        ("mean > 2 and max < 5", true),
        ("mean > 3 and max < 5", false),
        ("mean > 3 or max < 5", true),
        ("not mean > 3", true),
        ("not (mean > 2 and max < 5)", false),
        // `and` binds tighter than `or`.
        ("mean > 100 and max > 100 or count == 4", true),
        ("ln(-1) > 0 or ln(-1) <= 0", false),
        ("min(ln(-1), 1) < 2", false),
        ("clamp(1, 2, 0) == 1", false),
        ("prev(mean) > 0 or prev(mean) <= 0", false),
    ] {
        assert_eq!(holds(src), want, "{src}");
    }
}

#[test]
fn prev_reads_the_previous_window() {
    let prev = closed(&[10.0, 20.0]);
    assert_eq!(
        eval_with("mean - prev(mean) < -10", Some(&prev)),
        (true, -12.5)
    );
    assert!(Condition::compile("prev(max) > 1").unwrap().uses_prev);
    assert!(!Condition::compile("max > 1").unwrap().uses_prev);
}

#[test]
fn the_reported_value_is_the_left_side_of_the_leftmost_comparison() {
    assert_eq!(eval_with("mean * 2 > 1", None).1, 5.0);
    assert_eq!(eval_with("not max > 9 and mean > 1", None).1, 4.0);
}

#[test]
fn errors_point_inside_the_expression() {
    for (src, at, what) in [
        ("avg > 80", 0, "unknown aggregate `avg`"),
        ("mean >", 6, "expected an aggregate"),
        ("mean 80", 5, "expected an operator"),
        ("mean = 80", 5, "use `==`"),
        ("mean > 80 x", 10, "unexpected `x`"),
        ("mean > 8#0", 8, "unexpected character"),
        ("mean > 1.2.3", 7, "invalid number"),
        ("", 0, "empty expression"),
        ("mean", 4, "expected a comparison operator"),
        ("mean + 1", 8, "expected a comparison operator"),
        ("mean ! 3", 5, "expected `!=`"),
        ("mean > 1 && max < 2", 9, "use `and`"),
        ("1 < mean < 3", 9, "do not chain"),
        (
            "(mean > 1",
            9,
            "expected `)` to close the parenthesis opened at column 1",
        ),
        ("mean > 1)", 8, "unmatched `)`"),
        ("mean > 1 and 2", 13, "found a number"),
        ("mean + (max > 1) > 2", 7, "found a condition"),
        ("foo(mean) > 1", 0, "unknown function `foo`"),
        (
            "abs(1, 2) > 1",
            0,
            "`abs` takes 1 argument, found 2 arguments",
        ),
        ("min(1) > 1", 0, "at least 2"),
        ("clamp(1, 2) > 1", 0, "3 arguments"),
        ("prev(mean + 1) > 1", 5, "name of an aggregate"),
        ("prev(avg) > 1", 5, "unknown aggregate `avg`"),
        ("mean > 1 and", 12, "expected an aggregate"),
        ("and > 1", 0, "expected a value before `and`"),
    ] {
        let (offset, message) = compile_err(src);
        assert_eq!(offset, at, "{src}: {message}");
        assert!(message.contains(what), "{src}: {message}");
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let src = format!("{}1{} > 0", "(".repeat(100), ")".repeat(100));
    assert!(compile_err(&src).1.contains("nested too deeply"));
    let src = format!("{}1 > 0", "not ".repeat(100));
    assert!(compile_err(&src).1.contains("nested too deeply"));
}

#[test]
fn very_long_expressions_are_refused() {
    let src = format!("{} > 0", vec!["1"; 1_000].join(" + "));
    assert!(compile_err(&src).1.contains("too long"));
}
