//! Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999), written out here rather than
//! taken from a crate so the wire format is pinned by this file and its golden tests alone.
//!
//! COBS removes every `0x00` from a block of bytes at a cost of at most one byte per 254, so
//! `0x00` can end a frame: a receiver that joins mid-stream, or loses bytes, is back in step at
//! the next zero. The encoding is the canonical one (a final run of 254 non-zero bytes gets no
//! trailing `0x01` code), byte-identical to the `cobs` crate that `postcard` and most firmware
//! use.

/// Largest COBS encoding of `len` bytes (without the `0x00` delimiter).
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Encodes `src` into `dst`; returns the encoded length, or `None` when `dst` is shorter
/// than [`max_encoded_len`]`(src.len())`. The output contains no `0x00`.
pub fn encode(src: &[u8], dst: &mut [u8]) -> Option<usize> {
    if dst.len() < max_encoded_len(src.len()) {
        return None;
    }
    let mut code_at = 0;
    let mut write = 1;
    let mut code: u8 = 1;
    for (i, &byte) in src.iter().enumerate() {
        if byte == 0 {
            dst[code_at] = code;
            code_at = write;
            write += 1;
            code = 1;
        } else {
            dst[write] = byte;
            write += 1;
            code += 1;
            if code == 0xFF && i + 1 < src.len() {
                dst[code_at] = code;
                code_at = write;
                write += 1;
                code = 1;
            }
        }
    }
    dst[code_at] = code;
    Some(write)
}

/// Decodes `buf` (one COBS block, without its delimiter) in place; returns the decoded
/// length, or `None` when the block is malformed (a `0x00` inside, or a code pointing past
/// the end).
pub fn decode_in_place(buf: &mut [u8]) -> Option<usize> {
    let mut read = 0;
    let mut write = 0;
    while read < buf.len() {
        let code = buf[read];
        if code == 0 {
            return None;
        }
        read += 1;
        let run = usize::from(code) - 1;
        let end = read + run;
        if end > buf.len() {
            return None;
        }
        for i in read..end {
            let byte = buf[i];
            if byte == 0 {
                return None;
            }
            buf[write] = byte;
            write += 1;
        }
        read = end;
        if code != 0xFF && read < buf.len() {
            buf[write] = 0;
            write += 1;
        }
    }
    Some(write)
}
