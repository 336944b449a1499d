//! The engine's memory at 1,000 / 10,000 / 100,000 series, for the workload of issue 19:
//! every series at 1 Hz, three rules on every series (a 10 s tumbling mean/max with an
//! alert, `robust_zscore` over 64 values, CUSUM on the 10 s mean).
//!
//! `cargo bench -p weir-rules --bench memory` (values with 53 random bits);
//! `WEIR_BENCH_DECIMALS=2 cargo bench -p weir-rules --bench memory` (values with 2 decimals,
//! as the agent's footprint script publishes: `robust_zscore` keeps them in 2 bytes each).
//!
//! For each count, in a fresh process state as far as one process allows (counts run from
//! small to large, so the allocator's high-water mark of one does not hide the next): the
//! resident set (`VmRSS`) before the engine exists, after interning the series, and after
//! 120 s of event time (every window and detector buffer full); the engine's own account of
//! its rule state (`Engine::state_bytes`), and both per series. The difference between the
//! RSS growth and the state account is interning, the series table and allocator overhead.
//! Last, the CPU time of interning a known pair by name (the agent does it per sample).

use weir_rules::{Engine, Limits, RuleSet, Sample, SeriesId};

#[path = "common/cpu_clock.rs"]
mod cpu_clock;
#[path = "common/telemetry.rs"]
mod telemetry;

const RULES: &str = "rules:
  - name: hot
    select: { metric: \"*\" }
    window: { tumbling: 10s }
    aggregates: [mean, max]
    alert: { when: \"max > 80\" }
  - name: spike
    select: { metric: \"*\" }
    detect: { robust_zscore: { window: 64 } }
    alert: { severity: warning }
  - name: drift
    select: { metric: \"*\" }
    window: { tumbling: 10s }
    detect: { cusum: {} }
    alert: { severity: warning }
";

/// Resident set size in bytes (Linux), 0 elsewhere.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("memory: skipped (run with `cargo bench -p weir-rules --bench memory`)");
        return;
    }
    println!(
        "engine memory, 3 rules per series (tumbling mean/max + alert, robust_zscore 64, cusum), 1 Hz, after 120 s:"
    );
    let decimals = telemetry::decimals();
    println!("  {}", telemetry::describe(decimals));
    println!(
        "  {:>8} {:>10} {:>12} {:>12} {:>10} {:>12}",
        "series", "RSS idle", "RSS growth", "rule state", "per series", "state/series"
    );
    let mut lookups = Vec::new();
    for series in [1_000usize, 10_000, 100_000] {
        let idle = rss();
        let rules = match RuleSet::parse_str(RULES, "memory.yaml") {
            Ok(r) => r,
            Err(e) => panic!("bench rules do not compile: {e}"),
        };
        let limits = Limits {
            max_series: series,
            max_state_bytes: usize::MAX,
        };
        let mut engine = Engine::with_limits(rules, limits);
        let ids: Vec<SeriesId> = (0..series)
            .map(
                |k| match engine.series(&format!("gw-{:06}", k / 4), &format!("m{}", k % 4)) {
                    Ok(id) => id,
                    Err(e) => panic!("{e}"),
                },
            )
            .collect();
        let mut out = Vec::new();
        let mut noise = 0x9e37_79b9_7f4a_7c15u64;
        for second in 0..120i64 {
            let ts = second * 1_000_000;
            for &id in &ids {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                let value =
                    telemetry::as_sent(decimals, 20.0 + (noise >> 11) as f64 / (1u64 << 53) as f64);
                engine.push(
                    Sample {
                        series: id,
                        ts,
                        value,
                    },
                    &mut out,
                );
            }
            engine.advance(ts, &mut out);
            out.clear();
        }
        let grown = rss().saturating_sub(idle);
        let state = engine.state_bytes();
        println!(
            "  {series:>8} {:>8.1} MB {:>9.1} MB {:>9.1} MB {:>8} B {:>10} B",
            idle as f64 / 1e6,
            grown as f64 / 1e6,
            state as f64 / 1e6,
            grown / series,
            state / series
        );
        // Interning a known pair, as the agent does for every sample it receives (after the
        // RSS is read: the names built here are the bench's, not the engine's).
        let names: Vec<(String, String)> = (0..series)
            .map(|k| (format!("gw-{:06}", k / 4), format!("m{}", k % 4)))
            .collect();
        let rounds = 20_000_000 / series;
        let clock = cpu_clock::CpuClock::now();
        let mut sum = 0u64;
        for _ in 0..rounds {
            for (device, metric) in &names {
                sum += engine
                    .series(device, metric)
                    .map_or(0, |id| u64::from(id.0));
            }
        }
        let ns = clock.elapsed_secs() * 1e9 / (rounds * series) as f64;
        lookups.push(format!("{series}: {ns:.1} ns (checksum {sum})"));
        drop(ids);
        drop(engine);
    }
    println!("  interning a known (device, metric) pair, CPU ns per lookup:");
    for line in lookups {
        println!("    {line}");
    }
}
