//! What a pipeline is given ([`PipelineSpec`]) and how it ends ([`PipelineExit`], with
//! a [`PipelineSummary`] of a finished run).

use std::collections::BTreeMap;
use std::sync::Arc;

use slog::Logger;

use super::{ChaosConfig, SupervisorConfig};
use crate::actors::fetcher::FetchConfig;
use crate::actors::writer::WriterConfig;
use crate::contract::calendar::MarketHours;
use crate::io::kafka::KafkaConfig;
use crate::io::sink::{ObjectSink, SinkConfig};
use crate::io::source::{Clock, Source};
use crate::messages::ReaderProgress;
use crate::metrics::Metrics;
use crate::refusal::Refusal;

/// Everything a pipeline needs; built by the binary or by an embedding app.
#[derive(Clone)]
pub struct PipelineSpec {
    /// Kafka cluster, topics and group.
    pub kafka: KafkaConfig,
    /// Object store settings (prefix, key template, bucket…).
    pub sink: SinkConfig,
    /// Writer limits.
    pub writer: WriterConfig,
    /// What to fetch.
    pub fetch: FetchConfig,
    /// Restart policy.
    pub supervisor: SupervisorConfig,
    /// Fault injection (tests).
    pub chaos: ChaosConfig,
    /// Run the source→Kafka side.
    pub produce: bool,
    /// Run the Kafka→store side.
    pub consume: bool,
    /// Fetch once, wait until everything fetched is written and committed, then finish.
    /// With only the consume side: read up to the topic's end as of start, then finish.
    pub once: bool,
    /// The data source.
    pub source: Arc<dyn Source>,
    /// The object store.
    pub object_sink: Arc<dyn ObjectSink>,
    /// Time source.
    pub clock: Clock,
    /// Metrics shared by every actor of the pipeline.
    pub metrics: Arc<Metrics>,
    /// The exchange's trading sessions, for Fetchers with `fetch.market_hours`.
    pub market_hours: Option<MarketHours>,
    /// Logger.
    pub log: Logger,
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineSummary {
    /// Bars returned by the sources.
    pub fetched: usize,
    /// Messages confirmed by Kafka.
    pub published: usize,
    /// Fetch cycles that failed (`symbol: reason`).
    pub fetch_failures: Vec<String>,
    /// Reader counters of the last reader generation.
    pub reader: ReaderProgress,
    /// The group's committed offsets at the end.
    pub committed: BTreeMap<i32, i64>,
    /// Where objects went.
    pub location: String,
    /// Actor restarts during the run.
    pub restarts: usize,
}

/// How a pipeline ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PipelineExit {
    /// Finished (after `--once` or a shutdown request).
    Finished(PipelineSummary),
    /// Too many restarts in the window.
    GaveUp(String),
    /// Could not start (Kafka, topics, bucket).
    Failed(String),
    /// A service refused the pipeline as it is configured (credentials, TLS trust,
    /// permissions, a fenced static member): restarting cannot help.
    Refused(Refusal),
}
