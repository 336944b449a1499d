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

mod daemon;
pub mod diff;
mod locate;
pub mod rule_files;
pub mod running;

pub use daemon::{Action, ActionsConfig, ClockGuard, MetricsConfig, PageConfig};
pub use locate::load;

use std::fmt;
use std::path::{Path, PathBuf};
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

/// A problem in the config file, located where the parser could locate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Only the `labels:` (and `engine.max_state_bytes`) of a config, for `weir replay --config`:
/// the other sections are not read at all, so a gateway's config works as is on a laptop
/// without its devices.
#[derive(Debug, Deserialize)]
struct LabelsOnly {
    #[serde(default)]
    labels: Vec<LabelEntry>,
    #[serde(default)]
    engine: Option<BudgetOnly>,
}

#[derive(Debug, Deserialize)]
struct BudgetOnly {
    #[serde(default, deserialize_with = "optional_size")]
    max_state_bytes: Option<usize>,
}

fn optional_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    weir_drivers::size::deserialize_usize(d).map(Some)
}

/// What `weir replay --config` reads of the config at `path`: the device labels, and
/// `engine.max_state_bytes` if it sets one (so a replay runs under the gateway's budget).
/// Everything else in it is ignored.
pub fn replay_settings_from_path(
    path: &Path,
) -> Result<(weir_rules::DeviceLabels, Option<usize>), ConfigError> {
    let file = path.display().to_string();
    let problem = |message: String| ConfigError {
        problems: vec![Problem {
            file: file.clone(),
            line: 0,
            column: 0,
            message,
        }],
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read config: {e}")))?;
    let raw: LabelsOnly = serde_saphyr::from_str(&text).map_err(|e| ConfigError {
        problems: vec![yaml_problem(&file, &e)],
    })?;
    let budget = raw.engine.and_then(|e| e.max_state_bytes);
    let labels = weir_rules::DeviceLabels::new(raw.labels.into_iter().map(|e| (e.devices, e.set)))
        .map_err(|e| problem(format!("labels: {e}")))?;
    Ok((labels, budget))
}

/// Every problem found in a config file. The agent exits with code 2 on this error.
#[derive(Debug, thiserror::Error)]
#[error("{}", display_problems(.problems))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

fn display_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Where the config came from: rule and outbox paths are resolved against `base`.
#[derive(Debug, Clone)]
pub enum Origin {
    File { path: PathBuf, base: PathBuf },
    BuiltinDemo,
}

impl Origin {
    pub fn name(&self) -> String {
        match self {
            Origin::File { path, .. } => path.display().to_string(),
            Origin::BuiltinDemo => "<built-in demo>/demo.yaml".to_owned(),
        }
    }
}

/// A parsed, checked config and where it came from.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub origin: Origin,
    /// The YAML it was read from, kept so the daemon can record what it runs (see
    /// [`running`]).
    pub text: String,
}

/// A rule file's text as the engine should see it: a name for diagnostics and its source.
#[derive(Debug, Clone)]
pub struct RuleFile {
    pub name: String,
    pub text: String,
}

