//! Configuration types the actors accept. They deserialize from the `[kafka]`, `[sink]`,
//! `[writer]`, `[fetch]`, `[supervisor]` and `[chaos]` sections of a config file; every
//! field has a default, unknown fields are refused, and [`validate`](KafkaConfig::validate)
//! runs before any client is built. Field docs are the user docs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::key::{KeyError, KeyTemplate, DEFAULT_KEY_TEMPLATE};
use crate::market::{Interval, Shard, Symbol};

/// A configuration error naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// Dotted key, e.g. `kafka.partitions`.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), reason: reason.into() }
}

/// A secret value (password, secret key). Never printed: `Debug` and `Display` show
/// `<redacted>`, and serializing it writes `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for handing to a client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// Where Kafka comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaMode {
    /// A real cluster at `bootstrap_servers`.
    External,
    /// librdkafka's mock cluster inside this process (demo and tests without services).
    Embedded,
}

/// How the clients talk to the brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS without SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS (what managed Kafka services use).
    SaslSsl,
}

impl SecurityProtocol {
    fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
    fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// `[kafka]`: the cluster, the topics and the consumer group.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `external` (a real cluster) or `embedded` (librdkafka's in-process mock cluster).
    pub mode: KafkaMode,
    /// Comma-separated `host:port` list (env `KAFKA_BOOTSTRAP_SERVERS`).
    pub bootstrap_servers: String,
    /// Topic the bars are published to and read from.
    pub topic: String,
    /// Topic that receives records the writer refuses, with the reason in a header.
    pub dead_letter_topic: String,
    /// Consumer group of the Kafka→S3 side.
    pub consumer_group: String,
    /// Partitions of the topics when this pipeline creates them.
    pub partitions: i32,
    /// Replication factor of the topics when this pipeline creates them.
    pub replication_factor: i32,
    /// Retention of the topics when this pipeline creates them, in hours (7 days default).
    pub retention_hours: u64,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: SecurityProtocol,
    /// SASL mechanism (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`) when SASL is used.
    pub sasl_mechanism: String,
    /// SASL user name.
    pub sasl_username: String,
    /// SASL password (env `EGX__KAFKA__SASL_PASSWORD`; never logged).
    pub sasl_password: Secret,
    /// CA bundle for TLS; empty = the system's trust store.
    pub ssl_ca_location: String,
    /// How long a produced message may wait for acknowledgement before it counts as
    /// failed (the Fetcher then retries on its next cycle), in milliseconds.
    pub message_timeout_ms: u64,
    /// Consumer session timeout in milliseconds (how long before a silent member is evicted).
    pub session_timeout_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            mode: KafkaMode::Embedded,
            bootstrap_servers: "localhost:9092".into(),
            topic: "egx_market_data".into(),
            dead_letter_topic: "egx_market_data.dlq".into(),
            consumer_group: "egx-s3-writer".into(),
            partitions: 3,
            replication_factor: 1,
            retention_hours: 168,
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: "SCRAM-SHA-512".into(),
            sasl_username: String::new(),
            sasl_password: Secret::default(),
            ssl_ca_location: String::new(),
            message_timeout_ms: 30_000,
            session_timeout_ms: 30_000,
        }
    }
}

fn topic_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl KafkaConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mode == KafkaMode::External && self.bootstrap_servers.trim().is_empty() {
            return Err(invalid("kafka.bootstrap_servers", "must not be empty"));
        }
        for (key, topic) in
            [("kafka.topic", &self.topic), ("kafka.dead_letter_topic", &self.dead_letter_topic)]
        {
            if !topic_ok(topic) {
                return Err(invalid(key, format!("{topic:?} is not a valid Kafka topic name")));
            }
        }
        if self.topic == self.dead_letter_topic {
            return Err(invalid("kafka.dead_letter_topic", "must differ from kafka.topic"));
        }
        if self.consumer_group.trim().is_empty() {
            return Err(invalid("kafka.consumer_group", "must not be empty"));
        }
        if self.partitions < 1 {
            return Err(invalid("kafka.partitions", "must be at least 1"));
        }
        if self.replication_factor < 1 {
            return Err(invalid("kafka.replication_factor", "must be at least 1"));
        }
        if self.retention_hours == 0 {
            return Err(invalid("kafka.retention_hours", "must be at least 1"));
        }
        if self.security_protocol.uses_sasl() && self.sasl_username.is_empty() {
            return Err(invalid("kafka.sasl_username", "is required with a sasl_* security_protocol"));
        }
        if self.message_timeout_ms < 1_000 {
            return Err(invalid("kafka.message_timeout_ms", "must be at least 1000"));
        }
        if self.session_timeout_ms < 6_000 {
            return Err(invalid("kafka.session_timeout_ms", "must be at least 6000 (broker minimum)"));
        }
        Ok(())
    }

    /// Settings shared by every client: brokers and security. The one place they are set.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("security.protocol", self.security_protocol.as_librdkafka());
        if self.security_protocol.uses_sasl() {
            c.set("sasl.mechanism", &self.sasl_mechanism)
                .set("sasl.username", &self.sasl_username)
                .set("sasl.password", self.sasl_password.expose());
        }
        if !self.ssl_ca_location.is_empty() {
            c.set("ssl.ca.location", &self.ssl_ca_location);
        }
        c
    }

    /// Retention in milliseconds, as Kafka's `retention.ms` wants it.
    pub fn retention_ms(&self) -> u64 {
        self.retention_hours * 3_600_000
    }
}

