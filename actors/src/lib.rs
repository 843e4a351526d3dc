//! Actix actors that move EGX market data from a source through Apache Kafka into
//! S3-compatible object storage without losing a record.
//!
//! ```text
//!  Source ─► Fetcher[COMI] ─┐
//!  Source ─► Fetcher[ETEL] ─┼─ PublishBars ─► Publisher ──► topic
//!                           ┘                               │
//!   KafkaReader ── WriteRecord(partition, offset) ─► S3Writer ─► bucket
//!        ▲                                              │
//!        └──────────── RecordWritten(partition, offset) ◄┘
//!  Supervisor: starts, watches and restarts all of them; owns the symbol registry.
//! ```
//!
//! The delivery rules (see the README): the committed offset of a partition never passes
//! a record that is not durably written; a record's object key and bytes are a pure
//! function of the record, so a replay after any crash rewrites identical objects.
//!
//! Embedding apps build a [`supervisor::PipelineSpec`] and start a
//! [`supervisor::Supervisor`], or start single actors themselves.

#![warn(missing_docs)]

pub mod actors;
pub mod admin;
pub mod config;
pub mod contract;
pub mod io;
pub mod lifeline;
pub mod messages;
pub mod metrics;
pub mod refusal;
pub mod retry;

// The parts under their short names, for apps that embed them.
pub use actors::{fetcher, publisher, reader, supervisor, writer};
pub use contract::{calendar, key, market, record};
pub use io::{kafka, sink, source};

pub use contract::key::{KeyTemplate, ObjectKey};
pub use contract::market::{Bar, Interval, Symbol};
pub use contract::record::{BarMessage, MarketRecord};