impl Loaded {
    /// Reads and checks `path`.
    pub fn from_path(path: &Path) -> Result<Loaded, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read config: {e}"),
            }],
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let origin = Origin::File {
            path: path.to_path_buf(),
            base,
        };
        Loaded::from_str(&text, origin)
    }

    /// The built-in demo config (simulated devices, a local outbox, a local broker if any).
    pub fn builtin_demo() -> Result<Loaded, ConfigError> {
        Loaded::from_str(DEMO_CONFIG, Origin::BuiltinDemo)
    }

    pub fn from_str(text: &str, origin: Origin) -> Result<Loaded, ConfigError> {
        let file = origin.name();
        let mut config: Config = serde_saphyr::from_str(text).map_err(|e| ConfigError {
            problems: vec![yaml_problem(&file, &e)],
        })?;
        // Parses as `Config` did, so it cannot fail where that succeeded; if it did, the
        // checks below would only lack a location.
        let at: Locations = serde_saphyr::from_str(text).unwrap_or_default();
        if let Origin::File { base, .. } = &origin {
            config.outbox.path = resolve(base, &config.outbox.path);
            if let Some(tls) = config.uplink.as_mut().and_then(|u| u.tls.as_mut()) {
                tls.resolve_paths(|p| resolve(base, p));
            }
            if let Some(fleet) = config.fleet.as_mut() {
                fleet.resolve_paths(|p| resolve(base, p));
            }
        }
        let problems = validate(&config, &at, &file);
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        // Certificate and key files are read now, so a missing or bad one is a config error
        // that names it (in `weir check` too), not an uplink that never connects.
        if let Some(tls) = config.uplink.as_ref().and_then(|u| u.tls.as_ref())
            && let Err(e) = crate::uplink::tls_client_config(tls)
        {
            return Err(ConfigError {
                problems: vec![Problem {
                    file,
                    line: 0,
                    column: 0,
                    message: e.to_string(),
                }],
            });
        }
        Ok(Loaded {
            config,
            origin,
            text: text.to_owned(),
        })
    }

    /// Reads every rule file named by the config. Each entry is the file's result, so the
    /// caller decides whether one unreadable file is fatal (`check`) or skipped (`run`).
    pub fn rule_files(&self) -> Vec<Result<RuleFile, Problem>> {
        if let Some(files) = rule_files::fleet_version(self) {
            return files;
        }
        self.config
            .rules
            .iter()
            .map(|rel| match &self.origin {
                Origin::File { base, .. } => rule_files::read(&resolve(base, rel)),
                Origin::BuiltinDemo => {
                    let key = rel.to_string_lossy();
                    DEMO_RULES
                        .iter()
                        .find(|(name, _)| *name == key)
                        .map(|(name, text)| RuleFile {
                            name: format!("<built-in demo>/{name}"),
                            text: (*text).to_owned(),
                        })
                        .ok_or_else(|| Problem {
                            file: self.origin.name(),
                            line: 0,
                            column: 0,
                            message: format!("the built-in demo has no rule file `{key}`"),
                        })
                }
            })
            .collect()
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Turns a serde-saphyr error into `file:line:col: message` (its own text repeats the
/// location as a suffix, which is dropped here so it is said once).
pub fn yaml_problem(file: &str, e: &serde_saphyr::Error) -> Problem {
    let text = e.without_snippet().to_string();
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let message = match text.rfind(" at line ") {
        Some(i) if line > 0 => text[..i].to_owned(),
        _ => text,
    };
    Problem {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// Where the values that checks across sections look at are written: a second, lenient parse
/// of the same text, so the runtime types need not carry locations.
#[derive(Debug, Default, Deserialize)]
struct Locations {
    #[serde(default)]
    outbox: Option<OutboxLocations>,
    #[serde(default)]
    metrics: Option<MetricsLocations>,
}

#[derive(Debug, Default, Deserialize)]
struct MetricsLocations {
    #[serde(default)]
    listen: Option<Spanned<serde::de::IgnoredAny>>,
}

#[derive(Debug, Default, Deserialize)]
struct OutboxLocations {
    #[serde(default)]
    path: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    overflow: Option<Spanned<serde::de::IgnoredAny>>,
}

impl Locations {
    fn outbox(
        &self,
        field: fn(&OutboxLocations) -> Option<&Spanned<serde::de::IgnoredAny>>,
    ) -> Option<&serde_saphyr::Location> {
        self.outbox.as_ref().and_then(field).map(|s| &s.referenced)
    }
}

/// Checks what serde cannot: values that depend on each other or on the machine, names,
/// patterns. Collects every problem. Values that are wrong on their own are refused while
/// parsing (see the `deserialize_with` of each field), where their location is exact.
fn validate(config: &Config, at: &Locations, file: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |at: Option<&serde_saphyr::Location>, message: String| {
        let (line, column) = at.map_or((0, 0), |l| (l.line(), l.column()));
        problems.push(Problem {
            file: file.to_owned(),
            line,
            column,
            message,
        })
    };
    if let Err(e) = config.device_labels() {
        problem(None, format!("labels: {e}"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, source) in config.sources.iter().enumerate() {
        let at = Some(&source.referenced);
        let source = &source.value;
        if !names.insert(source.name()) {
            problem(
                at,
                format!(
                    "sources[{i}]: the name `{}` is used twice; give each source its own `name`",
                    source.name()
                ),
            );
        }
        let checked = match source {
            SourceConfig::Mqtt(c) => c.validate(),
            SourceConfig::Simulator(c) => c.validate(),
            SourceConfig::Serial(c) => c.validate(),
            SourceConfig::Modbus(c) => c.validate(),
        };
        if let Err(e) = checked {
            problem(at, format!("sources[{i}]: {e}"));
        }
    }
    if config.outbox.overflow == crate::outbox::Overflow::Block && config.uplink.is_none() {
        problem(
            at.outbox(|o| o.overflow.as_ref()),
            "outbox.overflow: `block` needs an `uplink`: without one nothing ever makes room \
             and the sources would wait forever (use drop_oldest or drop_newest)"
                .to_owned(),
        );
    }
    if config.outbox.path.is_dir() {
        problem(
            at.outbox(|o| o.path.as_ref()),
            format!(
                "outbox.path {} is a directory; name the database file in it, e.g. {}",
                config.outbox.path.display(),
                config.outbox.path.join("outbox.db").display()
            ),
        );
    }
    if let Some(fleet) = &config.fleet {
        if config.uplink.is_none() {
            problem(
                None,
                "fleet: bundles arrive over the uplink; add an `uplink`".to_owned(),
            );
        }
        for (field, message) in fleet.problems() {
            problem(None, format!("fleet.{field}: {message}"));
        }
    }
    if let Some(addr) = config.metrics.listen
        && !addr.ip().is_loopback()
        && config.metrics.page.enabled
        && config.metrics.page.token.is_none()
    {
        problem(
            at.metrics
                .as_ref()
                .and_then(|m| m.listen.as_ref())
                .map(|s| &s.referenced),
            format!(
                "metrics.listen: {addr} is not a loopback address, so the status page would \
                 show this gateway to its whole network; set metrics.page.token (or \
                 metrics.page.enabled: false)"
            ),
        );
    }
    if config.sources.is_empty() {
        problem(
            None,
            "no sources: add a `simulator` or an `mqtt` source".to_owned(),
        );
    }
    // In the order of the file, as an editor would walk them.
    problems.sort_by_key(|p| (p.line, p.column));
    problems
}

#[cfg(test)]
mod tests;
