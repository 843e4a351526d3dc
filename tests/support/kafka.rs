//! The test Kafka brokers: where they are, topics, producers, readers, the offsets a group
//! committed, and a private broker a test may restart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use egx_actors::kafka::{KafkaConfig, KafkaMode};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::*;

/// Kafka bootstrap servers of the test broker (`EGX_TEST_KAFKA`, default 127.0.0.1:9092).
pub fn kafka() -> String {
    std::env::var("EGX_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
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

/// Creates a topic with `partitions` partitions on the test broker.
pub async fn create_topic(topic: &str, partitions: i32) {
    create_topic_at(&kafka(), topic, partitions).await;
}

/// Creates a topic with `partitions` partitions on the broker at `bootstrap`.
pub async fn create_topic_at(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let results = admin
        .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
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

/// An idempotent producer for the broker at `bootstrap`.
pub fn idempotent_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Publishes messages (key, payload) and waits for every acknowledgement; returns where
/// each landed.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    messages: Vec<(String, Vec<u8>)>,
) -> Vec<(i32, i64)> {
    let sends = messages.into_iter().map(|(key, payload)| async move {
        let record = FutureRecord::to(topic).key(&key).payload(&payload);
        producer.send(record, Duration::from_secs(60)).await.map_err(|(e, _)| e).expect("acknowledged")
    });
    futures::future::join_all(sends).await.into_iter().map(|d| (d.partition, d.offset)).collect()
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
        let d = p.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).expect("delivered");
        out.push((d.partition, d.offset));
    }
    out
}

/// Reads every message of a topic from the beginning, with a throw-away group, until
/// `expected` arrived or `deadline` passed.
pub fn read_topic(topic: &str, expected: usize, deadline: Duration) -> Vec<OwnedMessage> {
    read_topic_at(&kafka(), topic, expected, deadline)
}

/// [`read_topic`] on the broker at `bootstrap`.
pub fn read_topic_at(bootstrap: &str, topic: &str, expected: usize, deadline: Duration) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
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
    committed_at(&kafka(), group, topic, partitions)
}

/// [`committed`] on the broker at `bootstrap`.
pub fn committed_at(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
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

/// A message header's value as text.
pub fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Messages as (key, payload) strings, for comparisons.
pub fn key_payload(m: &OwnedMessage) -> (String, Vec<u8>) {
    (
        String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
        m.payload().unwrap_or_default().to_vec(),
    )
}

/// One past the last offset of each non-empty partition of a topic.
pub fn end_offsets(topic: &str) -> BTreeMap<i32, i64> {
    end_offsets_at(&kafka(), topic)
}

/// [`end_offsets`] on the broker at `bootstrap`.
pub fn end_offsets_at(bootstrap: &str, topic: &str) -> BTreeMap<i32, i64> {
    let cfg =
        KafkaConfig { bootstrap_servers: bootstrap.into(), ..kafka_config(topic, &unique("egx-test-probe")) };
    let mut ends =
        egx_actors::kafka::OffsetProbe::new(&cfg).expect("probe").end_offsets().expect("end offsets");
    ends.retain(|_, end| *end > 0);
    ends
}

/// A private Kafka broker (KRaft, started by `scripts/services.sh` with its data, logs and
/// pid file in a temporary directory) on free ports, that a test may restart without
/// disturbing the shared broker other tests use. Stopped when dropped.
pub struct PrivateKafka {
    /// Its client port on 127.0.0.1.
    pub port: u16,
    /// Its controller port on 127.0.0.1.
    pub controller_port: u16,
    dir: tempfile::TempDir,
}

impl PrivateKafka {
    const SCRIPT: &'static str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/services.sh");

    /// Starts one on free ports and waits until it answers (the jars come from the shared
    /// download cache).
    pub fn start() -> Self {
        let port = free_port();
        let controller_port = std::iter::repeat_with(free_port).find(|p| *p != port).expect("a free port");
        let dir = tempfile::Builder::new().prefix("egx-private-kafka-").tempdir().expect("temp dir");
        let kafka = Self { port, controller_port, dir };
        kafka.services("start");
        kafka
    }

    /// Its `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGTERM: a controlled shutdown) and starts it again on the same ports and
    /// data; returns once it answers again.
    pub fn restart(&self) {
        self.services("restart");
    }

    /// Stops it (SIGTERM: a controlled shutdown), keeping its ports and data: an outage
    /// that lasts until [`PrivateKafka::resume`].
    pub fn stop(&self) {
        self.services("stop");
    }

    /// Starts it again after [`PrivateKafka::stop`] on the same ports and data; returns
    /// once it answers. (Not `start`: that name creates a broker.)
    pub fn resume(&self) {
        self.services("start");
    }

    /// Its server log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("run/kafka.log")).unwrap_or_default()
    }

    fn run(&self, action: &str) -> std::io::Result<std::process::Output> {
        std::process::Command::new(Self::SCRIPT)
            .args([action, "kafka"])
            .env("EGX_SERVICES_DIR", self.dir.path())
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .stdin(std::process::Stdio::null())
            .output()
    }

    fn services(&self, action: &str) {
        let out = self.run(action).expect("scripts/services.sh runs");
        assert!(
            out.status.success(),
            "services.sh {action} kafka (private, port {}) failed:\n{}{}",
            self.port,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivateKafka {
    fn drop(&mut self) {
        let _ = self.run("stop");
    }
}
