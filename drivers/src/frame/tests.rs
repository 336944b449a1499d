use proptest::prelude::*;

use super::*;

fn frame(device: &str, seq: u32, ts_ms: Option<u64>, points: &[(&str, f32)]) -> Frame {
    let mut f = Frame {
        device: String::try_from(device).expect("test name fits"),
        seq,
        ts_ms,
        points: Vec::new(),
    };
    for &(metric, value) in points {
        let metric = String::try_from(metric).expect("test name fits");
        f.points
            .push(Point { metric, value })
            .expect("test points fit");
    }
    f
}

fn wire(f: &Frame) -> std::vec::Vec<u8> {
    let mut out = [0u8; MAX_WIRE];
    let n = encode(f, &mut out).expect("encodes");
    out[..n].to_vec()
}

/// Feeds `bytes` in one go and collects every outcome.
fn feed_all<const N: usize>(
    acc: &mut Accumulator<N>,
    mut bytes: &[u8],
) -> std::vec::Vec<Result<Frame, FrameError>> {
    let mut out = std::vec::Vec::new();
    loop {
        match acc.feed(bytes) {
            Feed::Consumed => return out,
            Feed::Frame { frame, remaining } => {
                out.push(Ok(frame));
                bytes = remaining;
            }
            Feed::Rejected { error, remaining } => {
                out.push(Err(error));
                bytes = remaining;
            }
        }
    }
}

#[test]
fn crc_is_crc16_ibm_3740() {
    // The catalogue's check value: firmware authors can verify their CRC against it.
    assert_eq!(CRC16.checksum(b"123456789"), 0x29B1);
}