/// Which object store the writer targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// An S3-compatible store (AWS S3, MinIO, …).
    S3,
    /// A local directory with the same key layout (the embedded default).
    Local,
}

/// `[sink]`: where objects go and how they are named.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// `s3` or `local`.
    pub kind: SinkKind,
    /// Key prefix, the original `streaming/`.
    pub prefix: String,
    /// File layout below the prefix; placeholders `{date}` (Cairo trading date),
    /// `{symbol}`, `{time}` (HHMMSSffffff, Cairo), `{interval}`, `{field}`, all required.
    pub key_template: String,
    /// Directory for `kind = "local"`.
    pub local_dir: PathBuf,
    /// Bucket for `kind = "s3"`.
    pub bucket: String,
    /// S3 endpoint URL (env `MINIO_ENDPOINT`); empty = AWS S3 for `region`.
    pub endpoint: String,
    /// Region (env `AWS_REGION`).
    pub region: String,
    /// Access key id (env `AWS_ACCESS_KEY_ID`); empty = the AWS default credential chain.
    pub access_key_id: String,
    /// Secret access key (env `AWS_SECRET_ACCESS_KEY`; never logged).
    pub secret_access_key: Secret,
    /// Path-style addressing (`endpoint/bucket/key`), needed by MinIO and most S3 servers.
    pub force_path_style: bool,
    /// Create the bucket when it is missing.
    pub create_bucket: bool,
    /// Server-side encryption for new objects: empty (the bucket's default), `AES256` or `aws:kms`.
    pub server_side_encryption: String,
    /// KMS key id when `server_side_encryption = "aws:kms"`; empty = the AWS managed key.
    pub sse_kms_key_id: String,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            kind: SinkKind::Local,
            prefix: "streaming/".into(),
            key_template: DEFAULT_KEY_TEMPLATE.into(),
            local_dir: PathBuf::from("egx-data"),
            bucket: "egx-data-bucket".into(),
            endpoint: "http://localhost:9000".into(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            force_path_style: true,
            create_bucket: true,
            server_side_encryption: String::new(),
            sse_kms_key_id: String::new(),
        }
    }
}

impl SinkConfig {
    /// Checks every field and builds the key template; the error names the key.
    pub fn validate(&self) -> Result<KeyTemplate, ConfigError> {
        let template = KeyTemplate::new(&self.prefix, &self.key_template).map_err(|e| {
            let key = match e {
                KeyError::Unsafe { what: "prefix", .. } => "sink.prefix",
                _ => "sink.key_template",
            };
            invalid(key, e.to_string())
        })?;
        match self.kind {
            SinkKind::Local if self.local_dir.as_os_str().is_empty() => {
                return Err(invalid("sink.local_dir", "must not be empty"));
            }
            SinkKind::S3 => {
                let b = &self.bucket;
                let ok = (3..=63).contains(&b.len())
                    && b.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
                    && !b.starts_with(['-', '.'])
                    && !b.ends_with(['-', '.']);
                if !ok {
                    return Err(invalid("sink.bucket", format!("{b:?} is not a valid S3 bucket name")));
                }
                if !self.endpoint.is_empty()
                    && !self.endpoint.starts_with("http://")
                    && !self.endpoint.starts_with("https://")
                {
                    return Err(invalid("sink.endpoint", "must start with http:// or https://"));
                }
                if self.region.is_empty() {
                    return Err(invalid("sink.region", "must not be empty"));
                }
                if !self.access_key_id.is_empty() && self.secret_access_key.is_empty() {
                    return Err(invalid("sink.secret_access_key", "is required when access_key_id is set"));
                }
                if !["", "AES256", "aws:kms"].contains(&self.server_side_encryption.as_str()) {
                    return Err(invalid("sink.server_side_encryption", "must be empty, AES256 or aws:kms"));
                }
            }
            SinkKind::Local => {}
        }
        Ok(template)
    }
}

