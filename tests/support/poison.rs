//! The poison table: every kind of bad record the tests feed the pipeline, with the words
//! its dead-letter reason must contain; and the one check of a dead-letter topic against
//! the poison that was produced. `tests/dead_letter.rs` and the reliability scenario use
//! both, so a kind added here is exercised by each and checked the same way.

use std::collections::{BTreeMap, BTreeSet};

use egx_actors::writer::dead_letter_headers as headers;
use rdkafka::message::{Message, OwnedMessage};

/// The `writer.max_record_bytes` the table assumes: its "huge" kinds exceed it, every other
/// kind stays below it.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Dead-letter copies of payloads above this are cut to it, with the original size in a
/// header (the README's "unchanged" holds for the first 900 KiB).
pub const DEAD_LETTER_CUT: usize = 900 * 1024;

/// One kind of poison: its name, the words its dead-letter reason must contain, and its
/// payload made unique by a number.
struct Kind {
    name: &'static str,
    reason: &'static str,
    payload: fn(usize) -> Vec<u8>,
}

/// A daily bar of `symbol` opening at `open` (JSON text), unique by its volume `n`.
fn bar(symbol: &str, open: &str, n: usize) -> Vec<u8> {
    format!(
        r#"{{"symbol":"{symbol}","interval":"Daily","datetime":"2025-01-20","open":{open},"high":1,"low":1,"close":1,"volume":{n}}}"#
    )
    .into_bytes()
}

/// A bar padded to `bytes` bytes or more.
fn padded(bytes: usize, n: usize) -> Vec<u8> {
    format!(
        r#"{{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20","n":{n},"pad":"{}"}}"#,
        "x".repeat(bytes)
    )
    .into_bytes()
}

const TABLE: &[Kind] = &[
    Kind {
        name: "malformed JSON",
        reason: "not a valid market message",
        payload: |n| format!("{{\"symbol\":\"COMI\",\"n\":{n}").into_bytes(),
    },
    Kind { name: "wrong type", reason: "invalid type", payload: |n| bar("COMI", "\"45\"", n) },
    Kind { name: "huge", reason: "exceeds the limit", payload: |n| padded(100_000 + n, n) },
    Kind {
        name: "huge beyond the dead-letter cut",
        reason: "exceeds the limit",
        payload: |n| padded(920 * 1024, n),
    },
    Kind { name: "path in the symbol", reason: "invalid symbol", payload: |n| bar("../../etc", "1", n) },
    Kind { name: "slash in the symbol", reason: "invalid symbol", payload: |n| bar("A/B", "1", n) },
    Kind {
        name: "invalid UTF-8",
        reason: "not a valid market message",
        payload: |n| {
            let mut p = bar("CO_MI", "1", n);
            p[13] = 0xff; // the `_` of the symbol
            p
        },
    },
    Kind {
        name: "duplicate key",
        reason: "duplicate field",
        payload: |n| bar("COMI\",\"symbol\":\"ETEL", "1", n),
    },
    Kind { name: "implausible price", reason: "not a plausible value", payload: |n| bar("COMI", "-5", n) },
    Kind { name: "empty payload", reason: "not a valid market message", payload: |_| Vec::new() },
];

/// Kinds of poison in the table.
pub const KINDS: usize = TABLE.len();

/// One poison record.
#[derive(Debug, Clone)]
pub struct Poison {
    /// The kind's name.
    pub kind: &'static str,
    /// Words its dead-letter reason must contain.
    pub reason: &'static str,
    /// What is produced.
    pub payload: Vec<u8>,
}

/// Poison number `i`: kind `i % KINDS`, its payload unique by `i`.
pub fn poison(i: usize) -> Poison {
    let kind = &TABLE[i % KINDS];
    Poison { kind: kind.name, reason: kind.reason, payload: (kind.payload)(i) }
}

/// One poison record of every kind.
pub fn every_kind() -> Vec<Poison> {
    (0..KINDS).map(poison).collect()
}

/// A poison record as produced: its key and what it was.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its message key.
    pub key: Vec<u8>,
    /// The poison.
    pub poison: Poison,
}

/// A header parsed as a number.
fn number<T: std::str::FromStr>(m: &OwnedMessage, name: &str) -> T {
    let text =
        super::header(m, name).unwrap_or_else(|| panic!("header {name} on {}/{}", m.partition(), m.offset()));
    text.parse().unwrap_or_else(|_| panic!("header {name} = {text:?} is a number"))
}

/// Checks a dead-letter topic read to its end against the poison produced into
/// `source_topic`, keyed by where each landed: the set of source (partition, offset) in the
/// headers equals the poison set exactly (none twice, none missing, no valid record); each
/// copy has its record's key and payload bytes (the first [`DEAD_LETTER_CUT`] bytes and the
/// original size in a header when longer), its reason and its source topic.
pub fn assert_dead_letters(dead: &[OwnedMessage], source_topic: &str, sent: &BTreeMap<(i32, i64), Sent>) {
    let mut seen = BTreeSet::new();
    for m in dead {
        let origin: (i32, i64) = (number(m, headers::PARTITION), number(m, headers::OFFSET));
        assert!(seen.insert(origin), "{origin:?} dead-lettered twice");
        let Some(Sent { key, poison }) = sent.get(&origin) else {
            panic!("{origin:?} dead-lettered but no poison was produced there")
        };
        let what = format!("{} at {origin:?}", poison.kind);
        assert_eq!(super::header(m, headers::TOPIC).as_deref(), Some(source_topic), "{what}: source topic");
        let reason = super::header(m, headers::REASON).unwrap_or_else(|| panic!("{what}: reason header"));
        assert!(reason.contains(poison.reason), "{what}: reason {reason:?} lacks {:?}", poison.reason);
        assert_eq!(m.key(), Some(key.as_slice()), "{what}: the original key");
        let (payload, produced) = (m.payload().unwrap_or_default(), poison.payload.as_slice());
        let truncated_from = super::header(m, headers::TRUNCATED_FROM);
        if produced.len() > DEAD_LETTER_CUT {
            assert!(payload == &produced[..DEAD_LETTER_CUT], "{what}: the payload's first 900 KiB unchanged");
            assert_eq!(truncated_from, Some(produced.len().to_string()), "{what}: the cut is flagged");
        } else {
            assert!(payload == produced, "{what}: payload bytes unchanged");
            assert_eq!(truncated_from, None, "{what}: nothing cut");
        }
    }
    let missing: Vec<_> = sent.keys().filter(|at| !seen.contains(*at)).collect();
    assert!(missing.is_empty(), "poison not dead-lettered: {missing:?}");
}
