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

pub mod admin;
pub mod calendar;
pub mod config;
pub mod fetcher;
pub mod kafka;
pub mod key;
pub mod lifeline;
pub mod market;
pub mod messages;
pub mod metrics;
pub mod publisher;
pub mod reader;
pub mod record;
pub mod refusal;
pub mod retry;
pub mod sink;
pub mod source;
pub mod supervisor;
pub mod writer;

pub use key::{KeyTemplate, ObjectKey};
pub use market::{Bar, Interval, Symbol};
pub use record::{BarMessage, MarketRecord};
