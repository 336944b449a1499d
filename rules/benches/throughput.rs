//! Engine throughput and state size, printed as figures a reader can compare.
//!
//! `cargo bench -p weir-rules --bench throughput` (`-- group_by`: only the group_by figures;
//! `-- peers`: only the other-metrics figures; `-- nab`: only `examples/rules/nab.yaml` over
//! the vendored NAB corpus)
//!
//! Throughput: 10,000 series fed round-robin (one sample per series every 100 ms of event
//! time, so each 10 s tumbling window holds 100 samples), `advance` after every round, as the
//! agent does. With R rules, rule `2j` and `2j + 1` both select metric `m{j}`, so every sample
//! matches two rules (one rule: every sample matches it). The engine is single-threaded, so
//! samples/s is samples/s per core; time is the thread's CPU time (Linux), so other processes
//! on a busy machine do not count against it (their cache pressure still does).

use std::hint::black_box;

#[path = "common/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::CpuClock;

use weir_rules::{DeviceLabels, Engine, Limits, RuleSet, Sample, SeriesId};

const SERIES: usize = 10_000;

fn ruleset(rules: usize, window: &str, body: &str) -> RuleSet {
    let mut yaml = String::from("rules:\n");
    for i in 0..rules {
        let metric = if rules == 1 {
            "*".to_owned()
        } else {
            format!("m{}", i / 2)
        };
        yaml.push_str(&format!(
            "  - name: r{i}\n    select: {{ metric: \"{metric}\" }}\n    window: {window}\n    {body}\n"
        ));
    }
    match RuleSet::parse_str(&yaml, "bench.yaml") {
        Ok(set) => set,
        Err(e) => panic!("bench rules do not compile: {e}"),
    }
}

fn engine(rules: usize, window: &str, body: &str) -> (Engine, Vec<SeriesId>) {
    engine_of(SERIES, rules, window, body)
}

fn engine_of(series: usize, rules: usize, window: &str, body: &str) -> (Engine, Vec<SeriesId>) {
    let metrics = (rules / 2).max(1);
    let limits = Limits {
        max_series: series,
        max_state_bytes: usize::MAX,
    };
    let mut engine = Engine::with_limits(ruleset(rules, window, body), limits);
    let ids = (0..series)
        .map(
            |k| match engine.series(&format!("d{k}"), &format!("m{}", k % metrics)) {
                Ok(id) => id,
                Err(e) => panic!("{e}"),
            },
        )
        .collect();
    (engine, ids)
}

fn throughput(rules: usize, rounds: i64, window: &str) -> (f64, u64) {
    throughput_of(rules, rounds, window, "alert: { when: \"mean > 80\" }")
}

fn throughput_of(rules: usize, rounds: i64, window: &str, body: &str) -> (f64, u64) {
    let (mut engine, ids) = engine(rules, window, body);
    run(&mut engine, &ids, rounds)
}

/// The stream above through `engine`: samples/s and events emitted.
fn run(engine: &mut Engine, ids: &[SeriesId], rounds: i64) -> (f64, u64) {
    let mut out = Vec::with_capacity(4 * SERIES);
    let mut events = 0u64;
    let start = CpuClock::now();
    for round in 0..rounds {
        let ts = round * 100_000;
        for (k, &series) in ids.iter().enumerate() {
            // Every third 10 s window of a series runs hot, so alerts are raised and cleared.
            let hot = (round / 100 + k as i64) % 3 == 0;
            let value = if hot { 90.0 } else { 20.0 } + (round % 7) as f64;
            engine.push(Sample { series, ts, value }, &mut out);
        }
        engine.advance(ts, &mut out);
        events += out.len() as u64;
        out.clear();
    }
    let secs = start.elapsed_secs();
    black_box(engine.stats());
    ((rounds as f64 * SERIES as f64) / secs, events)
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: skip the
    // minutes of measuring there, as criterion does.
    if !std::env::args().any(|a| a == "--bench") {
        println!("throughput: skipped (run with `cargo bench -p weir-rules --bench throughput`)");
        return;
    }
    // `-- group_by` runs only the grouped comparison (which includes its ungrouped baseline).
    if std::env::args().skip(1).any(|a| a == "group_by") {
        grouped();
        return;
    }
    // `-- nab` runs only the NAB corpus through `examples/rules/nab.yaml`.
    if std::env::args().skip(1).any(|a| a == "nab") {
        nab();
        return;
    }
    // `-- peers` runs only the other-metrics comparison.
    if std::env::args().skip(1).any(|a| a == "peers") {
        peers();
        return;
    }
    // `-- state` prints only the state-per-series tables.
    if std::env::args().skip(1).any(|a| a == "state") {
        state_tables();
        return;
    }
    // `-- window_kinds hopping` runs only the window-kind comparison, for the kinds whose
    // name contains the next argument (all without one), e.g. under `perf stat`.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "window_kinds") {
        window_kinds(args.get(i + 1).map_or("", String::as_str));
        return;
    }
    println!("throughput: {SERIES} series, tumbling 10 s windowed mean, alert `mean > 80`");
    for (rules, rounds) in [(1, 1_000), (100, 1_000), (1_000, 300)] {
        let (rate, events) = throughput(rules, rounds, "{ tumbling: 10s }");
        let matches = if rules == 1 { 1 } else { 2 };
        println!(
            "  {rules:>5} rules ({matches} match per sample): {:>6.2} M samples/s/core  ({events} events)",
            rate / 1e6
        );
    }
    grouped();
    window_kinds("");
    println!("throughput with the state-keeping aggregates: 100 rules, tumbling 10 s, same stream");
    for (kind, body) in [
        (
            "kurtosis, crest factor (in Acc)",
            "alert: { when: \"kurtosis > 6 or crest_factor > 5\" }",
        ),
        ("p95 (sketch)", "alert: { when: \"p95 > 80\" }"),
        (
            "band energy (fft 64)",
            &format!("{FFT}\n    alert: {{ when: \"band_energy.high > 1\" }}"),
        ),
    ] {
        let (rate, events) = throughput_of(100, 200, "{ tumbling: 10s }", body);
        println!(
            "  {kind:<32} {:>6.2} M samples/s/core  ({events} events)",
            rate / 1e6
        );
    }
    state_tables();
}

