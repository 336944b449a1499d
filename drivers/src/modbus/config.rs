//! The Modbus source's configuration.

use std::time::Duration;

use serde::Deserialize;

use super::map::RegisterConfig;
use crate::SourceError;

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
    pub slaves: Vec<SlaveConfig>,
}

/// One slave: where it is, its unit id, and what to poll how often.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaveConfig {
    /// Device name of the readings.
    pub device: String,
    /// Modbus TCP address, `host:port` (the standard port is 502).
    pub tcp: String,
    /// Unit id (slave address); gateways to RTU buses route by it.
    #[serde(default = "default_unit")]
    pub unit: u8,
    pub groups: Vec<GroupConfig>,
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
            if slave
                .tcp
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return err(format!("slaves[{s}].tcp"), "must be host:port");
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
