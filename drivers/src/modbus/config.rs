//! The Modbus source's configuration.

use std::time::Duration;

use serde::Deserialize;

use std::path::PathBuf;

use super::map::RegisterConfig;
use crate::SourceError;
use crate::serial::Parity;

/// A set of Modbus slaves polled by one source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    /// Source name, for logs and metrics.
    #[serde(default = "default_name")]
    pub name: String,
    /// How long one request may take before it counts as a timeout.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub timeout: Duration,
    /// Further attempts after a timeout or a transport error (each on a new connection).
    /// Exceptions are answers, and are not retried.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Unmapped registers a read may span to join two values into one request; 0 reads
    /// only mapped addresses.
    #[serde(default)]
    pub max_gap: u16,
    /// Send a `<metric>.quality` sample beside every value on every poll (see
    /// [`super::quality`]); `false` sends values only.
    #[serde(default = "default_quality")]
    pub quality: bool,
    pub slaves: Vec<SlaveConfig>,
}

/// One slave: where it is, its unit id, and what to poll how often.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaveConfig {
    /// Device name of the readings.
    pub device: String,
    /// Modbus TCP address, `host:port` (the standard port is 502). Exactly one of `tcp` and
    /// `rtu` is given.
    #[serde(default)]
    pub tcp: Option<String>,
    /// Modbus RTU: the serial line the slave is on. Slaves on the same `path` share the line
    /// (one request at a time) and must give the same line settings.
    #[serde(default)]
    pub rtu: Option<RtuConfig>,
    /// Unit id (slave address); gateways to RTU buses route by it.
    #[serde(default = "default_unit")]
    pub unit: u8,
    pub groups: Vec<GroupConfig>,
}

/// A Modbus RTU serial line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtuConfig {
    pub path: PathBuf,
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// The Modbus serial line specification's default is `even`.
    #[serde(default = "default_parity")]
    pub parity: Parity,
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
}

const fn default_baud() -> u32 {
    19_200
}
const fn default_data_bits() -> u8 {
    8
}
const fn default_parity() -> Parity {
    Parity::Even
}
const fn default_stop_bits() -> u8 {
    1
}

/// Where a slave is reached; slaves with equal transports share one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp(String),
    Rtu(RtuConfig),
}

impl SlaveConfig {
    pub(crate) fn transport(&self) -> Option<Transport> {
        match (&self.tcp, &self.rtu) {
            (Some(tcp), None) => Some(Transport::Tcp(tcp.clone())),
            (None, Some(rtu)) => Some(Transport::Rtu(rtu.clone())),
            _ => None,
        }
    }
}

/// Registers polled together at one interval; one poll is one delivery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub interval: Duration,
    pub registers: Vec<RegisterConfig>,
}

fn default_name() -> String {
    "modbus".to_owned()
}
const fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
const fn default_retries() -> u32 {
    1
}
const fn default_quality() -> bool {
    true
}
const fn default_unit() -> u8 {
    1
}

impl ModbusConfig {
    /// Checks what serde cannot; reports the first problem with its field path.
    pub fn validate(&self) -> Result<(), SourceError> {
        let err = |field: String, reason: &str| Err(SourceError::config(&self.name, field, reason));
        if self.timeout.is_zero() {
            return err("timeout".into(), "must be greater than zero");
        }
        if self.slaves.is_empty() {
            return err("slaves".into(), "must name at least one slave");
        }
        for (s, slave) in self.slaves.iter().enumerate() {
            if slave.device.is_empty() {
                return err(format!("slaves[{s}].device"), "must not be empty");
            }
            match (&slave.tcp, &slave.rtu) {
                (Some(tcp), None) => {
                    let bad = |(h, p): (&str, &str)| {
                        crate::fields::host_problem(h).is_some()
                            || p.parse::<u16>().is_ok_and(|p| p == 0)
                            || p.parse::<u16>().is_err()
                    };
                    if tcp.rsplit_once(':').is_none_or(bad) {
                        return err(
                            format!("slaves[{s}].tcp"),
                            "must be host:port, with a port from 1 to 65535",
                        );
                    }
                }
                (None, Some(rtu)) => {
                    if rtu.baud == 0
                        || !(5..=8).contains(&rtu.data_bits)
                        || !(1..=2).contains(&rtu.stop_bits)
                    {
                        return err(
                            format!("slaves[{s}].rtu"),
                            "needs baud > 0, data_bits 5-8, stop_bits 1-2",
                        );
                    }
                    let clash = self.slaves[..s]
                        .iter()
                        .filter_map(|o| o.rtu.as_ref())
                        .any(|o| o.path == rtu.path && o != rtu);
                    if clash {
                        return err(
                            format!("slaves[{s}].rtu"),
                            "another slave on this path gives other line settings",
                        );
                    }
                }
                _ => {
                    return err(
                        format!("slaves[{s}]"),
                        "give exactly one of `tcp` and `rtu`",
                    );
                }
            }
            if slave.groups.is_empty() {
                return err(
                    format!("slaves[{s}].groups"),
                    "must name at least one group",
                );
            }
            for (g, group) in slave.groups.iter().enumerate() {
                let at = format!("slaves[{s}].groups[{g}]");
                if group.interval.is_zero() {
                    return err(format!("{at}.interval"), "must be greater than zero");
                }
                if group.registers.is_empty() {
                    return err(format!("{at}.registers"), "must name at least one register");
                }
                for (r, reg) in group.registers.iter().enumerate() {
                    if let Some((field, reason)) = reg.problem() {
                        return err(format!("{at}.registers[{r}].{field}"), &reason);
                    }
                }
            }
        }
        Ok(())
    }
}
