//! The one generated bar stream the tests publish: message `i` is a valid 1-minute bar
//! with its own symbol and minute, so its own object, keyed by symbol as the producer keys
//! them. Publishing returns where each message landed and the object it maps to, which is
//! what a check of the bucket against the commits needs.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::NaiveDate;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;

/// Symbols of the generated stream: enough keys to spread over every partition.
pub const SYMBOLS: usize = 50;

/// Message `i` of the generated stream as (key, payload).
pub fn bar(i: usize) -> (String, String) {
    let symbol = format!("R{:02}", i % SYMBOLS);
    let start = NaiveDate::from_ymd_opt(2025, 3, 2).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("valid date");
    let minute = i64::try_from(i / SYMBOLS).expect("small index");
    let at = start + chrono::Duration::minutes(minute);
    let payload = format!(
        r#"{{"symbol":"{symbol}","exchange":"EGX","interval":"1 Minute","datetime":"{}","open":1.5,"high":2.0,"low":1.0,"close":1.75,"volume":{i}}}"#,
        at.format("%Y-%m-%dT%H:%M:%S")
    );
    (symbol, payload)
}

/// Message `i` of the generated stream grown to `bytes` bytes with a field readers ignore
/// (unknown fields are allowed): the same bar and object key, with a payload large enough
/// that holding many of them shows in a process's memory.
pub fn padded_bar(i: usize, bytes: usize) -> (String, String) {
    let (symbol, payload) = bar(i);
    let open = payload.strip_suffix('}').expect("a JSON object");
    let frame = open.len() + r#","padding":""}"#.len();
    assert!(bytes >= frame, "{bytes} bytes cannot hold bar {i} ({frame} bytes without padding)");
    let padded = format!(r#"{open},"padding":"{}"}}"#, "x".repeat(bytes - frame));
    debug_assert_eq!(padded.len(), bytes);
    (symbol, padded)
}

/// The object key the pipeline writes a bar's payload to.
pub fn object_key(payload: &[u8]) -> String {
    let record = egx_actors::MarketRecord::decode(Some(payload), 1 << 20).expect("valid bar");
    egx_actors::KeyTemplate::default().render(&record).to_string()
}

/// The object key of every message, by (partition, offset).
pub fn keys_of(messages: &[OwnedMessage]) -> BTreeMap<(i32, i64), String> {
    messages
        .iter()
        .map(|m| ((m.partition(), m.offset()), object_key(m.payload().unwrap_or_default())))
        .collect()
}

/// Publishes bars `range` of the generated stream; returns (partition, offset) → object key.
pub async fn publish_bars(
    producer: &FutureProducer,
    topic: &str,
    range: Range<usize>,
) -> BTreeMap<(i32, i64), String> {
    publish(producer, topic, range.map(bar).collect()).await
}

/// [`publish_bars`] with every payload grown to `bytes` bytes (see [`padded_bar`]).
pub async fn publish_padded_bars(
    producer: &FutureProducer,
    topic: &str,
    range: Range<usize>,
    bytes: usize,
) -> BTreeMap<(i32, i64), String> {
    publish(producer, topic, range.map(|i| padded_bar(i, bytes)).collect()).await
}

async fn publish(
    producer: &FutureProducer,
    topic: &str,
    bars: Vec<(String, String)>,
) -> BTreeMap<(i32, i64), String> {
    let keys: Vec<String> = bars.iter().map(|(_, p)| object_key(p.as_bytes())).collect();
    let messages = bars.into_iter().map(|(k, p)| (k, p.into_bytes())).collect();
    let positions = super::publish(producer, topic, messages).await;
    positions.into_iter().zip(keys).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_padded_bar_has_the_size_asked_for_and_the_object_of_its_bar() {
        for bytes in [300, 4096, 65_536] {
            let (symbol, padded) = padded_bar(123, bytes);
            assert_eq!(padded.len(), bytes);
            assert_eq!(symbol, bar(123).0);
            assert_eq!(object_key(padded.as_bytes()), object_key(bar(123).1.as_bytes()));
        }
    }
}
