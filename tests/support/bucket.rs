//! What the bucket holds compared with what the topic implies: lost, extra and wrong-bytes
//! objects, and committed offsets backed by objects (C <= W) checked from outside.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use rdkafka::message::{Message, OwnedMessage};

use super::*;

/// What the bucket holds compared with what the topic says it should hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BucketCheck {
    /// Valid messages in the topic.
    pub messages: usize,
    /// Distinct object keys those messages map to.
    pub expected_objects: usize,
    /// Objects found under the prefix.
    pub objects: usize,
    /// Expected keys missing from the bucket.
    pub lost: Vec<String>,
    /// Keys in the bucket that no message maps to.
    pub extra: Vec<String>,
    /// Keys whose bytes differ from the latest message for that key.
    pub wrong_bytes: Vec<String>,
}

impl BucketCheck {
    /// True when the bucket is exactly what the topic implies.
    pub fn is_exact(&self) -> bool {
        self.lost.is_empty() && self.extra.is_empty() && self.wrong_bytes.is_empty()
    }
}

/// The object each valid message of `messages` maps to (the latest offset wins per key,
/// as messages of a key share a partition).
pub fn expected_objects(
    messages: &[OwnedMessage],
    template: &egx_actors::KeyTemplate,
) -> BTreeMap<String, Vec<u8>> {
    let mut sorted: Vec<&OwnedMessage> = messages.iter().collect();
    sorted.sort_by_key(|m| (m.partition(), m.offset()));
    let mut out = BTreeMap::new();
    for m in sorted {
        if let Ok(record) = egx_actors::MarketRecord::decode(m.payload(), 1 << 20) {
            out.insert(template.render(&record).to_string(), m.payload().unwrap_or_default().to_vec());
        }
    }
    out
}

/// Compares the bucket under the template's prefix with the topic's messages.
pub async fn check_bucket(
    client: &Client,
    bucket: &str,
    messages: &[OwnedMessage],
    template: &egx_actors::KeyTemplate,
) -> BucketCheck {
    let expected = expected_objects(messages, template);
    let keys = list_keys(client, bucket, template.prefix()).await;
    let mut check = BucketCheck {
        messages: messages
            .iter()
            .filter(|m| egx_actors::MarketRecord::decode(m.payload(), 1 << 20).is_ok())
            .count(),
        expected_objects: expected.len(),
        objects: keys.len(),
        ..BucketCheck::default()
    };
    check.lost = expected.keys().filter(|k| keys.binary_search(k).is_err()).cloned().collect();
    check.extra = keys.iter().filter(|k| !expected.contains_key(*k)).cloned().collect();
    for (key, bytes) in &expected {
        if keys.binary_search(key).is_ok() && &get(client, bucket, key).await != bytes {
            check.wrong_bytes.push(key.clone());
        }
    }
    check
}

/// The commit rule C(p) ≤ W(p), checked from outside: every message below a committed
/// offset has its object. Returns how many committed messages were checked.
pub async fn commits_backed_by_objects(
    s3: &Client,
    bucket: &str,
    bootstrap: &str,
    group: &str,
    topic: &str,
    expected_key: &BTreeMap<(i32, i64), String>,
) -> usize {
    let (b, g, t) = (bootstrap.to_string(), group.to_string(), topic.to_string());
    // Off the async runtime: the pipeline under test may share it.
    let committed =
        tokio::task::spawn_blocking(move || committed_at(&b, &g, &t, 3)).await.expect("committed offsets");
    // Objects are only ever added, so listing after reading C sees everything written by then.
    let keys = list_keys(s3, bucket, "streaming/").await;
    let mut checked = 0;
    for ((p, o), key) in expected_key {
        if committed.get(p).is_some_and(|c| o < c) {
            assert!(
                keys.binary_search(key).is_ok(),
                "offset {o} of partition {p} committed (C={committed:?}) but {key} not written"
            );
            checked += 1;
        }
    }
    checked
}