/// State per (rule, series) by window kind and aggregates kept.
fn state_tables() {
    println!(
        "state per series per rule, by aggregates kept (inline slot + heap, excluding interning;"
    );
    println!("10 samples/s, so a 10 s window holds 100):");
    println!(
        "  {:<28} {:>10} {:>10} {:>10}",
        "", "mean", "+ p95", "+ fft 64"
    );
    for (kind, window) in [
        ("tumbling 10s", "{ tumbling: 10s }"),
        ("hopping 1m/10s", "{ hopping: { size: 1m, hop: 10s } }"),
        ("count 100", "{ count: 100 }"),
        ("session 5s", "{ session: 5s }"),
        (
            "sliding 10s (100 samples)",
            "{ sliding: 10s, max_samples: 128 }",
        ),
    ] {
        let sizes: Vec<usize> = [
            "aggregates: [mean]".to_owned(),
            "aggregates: [mean, p95]".to_owned(),
            format!("{FFT}\n    aggregates: [mean, p95, band_energy.low]"),
        ]
        .iter()
        .map(|body| state_per_series(window, body))
        .collect();
        println!(
            "  {kind:<28} {:>8} B {:>8} B {:>8} B",
            sizes[0], sizes[1], sizes[2]
        );
    }
    println!("state per series per rule (inline slot + heap, excluding interning):");
    for (kind, window, body) in [
        ("tumbling 10s", "{ tumbling: 10s }", "aggregates: [mean]"),
        (
            "hopping 1m/10s",
            "{ hopping: { size: 1m, hop: 10s } }",
            "aggregates: [mean]",
        ),
        ("count 100", "{ count: 100 }", "aggregates: [mean]"),
        ("session 5s", "{ session: 5s }", "aggregates: [mean]"),
        (
            "sliding 10s (100 samples)",
            "{ sliding: 10s, max_samples: 128 }",
            "aggregates: [mean]",
        ),
        (
            "sliding default cap",
            "{ sliding: 10s }",
            "aggregates: [mean]",
        ),
        (
            "tumbling + prev()",
            "{ tumbling: 10s }",
            "alert: { when: \"mean > prev(mean)\" }",
        ),
        // A full rule (reads a Welford total): its window's accumulator keeps 8 more words
        // behind a pointer (`InlineAcc`).
        (
            "tumbling 10s, full (stddev)",
            "{ tumbling: 10s }",
            "aggregates: [mean, stddev]",
        ),
        (
            "hopping 1m/10s, full (stddev)",
            "{ hopping: { size: 1m, hop: 10s } }",
            "aggregates: [mean, stddev]",
        ),
    ] {
        println!("  {kind:<32} {:>6} bytes", state_per_series(window, body));
    }
}

