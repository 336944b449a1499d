//! The serial source's configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::SourceError;

/// One serial port and the protocol its device speaks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialConfig {
    /// Source name, for logs and metrics.
    #[serde(default = "default_name")]
    pub name: String,
    /// The port's device path, e.g. `/dev/ttyUSB0` (prefer a stable `/dev/serial/by-id/…`
    /// link: the kernel may renumber a USB adapter that is plugged back).
    pub path: PathBuf,
    /// Line speed, bits per second.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// 5, 6, 7 or 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    #[serde(default)]
    pub parity: Parity,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// What the device sends.
    pub protocol: Protocol,
    /// Device name for readings whose line or frame does not name one. Default: the source
    /// name.
    #[serde(default)]
    pub device: Option<String>,
    /// Longest text line, bytes; longer lines are counted as decode errors and skipped.
    #[serde(default = "default_max_line")]
    pub max_line: usize,
    /// First delay before reopening a port that failed or vanished; doubles up to
    /// `reopen_max`, and is reset once the port opens.
    #[serde(
        default = "default_reopen_min",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub reopen_min: Duration,
    #[serde(
        default = "default_reopen_max",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub reopen_max: Duration,
}

/// The device's protocol; see [`super::lines`] and [`crate::frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Binary frames: COBS + postcard + CRC-16 ([`crate::frame`]).
    Frames,
    JsonLines,
    KvLines,
    Csv,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

impl From<Parity> for tokio_serial::Parity {
    fn from(p: Parity) -> Self {
        match p {
            Parity::None => tokio_serial::Parity::None,
            Parity::Odd => tokio_serial::Parity::Odd,
            Parity::Even => tokio_serial::Parity::Even,
        }
    }
}

fn default_name() -> String {
    "serial".to_owned()
}
const fn default_baud() -> u32 {
    115_200
}
const fn default_data_bits() -> u8 {
    8
}
const fn default_stop_bits() -> u8 {
    1
}
/// The longest line a device may send: the line is buffered until its newline arrives.
const MAX_LINE: usize = 1 << 20;

const fn default_max_line() -> usize {
    4096
}
const fn default_reopen_min() -> Duration {
    Duration::from_millis(100)
}
const fn default_reopen_max() -> Duration {
    Duration::from_secs(5)
}

impl SerialConfig {
    /// Checks what serde cannot; reports the first problem with its field.
    pub fn validate(&self) -> Result<(), SourceError> {
        let err = |field: &str, reason: &str| Err(SourceError::config(&self.name, field, reason));
        if self.path.as_os_str().is_empty() {
            return err("path", "must not be empty");
        }
        if self.baud == 0 {
            return err("baud", "must be greater than zero");
        }
        if !(5..=8).contains(&self.data_bits) {
            return err("data_bits", "must be 5, 6, 7 or 8");
        }
        if !(1..=2).contains(&self.stop_bits) {
            return err("stop_bits", "must be 1 or 2");
        }
        if self.max_line == 0 || self.max_line > MAX_LINE {
            return err("max_line", "must be between 1 and 1048576 bytes");
        }
        if self.device.as_deref().is_some_and(str::is_empty) {
            return err("device", "must not be empty");
        }
        if self.reopen_min.is_zero() {
            return err("reopen_min", "must be greater than zero");
        }
        if self.reopen_max < self.reopen_min {
            return err("reopen_max", "must not be less than reopen_min");
        }
        Ok(())
    }
}