/// `[writer]`: the Kafka→S3 side's limits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Records of one partition handed to the writer and not yet confirmed; at the limit
    /// the partition is paused (the consumer keeps polling, so it stays in the group).
    pub max_in_flight_per_partition: usize,
    /// Object writes running at once across all partitions.
    pub max_concurrent_writes: usize,
    /// Larger payloads go to the dead-letter topic.
    pub max_record_bytes: usize,
    /// First retry delay of a failed write, in milliseconds (doubles, with jitter).
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds. Writes are retried until they succeed.
    pub retry_max_ms: u64,
    /// How long a revoke or shutdown waits for in-flight writes before committing what is done.
    pub drain_timeout_ms: u64,
    /// How often written offsets are committed, in milliseconds.
    pub commit_interval_ms: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_in_flight_per_partition: 256,
            max_concurrent_writes: 64,
            max_record_bytes: 1 << 20,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
            drain_timeout_ms: 30_000,
            commit_interval_ms: 1_000,
        }
    }
}

impl WriterConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("writer.max_in_flight_per_partition", self.max_in_flight_per_partition as u64),
            ("writer.max_concurrent_writes", self.max_concurrent_writes as u64),
            ("writer.max_record_bytes", self.max_record_bytes as u64),
            ("writer.retry_initial_ms", self.retry_initial_ms),
            ("writer.commit_interval_ms", self.commit_interval_ms),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.retry_max_ms < self.retry_initial_ms {
            return Err(invalid("writer.retry_max_ms", "must be at least writer.retry_initial_ms"));
        }
        Ok(())
    }

    /// Drain bound as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

/// Which source the Fetchers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Seeded random walk; every message is marked `"source":"synthetic"`.
    Synthetic,
    /// TradingView's websocket feed (`[tradingview]`), the feed the original egxpy used.
    Tradingview,
    /// Exported OHLCV files replayed from disk (`[csv]`).
    Csv,
}

/// How a Fetcher follows its symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchMode {
    /// Every `poll_interval_secs`, fetch the latest `n_bars` (the original behaviour).
    Poll,
    /// Keep the series open and publish bars as the source updates them (TradingView's
    /// live updates, or a CSV replay at `csv.speed`), re-syncing every `resync_secs`.
    Stream,
}

/// `[csv]`: exported OHLCV files for the `csv` source (see `egx_actors::source` docs for columns).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// A directory of `<SYMBOL>.csv` files, or one long-format file with a `symbol` column.
    pub path: PathBuf,
    /// Replay speed in stream mode: market seconds per wall-clock second (60 = a minute
    /// per second); 0 = as fast as possible.
    pub speed: f64,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("data"), speed: 0.0 }
    }
}

/// `[fetch]`: which symbols to follow and how.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// The data source.
    pub source: SourceKind,
    /// Symbols to follow (one Fetcher each), e.g. `["COMI", "ETEL"]`.
    pub symbols: Vec<Symbol>,
    /// Exchange code written into messages.
    pub exchange: String,
    /// Bar interval: `Daily`, `Weekly`, `Monthly`, `N Minute` or a feed code.
    #[serde(with = "interval_name")]
    pub interval: Interval,
    /// Bars fetched per cycle (the latest ones).
    pub n_bars: usize,
    /// Seconds between fetch cycles; 0 = fetch once.
    pub poll_interval_secs: u64,
    /// First date to fetch (intraday backfills), `YYYY-MM-DD`.
    pub start_date: Option<NaiveDate>,
    /// Last date to fetch, `YYYY-MM-DD`.
    pub end_date: Option<NaiveDate>,
    /// Seed of the synthetic source (same seed, same prices).
    pub seed: u64,
    /// This process's share of `symbols` when several `produce` processes split them:
    /// `i/n` (0-based); `0/1` = all.
    pub shard: Shard,
    /// `poll` (fetch the latest bars every `poll_interval_secs`) or `stream`.
    pub mode: FetchMode,
    /// In stream mode, how often the latest `n_bars` are fetched again to catch anything
    /// a live update missed; 0 = never.
    pub resync_secs: u64,
    /// Poll only during the trading session of `[market_hours]` (plus one catch-up poll
    /// after the close) instead of around the clock.
    pub market_hours: bool,
}

