//! Encode and decode edges: the `i16` / `i32` boundaries, the scale boundaries, values that
//! are not decimal, and the widening and narrowing between encodings.

use super::*;

fn values(xs: &[f64]) -> Values {
    let mut v = Values::default();
    for &x in xs {
        v.insert(x);
    }
    v
}

/// (scale, wide) of an integer encoding, `None` for `f64`.
fn encoding(v: &Values) -> Option<(u8, bool)> {
    match v {
        Values::I16 { scale, .. } => Some((*scale, false)),
        Values::I32 { scale, .. } => Some((*scale, true)),
        Values::F64(_) => None,
    }
}

fn sorted_bits(xs: &[f64]) -> Vec<u64> {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    xs.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_value_is_kept_at_its_narrowest_exact_encoding() {
    for (x, want) in [
        (0.0, Some((0, false))),
        (1.0, Some((0, false))),
        (-7.0, Some((0, false))),
        (21.37, Some((2, false))),
        (0.1, Some((1, false))),
        (32767.0, Some((0, false))),
        (-32768.0, Some((0, false))),
        (32768.0, Some((0, true))),
        (-32769.0, Some((0, true))),
        (3276.7, Some((1, false))),
        (3276.8, Some((1, true))),
        (1013.25, Some((2, true))),
        (2147483647.0, Some((0, true))),
        (-2147483648.0, Some((0, true))),
        (2147483648.0, None),
        (0.000_000_001, Some((9, false))),
        (2.147_483_647, Some((9, true))),
        (2.147_483_648, None),
        (0.000_000_000_1, None),
        (-0.0, None),
        (1.0 / 3.0, None),
        (std::f64::consts::PI, None),
        (1e150, None),
        (f64::MIN_POSITIVE, None),
    ] {
        let v = values(&[x]);
        assert_eq!(encoding(&v), want, "{x}");
        assert_eq!(v.to_f64()[0].to_bits(), x.to_bits(), "{x}");
    }
}

#[test]
fn decoding_divides_by_the_exact_power_of_ten() {
    // 0.3 is 3 / 10, not 3 × 0.1 (0.30000000000000004): the encoding must decode by
    // division, and every value read back must be the one that went in.
    assert_ne!(3.0 * 0.1, 0.3);
    let xs = [0.3, 0.7, 1.1, 2.3, 0.000_017, 123.456];
    let v = values(&xs);
    assert_eq!(encoding(&v), Some((6, true)));
    assert_eq!(
        v.to_f64().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        sorted_bits(&xs)
    );
}

#[test]
fn a_value_that_does_not_fit_widens_the_window_once_to_what_holds_all() {
    // i16 at scale 1, then a finer value (scale 2), then one beyond i16 at scale 2, then a
    // non-decimal one.
    let mut xs = vec![20.5, 19.5, -3.0];
    let mut v = values(&xs);
    assert_eq!(encoding(&v), Some((1, false)));
    for (x, want) in [
        (20.25, Some((2, false))),
        (327.67, Some((2, false))),
        (327.68, Some((2, true))),
        (0.125, Some((3, true))),
        (1.0 / 3.0, None),
        (5.0, None),
    ] {
        v.insert(x);
        xs.push(x);
        assert_eq!(encoding(&v), want, "after {x}");
        assert_eq!(
            v.to_f64().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            sorted_bits(&xs),
            "after {x}"
        );
    }
}

#[test]
fn a_scale_that_would_overflow_i32_falls_back_to_f64() {
    // 1,000,000 at scale 0 is an i32; with a value at scale 4 it would be 10¹⁰.
    let mut v = values(&[1_000_000.0, 2.0]);
    assert_eq!(encoding(&v), Some((0, true)));
    v.insert(0.0001);
    assert_eq!(encoding(&v), None);
    assert_eq!(
        v.to_f64().iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        sorted_bits(&[1_000_000.0, 2.0, 0.0001])
    );
}

#[test]
fn narrowing_finds_the_narrowest_encoding_the_values_left_allow() {
    // i32 at scale 3 because of 40.125 and -40000; once they are gone, i16 at scale 1.
    let mut v = values(&[40.125, 1.5, 2.0, -40000.0]);
    assert_eq!(encoding(&v), Some((3, true)));
    let mut a: Vec<u8> = vec![0, 1, 2, 3];
    // Arrival numbers in sorted order: -40000 (3), 1.5 (1), 2.0 (2), 40.125 (0).
    a.copy_from_slice(&[3, 1, 2, 0]);
    assert!(v.replace(&mut a, 0, 4, 7.5));
    assert!(v.replace(&mut a, 3, 5, 0.5));
    assert_eq!(
        encoding(&v),
        Some((3, true)),
        "replacing never narrows by itself"
    );
    v.narrow();
    assert_eq!(encoding(&v), Some((1, false)));
    assert_eq!(v.to_f64(), vec![0.5, 1.5, 2.0, 7.5]);
    assert_eq!(a, vec![5, 1, 2, 4]);
    // f64 back to integers once every value is decimal again; a window with one value that
    // is not stays f64.
    let mut f = Values::F64(vec![1.25, 2.5]);
    f.narrow();
    assert_eq!(encoding(&f), Some((2, false)));
    let mut f = Values::F64(vec![1.25, std::f64::consts::E]);
    f.narrow();
    assert_eq!(encoding(&f), None);
    let mut z = Values::F64(vec![-0.0, 1.0]);
    z.narrow();
    assert_eq!(encoding(&z), None, "-0.0 is not 0");
}

#[test]
fn ranks_in_the_integer_domain_are_the_ranks_of_the_values() {
    let xs = [-32768.0, -1.5, -0.5, 0.0, 0.5, 1.5, 1.5, 3276.7];
    let ints = values(&xs);
    assert_eq!(encoding(&ints), Some((1, true)));
    let narrow = values(&xs[1..7]);
    assert_eq!(encoding(&narrow), Some((1, false)));
    let probes = [
        f64::MIN,
        -1e300,
        -40000.0,
        -32768.0,
        -32767.95,
        -1.5,
        -1.49,
        -0.0,
        0.0,
        1e-300,
        0.25,
        1.5,
        1.5000000000000002,
        3276.7,
        3276.75,
        1e12,
        f64::MAX,
    ];
    for (v, xs) in [(&ints, &xs[..]), (&narrow, &xs[1..7])] {
        for &x in &probes {
            let want = xs.iter().filter(|&&y| y < x).count();
            assert_eq!(v.with_sorted(RankOf(x)), want, "{x} in {xs:?}");
        }
    }
}

struct RankOf(f64);

impl SortedFn<usize> for RankOf {
    fn call<S: Sorted + ?Sized>(self, s: &S) -> usize {
        s.rank(self.0)
    }
}

#[test]
fn the_wire_form_is_a_sequence_of_f64_and_a_restore_re_encodes() {
    let xs = vec![-1.5, 0.25, 20.37];
    let v = values(&xs);
    assert_eq!(encoding(&v), Some((2, false)));
    let bytes = postcard::to_allocvec(&v).unwrap();
    assert_eq!(bytes, postcard::to_allocvec(&xs).unwrap());
    let back: Values = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, v);
    assert_eq!(back.heap_bytes(), 3 * size_of::<i16>());
}

