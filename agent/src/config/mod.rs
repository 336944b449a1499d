//! The agent's configuration: one YAML file, parsed into raw serde structs and then checked.
//!
//! Every key is optional except `gateway_id`, and every default is chosen for a gateway (a
//! bounded outbox under `/var/lib/weir`, events advanced on wall time so silent devices still
//! report). Unknown keys are errors, because a misspelt key that is silently ignored is how a
//! gateway ends up running with a default nobody chose. Problems are reported as
//! `file:line:column: message`, all of them at once where the parser allows it.
//!
//! Relative paths in the file (rule files, the outbox) are resolved against the directory of
//! the config file, so a config and its rules can be moved together.
//!
//! This file holds the config's types and the checks serde makes on each value while parsing
//! (so a bad value is reported where it is written). Around it: `load` reads a file or the
//! demo into a checked [`Loaded`], `validate` makes the checks across sections, `problem`
//! words what is wrong, `locate` picks which config a command reads, `daemon` holds the
//! daemon's own sections, [`rule_files`] reads the rules a config names, [`running`] keeps
//! the config the agent started with, and [`diff`] says what a reload would change.

mod daemon;
pub mod diff;
mod load;
mod locate;
mod problem;
pub mod rule_files;
pub mod running;
mod validate;

pub use daemon::{Action, ActionsConfig, ClockGuard, MetricsConfig, PageConfig};
pub use load::{Loaded, Origin, RuleFile, replay_settings_from_path};
pub use locate::load;
pub use problem::{ConfigError, Problem, yaml_problem};

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use std::num::NonZeroUsize;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;
use weir_drivers::modbus::ModbusConfig;
use weir_drivers::mqtt::MqttSourceConfig;
use weir_drivers::serial::SerialConfig;
use weir_drivers::simulator::SimulatorConfig;

use crate::outbox::OutboxConfig;
use crate::uplink::UplinkConfig;

/// The built-in demo: what `weir run` uses when no config is given and none is installed.
pub const DEMO_CONFIG: &str = include_str!("../../../examples/demo.yaml");
/// The demo's rule file, resolved by name from [`DEMO_CONFIG`].
const DEMO_RULES: &[(&str, &str)] = &[(
    "rules/demo.yaml",
    include_str!("../../../examples/rules/demo.yaml"),
)];
/// Where an installed agent finds its config (systemd's `ConfigurationDirectory=weir`).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/weir/weir.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identifies this gateway in every uplinked record (`<gateway_id>:<seq>`).
    pub gateway_id: GatewayId,
    /// Rule files, relative to the config file's directory.
    #[serde(default)]
    pub rules: Vec<PathBuf>,
    /// Labels of devices by name pattern, for rules' `select.labels`; later entries win.
    #[serde(default)]
    pub labels: Vec<LabelEntry>,
    /// Each with its location, so a problem found after parsing can still point at it.
    #[serde(default)]
    pub sources: Vec<Spanned<SourceConfig>>,
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// Absent: the agent buffers everything in the outbox and uplinks nothing.
    #[serde(default)]
    pub uplink: Option<UplinkConfig>,
    /// The local broker alerts with `alert.local_topic` are published on.
    #[serde(default)]
    pub actions: Option<ActionsConfig>,
    #[serde(default)]
    pub engine: EngineConfig,
    /// The Prometheus endpoint (`/metrics`, `/healthz`); localhost:9464 by default.
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Signed rule bundles over the uplink broker (see `docs/fleet.md`); absent: none taken.
    #[serde(default)]
    pub fleet: Option<crate::fleet::FleetConfig>,
}

/// `- { devices: "pump-*", set: { site: north } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelEntry {
    #[serde(deserialize_with = "de_label_pattern")]
    pub devices: String,
    pub set: std::collections::BTreeMap<String, String>,
}

impl Config {
    /// The `labels:` table for the engine.
    pub fn device_labels(&self) -> Result<weir_rules::DeviceLabels, weir_rules::LabelError> {
        weir_rules::DeviceLabels::new(
            self.labels
                .iter()
                .map(|e| (e.devices.clone(), e.set.clone())),
        )
    }
}

