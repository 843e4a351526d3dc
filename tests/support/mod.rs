//! Helpers shared by the integration tests: where the real services are, random names,
//! and small Kafka/S3 clients that check what the pipeline did.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use egx_actors::config::{KafkaConfig, KafkaMode, Secret, SinkConfig, SinkKind};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Kafka bootstrap servers of the test broker (`EGX_TEST_KAFKA`, default 127.0.0.1:9092).
pub fn kafka() -> String {
    std::env::var("EGX_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Endpoint of the test S3 server (`EGX_TEST_S3`, default http://127.0.0.1:9000).
pub fn s3_endpoint() -> String {
    std::env::var("EGX_TEST_S3").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

/// A fresh name for a topic, bucket or group (lower case, S3- and Kafka-safe).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Kafka settings of the pipeline pointing at the test broker.
pub fn kafka_config(topic: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        mode: KafkaMode::External,
        bootstrap_servers: kafka(),
        topic: topic.into(),
        dead_letter_topic: format!("{topic}.dlq"),
        consumer_group: group.into(),
        partitions: 3,
        session_timeout_ms: 10_000,
        ..KafkaConfig::default()
    }
}

/// S3 settings of the pipeline pointing at the test server.
pub fn sink_config(bucket: &str) -> SinkConfig {
    SinkConfig {
        kind: SinkKind::S3,
        bucket: bucket.into(),
        endpoint: s3_endpoint(),
        access_key_id: "minioadmin".into(),
        secret_access_key: Secret::new("minioadmin"),
        ..SinkConfig::default()
    }
}

/// An S3 client for the test server.
pub async fn s3() -> Client {
    egx_actors::sink::s3_client(&sink_config("unused")).await
}

/// Every key under `prefix`, following continuation tokens.
pub async fn list_keys(client: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .expect("ListObjectsV2");
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    keys.sort();
    keys
}

/// An object's bytes.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("GetObject");
    out.body
        .collect()
        .await
        .expect("object body")
        .into_bytes()
        .to_vec()
}

/// Creates a topic with `partitions` partitions on the test broker.
pub async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("CreateTopics");
    for r in results {
        r.expect("topic created");
    }
}

/// A plain producer for the test broker.
pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer")
}

/// Produces keyed messages and returns where each landed.
pub async fn produce(topic: &str, messages: &[(Option<&[u8]>, &[u8])]) -> Vec<(i32, i64)> {
    let p = producer();
    let mut out = Vec::new();
    for (key, payload) in messages {
        let mut record = FutureRecord::to(topic).payload(*payload);
        if let Some(k) = key {
            record = record.key(*k);
        }
        let d = p
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
        out.push((d.partition, d.offset));
    }
    out
}

/// Reads every message of a topic from the beginning, with a throw-away group, until
/// `expected` arrived or `deadline` passed.
pub fn read_topic(topic: &str, expected: usize, deadline: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", unique("egx-test-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < expected && start.elapsed() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.expect("message").detach());
        }
    }
    out
}

/// The committed offsets of a group on a topic.
pub fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Messages as (key, payload) strings, for comparisons.
pub fn key_payload(m: &OwnedMessage) -> (String, Vec<u8>) {
    (
        String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
        m.payload().unwrap_or_default().to_vec(),
    )
}
