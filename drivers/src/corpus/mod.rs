//! A labelled multivariate corpus: recordings of a pump, a motor and a compressor, six
//! correlated sensors each, with faults of known onset and end, and operating changes that
//! are *not* faults.
//!
//! The live [`crate::simulator`] shows alerts within seconds; this one is for developing and
//! scoring detectors, where what matters is that a fault is told apart from the machine
//! simply working harder. Each machine's sensors follow two operating inputs (a regime and a
//! load, module `machines`), so an operating change moves every sensor consistently, and each
//! fault breaks one physical relation (see [`Fault`]).
//!
//! Four recordings per machine, 10 s between samples (a gateway's usual Modbus poll):
//!
//! | file | hours | what happens |
//! |---|---|---|
//! | `<machine>-healthy.csv` | 6 | regime and load changes only; one sensor is coarsely quantised (label `quantised`, not a fault) |
//! | `<machine>-bearing.csv` | 3 | bearing wear: vibration (quadratic) and bearing temperature (linear) rise over 70–90 min until the repair |
//! | `<machine>-process.csv` | 3 | pump cavitation, motor winding fault, compressor leak: 30–50 min, full strength after 5 min |
//! | `<machine>-sensor.csv` | 3 | one sensor drifts for 50 min, later another sticks for 20 min |
//!
//! Every file also has regime changes (2 min ramps) and load changes (30 s ramps) every
//! 15–35 min, labelled with `fault: false`. Onsets, ends and schedules are drawn from the
//! seed. The CSV is `timestamp,device,metric,value` (epoch seconds), which `weir replay`
//! reads as it is; `labels.json` lists, per file, every interval with its `kind`, whether it
//! is a `fault`, its `start` and `end` (epoch seconds, end exclusive) and the `sensors` it
//! touches. Generate with `cargo run -p weir-drivers --example sim-corpus -- DIR [SEED]`;
//! the shipped `data/sim/` is seed 16, and a test checks it regenerates byte for byte.

mod machines;
mod rng;

use std::fmt::Write as _;
use std::path::Path;

use machines::{Active, Inputs, State};
pub use machines::{Fault, Machine};
use rng::Rng;

/// 2026-01-01T00:00:00Z: where every recording starts.
pub const START: i64 = 1_767_225_600;
/// Seconds between samples.
pub const STEP: i64 = 10;
/// The seed of the shipped corpus.
pub const SEED: u64 = 16;

/// One labelled interval of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// `bearing_wear`, `cavitation`, `electrical`, `leak`, `sensor_drift`, `stuck_sensor`,
    /// `regime_change`, `load_change` or `quantised`.
    pub kind: &'static str,
    /// Whether a detector should report it (operating changes and quantisation: no).
    pub fault: bool,
    /// Epoch seconds, inclusive.
    pub start: i64,
    /// Epoch seconds, exclusive.
    pub end: i64,
    pub sensors: Vec<&'static str>,
}

/// One generated recording.
#[derive(Debug, Clone)]
pub struct Recording {
    pub file: String,
    pub device: String,
    pub machine: Machine,
    pub csv: String,
    pub labels: Vec<Label>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Healthy,
    Bearing,
    Process,
    Sensor,
}

impl Scenario {
    const ALL: [Scenario; 4] = [
        Scenario::Healthy,
        Scenario::Bearing,
        Scenario::Process,
        Scenario::Sensor,
    ];

    const fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::Bearing => "bearing",
            Scenario::Process => "process",
            Scenario::Sensor => "sensor",
        }
    }

    const fn hours(self) -> i64 {
        match self {
            Scenario::Healthy => 6,
            _ => 3,
        }
    }
}

/// Every recording of the corpus for `seed`, in a fixed order.
pub fn generate(seed: u64) -> Vec<Recording> {
    let mut seeds = Rng::new(seed);
    let mut out = Vec::new();
    for machine in Machine::ALL {
        for scenario in Scenario::ALL {
            out.push(record(machine, scenario, seeds.fork()));
        }
    }
    out
}

/// A fault's interval and how its progress `r` in [0, 1] grows within it.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    end: i64,
    /// Seconds until full strength (the interval's length for a slow fault).
    rise: f64,
}

impl Window {
    fn progress(&self, t: i64) -> Option<f64> {
        (self.start..self.end)
            .contains(&t)
            .then(|| ((t - self.start) as f64 / self.rise).min(1.0))
    }
}

