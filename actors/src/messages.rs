//! Typed messages between the actors. Commands are imperative, events past tense.

use std::collections::BTreeMap;

use actix::prelude::*;
use chrono::{DateTime, Utc};
/// The token that ends an assignment's writes ([`WriteRecord::assignment`]).
pub use tokio_util::sync::CancellationToken;

use crate::market::{Bar, Interval, Symbol};
use crate::publisher::PublisherError;
use crate::supervisor::SupervisorError;

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
