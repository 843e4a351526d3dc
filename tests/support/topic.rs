//! The one way tests read a topic back: from each partition's low watermark up to the end
//! offset it had when reading began, asserting that exactly that many messages came. The
//! expected count comes from the broker, not from the test, so a reader never waits out a
//! fixed window hoping that "enough" arrived, and a message missing or read twice fails
//! the read instead of passing unnoticed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Bounds a read that cannot finish (a broken broker); a healthy read ends at the end
/// offsets long before.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Every message of `topic` on the test broker, in (partition, offset) order.
pub fn read_topic_to_end(topic: &str) -> Vec<OwnedMessage> {
    read_topic_to_end_at(&super::kafka(), topic)
}

/// [`read_topic_to_end`] on the broker at `bootstrap`: reads each partition from its low
/// watermark to the end offset it has now, and asserts that exactly `end - low` messages
/// came per partition (no gap, none twice). The topic must exist.
pub fn read_topic_to_end_at(bootstrap: &str, topic: &str) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", super::unique("egx-test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let bounds = watermarks(&consumer, topic);
    let mut assignment = TopicPartitionList::new();
    for (partition, (low, _)) in &bounds {
        assignment.add_partition_offset(topic, *partition, Offset::Offset(*low)).expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let mut next: BTreeMap<i32, i64> = bounds.iter().map(|(p, (low, _))| (*p, *low)).collect();
    let mut out = Vec::new();
    let start = Instant::now();
    while bounds.iter().any(|(p, (_, end))| next[p] < *end) {
        assert!(start.elapsed() < HANG_GUARD, "{topic}: read {next:?} of {bounds:?} (low, end) in time");
        let Some(m) = consumer.poll(Duration::from_millis(200)) else { continue };
        let m = m.expect("message").detach();
        let (partition, offset) = (m.partition(), m.offset());
        let Some((_, end)) = bounds.get(&partition) else { continue };
        if offset >= *end {
            continue; // written after the read began: not part of this read
        }
        assert_eq!(offset, next[&partition], "{topic}: partition {partition} read in order, no gap");
        next.insert(partition, offset + 1);
        out.push(m);
    }
    let expected: i64 = bounds.values().map(|(low, end)| end - low).sum();
    assert_eq!(out.len() as i64, expected, "{topic}: exactly the messages below the end offsets");
    out.sort_by_key(|m| (m.partition(), m.offset()));
    out
}

/// (low watermark, end offset) of every partition of `topic` that holds messages.
fn watermarks(consumer: &BaseConsumer, topic: &str) -> BTreeMap<i32, (i64, i64)> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let info = metadata.topics().iter().find(|t| t.name() == topic).expect("topic in metadata");
    assert!(info.error().is_none() && !info.partitions().is_empty(), "{topic} exists: {:?}", info.error());
    info.partitions()
        .iter()
        .map(|p| {
            let bounds =
                consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).expect("watermarks");
            (p.id(), bounds)
        })
        .filter(|(_, (low, end))| end > low)
        .collect()
}
