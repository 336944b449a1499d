//! A seeded device simulator, so the whole pipeline (rules, outbox, uplink) can be demonstrated
//! and tested without hardware, and so a demo shows real alerts within seconds.
//!
//! [`Simulator`] is pure: [`Simulator::tick`] takes the time and returns readings, with all
//! randomness from a hand-written SplitMix64 generator and Box–Muller normals (no `rand`
//! crate, whose streams change between versions). The same seed and the same tick times give
//! identical readings on a given platform (`sin`, `cos` and `ln` come from the platform's libm,
//! so another libm may differ in the last bits). [`run`] is the thin async shell that ticks
//! every `interval` with wall-clock timestamps; fault times count from the source's start.
//!
//! # Signal models (the defaults, `interval: 1s`)
//!
//! | device | metric | unit | normal | fault (seconds from start) |
//! |---|---|---|---|---|
//! | `pump-1` | `temperature` | °C | 60 + 2·sin(2πt/600 s) + N(0, 0.3): about 57–63 | degradation from t = 5 s: +2 °C/s, capped at +40; crosses 80 °C at t ≈ 15 s, plateau ≈ 100 °C (97–103) from t = 25 s, for good |
//! | `motor-1` | `vibration` | mm/s RMS | 2.0 + N(0, 0.15), never below 0: about 1.5–2.5 | spikes on every tick for t in [8 s, 14 s): 12 ± 15 % uniform, i.e. 10.2–13.8 |
//! | `compressor-1` | `pressure` | bar | 6.0 + 0.15·sin(2πt/60 s) + N(0, 0.05): about 5.7–6.3 | stuck sensor from t = 20 s, for good: every value is exactly the last value before the fault |
//!
//! Rules that fire on the defaults (windows are epoch-aligned, so add up to one window length):
//! pump `max > 80` in the first window closing after t ≈ 15 s, `mean > 80` once a whole window
//! lies after t ≈ 16 s (5 s windows: by t ≈ 25 s); motor `max > 7` for windows overlapping
//! t in [8 s, 14 s), cleared by the next window after that; compressor stuck = `max == min`
//! over a window, which needs a spread aggregate or detector (with mean/min/max thresholds
//! alone a frozen 6.0 bar looks normal).
//!
//! Every parameter is configurable per device (`devices:` replaces the default list):
//!
//! ```yaml
//! simulator:
//!   seed: 7
//!   interval: 500ms
//!   devices:
//!     - pump: { name: pump-2, degrade_at: 60 }
//!     - motor: { spikes_at: ~ }            # null disables the fault
//!     - compressor: { stuck_at: 30, stuck_for: 20 }
//! ```

use crate::{Handed, hand_over};
use std::f64::consts::TAU;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::{Delivery, Reading, SourceCounters, SourceError};

/// The simulator source's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Source name, for logs and metrics.
    #[serde(default = "default_name")]
    pub name: String,
    /// PRNG seed: the same seed gives the same noise.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Time between ticks; each tick yields one reading per device.
    #[serde(
        default = "default_interval",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub interval: Duration,
    /// Simulated devices; the default is one pump, one motor and one compressor.
    #[serde(default = "default_devices")]
    pub devices: Vec<DeviceConfig>,
}

fn default_name() -> String {
    "simulator".to_owned()
}
const fn default_seed() -> u64 {
    42
}
const fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_devices() -> Vec<DeviceConfig> {
    vec![
        DeviceConfig::Pump(PumpConfig::default()),
        DeviceConfig::Motor(MotorConfig::default()),
        DeviceConfig::Compressor(CompressorConfig::default()),
    ]
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            name: default_name(),
            seed: default_seed(),
            interval: default_interval(),
            devices: default_devices(),
        }
    }
}

/// One simulated device; the variant picks the signal model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceConfig {
    Pump(PumpConfig),
    Motor(MotorConfig),
    Compressor(CompressorConfig),
}

/// A pump's bearing temperature (`temperature`, °C): slow drift plus noise, then a
/// degradation trend. Times in seconds from the simulator's start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PumpConfig {
    pub name: String,
    /// Mean temperature, °C.
    pub base: f64,
    /// Amplitude of the slow sinusoidal drift, °C.
    pub drift: f64,
    /// Period of the drift, seconds.
    pub drift_period: f64,
    /// Standard deviation of the noise, °C.
    pub noise: f64,
    /// Start of the degradation trend, seconds; `null` = never.
    pub degrade_at: Option<f64>,
    /// Rise during degradation, °C per second.
    pub degrade_rate: f64,
    /// Largest rise, °C.
    pub degrade_max: f64,
}

impl Default for PumpConfig {
    fn default() -> Self {
        PumpConfig {
            name: "pump-1".to_owned(),
            base: 60.0,
            drift: 2.0,
            drift_period: 600.0,
            noise: 0.3,
            degrade_at: Some(5.0),
            degrade_rate: 2.0,
            degrade_max: 40.0,
        }
    }
}

