//! `[kafka]`: the cluster, the topics, the consumer group and how clients authenticate.

use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError, Secret};

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
    pub(crate) fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
    pub(crate) fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
    pub(crate) fn uses_sasl(self) -> bool {
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
    /// Topic that receives records the writer refuses, with the reason in a header;
    /// empty (the default) = `<topic>.dlq`, so it follows `topic` and `--topic`.
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
    /// Static group membership: a name unique to this consume process within the group
    /// (e.g. `writer-1`). A process restarted under the same name takes its partitions
    /// back at once, without a rebalance; a stopped one keeps them until the session
    /// times out. Empty (the default) = dynamic membership.
    pub group_instance_id: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            mode: KafkaMode::Embedded,
            bootstrap_servers: "localhost:9092".into(),
            topic: "egx_market_data".into(),
            dead_letter_topic: String::new(),
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
            group_instance_id: String::new(),
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
        for (key, topic) in [("kafka.topic", &self.topic), ("kafka.dead_letter_topic", &self.dlq_topic())] {
            if !topic_ok(topic) {
                return Err(invalid(key, format!("{topic:?} is not a valid Kafka topic name")));
            }
        }
        if self.topic == self.dlq_topic() {
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
        if !self.group_instance_id.is_empty() && !topic_ok(&self.group_instance_id) {
            return Err(invalid(
                "kafka.group_instance_id",
                "may only hold letters, digits, '.', '_' and '-' (at most 249)",
            ));
        }
        if self.session_timeout_ms < 6_000 {
            return Err(invalid("kafka.session_timeout_ms", "must be at least 6000 (broker minimum)"));
        }
        Ok(())
    }

    /// Settings shared by every client: brokers and security. The one place they are set.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        // librdkafka tells why a connection failed (TLS or protocol mismatch) only in its
        // info-level log lines; the clients' contexts read them to name the cause.
        c.set_log_level(rdkafka::config::RDKafkaLogLevel::Info);
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

    /// The dead-letter topic: `dead_letter_topic`, or `<topic>.dlq` when it is empty.
    pub fn dlq_topic(&self) -> String {
        if self.dead_letter_topic.is_empty() {
            format!("{}.dlq", self.topic)
        } else {
            self.dead_letter_topic.clone()
        }
    }

    /// Retention in milliseconds, as Kafka's `retention.ms` wants it.
    pub fn retention_ms(&self) -> u64 {
        self.retention_hours * 3_600_000
    }
}
