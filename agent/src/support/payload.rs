//! The stored forms of a record's payload, and the JSON body they stand for.
//!
//! Flash wears out with every byte written, and SQLite in WAL mode writes each stored byte
//! about 2.6 times (once to the WAL, once at checkpoint, plus page overhead). The one factor
//! the agent controls is how many bytes it stores per record, and half of a typical record is
//! the same JSON keys every time (`{"kind":"window","rule":"…","device":"…"`). Format 2
//! replaces those with one-byte tokens: bytes 0x01–0x1f, which compact JSON never contains
//! raw (control characters inside strings are escaped; whitespace is not emitted). Unlike
//! deflate, this costs a byte scan, needs no state across records, and works on a record of
//! 150 bytes, where a general compressor has nothing to learn from.
//!
//! Decoding substitutes the tokens back, so the body published is byte-for-byte the JSON the
//! agent encoded, whatever its form on disk. A body that already holds a byte below 0x20 (not
//! produced by serde_json, but a record may come from elsewhere) is stored as format 1.

use std::borrow::Cow;
use std::sync::LazyLock;

/// Format 1: a UTF-8 JSON object follows the version byte.
pub const PAYLOAD_V1: u8 = 1;
/// Format 2: a format-1 body with the [`TOKENS`] replaced by their one-byte codes.
pub const PAYLOAD_V2: u8 = 2;

/// Token `i` is written as byte `CODES[i]`. Never 0x09, 0x0a, 0x0d (JSON whitespace, which
/// another producer might emit) or 0x00.
const CODES: [u8; 28] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0b, 0x0c, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13,
    0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];

/// For each byte below 0x20, the index of the token it codes ([`NO_TOKEN`] if none).
const TOKEN_OF: [u8; 32] = {
    let mut table = [NO_TOKEN; 32];
    let mut t = 0;
    while t < CODES.len() {
        table[CODES[t] as usize] = t as u8;
        t += 1;
    }
    table
};
const NO_TOKEN: u8 = u8::MAX;

/// The substrings of `outbox::event_records::write_json`'s output that every record
/// repeats, in the order the encoder writes them. Changing an entry changes what stored
/// records mean: append new ones only, and only in a new format version.
const TOKENS: [&[u8]; 28] = [
    br#"{"kind":"window","rule":""#,
    br#"{"kind":"alert","rule":""#,
    br#"{"kind":"prediction","rule":""#,
    br#"{"kind":"late","rule":""#,
    br#"","device":""#,
    br#"","metric":""#,
    br#"","ts":"#,
    br#","start":"#,
    br#","end":"#,
    br#","values":{"#,
    br#","state":"raised","severity":""#,
    br#","state":"cleared","severity":""#,
    br#"","value":"#,
    br#","condition":""#,
    br#","score":"#,
    br#","message":""#,
    br#","threshold":"#,
    br#","seconds_to_threshold":"#,
    br#","slope":"#,
    br#","r2":"#,
    br#","points":"#,
    br#","value":"#,
    br#"count":"#,
    br#","mean":"#,
    br#","max":"#,
    br#","min":"#,
    br#"mean":"#,
    br#"}}"#,
];

/// For each byte, the tokens starting with it, longest first (so `,"values":{"` is tried
/// before `,"value":` could cut it short).
static CANDIDATES: LazyLock<Vec<Vec<usize>>> = LazyLock::new(|| {
    let mut table = vec![Vec::new(); 256];
    for (t, token) in TOKENS.iter().enumerate() {
        table[usize::from(token[0])].push(t);
    }
    for list in &mut table {
        list.sort_by_key(|&t| std::cmp::Reverse(TOKENS[t].len()));
    }
    table
});

/// The stored form of a format-1 payload: format 2 when it is smaller, else unchanged.
pub fn compact(payload: Vec<u8>) -> Vec<u8> {
    if payload.first() != Some(&PAYLOAD_V1) {
        return payload;
    }
    let mut out = Vec::with_capacity(payload.len() / 2 + 16);
    if pack(&payload, &mut out) {
        out
    } else {
        payload
    }
}