/// A motor's vibration RMS (`vibration`, mm/s): noise around a base, with a burst of spikes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MotorConfig {
    pub name: String,
    /// Normal level, mm/s.
    pub base: f64,
    /// Standard deviation of the noise, mm/s.
    pub noise: f64,
    /// Start of the spike burst, seconds; `null` = never.
    pub spikes_at: Option<f64>,
    /// Length of the burst, seconds.
    pub spikes_for: f64,
    /// Centre of the spike values, mm/s; each spike is uniform within ±15 % of it.
    pub spike_level: f64,
}

impl Default for MotorConfig {
    fn default() -> Self {
        MotorConfig {
            name: "motor-1".to_owned(),
            base: 2.0,
            noise: 0.15,
            spikes_at: Some(8.0),
            spikes_for: 6.0,
            spike_level: 12.0,
        }
    }
}

/// A compressor's discharge pressure (`pressure`, bar): a load cycle plus noise, and a
/// stuck-sensor fault during which the value repeats exactly.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressorConfig {
    pub name: String,
    /// Mean pressure, bar.
    pub base: f64,
    /// Amplitude of the load cycle, bar.
    pub cycle: f64,
    /// Period of the load cycle, seconds.
    pub cycle_period: f64,
    /// Standard deviation of the noise, bar.
    pub noise: f64,
    /// Start of the stuck-sensor fault, seconds; `null` = never.
    pub stuck_at: Option<f64>,
    /// Length of the fault, seconds; `null` = for good.
    pub stuck_for: Option<f64>,
}

impl Default for CompressorConfig {
    fn default() -> Self {
        CompressorConfig {
            name: "compressor-1".to_owned(),
            base: 6.0,
            cycle: 0.15,
            cycle_period: 60.0,
            noise: 0.05,
            stuck_at: Some(20.0),
            stuck_for: None,
        }
    }
}

impl SimulatorConfig {
    /// Checks what serde cannot: positive interval, finite non-negative parameters, positive
    /// periods, non-empty and unique device names. Reports the first problem with its field.
    pub fn validate(&self) -> Result<(), SourceError> {
        let err = |field: String, reason: &str| Err(SourceError::config(&self.name, field, reason));
        if self.interval.is_zero() {
            return err("interval".into(), "must be greater than zero");
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (i, dev) in self.devices.iter().enumerate() {
            let (name, metric, params, periods, times) = dev.describe();
            let at = |field: &str| format!("devices[{i}].{field}");
            if name.is_empty() {
                return err(at("name"), "must not be empty");
            }
            if seen.contains(&(name, metric)) {
                return err(at("name"), &format!("device `{name}` is simulated twice"));
            }
            seen.push((name, metric));
            for (field, v) in params {
                if !(v.is_finite() && v >= 0.0) {
                    return err(at(field), "must be a finite number >= 0");
                }
            }
            for (field, v) in periods {
                if !(v.is_finite() && v > 0.0) {
                    return err(at(field), "must be a finite number > 0");
                }
            }
            for (field, v) in times {
                if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    return err(at(field), "must be a number of seconds >= 0, or null");
                }
            }
        }
        Ok(())
    }
}

