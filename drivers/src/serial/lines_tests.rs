use super::*;

fn lines(acc: &mut LineAccumulator, mut input: &[u8]) -> Vec<Result<String, usize>> {
    let mut out = Vec::new();
    loop {
        match acc.feed(input) {
            LineFeed::Consumed => return out,
            LineFeed::Line { line, remaining } => {
                out.push(Ok(String::from_utf8_lossy(line).into_owned()));
                input = remaining;
            }
            LineFeed::TooLong { limit, remaining } => {
                out.push(Err(limit));
                input = remaining;
            }
        }
    }
}

fn values(r: &Record<'_>) -> Vec<(String, f64)> {
    r.values.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn lines_are_split_across_reads_and_crlf_is_stripped() {
    let mut acc = LineAccumulator::new(64);
    assert_eq!(lines(&mut acc, b"a=1\r\nb="), vec![Ok("a=1".to_owned())]);
    assert_eq!(
        lines(&mut acc, b"2\n\n  \r\nc=3"),
        vec![Ok("b=2".to_owned())]
    );
    assert_eq!(lines(&mut acc, b"\n"), vec![Ok("c=3".to_owned())]);
}

#[test]
fn an_overlong_line_is_reported_once_and_skipped() {
    let mut acc = LineAccumulator::new(8);
    let mut input = vec![b'x'; 100];
    input.extend(b"\na=1\n");
    assert_eq!(lines(&mut acc, &input), vec![Err(8), Ok("a=1".to_owned())]);
}

#[test]
fn kv_lines() {
    let mut d = LineDecoder::KvLines;
    let r = d
        .decode(b"device=pump-1 temp=21.5,hum=40;on=true ts=1700000000000")
        .expect("valid")
        .expect("a record");
    assert_eq!(r.device.as_deref(), Some("pump-1"));
    assert_eq!(r.ts, Some(1_700_000_000_000_000));
    assert_eq!(
        values(&r),
        vec![
            ("temp".into(), 21.5),
            ("hum".into(), 40.0),
            ("on".into(), 1.0)
        ]
    );
    assert!(matches!(
        d.decode(b"temp 21.5"),
        Err(LineError::NotPair { .. })
    ));
    assert!(matches!(
        d.decode(b"temp=warm"),
        Err(LineError::NotNumber { .. })
    ));
    assert!(matches!(
        d.decode(b"temp=NaN"),
        Err(LineError::NotNumber { .. })
    ));
    assert!(matches!(
        d.decode(b"ts=soon a=1"),
        Err(LineError::BadTs { .. })
    ));
    assert_eq!(d.decode(b"device=x"), Err(LineError::NoValues));
    assert_eq!(d.decode(b"a=\xff"), Err(LineError::NotUtf8));
}

#[test]
fn json_lines() {
    let mut d = LineDecoder::JsonLines { max_line: 1024 };
    let r = d
        .decode(br#"{"device":"m-2","rpm":1500,"ok":false,"ts":1000,"note":"x"}"#)
        .expect("valid")
        .expect("a record");
    assert_eq!(r.device.as_deref(), Some("m-2"));
    assert_eq!(r.ts, Some(1_000_000));
    let mut v = values(&r);
    v.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(v, vec![("ok".into(), 0.0), ("rpm".into(), 1500.0)]);
    let r = d.decode(br#"{"rpm":1}"#).expect("valid").expect("a record");
    assert_eq!(r.device, None);
    assert!(matches!(d.decode(b"{\"rpm\":"), Err(LineError::Json(_))));
    assert!(matches!(d.decode(b"[1,2]"), Err(LineError::Json(_))));
}

#[test]
fn csv_with_header_and_a_repeated_header() {
    let mut d = LineDecoder::Csv { header: None };
    assert_eq!(d.decode(b"device, ts, temp, hum"), Ok(None));
    let r = d
        .decode(b"pump-1,,21.5,40")
        .expect("valid")
        .expect("a record");
    assert_eq!((r.device.as_deref(), r.ts), (Some("pump-1"), None));
    assert_eq!(
        values(&r),
        vec![("temp".into(), 21.5), ("hum".into(), 40.0)]
    );
    let r = d
        .decode(b"pump-1,2000,,41")
        .expect("valid")
        .expect("a record");
    assert_eq!(
        (r.ts, values(&r)),
        (Some(2_000_000), vec![("hum".into(), 41.0)])
    );
    assert_eq!(
        d.decode(b"pump-1,1"),
        Err(LineError::CellCount {
            found: 2,
            expected: 4
        })
    );
    assert!(matches!(
        d.decode(b"pump-1,,warm,40"),
        Err(LineError::NotNumber { .. })
    ));
    // The device rebooted with another column order.
    assert_eq!(d.decode(b"hum,temp"), Ok(None));
    let r = d.decode(b"50,22").expect("valid").expect("a record");
    assert_eq!(
        values(&r),
        vec![("hum".into(), 50.0), ("temp".into(), 22.0)]
    );
    d.reset();
    assert_eq!(
        d.decode(b"a,b"),
        Ok(None),
        "first line after a reset is a header"
    );
}