/// Minutes → seconds, rounded to the sample step.
fn minutes(m: f64) -> i64 {
    (m * 60.0 / STEP as f64) as i64 * STEP
}

fn record(machine: Machine, scenario: Scenario, mut rng: Rng) -> Recording {
    let len = scenario.hours() * 3600;
    let metrics = machine.metrics();
    let mut labels = Vec::new();
    let window = |rng: &mut Rng, on: (f64, f64), length: (f64, f64), rise: Option<f64>| {
        let start = START + minutes(rng.range(on.0, on.1));
        let end = start + minutes(rng.range(length.0, length.1));
        Window {
            start,
            end,
            rise: rise.unwrap_or((end - start) as f64),
        }
    };
    let (mut bearing, mut process, mut drift, mut stuck) = (None, None, None, None);
    let mut fault = |kind: Fault, w: Window, sensors: Vec<&'static str>| {
        labels.push(Label {
            kind: kind.as_str(),
            fault: true,
            start: w.start,
            end: w.end,
            sensors,
        });
        Some(w)
    };
    let (drifting, _, stuck_at) = machine.sensor_faults();
    match scenario {
        Scenario::Healthy => {}
        Scenario::Bearing => {
            let w = window(&mut rng, (50.0, 70.0), (70.0, 90.0), None);
            bearing = fault(Fault::BearingWear, w, vec![metrics[4], metrics[5]]);
        }
        Scenario::Process => {
            let w = window(&mut rng, (60.0, 85.0), (30.0, 50.0), Some(300.0));
            let sensors = match machine {
                Machine::Pump => vec![metrics[0], metrics[2], metrics[5]],
                Machine::Motor => vec![metrics[0], metrics[3]],
                Machine::Compressor => vec![metrics[1], metrics[2], metrics[3]],
            };
            process = fault(machine.process_fault(), w, sensors);
        }
        Scenario::Sensor => {
            let w = window(&mut rng, (30.0, 45.0), (50.0, 50.0), None);
            drift = fault(Fault::Drift, w, vec![metrics[drifting]]);
            let w = window(&mut rng, (120.0, 135.0), (20.0, 20.0), None);
            stuck = fault(Fault::Stuck, w, vec![metrics[stuck_at]]);
        }
    }
    let quantised = scenario == Scenario::Healthy;
    if quantised {
        labels.push(Label {
            kind: "quantised",
            fault: false,
            start: START,
            end: START + len,
            sensors: vec![metrics[machine.coarse_sensor().0]],
        });
    }
    let schedule = operating_schedule(machine, len, &mut rng);
    labels.extend(schedule.iter().map(|c| c.label(machine)));
    labels.sort_by_key(|l| (l.start, l.end));

    let device = format!("{}-1", machine.name());
    let decimals = machine.decimals();
    let mut state = State::new(machine);
    let regimes = machine.regimes();
    let mut u = Inputs {
        regime: regimes[1],
        load: machine.load_range().1 * 0.85,
    };
    let mut csv = String::from("timestamp,device,metric,value\n");
    let mut next = 0;
    for t in (START..START + len).step_by(STEP as usize) {
        while schedule.get(next).is_some_and(|c| c.at <= t) {
            next += 1;
        }
        // Ramp toward the latest targets (the previous change's ramp may still be running).
        let (regime, load) = targets(&schedule[..next], u);
        u.regime = step_toward(u.regime, regime, regime_rate(machine));
        u.load = step_toward(u.load, load, LOAD_RATE);
        let active = Active {
            bearing: bearing.and_then(|w| w.progress(t)),
            process: process.and_then(|w| w.progress(t)),
            drift: drift.and_then(|w| w.progress(t)),
            stuck: stuck.is_some_and(|w| w.progress(t).is_some()),
            quantised,
        };
        let values = state.read(u, active, STEP as f64, &mut rng);
        for ((metric, value), d) in metrics.iter().zip(values).zip(decimals) {
            // Writing to a String cannot fail.
            let _ = writeln!(csv, "{t},{device},{metric},{value:.d$}");
        }
    }
    Recording {
        file: format!("{}-{}.csv", machine.name(), scenario.name()),
        device,
        machine,
        csv,
        labels,
    }
}

