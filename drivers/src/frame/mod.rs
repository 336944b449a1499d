//! The binary device frame: how a microcontroller sends readings over a serial line.
//!
//! Why this format: a UART gives a stream of bytes with no boundaries, and it gives garbage
//! too (a device rebooting mid-frame, line noise, the gateway opening the port half-way
//! through a frame). So each frame is
//!
//! ```text
//! COBS( VERSION | postcard(Frame) | CRC-16 little-endian ) 0x00
//! ```
//!
//! - **COBS** leaves `0x00` only as the frame delimiter, so after any garbage the receiver is
//!   back in step at the next zero, without timeouts or escape state ([`cobs`]).
//! - **postcard** is compact (varints, no field names), serde-based and `no_std`, so the
//!   firmware derives the same [`Frame`] and cannot drift from the gateway's definition.
//! - **CRC-16/IBM-3740** (a.k.a. CCITT-FALSE: poly `0x1021`, init `0xFFFF`) over the version
//!   byte and the body catches the corruption COBS cannot (a flipped bit inside a frame).
//!   16 bits is enough for frames under 512 bytes and cheap on an 8-bit MCU.
//! - **A version byte** first, so a later layout is rejected cleanly rather than mis-read.
//!
//! A device that may have stopped mid-frame (a reset, a watchdog) sends a lone `0x00` before
//! its first frame, so the stale half-frame on the line is rejected on its own instead of
//! swallowing the first new frame.
//!
//! Everything in this module uses `core` only, with `heapless` for bounded strings and
//! vectors, so firmware can include it as-is (with `postcard`, `heapless` with `serde`, `crc`
//! and `thiserror` without default features); a unit test checks that no `std` or `alloc`
//! path creeps in. [`Accumulator`] turns a byte stream into frames without doing I/O: the
//! serial source only moves bytes into it.

mod accumulator;
pub mod cobs;

pub use accumulator::{Accumulator, Feed, FrameStats};

use heapless::{String, Vec};
use serde::{Deserialize, Serialize};

/// The frame layout version, the first byte of every decoded frame.
pub const VERSION: u8 = 1;
/// Longest device or metric name, in bytes (UTF-8).
pub const MAX_NAME: usize = 24;
/// Most points in one frame.
pub const MAX_POINTS: usize = 16;
/// Largest decoded frame: version, body and CRC. A full frame (longest names, most points,
/// a timestamp) takes 509 bytes.
pub const MAX_RAW: usize = 512;
/// Largest frame on the wire, COBS-encoded, including the `0x00` delimiter.
pub const MAX_WIRE: usize = cobs::max_encoded_len(MAX_RAW) + 1;

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// One frame from a device: a few named values taken at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// The sending device; becomes the reading's device name.
    pub device: String<MAX_NAME>,
    /// Incremented by the device per frame; lets the gateway see lost frames.
    pub seq: u32,
    /// Device time, ms since the Unix epoch; `None` (most MCUs have no clock) = the gateway
    /// stamps the frame when it arrives.
    pub ts_ms: Option<u64>,
    pub points: Vec<Point, MAX_POINTS>,
}

/// One value in a frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub metric: String<MAX_NAME>,
    /// `f32`: what sensors deliver, and half the bytes of `f64` on a slow line.
    pub value: f32,
}

/// Why a frame could not be encoded or was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame longer than {limit} bytes before its delimiter")]
    Oversize { limit: usize },
    #[error("malformed COBS encoding")]
    Cobs,
    #[error("frame of {len} bytes is too short for a version byte and a CRC")]
    TooShort { len: usize },
    #[error("CRC mismatch: frame carries {carried:#06x}, bytes give {computed:#06x}")]
    Crc { carried: u16, computed: u16 },
    #[error("frame version {found}, this build reads version {VERSION}")]
    Version { found: u8 },
    #[error("frame body does not decode: {source}")]
    Body { source: postcard::Error },
    #[error("{count} bytes left after the frame body")]
    TrailingBytes { count: usize },
    #[error("output buffer of {len} bytes is too small (need up to {MAX_WIRE})")]
    BufferTooSmall { len: usize },
}

/// Encodes `frame` into `out` as wire bytes (COBS, then the `0x00` delimiter); returns how
/// many bytes were written. `out` of [`MAX_WIRE`] bytes always suffices.
pub fn encode(frame: &Frame, out: &mut [u8]) -> Result<usize, FrameError> {
    let mut raw = [0u8; MAX_RAW];
    raw[0] = VERSION;
    let body = postcard::to_slice(frame, &mut raw[1..MAX_RAW - 2])
        .map_err(|source| FrameError::Body { source })?
        .len();
    let crc = CRC16.checksum(&raw[..1 + body]);
    raw[1 + body..3 + body].copy_from_slice(&crc.to_le_bytes());
    let raw = &raw[..3 + body];
    let too_small = FrameError::BufferTooSmall { len: out.len() };
    if out.len() < cobs::max_encoded_len(raw.len()) + 1 {
        return Err(too_small);
    }
    let n = cobs::encode(raw, out).ok_or(too_small)?;
    out[n] = 0;
    Ok(n + 1)
}

/// Decodes one frame from its COBS bytes (without the delimiter), in place.
pub fn decode(encoded: &mut [u8]) -> Result<Frame, FrameError> {
    let len = cobs::decode_in_place(encoded).ok_or(FrameError::Cobs)?;
    let raw = &encoded[..len];
    if len < 3 {
        return Err(FrameError::TooShort { len });
    }
    let (data, crc) = raw.split_at(len - 2);
    let carried = u16::from_le_bytes([crc[0], crc[1]]);
    let computed = CRC16.checksum(data);
    if carried != computed {
        return Err(FrameError::Crc { carried, computed });
    }
    if data[0] != VERSION {
        return Err(FrameError::Version { found: data[0] });
    }
    let (frame, rest) = postcard::take_from_bytes::<Frame>(&data[1..])
        .map_err(|source| FrameError::Body { source })?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes { count: rest.len() });
    }
    Ok(frame)
}

#[cfg(test)]
mod tests;