/// Every window kind with a lean rule and a full one, in one run so the ratio holds whatever
/// else the machine is doing; only the kinds whose name contains `only`.
fn window_kinds(only: &str) {
    const WINDOW_KIND_ROUNDS: i64 = 1_200;
    println!("throughput by window kind: 100 rules, 2 match per sample, same stream");
    println!(
        "  (lean: `mean > 80` reads no Welford total; full: `mean > 80 and stddev >= 0` does)"
    );
    for (kind, window) in [
        ("tumbling 10s", "{ tumbling: 10s }"),
        ("hopping 1m/10s", "{ hopping: { size: 1m, hop: 10s } }"),
        ("count 100", "{ count: 100 }"),
        ("session 5s (stream never idles)", "{ session: 5s }"),
        ("sliding 1s (10 samples)", "{ sliding: 1s }"),
        ("sliding 10s (100 samples)", "{ sliding: 10s }"),
    ] {
        if !kind.contains(only) {
            continue;
        }
        // 120 s of event time: 1 m hopping windows open, fill and close six times over.
        let (rate, events) = throughput(100, WINDOW_KIND_ROUNDS, window);
        let full = "alert: { when: \"mean > 80 and stddev >= 0\" }";
        let (full_rate, _) = throughput_of(100, WINDOW_KIND_ROUNDS, window, full);
        println!(
            "  {kind:<32} {:>6.2} M samples/s/core lean, {:>6.2} M full ({:.2}×)  ({events} events)",
            rate / 1e6,
            full_rate / 1e6,
            rate / full_rate
        );
    }
    if "sliding 10s, p95".contains(only) || only.is_empty() {
        let (rate, events) = throughput_of(
            100,
            WINDOW_KIND_ROUNDS,
            "{ sliding: 10s }",
            "alert: { when: \"p95 > 80\" }",
        );
        println!(
            "  {:<32} {:>6.2} M samples/s/core  ({events} events)",
            "sliding 10s, p95",
            rate / 1e6
        );
    }
}

/// The same 100 rules and stream, ungrouped and grouped, measured in one run so the ratio
/// holds whatever else the machine is doing. Device `d{k}` has label `site=s{k / 1000}`, so
/// each rule's 200 series fall in 10 sites. The
/// alert is on `max` so that groups, which mix hot and cold series, raise alerts too.
fn grouped() {
    println!(
        "throughput with group_by: 100 rules, 2 match per sample, tumbling 10 s, alert `max > 80`"
    );
    let site = |i: usize| vec![("site".to_owned(), format!("s{i}"))];
    let small = ["d?", "d??", "d???"].map(|p| (p.to_owned(), site(0)));
    let sites = small
        .into_iter()
        .chain((1..10).map(|i| (format!("d{i}???"), site(i))));
    let labels = DeviceLabels::new(sites).expect("bench label patterns are valid");
    let body = "alert: { when: \"max > 80\" }";
    for (kind, group_by) in [
        ("ungrouped (10,000 series windows)", None),
        ("group_by: label.site (1,000 groups)", Some("label.site")),
        ("group_by: all (100 groups)", Some("all")),
    ] {
        let body = match group_by {
            Some(g) => format!("group_by: {g}\n    {body}"),
            None => body.to_owned(),
        };
        let limits = Limits {
            max_series: SERIES + 1_000,
            max_state_bytes: usize::MAX,
        };
        let rules = ruleset(100, "{ tumbling: 10s }", &body);
        let mut engine = Engine::with_limits(rules, limits);
        engine.set_labels(labels.clone());
        let ids: Vec<SeriesId> = (0..SERIES)
            .map(
                |k| match engine.series(&format!("d{k}"), &format!("m{}", k % 50)) {
                    Ok(id) => id,
                    Err(e) => panic!("{e}"),
                },
            )
            .collect();
        let (rate, events) = run(&mut engine, &ids, 300);
        let state = engine.state_bytes() as f64 / 1e6;
        println!(
            "  {kind:<38} {:>6.2} M samples/s/core  ({events} events, window state {state:.2} MB)",
            rate / 1e6
        );
    }
}

