//! The Supervisor: starts the pipeline's actors, watches them through their
//! [`Lifeline`]s, restarts crashed ones with backoff, and gives up — ending the pipeline
//! with [`PipelineExit::GaveUp`] — after too many restarts in a window, so that an outer
//! supervisor (systemd, Kubernetes) sees the failure. It owns the symbol registry
//! ([`AddSymbol`], [`RemoveSymbol`]).
//!
//! The KafkaReader and S3Writer restart as a pair: the new reader's consumer resumes
//! from the committed offsets, so whatever the old pair had in flight is re-delivered.

mod completion;
mod config;
mod registry;
mod restart;
mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use slog::{error, info, Logger};
use tokio::sync::oneshot;

pub use completion::Completion;
pub use config::{ChaosConfig, SupervisorConfig};

use crate::actors::fetcher::{CursorStore, Fetcher, FetcherSpec};
use crate::actors::fetcher::{FetchConfig, FetchMode};
use crate::actors::publisher::Publisher;
use crate::actors::reader::{KafkaReader, ReaderSpec};
use crate::actors::writer::WriterConfig;
use crate::actors::writer::{DeadLetters, S3Writer, WriterSpec};
use crate::contract::calendar::MarketHours;
use crate::contract::key::KeyTemplate;
use crate::contract::market::Symbol;
use crate::io::kafka::{self, KafkaProducer, KafkaSetupError, KafkaWatch, OffsetProbe};
use crate::io::kafka::{KafkaConfig, KafkaMode};
use crate::io::sink::ObjectSink;
use crate::io::sink::SinkConfig;
use crate::io::source::{Clock, FetchRequest, Source};
use crate::lifeline::Lifeline;
use crate::messages::{ChildExited, ChildId, Drain, FetchCompleted, ReaderProgress, Stop};
pub use crate::messages::{Shutdown, SupervisorError};
use crate::metrics::Metrics;
use crate::refusal::Refusal;

/// How often a `--once` run checks whether everything is committed.
const COMPLETION_CHECK: Duration = Duration::from_millis(250);

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

/// Starts, watches and restarts the pipeline's actors.
pub struct Supervisor {
    spec: PipelineSpec,
    template: KeyTemplate,
    /// Where the Kafka clients report refusals (for the start-up check and `/readyz`).
    watch: KafkaWatch,
    producer: Option<KafkaProducer>,
    probe: Option<Arc<OffsetProbe>>,
    generation: u64,
    publisher: Option<(u64, Addr<Publisher>)>,
    fetchers: BTreeMap<Symbol, (u64, Addr<Fetcher>)>,
    wanted: BTreeSet<Symbol>,
    pair: Option<(u64, Addr<KafkaReader>, Addr<S3Writer>)>,
    cursors: CursorStore,
    restarts: VecDeque<Instant>,
    total_restarts: usize,
    completion: Completion,
    stopping: bool,
    exit: Option<oneshot::Sender<PipelineExit>>,
}

