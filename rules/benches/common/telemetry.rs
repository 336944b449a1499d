//! `WEIR_BENCH_DECIMALS=<d>`: bench values rounded to `d` decimals, as a sensor publishing
//! "20.37" or a Modbus register with a decimal scale sends them; unset, the values are
//! arbitrary floats (53 random bits). `robust_zscore` keeps decimal values in fewer bytes
//! (module `detect::zscore::window`), so its state and speed depend on which.

/// The number of decimals asked for, if any (0..=9).
pub fn decimals() -> Option<i32> {
    std::env::var("WEIR_BENCH_DECIMALS")
        .ok()
        .and_then(|d| d.parse::<i32>().ok())
        .filter(|d| (0..=9).contains(d))
}

/// `v` as the telemetry would carry it: rounded to `decimals` when set.
pub fn as_sent(decimals: Option<i32>, v: f64) -> f64 {
    match decimals {
        Some(d) => {
            let p = 10f64.powi(d);
            (v * p).round() / p
        }
        None => v,
    }
}

/// How the values are described in a bench's output.
pub fn describe(decimals: Option<i32>) -> String {
    match decimals {
        Some(d) => format!("values rounded to {d} decimals (WEIR_BENCH_DECIMALS)"),
        None => "values arbitrary floats (WEIR_BENCH_DECIMALS unset)".to_owned(),
    }
}