/// [`compact`] for a payload encoded in a reused buffer: the stored form, in a new vector of
/// exactly its length (`scratch` holds the packing on the way). A burst of window closes
/// holds every record of the burst at once on its way to the writer, 10,000 of them at
/// 10,000 series, so a growing vector's slack (and the format-1 form beside the packed one)
/// would be paid 10,000 times over (issue 19, docs/footprint.md).
pub fn compacted(payload: &[u8], scratch: &mut Vec<u8>) -> Vec<u8> {
    if pack(payload, scratch) {
        scratch.as_slice().to_vec()
    } else {
        payload.to_vec()
    }
}

/// Writes the format-2 form of `payload` (format 1) to `out`, which is cleared first;
/// whether there is one, and it is smaller.
fn pack(payload: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some((&PAYLOAD_V1, body)) = payload.split_first() else {
        return false;
    };
    out.push(PAYLOAD_V2);
    let candidates = &*CANDIDATES;
    let mut i = 0;
    'scan: while let Some(&b) = body.get(i) {
        if b < 0x20 {
            // Would read as a token: the body is stored as it is.
            return false;
        }
        for &t in &candidates[usize::from(b)] {
            if body[i..].starts_with(TOKENS[t]) {
                out.push(CODES[t]);
                i += TOKENS[t].len();
                continue 'scan;
            }
        }
        out.push(b);
        i += 1;
    }
    out.len() < payload.len()
}

/// Whether a payload of either format is a JSON object, `{ … }`: the uplink splices its id
/// fields in after the opening brace. Checked on the ends only, without decoding: every
/// producer in the agent writes the body with serde_json (a full parse per record is work
/// the ingest path can skip).
pub fn check_object(payload: &[u8]) -> Result<(), &'static str> {
    let (first, last) = match payload.split_first() {
        Some((&PAYLOAD_V1, body)) => {
            let body = body.trim_ascii();
            (body.first().copied(), body.last().copied())
        }
        Some((&PAYLOAD_V2, body)) => {
            // A code stands for its token: the token's first or last byte is what counts.
            let token = |b: u8| -> Result<&'static [u8], &'static str> {
                let t = TOKEN_OF.get(usize::from(b)).copied().unwrap_or(NO_TOKEN);
                TOKENS
                    .get(usize::from(t))
                    .copied()
                    .ok_or("payload holds an unknown token")
            };
            let first = match body.first() {
                Some(&b) if b < 0x20 => token(b)?.first().copied(),
                other => other.copied(),
            };
            let last = match body.last() {
                Some(&b) if b < 0x20 => token(b)?.last().copied(),
                other => other.copied(),
            };
            (first, last)
        }
        Some(_) => return Err("unsupported payload format version (expected 1 or 2)"),
        None => return Err("empty payload (byte 0 must be the format version)"),
    };
    if first != Some(b'{') || last != Some(b'}') {
        return Err("payload body is not a JSON object");
    }
    Ok(())
}

