//! The Supervisor: starts the pipeline's actors, watches them through their
//! [`Lifeline`]s, restarts crashed ones with backoff, and gives up — ending the pipeline
//! with [`PipelineExit::GaveUp`] — after too many restarts in a window, so that an outer
//! supervisor (systemd, Kubernetes) sees the failure. It owns the symbol registry
//! ([`AddSymbol`](crate::messages::AddSymbol), [`RemoveSymbol`](crate::messages::RemoveSymbol)).
//!
//! The KafkaReader and S3Writer restart as a pair: the new reader's consumer resumes
//! from the committed offsets, so whatever the old pair had in flight is re-delivered.

mod children;
mod completion;
mod config;
mod registry;
mod restart;
mod spec;
mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use slog::{error, info};
use tokio::sync::oneshot;

pub use completion::Completion;
pub use config::{ChaosConfig, SupervisorConfig};
pub use spec::{PipelineExit, PipelineSpec, PipelineSummary};

use crate::actors::fetcher::{CursorStore, Fetcher};
use crate::actors::publisher::Publisher;
use crate::actors::reader::KafkaReader;
use crate::actors::writer::S3Writer;
use crate::contract::key::KeyTemplate;
use crate::contract::market::Symbol;
use crate::io::kafka::{self, KafkaMode, KafkaProducer, KafkaSetupError, KafkaWatch, OffsetProbe};
use crate::lifeline::Lifeline;
use crate::messages::{ChildExited, ChildId, Drain, FetchCompleted, ReaderProgress, Stop};
pub use crate::messages::{Shutdown, SupervisorError};

/// How often a `--once` run checks whether everything is committed.
const COMPLETION_CHECK: Duration = Duration::from_millis(250);

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