/// One source. Externally tagged (`- mqtt: {...}`) so YAML errors inside keep exact locations.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceConfig {
    Simulator(SimulatorConfig),
    Mqtt(MqttSourceConfig),
    Serial(SerialConfig),
    Modbus(ModbusConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Simulator(c) => &c.name,
            SourceConfig::Mqtt(c) => &c.name,
            SourceConfig::Serial(c) => &c.name,
            SourceConfig::Modbus(c) => &c.name,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Series (device × metric) the engine keeps state for; samples of further series are
    /// dropped and counted, so a misbehaving device cannot exhaust the gateway's memory.
    #[serde(default = "default_max_series")]
    pub max_series: NonZeroUsize,
    /// Bytes of rule state (windows, sketches, detectors) the engine may take, e.g. `64MiB`
    /// (the default: a quarter of a 256 MB gateway). Each rule's worst case per series is
    /// reserved when a series first reaches it; past the budget that rule skips new series,
    /// counted (`weir_engine_budget_refused_total`) and logged once. `weir check` warns when
    /// the rules at `max_series` series could need more.
    #[serde(
        default = "default_max_state_bytes",
        deserialize_with = "weir_drivers::size::deserialize_usize"
    )]
    pub max_state_bytes: usize,
    /// A window also closes once wall time is this far past its end, so a device that went
    /// silent still gets its last window evaluated (and its alert raised or cleared).
    #[serde(
        default = "default_idle_close",
        deserialize_with = "weir_drivers::duration::deserialize"
    )]
    pub idle_close: Duration,
    /// How often the engine's state (open windows, detectors, alerts) is checkpointed into
    /// the outbox database; between checkpoints its input is logged beside the records, so
    /// a restart carries on exactly where it stopped. `0s` turns both off (state is then
    /// lost at a restart). Only series that changed are written: a shorter interval writes
    /// more flash, a longer one replays more input at start (see `docs/engine-state.md`).
    #[serde(
        default = "default_checkpoint_interval",
        deserialize_with = "weir_drivers::duration::deserialize"
    )]
    pub checkpoint_interval: Duration,
    /// Capacity of the channel from the sources to the engine (back-pressure beyond it).
    #[serde(default = "default_channel", deserialize_with = "de_channel")]
    pub channel: NonZeroUsize,
    /// Device timestamps far off the gateway clock are restamped or dropped.
    #[serde(default)]
    pub clock_guard: ClockGuard,
}

const fn default_max_series() -> NonZeroUsize {
    NonZeroUsize::new(10_000).expect("10 000 is not zero")
}
const fn default_max_state_bytes() -> usize {
    weir_rules::DEFAULT_MAX_STATE_BYTES
}
const fn default_idle_close() -> Duration {
    Duration::from_secs(2)
}
const fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(60)
}
const fn default_channel() -> NonZeroUsize {
    NonZeroUsize::new(1024).expect("1024 is not zero")
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_series: default_max_series(),
            max_state_bytes: default_max_state_bytes(),
            idle_close: default_idle_close(),
            checkpoint_interval: default_checkpoint_interval(),
            channel: default_channel(),
            clock_guard: ClockGuard::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `weir=debug,info`); `RUST_LOG` overrides it.
    #[serde(default = "default_level", deserialize_with = "de_log_level")]
    pub level: String,
    /// How often the agent logs a one-line status (outbox depth, uplink state, counts).
    #[serde(
        default = "default_status_interval",
        deserialize_with = "weir_drivers::fields::nonzero_duration"
    )]
    pub status_interval: Duration,
}

fn default_level() -> String {
    "info".to_owned()
}
const fn default_status_interval() -> Duration {
    Duration::from_secs(5)
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
            status_interval: default_status_interval(),
        }
    }
}

/// The gateway's id: checked while parsing, so a bad one is reported at its exact location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayId(String);

impl GatewayId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for GatewayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GatewayId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = String::deserialize(d)?;
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(GatewayId(id))
        } else {
            Err(serde::de::Error::custom(format!(
                "gateway_id `{id}`: use 1 to 64 of A-Z a-z 0-9 _ . - (it appears in MQTT topics)"
            )))
        }
    }
}

fn de_log_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let level = String::deserialize(d)?;
    match level.parse::<tracing_subscriber::filter::Targets>() {
        Ok(_) => Ok(level),
        Err(e) => Err(serde::de::Error::custom(format!(
            "log.level `{level}`: {e} (try `info`, `debug`, or `weir=debug,info`)"
        ))),
    }
}

/// The most samples queued between the sources and the engine.
const MAX_CHANNEL: usize = 1_000_000;

/// 1 to [`MAX_CHANNEL`]: the queue is memory the sources can fill while the engine is busy.
fn de_channel<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroUsize, D::Error> {
    let n = NonZeroUsize::deserialize(d)?;
    if n.get() > MAX_CHANNEL {
        return Err(serde::de::Error::custom(format!(
            "engine.channel {n}: at most {MAX_CHANNEL}"
        )));
    }
    Ok(n)
}

/// A `labels:` pattern, checked alone so a bad one is reported where it is written.
fn de_label_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let pattern = String::deserialize(d)?;
    let empty: [(String, String); 0] = [];
    weir_rules::DeviceLabels::new([(pattern.clone(), empty)])
        .map_err(|e| serde::de::Error::custom(format!("labels: {e}")))?;
    Ok(pattern)
}

#[cfg(test)]
mod tests;