mod interval_name {
    use super::Interval;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(i: &Interval, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&i.name())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
        Interval::deserialize(d)
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        let symbols =
            ["COMI", "ETEL", "HRHO", "TMGH", "EAST"].iter().filter_map(|s| Symbol::parse(s).ok()).collect();
        Self {
            source: SourceKind::Synthetic,
            symbols,
            exchange: "EGX".into(),
            interval: Interval::Daily,
            n_bars: 10,
            poll_interval_secs: 60,
            start_date: None,
            end_date: None,
            seed: 42,
            shard: Shard::ALL,
            mode: FetchMode::Poll,
            resync_secs: 300,
            market_hours: false,
        }
    }
}

impl FetchConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.n_bars == 0 || self.n_bars > 5_000 {
            return Err(invalid("fetch.n_bars", "must be between 1 and 5000"));
        }
        if self.exchange.is_empty()
            || !self.exchange.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(invalid("fetch.exchange", "must be an upper-case code such as EGX"));
        }
        if let (Some(start), Some(end)) = (self.start_date, self.end_date) {
            if start > end {
                return Err(invalid("fetch.start_date", "must not be after fetch.end_date"));
            }
        }
        Ok(())
    }

    /// Time between cycles, or `None` to fetch once.
    pub fn poll_interval(&self) -> Option<Duration> {
        (self.poll_interval_secs > 0).then(|| Duration::from_secs(self.poll_interval_secs))
    }
}

/// `[supervisor]`: restart policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// More than this many restarts within `restart_window_secs` stops the pipeline
    /// with an error (the process exits non-zero so an outer supervisor sees it).
    pub max_restarts: usize,
    /// The window for `max_restarts`, in seconds.
    pub restart_window_secs: u64,
    /// First restart delay, in milliseconds (doubles per restart of the same actor).
    pub backoff_initial_ms: u64,
    /// Longest restart delay, in milliseconds.
    pub backoff_max_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self { max_restarts: 10, restart_window_secs: 60, backoff_initial_ms: 200, backoff_max_ms: 10_000 }
    }
}

impl SupervisorConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.restart_window_secs == 0 {
            return Err(invalid("supervisor.restart_window_secs", "must be greater than 0"));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(invalid("supervisor.backoff_max_ms", "must be at least backoff_initial_ms"));
        }
        Ok(())
    }
}

/// `[chaos]`: fault injection for resilience tests. Leave at 0 in production.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChaosConfig {
    /// Probability (0–1) that the S3Writer panics on a record.
    pub writer_panic_rate: f64,
    /// Probability (0–1) that the KafkaReader panics on a record.
    pub reader_panic_rate: f64,
}

impl ChaosConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("chaos.writer_panic_rate", self.writer_panic_rate),
            ("chaos.reader_panic_rate", self.reader_panic_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, "must be between 0 and 1"));
            }
        }
        Ok(())
    }

    /// Draws whether to panic now, given a rate.
    pub fn roll(rate: f64) -> bool {
        rate > 0.0 && rand::random::<f64>() < rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let cfg = KafkaConfig { sasl_password: Secret::new("hunter2-sentinel"), ..KafkaConfig::default() };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&cfg).unwrap().contains("hunter2"));
        assert_eq!(cfg.sasl_password.expose(), "hunter2-sentinel");
    }

    #[test]
    fn validation_names_the_key() {
        let bad = KafkaConfig { partitions: 0, ..KafkaConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "kafka.partitions");
        let bad = SinkConfig { kind: SinkKind::S3, bucket: "Bad_Bucket".into(), ..SinkConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "sink.bucket");
        let bad = SinkConfig { prefix: "../up".into(), ..SinkConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "sink.prefix");
        let bad = WriterConfig { retry_max_ms: 1, ..WriterConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "writer.retry_max_ms");
        let bad = KafkaConfig { security_protocol: SecurityProtocol::SaslSsl, ..KafkaConfig::default() };
        assert_eq!(bad.validate().unwrap_err().key, "kafka.sasl_username");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<KafkaConfig>(r#"{"bootstrap_server":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `bootstrap_server`"), "{err}");
    }
}
