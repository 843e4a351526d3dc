//! Typed messages between the actors. Commands are imperative, events past tense.

use std::collections::BTreeMap;

use actix::prelude::*;
use chrono::{DateTime, Utc};
/// The token that ends an assignment's writes ([`WriteRecord::assignment`]).
pub use tokio_util::sync::CancellationToken;

use crate::contract::market::{Bar, Interval, Symbol};
use crate::refusal::Refusal;

/// Asks a Fetcher to fetch from its source now (it ignores the request while a fetch is
/// already running).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct FetchNow;

/// Asks the Publisher to publish bars; the answer comes once Kafka acknowledged every one
/// of them (acks=all), or with the first failure.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<PublishReceipt, PublisherError>")]
pub struct PublishBars {
    /// The bars, all of one symbol.
    pub bars: Vec<Bar>,
    /// Name of the source, written into each message.
    pub source: String,
    /// When the bars were fetched (the messages' `ingestion_timestamp`).
    pub fetched_at: DateTime<Utc>,
}

/// Where Kafka stored one published message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Partition of the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// Kafka's confirmation of a whole [`PublishBars`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishReceipt {
    /// One entry per bar, in order.
    pub delivered: Vec<Delivered>,
}

/// A Fetcher finished one fetch cycle (reported to whoever started it).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct FetchCompleted {
    /// The fetcher's symbol.
    pub symbol: Symbol,
    /// The fetcher's interval.
    pub interval: Interval,
    /// Bars the source returned.
    pub fetched: usize,
    /// Where the new or changed bars went (empty when nothing changed or on failure).
    pub delivered: Vec<Delivered>,
    /// The failure, if the cycle failed (source or Kafka); the cursor did not move.
    pub error: Option<String>,
}

/// One Kafka record handed from the KafkaReader to the S3Writer. The answer
/// ([`RecordWritten`]) comes only once the record is durably stored (or dead-lettered), or
/// once its assignment ended and the write was given up.
#[derive(Debug, Clone, Message)]
#[rtype(result = "RecordWritten")]
pub struct WriteRecord {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// The reader's assignment epoch of the partition; acks of old epochs are dropped.
    pub epoch: u64,
    /// Kafka message key.
    pub key: Option<Vec<u8>>,
    /// Kafka message payload.
    pub payload: Option<Vec<u8>>,
    /// Cancelled when the reader's assignment of the partition ends (revoke, loss,
    /// shutdown): the write and its retries stop there, unconfirmed, so that nothing
    /// written on behalf of an old assignment lands after the next owner's writes
    /// (DESIGN.md rule 10).
    pub assignment: CancellationToken,
}

/// How a record was disposed of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored as this object key.
    Stored(String),
    /// Refused (the reason) and published to the dead-letter topic.
    DeadLettered(String),
    /// Not written: the partition's assignment ended first. Never counts as written.
    Abandoned,
}

/// The S3Writer's confirmation that a record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWritten {
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Epoch copied from the [`WriteRecord`].
    pub epoch: u64,
    /// What happened to it.
    pub outcome: WriteOutcome,
}

/// Adds a Fetcher for a symbol at run time (no-op if it already runs).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), SupervisorError>")]
pub struct AddSymbol(pub Symbol);

/// Stops and removes a symbol's Fetcher at run time.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), SupervisorError>")]
pub struct RemoveSymbol(pub Symbol);

/// Replaces the symbol list (a configuration reload): starts Fetchers for new symbols and
/// stops those no longer listed. Symbols outside this process's shard are ignored.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), SupervisorError>")]
pub struct SetSymbols(pub Vec<Symbol>);

/// Lists the symbols the supervisor currently runs Fetchers for.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<Symbol>")]
pub struct ListSymbols;

/// Asks for the KafkaReader's progress.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ReaderProgress")]
pub struct GetProgress;

/// What the KafkaReader has durably written and committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderProgress {
    /// Per partition: the lowest offset not yet durably written (W in the README).
    pub written_watermark: BTreeMap<i32, i64>,
    /// Per partition: the last offset committed to the group (C).
    pub committed: BTreeMap<i32, i64>,
    /// Records received from Kafka since start.
    pub consumed: u64,
    /// Records stored as objects since start.
    pub stored: u64,
    /// Records sent to the dead-letter topic since start.
    pub dead_lettered: u64,
}

/// Stops taking new work, waits (bounded) for in-flight work, commits and stops.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ReaderProgress")]
pub struct Drain;

/// Stops an actor in an orderly way.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Why a publish failed; the Fetcher keeps its cursor and retries next cycle.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PublisherError {
    /// Kafka did not acknowledge a message.
    #[error("Kafka did not confirm the bar of {symbol} at {datetime}: {source}")]
    Delivery {
        /// The bar's symbol.
        symbol: String,
        /// The bar's datetime.
        datetime: String,
        /// librdkafka's error (boxed: the error travels in every answer).
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// The producer is in librdkafka's fatal state (e.g. the idempotent producer lost
    /// track of its sequence numbers): it will never deliver again. The Publisher stops,
    /// and its supervisor creates a new producer.
    #[error("the Kafka producer failed for good: {reason} ({code:?})")]
    Fatal {
        /// librdkafka's error code.
        code: rdkafka::types::RDKafkaErrorCode,
        /// librdkafka's description.
        reason: String,
    },
}

/// Errors of the supervisor's commands.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// This pipeline has no produce side, so it runs no Fetchers.
    #[error("this pipeline does not fetch (it was started without the produce side)")]
    NotProducing,
    /// The pipeline is shutting down.
    #[error("the pipeline is shutting down")]
    ShuttingDown,
    /// The symbol belongs to another `produce` process's shard.
    #[error("symbol {0} belongs to another shard than this process's {1}")]
    OtherShard(String, String),
}

/// Asks the pipeline to stop gracefully (stop fetching, drain, commit).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Identifies a supervised child.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildId {
    /// The Kafka producer actor.
    Publisher(u64),
    /// A Fetcher, by symbol name and generation.
    Fetcher(String, u64),
    /// The KafkaReader of the given generation.
    Reader(u64),
    /// The S3Writer of the given generation.
    Writer(u64),
}

/// A supervised child went away.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChildExited {
    /// Which child.
    pub id: ChildId,
    /// True when it was not asked to stop: a panic or a failure.
    pub unexpected: bool,
    /// Set when the child met a refusal that restarting it cannot fix (a fenced consumer,
    /// a missing permission): the pipeline ends with it instead.
    pub refused: Option<Refusal>,
}