/// Rules reading another metric of the device over the same window (`mean(metric.x)`),
/// against the same rules without the read, in one run. 1,000 devices with 10 metrics each
/// (`m0` … `m9`); 10 rules, rule `j` on `m{j}` reading `m{j+1}`: every sample feeds its own
/// rule's window and one peer window.
fn peers() {
    println!("throughput with other metrics: 1,000 devices x 10 metrics, 10 rules, tumbling 10 s");
    for (kind, read) in [
        ("alert `mean > 80`", false),
        ("alert `mean > mean(metric.<next>) + 50`", true),
    ] {
        let mut yaml = String::from("rules:\n");
        for j in 0..10 {
            let when = if read {
                format!("mean > mean(metric.m{}) + 50", (j + 1) % 10)
            } else {
                "mean > 80".to_owned()
            };
            yaml.push_str(&format!(
                "  - name: r{j}\n    select: {{ metric: m{j} }}\n    window: {{ tumbling: 10s }}\n    alert: {{ when: \"{when}\" }}\n"
            ));
        }
        let rules = match RuleSet::parse_str(&yaml, "bench.yaml") {
            Ok(set) => set,
            Err(e) => panic!("bench rules do not compile: {e}"),
        };
        let mut engine = Engine::with_limits(
            rules,
            Limits {
                max_series: SERIES,
                ..Limits::default()
            },
        );
        let ids: Vec<SeriesId> = (0..SERIES)
            .map(
                |k| match engine.series(&format!("d{}", k / 10), &format!("m{}", k % 10)) {
                    Ok(id) => id,
                    Err(e) => panic!("{e}"),
                },
            )
            .collect();
        let (rate, events) = run(&mut engine, &ids, 300);
        let state = engine.state_bytes() / SERIES;
        println!(
            "  {kind:<42} {:>6.2} M samples/s/core  ({events} events, {state} B state per series)",
            rate / 1e6
        );
    }
}

/// `examples/rules/nab.yaml` (two sliding windows of 4096 and 288 samples) over every series
/// of the vendored NAB corpus (`data/nab/data`, 58 files, 365,551 values), each file one
/// series, values in file order. Timestamps are the row number × 5 minutes (NAB's usual
/// rate): both windows are bounded by their sample caps, so only the order matters, and the
/// bench needs no date parser. The CSV files are read before the clock starts.
fn nab() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let yaml = match std::fs::read_to_string(root.join("examples/rules/nab.yaml")) {
        Ok(y) => y,
        Err(e) => panic!("examples/rules/nab.yaml: {e}"),
    };
    let mut files = Vec::new();
    let mut dirs = vec![root.join("data/nab/data")];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "csv") {
                files.push(path);
            }
        }
    }
    files.sort();
    let series: Vec<(String, Vec<f64>)> = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let values = text
                .lines()
                .skip(1)
                .filter_map(|l| l.rsplit(',').next()?.trim().parse().ok())
                .collect();
            (path.display().to_string(), values)
        })
        .collect();
    let total: usize = series.iter().map(|s| s.1.len()).sum();
    let mut best = 0.0f64;
    let mut events = 0;
    // Best of three: the figure is what the engine can do, not what a busy neighbour left.
    for _ in 0..3 {
        let rules = match RuleSet::parse_str(&yaml, "nab.yaml") {
            Ok(set) => set,
            Err(e) => panic!("nab.yaml does not compile: {e}"),
        };
        let mut engine = Engine::new(rules);
        let mut out = Vec::new();
        events = 0;
        let start = CpuClock::now();
        for (name, values) in &series {
            let id = match engine.series(name, "value") {
                Ok(id) => id,
                Err(e) => panic!("{e}"),
            };
            for (i, &value) in values.iter().enumerate() {
                let ts = i as i64 * 300_000_000;
                engine.push(
                    Sample {
                        series: id,
                        ts,
                        value,
                    },
                    &mut out,
                );
                events += out.len();
                out.clear();
            }
        }
        best = best.max(total as f64 / start.elapsed_secs());
        black_box(engine.stats());
    }
    println!(
        "nab.yaml over NAB: {} series, {total} values: {:.3} M values per CPU-second ({events} events)",
        series.len(),
        best / 1e6
    );
}

/// An FFT over the bench stream (10 samples/s): 64-sample frames, two bands.
const FFT: &str = "fft: { size: 64, sample_rate: 10, bands: { low: [0, 1], high: [2, 5] } }";

/// Bytes of state per series for one rule, after 100 s of the stream (ten 10 s windows, so
/// `prev` state is allocated and hopping windows are all open). Every series holds the same,
/// so 128 of them give the figure (a power of two: the engine's tables then have no spare
/// capacity, which `state_bytes` would count).
fn state_per_series(window: &str, body: &str) -> usize {
    const STATE_SERIES: usize = 128;
    let (mut engine, ids) = engine_of(STATE_SERIES, 1, window, body);
    let mut out = Vec::new();
    for round in 0..1_000i64 {
        for (k, &series) in ids.iter().enumerate() {
            // Varying values, so sketches hold distinct values as they would in the field.
            let value = ((round * 7 + k as i64) % 13) as f64;
            engine.push(
                Sample {
                    series,
                    ts: round * 100_000,
                    value,
                },
                &mut out,
            );
        }
        out.clear();
    }
    engine.state_bytes() / STATE_SERIES
}