impl Supervisor {
    /// Starts a supervisor (inside a running actix system); the receiver resolves when the
    /// pipeline ends.
    pub fn start(
        spec: PipelineSpec,
    ) -> Result<(Addr<Self>, oneshot::Receiver<PipelineExit>), crate::config::ConfigError> {
        let template = spec.sink.validate()?;
        let (tx, rx) = oneshot::channel();
        let wanted = spec.fetch.symbols.iter().filter(|s| spec.fetch.shard.owns(s)).cloned().collect();
        let watch = KafkaWatch::new(&spec.kafka, spec.metrics.clone(), spec.log.clone());
        let addr = Self {
            spec,
            template,
            watch,
            producer: None,
            probe: None,
            generation: 0,
            publisher: None,
            fetchers: BTreeMap::new(),
            wanted,
            pair: None,
            cursors: CursorStore::default(),
            restarts: VecDeque::new(),
            total_restarts: 0,
            completion: Completion::default(),
            stopping: false,
            exit: Some(tx),
        }
        .start();
        Ok((addr, rx))
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    fn lifeline(&self, id: ChildId, ctx: &Context<Self>) -> Lifeline {
        Lifeline::new(id, ctx.address().recipient())
    }

    /// Kafka answers, the topics exist, the producer is built: everything that must hold
    /// before actors start (the object store is waited for by the consume side itself,
    /// see `store`). A refusal by the brokers ends the run with its cause named.
    fn prepare(
        &self,
    ) -> impl std::future::Future<Output = Result<(KafkaProducer, Option<OffsetProbe>), PipelineExit>> + 'static
    {
        let (spec, watch) = (self.spec.clone(), self.watch.clone());
        let failed = |e: KafkaSetupError| match e {
            KafkaSetupError::Refused(refusal) => PipelineExit::Refused(refusal),
            other => PipelineExit::Failed(other.to_string()),
        };
        async move {
            if spec.kafka.mode == KafkaMode::External {
                kafka::preflight(&spec.kafka, &watch, kafka::START_TIMEOUT).await.map_err(failed)?;
                kafka::ensure_topics(&spec.kafka, &watch).await.map_err(failed)?;
            }
            let producer = kafka::producer(&spec.kafka, &watch).map_err(failed)?;
            let probe = if spec.once && spec.consume {
                Some(OffsetProbe::new(&spec.kafka).map_err(failed)?)
            } else {
                None
            };
            Ok((producer, probe))
        }
    }

    fn start_children(&mut self, ctx: &mut Context<Self>) {
        if self.spec.produce {
            self.start_publisher(ctx);
            for symbol in self.wanted.clone() {
                if self.spec.once {
                    self.completion.expect(symbol.clone());
                }
                self.start_fetcher(symbol, ctx);
            }
        }
        if self.spec.consume {
            self.start_consume_side(ctx);
        }
        if self.spec.once {
            if self.spec.consume && !self.spec.produce {
                self.require_topic_end(ctx);
            }
            ctx.run_interval(COMPLETION_CHECK, |act, ctx| act.check_completion(ctx));
        }
    }

    fn start_publisher(&mut self, ctx: &mut Context<Self>) {
        let Some(producer) = self.producer.clone() else {
            return;
        };
        let gen = self.next_generation();
        let publisher = Publisher::new(
            producer,
            self.spec.kafka.topic.clone(),
            self.spec.metrics.clone(),
            self.spec.log.clone(),
        )
        .with_lifeline(self.lifeline(ChildId::Publisher(gen), ctx))
        .start();
        self.publisher = Some((gen, publisher));
    }

    fn start_fetcher(&mut self, symbol: Symbol, ctx: &mut Context<Self>) {
        let Some((_, publisher)) = &self.publisher else {
            return;
        };
        let fetch = &self.spec.fetch;
        let spec = FetcherSpec {
            request: FetchRequest {
                symbol: symbol.clone(),
                exchange: fetch.exchange.clone(),
                interval: fetch.interval,
                n_bars: fetch.n_bars,
                start_date: fetch.start_date,
                end_date: fetch.end_date,
            },
            source: self.spec.source.clone(),
            publisher: publisher.clone().recipient(),
            poll_every: match (self.spec.once, fetch.mode) {
                (true, _) => None,
                (false, FetchMode::Poll) => fetch.poll_interval(),
                (false, FetchMode::Stream) => {
                    (fetch.resync_secs > 0).then(|| Duration::from_secs(fetch.resync_secs))
                }
            },
            market_hours: self.spec.market_hours.clone().filter(|_| fetch.market_hours),
            stream: fetch.mode == FetchMode::Stream && !self.spec.once,
            cursors: self.cursors.clone(),
            events: Some(ctx.address().recipient()),
            clock: self.spec.clock.clone(),
            metrics: self.spec.metrics.clone(),
            log: self.spec.log.clone(),
        };
        let gen = self.next_generation();
        let lifeline = self.lifeline(ChildId::Fetcher(symbol.to_string(), gen), ctx);
        let addr = Fetcher::new(spec).with_lifeline(lifeline).start();
        if let Some((_, old)) = self.fetchers.insert(symbol, (gen, addr)) {
            old.do_send(Stop);
        }
    }

    fn start_pair(&mut self, ctx: &mut Context<Self>) {
        let Some(producer) = self.producer.clone() else {
            return;
        };
        let gen = self.next_generation();
        let writer = S3Writer::new(WriterSpec {
            sink: self.spec.object_sink.clone(),
            template: self.template.clone(),
            dead_letters: DeadLetters::new(producer, self.spec.kafka.dlq_topic(), &self.spec.kafka.topic),
            config: self.spec.writer.clone(),
            panic_rate: self.spec.chaos.writer_panic_rate,
            metrics: self.spec.metrics.clone(),
            log: self.spec.log.new(slog::o!("actor" => "S3Writer")),
        })
        .with_lifeline(self.lifeline(ChildId::Writer(gen), ctx))
        .start();
        let reader_spec = ReaderSpec {
            kafka: self.spec.kafka.clone(),
            watch: self.watch.clone(),
            writer: self.spec.writer.clone(),
            sink: writer.clone().recipient(),
            panic_rate: self.spec.chaos.reader_panic_rate,
            metrics: self.spec.metrics.clone(),
            log: self.spec.log.new(slog::o!("actor" => "KafkaReader")),
        };
        match KafkaReader::start(reader_spec, Some(self.lifeline(ChildId::Reader(gen), ctx))) {
            Ok(reader) => self.pair = Some((gen, reader, writer)),
            Err(e) => {
                writer.do_send(Stop);
                self.finish(PipelineExit::Failed(e.to_string()), ctx);
            }
        }
    }

    fn require_topic_end(&mut self, ctx: &mut Context<Self>) {
        let Some(probe) = self.probe.clone() else {
            return;
        };
        let fut = tokio::task::spawn_blocking(move || probe.readable_end_offsets());
        ctx.wait(fut.into_actor(self).map(|result, act, ctx| match result {
            Ok(Ok(ends)) => {
                for (p, end) in ends {
                    act.completion.require(p, end);
                }
            }
            Ok(Err(e)) => {
                act.finish(PipelineExit::Failed(format!("cannot read the topic's end offsets: {e}")), ctx)
            }
            Err(e) => act.finish(PipelineExit::Failed(e.to_string()), ctx),
        }));
    }

    fn check_completion(&mut self, ctx: &mut Context<Self>) {
        if self.stopping || !self.completion.fetched_all() {
            return;
        }
        let Some(probe) = self.probe.clone() else {
            // Produce only: everything fetched is confirmed by Kafka.
            self.shutdown(ctx);
            return;
        };
        let fut = tokio::task::spawn_blocking(move || probe.committed());
        ctx.wait(fut.into_actor(self).map(|result, act, ctx| {
            if let Ok(Ok(committed)) = result {
                if act.completion.written_all(&committed) {
                    act.shutdown(ctx);
                }
            }
        }));
    }

    /// Graceful stop: Fetchers first, then drain the reader, then the writer and producer.
    fn shutdown(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        info!(self.spec.log, "Shutting down: stopping Fetchers, draining in-flight writes, committing.");
        for (_, (_, fetcher)) in std::mem::take(&mut self.fetchers) {
            fetcher.do_send(Stop);
        }
        let pair = self.pair.take();
        let publisher = self.publisher.take();
        let probe = self.probe.clone();
        let fut = async move {
            let mut progress = ReaderProgress::default();
            if let Some((_, reader, writer)) = pair {
                progress = reader.send(Drain).await.unwrap_or_default();
                let _ = writer.send(Stop).await;
            }
            if let Some((_, publisher)) = publisher {
                let _ = publisher.send(Stop).await;
            }
            let committed = match probe {
                Some(p) => tokio::task::spawn_blocking(move || p.committed()).await.ok().and_then(Result::ok),
                None => None,
            };
            (progress, committed.unwrap_or_default())
        };
        ctx.wait(fut.into_actor(self).map(|(reader, committed), act, ctx| {
            let summary = PipelineSummary {
                fetched: act.completion.fetched,
                published: act.completion.published,
                fetch_failures: act.completion.failures.clone(),
                committed: if committed.is_empty() { reader.committed.clone() } else { committed },
                reader,
                location: act.spec.object_sink.location(),
                restarts: act.total_restarts,
            };
            act.finish(PipelineExit::Finished(summary), ctx);
        }));
    }

    fn finish(&mut self, exit: PipelineExit, ctx: &mut Context<Self>) {
        self.stopping = true;
        for (_, (_, fetcher)) in std::mem::take(&mut self.fetchers) {
            fetcher.do_send(Stop);
        }
        if let Some((_, reader, writer)) = self.pair.take() {
            reader.do_send(Drain);
            writer.do_send(Stop);
        }
        if let Some((_, publisher)) = self.publisher.take() {
            publisher.do_send(Stop);
        }
        if let Some(tx) = self.exit.take() {
            let _ = tx.send(exit);
        }
        ctx.stop();
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.wait(self.prepare().into_actor(self).map(|result, act, ctx| match result {
            Ok((producer, probe)) => {
                act.producer = Some(producer);
                act.probe = probe.map(Arc::new);
                act.start_children(ctx);
            }
            Err(exit) => act.finish(exit, ctx),
        }));
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    /// Restarts the child unless the pipeline is stopping or it was stopped on purpose.
    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        if self.stopping {
            return;
        }
        if let Some(refusal) = msg.refused {
            error!(self.spec.log, "Refused for good; stopping the pipeline."; "actor" => ?msg.id, "reason" => %refusal);
            self.finish(PipelineExit::Refused(refusal), ctx);
            return;
        }
        if msg.unexpected {
            error!(self.spec.log, "Actor ended unexpectedly (a panic or a failure)."; "actor" => ?msg.id);
        }
        self.on_child_exit(msg.id, ctx);
    }
}

impl Handler<FetchCompleted> for Supervisor {
    type Result = ();

    /// Tracks `--once` progress.
    fn handle(&mut self, msg: FetchCompleted, _ctx: &mut Self::Context) {
        if self.spec.once {
            self.completion.record(&msg);
        } else {
            self.completion.fetched += msg.fetched;
            self.completion.published += msg.delivered.len();
        }
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.shutdown(ctx);
    }
}
