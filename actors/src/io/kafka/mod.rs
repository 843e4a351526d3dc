//! The one place Kafka clients and topics are set up: the start-up check, the idempotent
//! producer, the consumer settings of the reader, topic creation, and the embedded
//! (librdkafka mock) cluster used by the no-services default.

mod config;
mod diagnosis;

pub use config::{KafkaConfig, KafkaMode, SecurityProtocol};
pub use diagnosis::{classify, KafkaWatch, WatchedContext};

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, DefaultProducerContext, FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::refusal::{Refusal, RefusalKind};

/// Errors while setting up Kafka clients or topics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaSetupError {
    /// librdkafka refused the client configuration.
    #[error("cannot create the Kafka {client}: {source}")]
    Client {
        /// Which client.
        client: &'static str,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// A topic could not be created (and does not already exist).
    #[error("cannot create topic {topic:?}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// The CreateTopics request itself failed (broker unreachable, time-out).
    #[error("cannot reach Kafka at {servers} to create topics: {source}")]
    Admin {
        /// The bootstrap servers.
        servers: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// No broker answered the start-up check.
    #[error("Kafka at {servers} (kafka.bootstrap_servers) is not reachable: {source}")]
    Unreachable {
        /// The bootstrap servers.
        servers: String,
        /// librdkafka's error.
        #[source]
        source: KafkaError,
    },
    /// The brokers refused this client as it is configured.
    #[error("{0}")]
    Refused(Refusal),
    /// The start-up check's thread could not be started.
    #[error("cannot start the Kafka start-up check: {0}")]
    Thread(#[source] std::io::Error),
}

/// The pipeline's producer, with the watch its context reports refusals to. Cheap to
/// clone (shared); dereferences to the rdkafka producer.
#[derive(Clone)]
pub struct KafkaProducer {
    producer: FutureProducer<WatchedContext>,
    watch: KafkaWatch,
}

impl KafkaProducer {
    /// Where this producer's refusals are reported (and the configuration it was built from).
    pub fn watch(&self) -> &KafkaWatch {
        &self.watch
    }
}

impl std::ops::Deref for KafkaProducer {
    type Target = FutureProducer<WatchedContext>;

    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

/// How often the start-up check asks again while the brokers refuse (the refusal shows on
/// `/readyz` meanwhile), before the run ends: a credential being rotated gets a moment,
/// and nothing retries for ever.
const REFUSAL_CHECKS: u32 = 3;

/// How long the pipeline's start-up check waits for the brokers' metadata (a broker that
/// is still starting gets that long).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Reaches the brokers before anything else starts, so that a refused credential, an
/// untrusted certificate or a plaintext client on a TLS listener ends the run at once
/// with the cause named ([`KafkaSetupError::Refused`]) instead of as a time-out. Answers
/// the number of brokers; `wait` bounds each metadata request ([`START_TIMEOUT`] at start).
pub async fn preflight(
    cfg: &KafkaConfig,
    watch: &KafkaWatch,
    wait: Duration,
) -> Result<usize, KafkaSetupError> {
    let mut attempt = 1;
    loop {
        match check_once(cfg, watch, wait).await {
            Ok(brokers) => {
                watch.clear();
                return Ok(brokers);
            }
            Err(KafkaSetupError::Refused(_)) if attempt < REFUSAL_CHECKS => {
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One metadata request with a fresh client; a refusal reported meanwhile ends it early.
/// The client is a producer because polling a producer serves the queue that carries
/// librdkafka's error reports and log lines (a consumer without a group would not).
async fn check_once(cfg: &KafkaConfig, watch: &KafkaWatch, wait: Duration) -> Result<usize, KafkaSetupError> {
    let client: BaseProducer<WatchedContext> = cfg
        .client_config()
        .create_with_context(WatchedContext(watch.clone()))
        .map_err(|source| KafkaSetupError::Client { client: "start-up check", source })?;
    let client = std::sync::Arc::new(client);
    let probe = client.clone();
    // A thread of its own, not the runtime's blocking pool: when a refusal ends the check
    // early, the metadata request may still wait out its time-out, and a pool task would
    // hold the process's exit back by as much.
    let (answer, mut metadata) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("egx-kafka-check".into())
        .spawn(move || {
            let _ = answer.send(probe.client().fetch_metadata(None, wait).map(|m| m.brokers().len()));
        })
        .map_err(KafkaSetupError::Thread)?;
    let servers = cfg.bootstrap_servers.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            answer = &mut metadata => {
                client.poll(Duration::ZERO);
                return match answer {
                    Ok(Ok(brokers)) => Ok(brokers),
                    Ok(Err(source)) => Err(watch.refusal().map_or(KafkaSetupError::Unreachable { servers, source }, KafkaSetupError::Refused)),
                    Err(_) => Err(KafkaSetupError::Unreachable { servers, source: KafkaError::Canceled }),
                };
            }
            _ = tick.tick() => {
                client.poll(Duration::ZERO);
                if let Some(refusal) = watch.refusal() {
                    return Err(KafkaSetupError::Refused(refusal));
                }
            }
        }
    }
}

/// Producer settings: idempotent (no duplicates or reordering on retries), acks=all, and
/// the murmur2 partitioner so a key lands on the same partition as with the Java and
/// Python clients.
pub fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = cfg.client_config();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", cfg.message_timeout_ms.to_string())
        .set("linger.ms", "5");
    c
}

/// Builds the producer; it reports refusals to `watch`.
pub fn producer(cfg: &KafkaConfig, watch: &KafkaWatch) -> Result<KafkaProducer, KafkaSetupError> {
    let producer = producer_config(cfg)
        .create_with_context(WatchedContext(watch.clone()))
        .map_err(|source| KafkaSetupError::Client { client: "producer", source })?;
    Ok(KafkaProducer { producer, watch: watch.clone() })
}

/// Consumer settings of the KafkaReader: nothing is committed automatically and
/// offsets are only stored when the reader commits what is durably written; a new group
/// starts from the earliest offset, as the original consumer did.
pub fn consumer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = cfg.client_config();
    c.set("group.id", &cfg.consumer_group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (cfg.session_timeout_ms / 10).max(500).to_string())
        // Small prefetch: paused partitions must not pile up memory in librdkafka's queues.
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.wait.max.ms", "100")
        // Feeds the consumer-lag metric.
        .set("statistics.interval.ms", "1000");
    if !cfg.group_instance_id.is_empty() {
        c.set("group.instance.id", &cfg.group_instance_id);
    }
    c
}

/// Creates the data topic and the dead-letter topic when they are missing (partitions,
/// replication and retention from the config). Existing topics are left as they are.
/// A user without the right to create them may still use topics that exist.
pub async fn ensure_topics(cfg: &KafkaConfig, watch: &KafkaWatch) -> Result<(), KafkaSetupError> {
    let admin: AdminClient<WatchedContext> = cfg
        .client_config()
        .create_with_context(WatchedContext(watch.clone()))
        .map_err(|source| KafkaSetupError::Client { client: "admin client", source })?;
    let retention = cfg.retention_ms().to_string();
    let dlq = cfg.dlq_topic();
    let topics: Vec<NewTopic<'_>> = [cfg.topic.as_str(), dlq.as_str()]
        .into_iter()
        .map(|name| {
            NewTopic::new(name, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor))
                .set("retention.ms", &retention)
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(topics.iter(), &opts)
        .await
        .map_err(|source| KafkaSetupError::Admin { servers: cfg.bootstrap_servers.clone(), source })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((
                topic,
                RDKafkaErrorCode::TopicAuthorizationFailed | RDKafkaErrorCode::ClusterAuthorizationFailed,
            )) => {
                if !topic_exists(&admin, &topic).await {
                    let who = format!("user {:?} (kafka.sasl_username)", cfg.sasl_username);
                    return Err(KafkaSetupError::Refused(Refusal::kafka(
                        RefusalKind::Authorization,
                        format!("{who} may not create topic {topic:?}: create it (and {:?}) beforehand, or grant Create on it", cfg.dlq_topic()),
                    )));
                }
            }
            Err((topic, code)) => return Err(KafkaSetupError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// True when the brokers describe `topic` with partitions (whoever may not create it).
async fn topic_exists(admin: &AdminClient<WatchedContext>, topic: &str) -> bool {
    let client = admin.inner();
    let metadata = client.fetch_metadata(Some(topic), Duration::from_secs(10));
    metadata.is_ok_and(|m| {
        m.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
    })
}

/// librdkafka's in-process mock cluster: real Kafka protocol, producer, consumer group
/// and commits, no broker process. Keep it alive as long as the pipeline runs.
pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts a one-broker mock cluster with the config's topics, and returns it with a
    /// copy of `cfg` pointing at it.
    pub fn start(cfg: &KafkaConfig) -> Result<(Self, KafkaConfig), KafkaSetupError> {
        let cluster = MockCluster::new(1)
            .map_err(|source| KafkaSetupError::Client { client: "mock cluster", source })?;
        for topic in [&cfg.topic, &cfg.dlq_topic()] {
            cluster
                .create_topic(topic, cfg.partitions, 1)
                .map_err(|source| KafkaSetupError::Client { client: "mock topic", source })?;
        }
        let mut pointed = cfg.clone();
        pointed.bootstrap_servers = cluster.bootstrap_servers();
        pointed.replication_factor = 1;
        Ok((Self { cluster }, pointed))
    }

    /// The mock cluster's `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// The mock cluster itself, for injecting faults a real broker cannot produce on
    /// demand (failed requests, slow brokers) in tests.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}

/// Reads a group's committed offsets and a topic's end offsets from the brokers, without
/// joining the group. Its calls block: run them off the actor threads.
pub struct OffsetProbe {
    consumer: BaseConsumer,
    topic: String,
}

impl OffsetProbe {
    /// A probe for the config's topic and consumer group.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaSetupError> {
        let consumer = cfg
            .client_config()
            .set("group.id", &cfg.consumer_group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|source| KafkaSetupError::Client { client: "offset probe", source })?;
        Ok(Self { consumer, topic: cfg.topic.clone() })
    }

    fn partitions(&self) -> KafkaResult<Vec<i32>> {
        let metadata = self.consumer.fetch_metadata(Some(&self.topic), PROBE_TIMEOUT)?;
        Ok(metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect())
    }

    /// Asks the cluster for its metadata; the number of brokers that answered.
    pub fn brokers(&self) -> KafkaResult<usize> {
        Ok(self.consumer.fetch_metadata(None, PROBE_TIMEOUT)?.brokers().len())
    }

    /// One past the last offset of each partition of the topic.
    pub fn end_offsets(&self) -> KafkaResult<BTreeMap<i32, i64>> {
        Ok(self.watermarks()?.into_iter().map(|(p, (_, high))| (p, high)).collect())
    }

    /// The end offset of each partition that still holds records: a partition whose log
    /// starts at its end (everything expired or deleted) has nothing left to write.
    pub fn readable_end_offsets(&self) -> KafkaResult<BTreeMap<i32, i64>> {
        Ok(self
            .watermarks()?
            .into_iter()
            .filter(|(_, (low, high))| low < high)
            .map(|(p, (_, h))| (p, h))
            .collect())
    }

    /// The first and one past the last offset of each partition of the topic.
    fn watermarks(&self) -> KafkaResult<BTreeMap<i32, (i64, i64)>> {
        let mut out = BTreeMap::new();
        for p in self.partitions()? {
            out.insert(p, self.consumer.fetch_watermarks(&self.topic, p, PROBE_TIMEOUT)?);
        }
        Ok(out)
    }

    /// The group's committed offset of each partition (absent when none was committed).
    pub fn committed(&self) -> KafkaResult<BTreeMap<i32, i64>> {
        let mut tpl = TopicPartitionList::new();
        for p in self.partitions()? {
            tpl.add_partition(&self.topic, p);
        }
        let committed = self.consumer.committed_offsets(tpl, PROBE_TIMEOUT)?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_membership_only_when_named() {
        let mut cfg = KafkaConfig::default();
        assert_eq!(consumer_config(&cfg).get("group.instance.id"), None);
        cfg.group_instance_id = "writer-1".into();
        assert_eq!(consumer_config(&cfg).get("group.instance.id"), Some("writer-1"));
        assert!(cfg.validate().is_ok());
        cfg.group_instance_id = "writer 1".into();
        let err = cfg.validate().expect_err("a space is refused").to_string();
        assert!(err.contains("kafka.group_instance_id"), "{err}");
    }
}