type Params = Vec<(&'static str, f64)>;
type Times = Vec<(&'static str, Option<f64>)>;

impl DeviceConfig {
    /// Name, metric, non-negative parameters, positive periods and optional times, for
    /// validation in one place.
    fn describe(&self) -> (&str, &'static str, Params, Params, Times) {
        match self {
            DeviceConfig::Pump(p) => (
                &p.name,
                "temperature",
                vec![
                    ("base", p.base),
                    ("drift", p.drift),
                    ("noise", p.noise),
                    ("degrade_rate", p.degrade_rate),
                    ("degrade_max", p.degrade_max),
                ],
                vec![("drift_period", p.drift_period)],
                vec![("degrade_at", p.degrade_at)],
            ),
            DeviceConfig::Motor(m) => (
                &m.name,
                "vibration",
                vec![
                    ("base", m.base),
                    ("noise", m.noise),
                    ("spikes_for", m.spikes_for),
                    ("spike_level", m.spike_level),
                ],
                vec![],
                vec![("spikes_at", m.spikes_at)],
            ),
            DeviceConfig::Compressor(c) => (
                &c.name,
                "pressure",
                vec![("base", c.base), ("cycle", c.cycle), ("noise", c.noise)],
                vec![("cycle_period", c.cycle_period)],
                vec![("stuck_at", c.stuck_at), ("stuck_for", c.stuck_for)],
            ),
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever, so a seed means
/// the same noise in every version of Weir. Public for the other seeded draws of the
/// workspace (`weir eval`'s random alarms).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal by Box–Muller (the second value of the pair is not kept, to keep the
    /// state a single integer).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln stays finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }
}

#[derive(Debug, Clone)]
enum Model {
    Pump(PumpConfig),
    Motor(MotorConfig),
    Compressor {
        cfg: CompressorConfig,
        last: Option<f64>,
        frozen: Option<f64>,
    },
}

#[derive(Debug, Clone)]
struct Device {
    device: Arc<str>,
    metric: Arc<str>,
    rng: SplitMix64,
    model: Model,
}

fn within(t: f64, at: Option<f64>, length: Option<f64>) -> bool {
    match (at, length) {
        (Some(at), Some(len)) => t >= at && t < at + len,
        (Some(at), None) => t >= at,
        (None, _) => false,
    }
}

impl Device {
    fn value(&mut self, t: f64) -> f64 {
        let rng = &mut self.rng;
        match &mut self.model {
            Model::Pump(p) => {
                let drift = p.drift * (TAU * t / p.drift_period).sin();
                let trend = match p.degrade_at {
                    Some(at) if t >= at => (p.degrade_rate * (t - at)).min(p.degrade_max),
                    _ => 0.0,
                };
                p.base + drift + trend + p.noise * rng.normal()
            }
            Model::Motor(m) => {
                if within(t, m.spikes_at, Some(m.spikes_for)) {
                    m.spike_level * (0.85 + 0.3 * rng.uniform())
                } else {
                    (m.base + m.noise * rng.normal()).max(0.0)
                }
            }
            Model::Compressor { cfg, last, frozen } => {
                let stuck = within(t, cfg.stuck_at, cfg.stuck_for);
                if stuck && let Some(v) = *frozen {
                    return v;
                }
                let cycle = cfg.cycle * (TAU * t / cfg.cycle_period).sin();
                let fresh = cfg.base + cycle + cfg.noise * rng.normal();
                let v = if stuck {
                    // The sensor freezes at the last value it reported before the fault.
                    let v = last.unwrap_or(fresh);
                    *frozen = Some(v);
                    v
                } else {
                    *frozen = None;
                    fresh
                };
                *last = Some(v);
                v
            }
        }
    }
}

/// The pure simulator: state for each device, advanced by [`Simulator::tick`].
#[derive(Debug, Clone)]
pub struct Simulator {
    start_us: i64,
    devices: Vec<Device>,
}

impl Simulator {
    /// Builds the devices of `cfg`; fault schedules count from `start_us` (µs since epoch).
    pub fn new(cfg: &SimulatorConfig, start_us: i64) -> Result<Simulator, SourceError> {
        cfg.validate()?;
        // Each device gets its own stream, derived from the seed, so adding a device does
        // not change the noise of the others.
        let mut seeds = SplitMix64(cfg.seed);
        let devices = cfg
            .devices
            .iter()
            .map(|dev| {
                let (name, metric, ..) = dev.describe();
                let model = match dev {
                    DeviceConfig::Pump(p) => Model::Pump(p.clone()),
                    DeviceConfig::Motor(m) => Model::Motor(m.clone()),
                    DeviceConfig::Compressor(c) => Model::Compressor {
                        cfg: c.clone(),
                        last: None,
                        frozen: None,
                    },
                };
                Device {
                    device: Arc::from(name),
                    metric: Arc::from(metric),
                    rng: SplitMix64(seeds.next_u64()),
                    model,
                }
            })
            .collect();
        Ok(Simulator { start_us, devices })
    }

    /// One reading per device at `t_us` (µs since epoch), which is also the readings' `ts`.
    /// Ticks are expected in increasing time; the stuck-sensor model remembers the last value.
    pub fn tick(&mut self, t_us: i64) -> Vec<Reading> {
        let t = t_us.saturating_sub(self.start_us) as f64 / 1e6;
        self.devices
            .iter_mut()
            .map(|d| Reading {
                device: Arc::clone(&d.device),
                metric: Arc::clone(&d.metric),
                ts: t_us,
                value: d.value(t),
            })
            .collect()
    }
}

/// Runs the simulator until `shutdown`: one [`Delivery`] (without ack) per tick, sent with
/// back-pressure. Returns an error only for an invalid configuration or a closed pipeline.
pub async fn run(
    cfg: SimulatorConfig,
    tx: mpsc::Sender<Delivery>,
    counters: Arc<SourceCounters>,
    shutdown: CancellationToken,
) -> Result<(), SourceError> {
    let mut sim = Simulator::new(&cfg, crate::now_us())?;
    let mut ticker = tokio::time::interval(cfg.interval);
    // After a stall (pipeline back-pressure), carry on at the normal pace rather than
    // bursting the missed ticks: their timestamps would all be "now" anyway.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tracing::info!(source = %cfg.name, devices = cfg.devices.len(), interval = %crate::duration::format(cfg.interval), "simulator started");
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let readings = sim.tick(crate::now_us());
        SourceCounters::add(&counters.received, 1);
        let delivery = Delivery {
            readings,
            ack: None,
        };
        match hand_over(&tx, delivery, &counters, &shutdown).await {
            Handed::Sent => {}
            Handed::Shutdown => return Ok(()),
            Handed::Closed => return Err(SourceError::PipelineClosed { name: cfg.name }),
        }
    }
}

#[cfg(test)]
#[path = "simulator_tests.rs"]
mod tests;
