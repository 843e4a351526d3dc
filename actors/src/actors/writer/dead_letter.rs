//! The dead-letter topic: records the writer refuses are published there unchanged
//! (key and payload), with the reason and their origin in headers.

use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::io::kafka::KafkaProducer;
use crate::messages::WriteRecord;

/// Payloads above this are cut in the dead-letter copy (the cut is flagged in a header),
/// so that a huge poison message cannot block the partition by being unpublishable.
const MAX_DEAD_LETTER_PAYLOAD: usize = 900 * 1024;

/// Header names on dead-letter records.
pub mod headers {
    /// Why the record was refused.
    pub const REASON: &str = "egx.dlq.reason";
    /// Topic the record came from.
    pub const TOPIC: &str = "egx.dlq.source_topic";
    /// Partition it came from.
    pub const PARTITION: &str = "egx.dlq.source_partition";
    /// Offset it came from.
    pub const OFFSET: &str = "egx.dlq.source_offset";
    /// Original payload size when the payload was cut.
    pub const TRUNCATED_FROM: &str = "egx.dlq.truncated_from_bytes";
}

/// Publishes refused records.
#[derive(Clone)]
pub struct DeadLetters {
    producer: KafkaProducer,
    topic: String,
    source_topic: String,
}

impl DeadLetters {
    /// Publishes to `topic` records that came from `source_topic`.
    pub fn new(producer: KafkaProducer, topic: impl Into<String>, source_topic: impl Into<String>) -> Self {
        Self { producer, topic: topic.into(), source_topic: source_topic.into() }
    }

    /// The producer's fatal error, if it is in librdkafka's fatal state (it will never
    /// deliver again).
    pub fn fatal(&self) -> Option<(rdkafka::types::RDKafkaErrorCode, String)> {
        use rdkafka::producer::Producer;
        self.producer.client().fatal_error()
    }

    /// Publishes one refused record and waits for Kafka's acknowledgement.
    pub async fn publish(&self, record: &WriteRecord, reason: &str) -> Result<(), KafkaError> {
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let payload = record.payload.as_deref().unwrap_or_default();
        let size = payload.len().to_string();
        let cut = payload.len() > MAX_DEAD_LETTER_PAYLOAD;
        let mut headers = OwnedHeaders::new()
            .insert(Header { key: headers::REASON, value: Some(reason) })
            .insert(Header { key: headers::TOPIC, value: Some(&self.source_topic) })
            .insert(Header { key: headers::PARTITION, value: Some(&partition) })
            .insert(Header { key: headers::OFFSET, value: Some(&offset) });
        if cut {
            headers = headers.insert(Header { key: headers::TRUNCATED_FROM, value: Some(&size) });
        }
        let body = &payload[..payload.len().min(MAX_DEAD_LETTER_PAYLOAD)];
        let mut out = FutureRecord::to(&self.topic).payload(body).headers(headers);
        if let Some(key) = record.key.as_deref() {
            out = out.key(key);
        }
        self.producer.send(out, Duration::from_secs(10)).await.map(|_| ()).map_err(|(e, _)| e)
    }
}