/// Load moves 1/30 of its range per second (a valve strokes in about 30 s).
const LOAD_RATE: f64 = 1.0 / 30.0;

/// Regimes ramp over about 2 minutes (a drive's acceleration limit, a setpoint ramp).
fn regime_rate(machine: Machine) -> f64 {
    let r = machine.regimes();
    (r[2] - r[0]) / 120.0
}

fn step_toward(x: f64, target: f64, rate_per_s: f64) -> f64 {
    let max = rate_per_s * STEP as f64;
    x + (target - x).clamp(-max, max)
}

/// One scheduled operating change (never a fault).
#[derive(Debug, Clone, Copy)]
struct Change {
    at: i64,
    regime: Option<f64>,
    load: Option<f64>,
}

impl Change {
    fn label(&self, machine: Machine) -> Label {
        let (kind, ramp) = match self.regime {
            Some(_) => ("regime_change", 120),
            None => ("load_change", 30),
        };
        Label {
            kind,
            fault: false,
            start: self.at,
            end: self.at + ramp,
            sensors: machine.metrics().to_vec(),
        }
    }
}

/// The targets set by the changes so far (the initial point when none).
fn targets(done: &[Change], initial: Inputs) -> (f64, f64) {
    let regime = done.iter().rev().find_map(|c| c.regime);
    let load = done.iter().rev().find_map(|c| c.load);
    (
        regime.unwrap_or(initial.regime),
        load.unwrap_or(initial.load),
    )
}

/// Operating changes every 15–35 min: 40 % a new regime, 60 % a new load (at least a tenth
/// of the load range away from the current one, so each change is visible).
fn operating_schedule(machine: Machine, len: i64, rng: &mut Rng) -> Vec<Change> {
    let regimes = machine.regimes();
    let (lo, hi) = machine.load_range();
    let mut regime = regimes[1];
    let mut load = hi * 0.85;
    let mut t = START + minutes(rng.range(15.0, 35.0));
    let mut out = Vec::new();
    while t < START + len {
        if rng.uniform() < 0.4 {
            let pick = regimes
                .iter()
                .copied()
                .filter(|r| *r != regime)
                .nth(usize::from(rng.uniform() >= 0.5))
                .unwrap_or(regime);
            regime = pick;
            out.push(Change {
                at: t,
                regime: Some(pick),
                load: None,
            });
        } else {
            let mut next = rng.range(lo, hi);
            if (next - load).abs() < 0.1 * (hi - lo) {
                next = if load - lo > hi - load { lo } else { hi };
            }
            load = next;
            out.push(Change {
                at: t,
                regime: None,
                load: Some(next),
            });
        }
        t += minutes(rng.range(15.0, 35.0));
    }
    out
}

/// `labels.json`: file name → its labelled intervals, files in corpus order.
pub fn labels_json(recordings: &[Recording]) -> String {
    let mut s = String::from("{\n");
    for (i, r) in recordings.iter().enumerate() {
        let _ = writeln!(s, "  \"{}\": {{", r.file);
        let _ = writeln!(s, "    \"device\": \"{}\",", r.device);
        let _ = writeln!(s, "    \"machine\": \"{}\",", r.machine.name());
        let _ = writeln!(s, "    \"labels\": [");
        for (j, l) in r.labels.iter().enumerate() {
            let sensors: Vec<String> = l.sensors.iter().map(|m| format!("\"{m}\"")).collect();
            let _ = write!(
                s,
                "      {{\"kind\": \"{}\", \"fault\": {}, \"start\": {}, \"end\": {}, \"sensors\": [{}]}}",
                l.kind,
                l.fault,
                l.start,
                l.end,
                sensors.join(", ")
            );
            s.push_str(if j + 1 < r.labels.len() { ",\n" } else { "\n" });
        }
        s.push_str("    ]\n");
        s.push_str(if i + 1 < recordings.len() {
            "  },\n"
        } else {
            "  }\n"
        });
    }
    s.push_str("}\n");
    s
}

/// Writes every recording and `labels.json` into `dir` (created if missing).
pub fn write(dir: &Path, seed: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let recordings = generate(seed);
    for r in &recordings {
        std::fs::write(dir.join(&r.file), &r.csv)?;
    }
    std::fs::write(dir.join("labels.json"), labels_json(&recordings))
}

#[cfg(test)]
mod tests;