#[test]
fn cobs_matches_the_published_examples() {
    let cases: &[(&[u8], &[u8])] = &[
        (&[0x00], &[0x01, 0x01]),
        (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
        (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
        (&[0x11, 0x22, 0x33, 0x44], &[0x05, 0x11, 0x22, 0x33, 0x44]),
        (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
    ];
    for &(raw, encoded) in cases {
        let mut out = [0u8; 16];
        let n = cobs::encode(raw, &mut out).expect("fits");
        assert_eq!(&out[..n], encoded, "encoding {raw:02x?}");
        let mut buf = encoded.to_vec();
        let n = cobs::decode_in_place(&mut buf).expect("valid");
        assert_eq!(&buf[..n], raw, "decoding {encoded:02x?}");
    }
    // 254 non-zero bytes: one 0xFF block, no trailing 0x01 (the canonical form).
    let raw: std::vec::Vec<u8> = (1..=254).collect();
    let mut out = [0u8; 300];
    let n = cobs::encode(&raw, &mut out).expect("fits");
    assert_eq!(n, 255);
    assert_eq!(out[0], 0xFF);
    // 255 non-zero bytes: 0xFF block, then a block of one.
    let raw: std::vec::Vec<u8> = (1..=255).collect();
    let n = cobs::encode(&raw, &mut out).expect("fits");
    assert_eq!(
        (&out[..2], out[255], out[256], n),
        (&[0xFF, 1][..], 0x02, 0xFF, 257)
    );
}

#[test]
fn golden_frame_bytes() {
    // Pinned: changing any byte here breaks every deployed device.
    let f = frame("pump-1", 7, None, &[("temp", 21.5)]);
    // Decoded: 01 | 06 "pump-1" | 07 | 00 (no ts) | 01 point: 04 "temp" 00 00 ac 41 | crc d4c8.
    let expected: &[u8] = &[
        0x0A, 0x01, 0x06, b'p', b'u', b'm', b'p', b'-', b'1', 0x07, // COBS block of 9
        0x07, 0x01, 0x04, b't', b'e', b'm', b'p', // block of 6 (the zero was ts_ms: None)
        0x01, // the first zero byte of 21.5f32 (00 00 ac 41)
        0x05, 0xAC, 0x41, 0xC8, 0xD4, // the rest of the f32, then CRC 0xD4C8 little-endian
        0x00, // delimiter
    ];
    assert_eq!(wire(&f), expected, "{:02x?}", wire(&f));
    let mut enc = expected[..expected.len() - 1].to_vec();
    assert_eq!(decode(&mut enc), Ok(f));
}

#[test]
fn golden_frame_with_timestamp_and_two_points() {
    let f = frame(
        "m",
        300,
        Some(1_700_000_000_000),
        &[("a", -1.0), ("b", 0.0)],
    );
    let bytes = wire(&f);
    let mut enc = bytes[..bytes.len() - 1].to_vec();
    let n = cobs::decode_in_place(&mut enc).expect("valid cobs");
    let raw = &enc[..n];
    // version, "m", seq 300 as varint (ac 02), Some(ts) varint, 2 points
    assert_eq!(&raw[..6], &[0x01, 0x01, b'm', 0xAC, 0x02, 0x01]);
    assert_eq!(&raw[6..12], &[0x80, 0xD0, 0x95, 0xFF, 0xBC, 0x31]);
    assert_eq!(
        &raw[12..],
        &[
            0x02, 0x01, b'a', 0x00, 0x00, 0x80, 0xBF, 0x01, b'b', 0x00, 0x00, 0x00, 0x00, 0xC7,
            0x6B
        ]
    );
    assert_eq!(decode(&mut bytes[..bytes.len() - 1].to_vec()), Ok(f));
}

#[test]
fn a_full_frame_fits_the_limits() {
    let name = "x".repeat(MAX_NAME);
    let pts: std::vec::Vec<(&str, f32)> = (0..MAX_POINTS).map(|_| (name.as_str(), 1.0)).collect();
    let f = frame(&name, u32::MAX, Some(u64::MAX), &pts);
    let bytes = wire(&f);
    assert!(bytes.len() <= MAX_WIRE, "{} > {MAX_WIRE}", bytes.len());
    let mut acc = Accumulator::<MAX_WIRE>::new();
    assert_eq!(feed_all(&mut acc, &bytes), vec![Ok(f)]);
}

#[test]
fn resynchronises_after_garbage_and_counts_it() {
    let a = frame("dev", 1, None, &[("v", 1.0)]);
    let b = frame("dev", 2, None, &[("v", 2.0)]);
    let mut stream = b"\x13\x37garbage without a zero".to_vec();
    stream.push(0);
    stream.extend(wire(&a));
    stream.extend([0xFF, 0x00, 0x00, 0x00]); // bad COBS, then empty frames
    stream.extend(wire(&b));
    let mut acc = Accumulator::<MAX_WIRE>::new();
    let out = feed_all(&mut acc, &stream);
    let good: std::vec::Vec<_> = out.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(good, vec![&a, &b]);
    assert_eq!(out.len(), 4, "{out:?}");
    let stats = acc.stats();
    assert_eq!((stats.frames, stats.malformed + stats.crc_errors), (2, 2));
}

#[test]
fn a_flipped_bit_is_a_crc_error() {
    let f = frame("dev", 9, None, &[("v", 3.25)]);
    let mut bytes = wire(&f);
    bytes[8] ^= 0x04; // inside the device name: still valid COBS and postcard
    let mut acc = Accumulator::<MAX_WIRE>::new();
    let out = feed_all(&mut acc, &bytes);
    assert!(
        matches!(out.as_slice(), [Err(FrameError::Crc { .. })]),
        "{out:?}"
    );
    assert_eq!(acc.stats().crc_errors, 1);
    // The next good frame still arrives.
    assert_eq!(feed_all(&mut acc, &wire(&f)), vec![Ok(f)]);
}

#[test]
fn oversize_frames_are_reported_once_and_skipped() {
    let f = frame("dev", 1, None, &[("v", 1.0)]);
    let mut acc = Accumulator::<64>::new();
    let mut stream = vec![0x42; 500];
    stream.push(0);
    stream.extend(wire(&f));
    let out = feed_all(&mut acc, &stream);
    assert_eq!(out, vec![Err(FrameError::Oversize { limit: 64 }), Ok(f)]);
    assert_eq!(acc.stats().oversize, 1);
}

#[test]
fn a_frame_split_across_reads_is_reassembled() {
    let f = frame("dev", 5, Some(12), &[("a", 1.5), ("b", -2.5)]);
    let bytes = wire(&f);
    let mut acc = Accumulator::<MAX_WIRE>::new();
    for chunk in bytes[..bytes.len() - 1].chunks(3) {
        assert_eq!(acc.feed(chunk), Feed::Consumed);
    }
    assert_eq!(acc.pending(), bytes.len() - 1);
    assert_eq!(feed_all(&mut acc, &[0]), vec![Ok(f)]);
}

#[test]
fn wrong_version_and_trailing_bytes_are_rejected() {
    let f = frame("dev", 1, None, &[]);
    let mut raw = [0u8; MAX_RAW];
    let body = postcard::to_slice(&f, &mut raw[1..]).expect("fits").len();
    for (version, extra, want) in [
        (2u8, 0usize, FrameError::Version { found: 2 }),
        (VERSION, 1, FrameError::TrailingBytes { count: 1 }),
    ] {
        raw[0] = version;
        let n = 1 + body + extra;
        raw[1 + body] = 0x55;
        let crc = CRC16.checksum(&raw[..n]).to_le_bytes();
        let mut framed = raw[..n].to_vec();
        framed.extend(crc);
        let mut enc = [0u8; MAX_WIRE];
        let m = cobs::encode(&framed, &mut enc).expect("fits");
        assert_eq!(decode(&mut enc[..m]), Err(want));
    }
}

#[test]
fn encode_rejects_a_small_buffer() {
    let f = frame("dev", 1, None, &[("v", 1.0)]);
    let mut out = [0u8; 8];
    assert_eq!(
        encode(&f, &mut out),
        Err(FrameError::BufferTooSmall { len: 8 })
    );
}

#[test]
fn module_uses_core_only() {
    // The firmware shares these files: a `std` or `alloc` path would not build there.
    for (name, src) in [
        ("mod.rs", include_str!("mod.rs")),
        ("cobs.rs", include_str!("cobs.rs")),
        ("accumulator.rs", include_str!("accumulator.rs")),
    ] {
        for forbidden in [
            "std::",
            "alloc::",
            "Box<",
            "format!",
            "vec!",
            "to_vec",
            ".to_owned",
        ] {
            assert!(!src.contains(forbidden), "{name} uses `{forbidden}`");
        }
    }
}

fn arb_name() -> impl Strategy<Value = String<MAX_NAME>> {
    "[a-zA-Z0-9_.-]{0,24}".prop_map(|s| String::try_from(s.as_str()).expect("≤ 24 ASCII bytes"))
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let point = (arb_name(), any::<f32>()).prop_map(|(metric, value)| Point { metric, value });
    (
        arb_name(),
        any::<u32>(),
        any::<Option<u64>>(),
        proptest::collection::vec(point, 0..=MAX_POINTS),
    )
        .prop_map(|(device, seq, ts_ms, pts)| Frame {
            device,
            seq,
            ts_ms,
            points: Vec::from_slice(&pts).expect("≤ MAX_POINTS"),
        })
}

/// Compares by bits so NaN payloads round-trip too.
fn same(a: &Frame, b: &Frame) -> bool {
    a.device == b.device
        && a.seq == b.seq
        && a.ts_ms == b.ts_ms
        && a.points.len() == b.points.len()
        && a.points
            .iter()
            .zip(&b.points)
            .all(|(p, q)| p.metric == q.metric && p.value.to_bits() == q.value.to_bits())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                   chunk in 1usize..64) {
        let mut acc = Accumulator::<128>::new();
        let mut outcomes = 0u64;
        for piece in bytes.chunks(chunk) {
            outcomes += feed_all(&mut acc, piece).len() as u64;
        }
        let s = acc.stats();
        prop_assert_eq!(s.frames + s.crc_errors + s.oversize + s.malformed, outcomes);
        prop_assert!(acc.pending() <= 128);
    }

    #[test]
    fn encode_decode_round_trips(f in arb_frame()) {
        let bytes = wire(&f);
        prop_assert!(bytes.len() <= MAX_WIRE);
        prop_assert_eq!(bytes.iter().position(|&b| b == 0), Some(bytes.len() - 1));
        let mut enc = bytes[..bytes.len() - 1].to_vec();
        let back = decode(&mut enc);
        prop_assert!(back.as_ref().is_ok_and(|b| same(b, &f)), "{:?}", back);
    }

    #[test]
    fn frames_survive_interleaved_garbage(
        items in proptest::collection::vec(
            (arb_frame(), proptest::collection::vec(any::<u8>(), 0..40)), 1..8),
        chunk in 1usize..100,
    ) {
        // Garbage then a delimiter before each frame: every frame must come out, in order
        // (garbage may, very rarely, decode as an extra frame; that is allowed).
        let mut stream = std::vec::Vec::new();
        for (f, garbage) in &items {
            stream.extend(garbage);
            stream.push(0);
            stream.extend(wire(f));
        }
        let mut acc = Accumulator::<MAX_WIRE>::new();
        let mut got = std::vec::Vec::new();
        for piece in stream.chunks(chunk) {
            got.extend(feed_all(&mut acc, piece).into_iter().filter_map(Result::ok));
        }
        let mut want = items.iter().map(|(f, _)| f).peekable();
        for g in &got {
            if want.peek().is_some_and(|w| same(w, g)) {
                want.next();
            }
        }
        prop_assert!(want.peek().is_none(), "missing frames; got {:?}", got);
    }
}
