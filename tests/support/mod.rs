//! Helpers shared by the integration tests: where the real services are, random names,
//! and small Kafka/S3 clients that check what the pipeline did.

#![allow(dead_code)]

pub mod bars;
pub mod fake_tradingview;
pub mod latency_proxy;
pub mod poison;
pub mod process;
pub mod secure;
pub mod sentinel;
pub mod topic;

pub use topic::read_topic_to_end;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use egx_actors::config::Secret;
use egx_actors::kafka::{KafkaConfig, KafkaMode};
use egx_actors::sink::{SinkConfig, SinkKind};
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
    s3_at(&s3_endpoint()).await
}

/// An S3 client for the server at `endpoint` (the test credentials).
pub async fn s3_at(endpoint: &str) -> Client {
    egx_actors::sink::s3_client(&SinkConfig { endpoint: endpoint.into(), ..sink_config("unused") }).await
}

/// Every key under `prefix`, following continuation tokens (none while the bucket does
/// not exist yet).
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
            .await;
        let out = match out {
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) => return keys,
            other => other.expect("ListObjectsV2"),
        };
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
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
    let out = client.get_object().bucket(bucket).key(key).send().await.expect("GetObject");
    out.body.collect().await.expect("object body").into_bytes().to_vec()
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

/// Waits until `cond` holds or the deadline passes; true if it held.
pub async fn eventually<F, Fut>(deadline: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A config file for the binary pointing at the test services.
pub fn config_file(topic: &str, bucket: &str, group: &str, extra: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let text = format!(
        r#"[kafka]
mode = "external"
bootstrap_servers = "{kafka}"
topic = "{topic}"
dead_letter_topic = "{topic}.dlq"
consumer_group = "{group}"
partitions = 3
session_timeout_ms = 10000

[sink]
kind = "s3"
bucket = "{bucket}"
endpoint = "{s3}"
access_key_id = "minioadmin"

[log]
format = "json"
{extra}
"#,
        kafka = kafka(),
        s3 = s3_endpoint(),
    );
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
    f.write_all(text.as_bytes()).expect("write config");
    f
}

/// The binary, with the test S3 secret in its environment (never in a file) and the admin
/// endpoint off.
pub fn binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_egx-pipeline"));
    cmd.env("AWS_SECRET_ACCESS_KEY", "minioadmin");
    // Tests run side by side: no shared admin port unless a test asks for one.
    cmd.env("EGX__ADMIN__LISTEN", "");
    cmd
}

/// A logger for tests: warnings and errors go to the captured test output.
pub fn test_logger() -> slog::Logger {
    use slog::Drain;
    let decorator = slog_term::PlainSyncDecorator::new(slog_term::TestStdoutWriter);
    let drain = slog_term::FullFormat::new(decorator).build().filter_level(slog::Level::Warning).fuse();
    slog::Logger::root(drain, slog::o!())
}

/// A pipeline spec against the test services, with the synthetic source at a fixed instant.
pub async fn pipeline_spec(
    topic: &str,
    bucket: &str,
    group: &str,
    symbols: &[&str],
    n_bars: usize,
) -> egx_actors::supervisor::PipelineSpec {
    use chrono::TimeZone;
    use egx_actors::fetcher::FetchConfig;
    use egx_actors::writer::WriterConfig;
    use std::sync::Arc;
    let sink = sink_config(bucket);
    let now = chrono::Utc.with_ymd_and_hms(2025, 3, 13, 12, 0, 0).single().expect("valid instant");
    let clock: egx_actors::source::Clock = Arc::new(move || now);
    egx_actors::supervisor::PipelineSpec {
        kafka: kafka_config(topic, group),
        sink: sink.clone(),
        writer: WriterConfig {
            commit_interval_ms: 200,
            drain_timeout_ms: 10_000,
            retry_max_ms: 1_000,
            ..WriterConfig::default()
        },
        fetch: FetchConfig {
            symbols: symbols.iter().map(|s| egx_actors::Symbol::parse(s).expect("symbol")).collect(),
            n_bars,
            poll_interval_secs: 1,
            ..FetchConfig::default()
        },
        supervisor: egx_actors::supervisor::SupervisorConfig {
            backoff_initial_ms: 50,
            backoff_max_ms: 500,
            ..Default::default()
        },
        chaos: egx_actors::supervisor::ChaosConfig::default(),
        produce: true,
        consume: true,
        once: true,
        source: Arc::new(egx_actors::source::SyntheticSource::new(11, clock.clone())),
        object_sink: egx_actors::sink::build(&sink).await,
        clock,
        market_hours: None,
        metrics: std::sync::Arc::new(egx_actors::metrics::Metrics::new().expect("metrics")),
        log: test_logger(),
    }
}

/// A free TCP port on localhost (bound and released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET path` on a local HTTP endpoint: (status code, body); None when nothing listens.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// The value of an unlabelled or labelled sample in a Prometheus text exposition, summed
/// over every series whose name and labels start with `series`.
pub fn metric_sum(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(series))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// A private S3 server (versitygw, as the test services use) that a test may stop and
/// start again without disturbing other tests.
pub struct PrivateS3 {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its root access key and secret key.
    keys: (String, String),
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl PrivateS3 {
    /// Starts one on a free port (needs `EGX_VERSITYGW`, set by scripts/test.sh).
    pub fn start() -> Self {
        Self::start_with_keys("minioadmin", "minioadmin")
    }

    /// [`PrivateS3::start`] with these root keys instead of the test ones.
    pub fn start_with_keys(access_key: &str, secret_key: &str) -> Self {
        let keys = (access_key.to_string(), secret_key.to_string());
        let mut s =
            Self { port: free_port(), keys, dir: tempfile::tempdir().expect("temp dir"), child: None };
        s.resume();
        s
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and data directory, and waits until it answers.
    pub fn resume(&mut self) {
        let bin = std::env::var("EGX_VERSITYGW")
            .expect("EGX_VERSITYGW must name the versitygw binary (scripts/test.sh sets it)");
        let child = std::process::Command::new(bin)
            .env("ROOT_ACCESS_KEY", &self.keys.0)
            .env("ROOT_SECRET_KEY", &self.keys.1)
            .args(["--port", &format!("127.0.0.1:{}", self.port), "--region", "us-east-1", "posix"])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("versitygw starts");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(30), "private S3 did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it (an outage).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateS3 {
    fn drop(&mut self) {
        self.stop();
    }
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
