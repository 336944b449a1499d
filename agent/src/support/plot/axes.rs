//! The plot's axes, apart from the panels because they are about numbers and calendars, not
//! data: round value ticks (1, 2 or 5 × 10^k apart) and time ticks whose UTC labels are as
//! precise as their spacing needs (dates for days apart, seconds for seconds apart).

use std::fmt::Write as _;

use super::{Frame, LEFT, RIGHT, WIDTH};

pub(super) fn axes(svg: &mut String, f: &Frame) {
    for v in nice_ticks(f.v0, f.v1, 5) {
        let y = f.y(v);
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            format_value(v)
        );
    }
    let step = time_step(f.t1 - f.t0);
    let mut t = f.t0.div_euclid(step) * step;
    if t < f.t0 {
        t += step;
    }
    while t <= f.t1 {
        let x = f.x(t);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            f.bottom,
            f.bottom + 4.0,
            f.bottom + 16.0,
            format_time(t, step)
        );
        t += step;
    }
}

/// About `n` round values (1, 2 or 5 × 10^k apart) within `[lo, hi]`.
fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

fn format_value(v: f64) -> String {
    if v == 0.0 || (1e-3..1e6).contains(&v.abs()) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        format!("{v:.2e}")
    }
}

/// A round tick spacing (µs) giving at most about eight ticks over `span`.
fn time_step(span: i64) -> i64 {
    const S: i64 = 1_000_000;
    const STEPS: [i64; 20] = [
        1_000,
        10_000,
        100_000,
        S,
        2 * S,
        5 * S,
        10 * S,
        30 * S,
        60 * S,
        300 * S,
        600 * S,
        1_800 * S,
        3_600 * S,
        3 * 3_600 * S,
        6 * 3_600 * S,
        12 * 3_600 * S,
        86_400 * S,
        7 * 86_400 * S,
        30 * 86_400 * S,
        365 * 86_400 * S,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 8)
        .unwrap_or(10 * 365 * 86_400 * S)
}

/// UTC, as precise as the tick spacing needs.
fn format_time(us: i64, step: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    let (hh, mm, ss) = (tod / 3600, tod / 60 % 60, tod % 60);
    if step >= 86_400_000_000 {
        format!("{y:04}-{m:02}-{d:02}")
    } else if step >= 60_000_000 {
        format!("{m:02}-{d:02} {hh:02}:{mm:02}")
    } else if step >= 1_000_000 {
        format!("{hh:02}:{mm:02}:{ss:02}")
    } else {
        format!("{ss:02}.{:03}", us.rem_euclid(1_000_000) / 1000)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ticks() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(format_time(1_396_310_410_000_000, 1_000_000), "00:00:10");
        assert_eq!(
            format_time(1_396_310_410_000_000, 86_400_000_000),
            "2014-04-01"
        );
        assert_eq!(nice_ticks(0.0, 10.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(format_value(2.5), "2.5");
        assert_eq!(time_step(3_600_000_000), 600_000_000);
    }
}
