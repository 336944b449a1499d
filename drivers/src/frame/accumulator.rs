//! [`Accumulator`]: bytes in, frames out, never any I/O (after postcard's `CobsAccumulator`).
//!
//! Each `0x00` ends a frame. Bytes are gathered in a fixed buffer of `N` bytes; a frame that
//! outgrows it is reported once as [`FrameError::Oversize`] and the rest of it, up to the
//! next `0x00`, is dropped, so a line stuck sending garbage costs no memory. Empty frames
//! (`0x00 0x00`) are skipped silently: senders may send a lone `0x00` to flush a partial
//! frame left on the line after a reset. The bytes before the first `0x00` a receiver sees
//! may be the tail of a frame it joined half-way; they are rejected and counted like any
//! other bad frame.

use super::{Frame, FrameError, MAX_WIRE, decode};

/// What one call to [`Accumulator::feed`] produced. `remaining` is the input not yet
/// consumed; feed it again until the result is [`Feed::Consumed`].
#[derive(Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "no heap in firmware: the frame is returned by value, once per frame"
)]
pub enum Feed<'a> {
    /// All input was consumed without completing a frame.
    Consumed,
    Frame {
        frame: Frame,
        remaining: &'a [u8],
    },
    /// A frame was rejected (and counted in [`FrameStats`]).
    Rejected {
        error: FrameError,
        remaining: &'a [u8],
    },
}

/// What an [`Accumulator`] has seen, for health metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub frames: u64,
    pub crc_errors: u64,
    pub oversize: u64,
    /// Frames rejected for any other reason: bad COBS, too short, wrong version, bad body.
    pub malformed: u64,
}

/// Reassembles frames from a byte stream; `N` is the largest wire frame accepted.
#[derive(Debug, Clone)]
pub struct Accumulator<const N: usize = MAX_WIRE> {
    buf: [u8; N],
    len: usize,
    discarding: bool,
    stats: FrameStats,
}

impl<const N: usize> Default for Accumulator<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Accumulator<N> {
    pub const fn new() -> Self {
        Accumulator {
            buf: [0; N],
            len: 0,
            discarding: false,
            stats: FrameStats {
                frames: 0,
                crc_errors: 0,
                oversize: 0,
                malformed: 0,
            },
        }
    }

    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// Bytes of an unfinished frame held now.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Drops a partial frame (after the port was reopened: its tail will not come).
    pub fn reset(&mut self) {
        self.len = 0;
        self.discarding = false;
    }

    /// Consumes `input` up to the end of the first frame completed or rejected in it.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Feed<'a> {
        for (i, &byte) in input.iter().enumerate() {
            let remaining = &input[i + 1..];
            if byte == 0 {
                let len = core::mem::take(&mut self.len);
                if core::mem::take(&mut self.discarding) || len == 0 {
                    continue;
                }
                return match decode(&mut self.buf[..len]) {
                    Ok(frame) => {
                        self.stats.frames += 1;
                        Feed::Frame { frame, remaining }
                    }
                    Err(error) => {
                        match error {
                            FrameError::Crc { .. } => self.stats.crc_errors += 1,
                            _ => self.stats.malformed += 1,
                        }
                        Feed::Rejected { error, remaining }
                    }
                };
            }
            if self.discarding {
                continue;
            }
            if self.len == N {
                self.len = 0;
                self.discarding = true;
                self.stats.oversize += 1;
                return Feed::Rejected {
                    error: FrameError::Oversize { limit: N },
                    remaining,
                };
            }
            self.buf[self.len] = byte;
            self.len += 1;
        }
        Feed::Consumed
    }
}
