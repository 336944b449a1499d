use super::*;

const MAX: usize = 1024;

fn ok<'m>(payload: &str, metric: Option<&'m str>) -> Decoded<'m> {
    decode(payload.as_bytes(), metric, MAX).unwrap()
}

fn err(payload: &str, metric: Option<&str>) -> PayloadError {
    decode(payload.as_bytes(), metric, MAX).unwrap_err()
}

fn sorted(d: &Decoded<'_>) -> Vec<(String, f64)> {
    let mut v: Vec<_> = d.values.iter().map(|(k, x)| (k.to_string(), *x)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn bare_number_with_topic_metric() {
    let d = ok("21.5", Some("temp"));
    assert_eq!(d.ts, None);
    assert_eq!(d.values, vec![(Cow::Borrowed("temp"), 21.5)]);
    assert_eq!(ok(" -3\n", Some("t")).values[0].1, -3.0);
    assert_eq!(ok("1e3", Some("t")).values[0].1, 1000.0);
    assert_eq!(
        ok("18446744073709551615", Some("t")).values[0].1,
        1.8446744073709552e19
    );
}

#[test]
fn bare_boolean_is_one_or_zero() {
    assert_eq!(ok("true", Some("on")).values[0].1, 1.0);
    assert_eq!(ok("false", Some("on")).values[0].1, 0.0);
}

#[test]
fn value_object_with_topic_metric() {
    let d = ok(r#"{"value": 40, "unit": "%"}"#, Some("hum"));
    assert_eq!(d.values, vec![(Cow::Borrowed("hum"), 40.0)]);
    assert_eq!(d.ts, None);
    let d = ok(r#"{"value": true, "ts": 1732530000123}"#, Some("on"));
    assert_eq!(d.values[0].1, 1.0);
    assert_eq!(d.ts, Some(1_732_530_000_123_000));
}

#[test]
fn object_of_fields_without_topic_metric() {
    let d = ok(
        r#"{"temp": 21.5, "hum": 40, "on": true, "name": "x", "tags": [1], "nested": {"a": 1}, "n": null, "": 5}"#,
        None,
    );
    assert_eq!(d.ts, None);
    assert_eq!(
        sorted(&d),
        vec![
            ("hum".into(), 40.0),
            ("on".into(), 1.0),
            ("temp".into(), 21.5)
        ]
    );
}

#[test]
fn ts_is_epoch_millis_and_not_a_metric() {
    let d = ok(r#"{"temp": 1, "ts": 1732530000000}"#, None);
    assert_eq!(d.ts, Some(1_732_530_000_000_000));
    assert_eq!(sorted(&d), vec![("temp".into(), 1.0)]);
    // Fractional milliseconds keep µs precision.
    assert_eq!(ok(r#"{"a": 1, "ts": 1.5}"#, None).ts, Some(1500));
    assert_eq!(ok(r#"{"a": 1, "ts": 0.0004}"#, None).ts, Some(0));
    assert_eq!(ok(r#"{"a": 1, "ts": null}"#, None).ts, None);
    assert_eq!(ok(r#"{"a": 1, "ts": -5}"#, None).ts, Some(-5000));
}

#[test]
fn rejects_oversized_before_parsing() {
    let big = "1".repeat(MAX + 1);
    assert_eq!(
        err(&big, Some("t")),
        PayloadError::TooLarge {
            size: MAX + 1,
            limit: MAX
        }
    );
    let exactly_max = format!("{}1", " ".repeat(MAX - 1));
    assert_eq!(
        decode(exactly_max.as_bytes(), Some("t"), MAX)
            .unwrap()
            .values[0]
            .1,
        1.0
    );
    assert_eq!(
        err(&big, Some("t")).to_string(),
        "payload is 1025 bytes; the limit is 1024"
    );
}

#[test]
fn rejects_empty() {
    assert_eq!(err("", Some("t")), PayloadError::Empty);
    assert_eq!(err(" \n\t", None), PayloadError::Empty);
    assert_eq!(err("", None).to_string(), "payload is empty");
}

#[test]
fn rejects_non_json_with_location() {
    let e = err("21.5 C", Some("t"));
    assert!(
        matches!(
            e,
            PayloadError::NotJson {
                line: 1,
                column: 6,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "payload is not JSON: trailing characters at column 6"
    );
    let e = err("{\"a\":\n  x}", None);
    assert_eq!(
        e.to_string(),
        "payload is not JSON: expected value at line 2 column 3"
    );
    let e = decode(b"\xff\xfe", Some("t"), MAX).unwrap_err();
    assert!(matches!(e, PayloadError::NotJson { .. }), "{e:?}");
    // JSON has no NaN; a number too large for f64 is a parse error, not an infinity.
    assert!(matches!(
        err("NaN", Some("t")),
        PayloadError::NotJson { .. }
    ));
    assert!(matches!(
        err("1e999", Some("t")),
        PayloadError::NotJson { .. }
    ));
}

#[test]
fn rejects_non_numeric_single_value() {
    assert_eq!(
        err(r#""21.5""#, Some("t")),
        PayloadError::NotNumeric { found: "a string" }
    );
    assert_eq!(
        err("null", Some("t")),
        PayloadError::NotNumeric { found: "null" }
    );
    assert_eq!(
        err("[1]", Some("t")),
        PayloadError::NotNumeric { found: "an array" }
    );
    assert_eq!(
        err("[1]", Some("t")).to_string(),
        "expected a number, true/false or {\"value\": ...} (the topic names the metric), found an array"
    );
}

#[test]
fn rejects_value_object_without_numeric_value() {
    assert_eq!(err(r#"{"temp": 1}"#, Some("t")), PayloadError::MissingValue);
    assert_eq!(
        err(r#"{"value": "hot"}"#, Some("t")),
        PayloadError::ValueNotNumeric { found: "a string" }
    );
    assert_eq!(
        err(r#"{"value": null}"#, Some("t")).to_string(),
        "field \"value\" is null, not a number or true/false"
    );
}

#[test]
fn rejects_non_object_without_topic_metric() {
    assert_eq!(
        err("21.5", None),
        PayloadError::NotObject { found: "a number" }
    );
    assert_eq!(
        err("true", None),
        PayloadError::NotObject { found: "a boolean" }
    );
    assert!(
        err("21.5", None)
            .to_string()
            .starts_with("expected a JSON object")
    );
}

#[test]
fn rejects_object_with_no_numeric_field() {
    assert_eq!(err("{}", None), PayloadError::NoNumericField);
    assert_eq!(
        err(r#"{"name": "x", "ts": 5}"#, None),
        PayloadError::NoNumericField
    );
    assert_eq!(err("{}", None).to_string(), "no numeric field in object");
}

#[test]
fn rejects_bad_timestamps() {
    assert_eq!(
        err(r#"{"a": 1, "ts": "2024-01-01"}"#, None),
        PayloadError::TimestampNotNumeric { found: "a string" }
    );
    assert_eq!(
        err(r#"{"value": 1, "ts": true}"#, Some("t")),
        PayloadError::TimestampNotNumeric { found: "a boolean" }
    );
    assert!(matches!(
        err(r#"{"a": 1, "ts": 9223372036854775807}"#, None),
        PayloadError::TimestampOutOfRange { .. }
    ));
    assert!(matches!(
        err(r#"{"a": 1, "ts": 18446744073709551615}"#, None),
        PayloadError::TimestampOutOfRange { .. }
    ));
    assert!(matches!(
        err(r#"{"a": 1, "ts": 1e300}"#, None),
        PayloadError::TimestampOutOfRange { .. }
    ));
    assert_eq!(
        err(r#"{"a": 1, "ts": 1e300}"#, None).to_string(),
        "field \"ts\" = 1e+300 ms is out of range"
    );
}