/// The JSON body a stored payload stands for (format 1 or 2), or why it has none.
pub fn json_body(payload: &[u8]) -> Result<Cow<'_, [u8]>, &'static str> {
    match payload.split_first() {
        Some((&PAYLOAD_V1, body)) => Ok(Cow::Borrowed(body)),
        Some((&PAYLOAD_V2, body)) => {
            // Copies the plain runs whole and looks each code up in a table: the uplink
            // decodes every record it publishes, so this is on the drain's path.
            let mut out = Vec::with_capacity(body.len() * 2 + 32);
            let mut rest = body;
            while let Some(at) = rest.iter().position(|&b| b < 0x20) {
                out.extend_from_slice(&rest[..at]);
                let token = TOKEN_OF[usize::from(rest[at])];
                let token = TOKENS
                    .get(usize::from(token))
                    .ok_or("payload holds an unknown token")?;
                out.extend_from_slice(token);
                rest = &rest[at + 1..];
            }
            out.extend_from_slice(rest);
            Ok(Cow::Owned(out))
        }
        Some(_) => Err("unsupported payload format version"),
        None => Err("empty payload"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(body: &str) -> Vec<u8> {
        let mut p = vec![PAYLOAD_V1];
        p.extend_from_slice(body.as_bytes());
        p
    }

    #[test]
    fn codes_are_control_bytes_json_never_holds_raw() {
        assert!(
            CODES
                .iter()
                .all(|&c| c < 0x20 && ![0, b'\t', b'\n', b'\r'].contains(&c))
        );
        let mut sorted = CODES;
        sorted.sort_unstable();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]), "a code used twice");
    }

    #[test]
    fn records_round_trip_and_shrink() {
        let bodies = [
            r#"{"kind":"window","rule":"pump-overheat","device":"pump-7","metric":"temperature","ts":1732530000000000,"start":1732530000000000,"end":1732530001000000,"values":{"count":10,"max":71.117,"mean":62.193,"min":null}}"#,
            r#"{"kind":"alert","rule":"hot","device":"d","metric":"t","ts":5,"state":"raised","severity":"warning","value":91.5,"condition":"max > 85","score":3.2,"message":"d: \"hot\", value:91.5 }}"}"#,
            r#"{"kind":"alert","rule":"hot","device":"d","metric":"t","ts":5,"state":"cleared","severity":"critical","value":1e-7,"condition":"max > 85"}"#,
            r#"{"kind":"late","rule":"r","device":"d","metric":"m","ts":-3,"value":2.5}"#,
            r#"{"kind":"prediction","rule":"r","device":"d","metric":"m","ts":1,"threshold":90.0,"seconds_to_threshold":null,"slope":0.1,"r2":0.9,"points":12}"#,
            "{}",
            r#"{"ünïcode":"ﬁ","device":"","metric":""}"#,
        ];
        for body in bodies {
            let stored = compact(v1(body));
            assert_eq!(
                json_body(&stored).unwrap().as_ref(),
                body.as_bytes(),
                "{body}"
            );
            assert!(stored.len() <= body.len() + 1);
        }
        let window = compact(v1(bodies[0]));
        assert_eq!(window[0], PAYLOAD_V2);
        assert!(
            window.len() * 10 < bodies[0].len() * 6,
            "{} bytes",
            window.len()
        );
    }

    /// Control bytes in the body (escaped by serde_json, but a record may come from another
    /// producer) would collide with the tokens: such a payload stays format 1.
    #[test]
    fn bodies_with_control_bytes_stay_format_1() {
        let odd = v1("{\"kind\":\"window\",\"rule\":\"a\u{1}b\"}");
        assert_eq!(compact(odd.clone()), odd);
        let ws = v1("{\n\"kind\":\"window\",\"rule\":\"x\"}");
        assert_eq!(compact(ws.clone()), ws);
        assert_eq!(compact(vec![]), Vec::<u8>::new());
        assert_eq!(compact(vec![9, b'{']), vec![9, b'{']);
    }

    #[test]
    fn compacted_is_compact_in_a_vector_of_its_own_length() {
        let mut scratch = Vec::new();
        for body in [
            r#"{"kind":"window","rule":"hot","device":"d-1","metric":"t","ts":1,"start":0,"end":1,"values":{"mean":2.5,"max":3}}"#,
            "{}",
            "{\"kind\":\"window\",\"rule\":\"a\u{1}b\"}",
        ] {
            let stored = compacted(&v1(body), &mut scratch);
            assert_eq!(stored, compact(v1(body)), "{body}");
            assert_eq!(stored.capacity(), stored.len(), "{body}");
        }
    }

    #[test]
    fn objects_are_told_from_the_ends_in_either_format() {
        let window = compact(v1(
            r#"{"kind":"window","rule":"r","device":"d","metric":"m","ts":1,"start":0,"end":1,"values":{"mean":1}}"#,
        ));
        assert_eq!(window[0], PAYLOAD_V2);
        assert_eq!(check_object(&window), Ok(()));
        assert_eq!(check_object(&v1(" {} ")), Ok(()));
        assert_eq!(check_object(&[PAYLOAD_V2, b'{', b'}']), Ok(()));
        for bad in [
            v1("[1]"),
            v1("{"),
            vec![PAYLOAD_V2, b'[', b']'],
            // `,"end":` neither opens nor closes an object.
            vec![PAYLOAD_V2, 0x0b, b'}'],
            vec![PAYLOAD_V2, 0x00, b'}'],
            vec![3, b'{', b'}'],
            vec![],
        ] {
            assert!(check_object(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_stored_payloads_are_errors() {
        assert!(json_body(&[]).is_err());
        assert!(json_body(&[3, b'{', b'}']).is_err());
        assert!(json_body(&[PAYLOAD_V2, b'{', 0x00, b'}']).is_err());
        assert!(json_body(&[PAYLOAD_V2, b'{', b'\n', b'}']).is_err());
    }
}