#[test]
fn heap_bytes_counts_the_encoding_held() {
    let mut v = Values::default();
    for i in 0..64 {
        v.insert(f64::from(i) / 100.0);
    }
    assert_eq!(v.heap_bytes(), 64 * 2);
    v.insert(1e6);
    assert_eq!(
        v.heap_bytes(),
        128 * 4,
        "one widening, the capacity grown by the insert"
    );
    v.insert(0.1 + 0.2);
    assert_eq!(v.heap_bytes(), 128 * 8);
}

/// Every value of the window, and the floats either side of it, ranked by the integer
/// threshold as by comparing `f64`s, at every scale (`x · 10ᵈ` of a kept value is not always
/// its integer: the threshold steps to the exact one).
#[test]
fn ranks_of_kept_values_and_their_neighbours_at_every_scale() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for d in 0..=MAX_SCALE {
        for wide in [false, true] {
            let span: i64 = if wide { 2_000_000_000 } else { 30_000 };
            let xs: Vec<f64> = (0..200)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    ((seed % (2 * span as u64)) as i64 - span) as f64 / P10[usize::from(d)]
                })
                .collect();
            let v = values(&xs);
            assert!(encoding(&v).is_some_and(|e| e.0 <= d), "scale {d}");
            for &x in &xs {
                for probe in [x.next_down(), x, x.next_up()] {
                    let want = xs.iter().filter(|&&y| y < probe).count();
                    assert_eq!(v.with_sorted(RankOf(probe)), want, "{probe:e} at scale {d}");
                }
            }
        }
    }
}

#[test]
fn windows_holding_the_same_values_are_equal_whatever_their_encodings() {
    let narrow = values(&[1.5, 2.0]);
    let wide = Values::F64(vec![1.5, 2.0]);
    assert_ne!(encoding(&narrow), encoding(&wide));
    assert_eq!(narrow, wide);
    assert_ne!(narrow, Values::F64(vec![1.5, 2.5]));
    assert_ne!(narrow, Values::F64(vec![1.5]));
}
