//! The KafkaReader: a consumer-group member that hands records to the S3Writer and
//! commits, per partition, only the watermark below which everything is durably written.
//!
//! - Bounded in-flight records per partition; at the limit the partition is paused at
//!   the consumer (which keeps polling, so the member is not evicted) and resumed when
//!   writes complete.
//! - Acks carry the partition's assignment epoch; acks for partitions this member no
//!   longer owns are dropped.
//! - On revoke and on [`Drain`]: stop dispatching, wait (bounded) for in-flight writes,
//!   commit synchronously, let go.
//! - If the S3Writer disappears, the reader stops too: its supervisor restarts the pair,
//!   and the new consumer resumes from the committed offsets.

mod commit;
mod context;
mod group;
mod ledger;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use slog::{debug, error, info, warn, Logger};
use tokio::sync::oneshot;

pub use context::ReaderContext;
pub use ledger::{OwnedRecord, PartitionLedger};

use commit::Committer;
use context::Consumed;

use crate::actors::supervisor::ChaosConfig;
use crate::actors::writer::WriterConfig;
use crate::io::kafka::KafkaConfig;
use crate::io::kafka::{consumer_config, KafkaWatch};
use crate::lifeline::Lifeline;
use crate::messages::{Drain, GetProgress, ReaderProgress, RecordWritten, WriteOutcome, WriteRecord};
use crate::metrics::Metrics;

/// Mailbox size: the in-flight limits bound what is queued, this only has to exceed them.
const MAILBOX_CAPACITY: usize = 65_536;

/// How often the age of the oldest unconfirmed write is published.
const STALL_GAUGE_EVERY: Duration = Duration::from_secs(1);

/// Errors starting a reader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// The consumer could not be created or subscribed.
    #[error("cannot start the Kafka consumer for topic {topic:?}: {source}")]
    Consumer {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The polling thread could not be spawned.
    #[error("cannot spawn the Kafka polling thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Everything a KafkaReader needs.
#[derive(Clone)]
pub struct ReaderSpec {
    /// Cluster, topic and group.
    pub kafka: KafkaConfig,
    /// Where the consumer reports refusals (credentials, TLS, permissions).
    pub watch: KafkaWatch,
    /// Limits (in-flight, commit interval, drain bound).
    pub writer: WriterConfig,
    /// Who writes the records.
    pub sink: Recipient<WriteRecord>,
    /// Probability of an injected panic per record (tests only; 0 in production).
    pub panic_rate: f64,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Logger.
    pub log: Logger,
}

/// Waits for partitions to have nothing in flight.
struct DrainWaiter {
    partitions: Vec<i32>,
    done: oneshot::Sender<()>,
}

/// Reads the topic and commits only what is written.
pub struct KafkaReader {
    spec: ReaderSpec,
    consumer: Option<Arc<BaseConsumer<ReaderContext>>>,
    poller: Option<JoinHandle<()>>,
    closing: Arc<AtomicBool>,
    ledgers: BTreeMap<i32, PartitionLedger>,
    next_epoch: u64,
    draining: bool,
    waiters: Vec<DrainWaiter>,
    progress: ReaderProgress,
    lifeline: Option<Lifeline>,
    /// A periodic commit is waiting for the broker's answer.
    committing: bool,
    /// Every commit goes through it, in order (shared with the periodic commit's task).
    committer: Arc<Committer>,
}

impl KafkaReader {
    /// Creates the consumer, subscribes, and starts the reader (and its polling thread).
    pub fn start(spec: ReaderSpec, lifeline: Option<Lifeline>) -> Result<Addr<Self>, ReaderError> {
        let closing = Arc::new(AtomicBool::new(false));
        let topic = spec.kafka.topic.clone();
        let context =
            ReaderContext::new(closing.clone(), spec.watch.clone(), spec.metrics.clone(), spec.log.clone());
        let consumer: BaseConsumer<ReaderContext> = consumer_config(&spec.kafka)
            .create_with_context(context)
            .map_err(|source| ReaderError::Consumer { topic: topic.clone(), source })?;
        consumer
            .subscribe(&[&topic])
            .map_err(|source| ReaderError::Consumer { topic: topic.clone(), source })?;
        let consumer = Arc::new(consumer);
        let reader = Self {
            spec: spec.clone(),
            consumer: Some(consumer.clone()),
            poller: None,
            closing: closing.clone(),
            ledgers: BTreeMap::new(),
            next_epoch: 1,
            draining: false,
            waiters: Vec::new(),
            progress: ReaderProgress::default(),
            lifeline,
            committing: false,
            committer: Arc::default(),
        };
        let poll_consumer = consumer.clone();
        let addr = Self::create(move |ctx| {
            let addr = ctx.address();
            consumer.context().attach(addr.clone());
            let poller = context::spawn_poller(poll_consumer, addr, closing, spec.log.clone());
            match poller {
                Ok(handle) => Self { poller: Some(handle), ..reader },
                Err(e) => {
                    error!(spec.log, "Cannot spawn the Kafka polling thread; the reader stops."; "error" => %e);
                    ctx.stop();
                    reader
                }
            }
        });
        Ok(addr)
    }

    fn snapshot(&self) -> ReaderProgress {
        let mut progress = self.progress.clone();
        progress.written_watermark =
            self.ledgers.iter().filter_map(|(p, l)| l.watermark().map(|w| (*p, w))).collect();
        progress
    }

    /// Stops polling, closes the consumer (leaving the group) and waits until it is closed.
    fn release_consumer(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        self.closing.store(true, Ordering::SeqCst);
        let (poller, consumer) = (self.poller.take(), self.consumer.take());
        async move {
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(p) = poller {
                    let _ = p.join();
                }
                drop(consumer);
            })
            .await;
        }
    }

    fn tpl(&self, offsets: &[(i32, Option<i64>)]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in offsets {
            let mut entry = tpl.add_partition(&self.spec.kafka.topic, *p);
            if let Some(o) = offset {
                let _ = entry.set_offset(Offset::Offset(*o));
            }
        }
        tpl
    }

    fn dispatch(&mut self, record: OwnedRecord, ctx: &mut Context<Self>) {
        let Some(ledger) = self.ledgers.get_mut(&record.partition) else {
            return;
        };
        ledger.dispatched(record.offset, Instant::now());
        let gauge = self.spec.metrics.in_flight.with_label_values(&[&record.partition.to_string()]);
        gauge.set(ledger.in_flight() as i64);
        let (partition, offset, epoch) = (record.partition, record.offset, ledger.epoch);
        let request = WriteRecord {
            topic: self.spec.kafka.topic.clone(),
            partition,
            offset,
            epoch,
            key: record.key,
            payload: record.payload,
            assignment: ledger.assignment(),
        };
        let send = self.spec.sink.send(request);
        ctx.spawn(send.into_actor(self).map(move |result, act, ctx| match result {
            Ok(written) => act.on_written(written, ctx),
            Err(e) => {
                error!(act.spec.log, "The S3Writer is gone; stopping so the pair restarts from the committed offsets."; "partition" => partition, "offset" => offset, "error" => %e);
                ctx.stop();
            }
        }));
    }

    /// Publishes how long the oldest unconfirmed write has waited (across partitions):
    /// a stall is never silent (DESIGN.md rule 11); readiness and the alert rule use it.
    fn gauge_oldest_write(&self) {
        let now = Instant::now();
        let oldest = self.ledgers.values().filter_map(PartitionLedger::oldest_dispatch).min();
        let age = oldest.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        self.spec.metrics.oldest_write_age.set(age);
    }

    fn set_paused(&mut self, partition: i32, pause: bool) {
        let tpl = self.tpl(&[(partition, None)]);
        let Some(consumer) = &self.consumer else {
            return;
        };
        let result = if pause { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
        match result {
            Ok(()) => {
                if let Some(l) = self.ledgers.get_mut(&partition) {
                    l.paused = pause;
                }
                self.spec.metrics.paused.with_label_values(&[&partition.to_string()]).set(i64::from(pause));
                debug!(self.spec.log, "Partition pause state changed (paused at the in-flight limit, resumed when writes complete)."; "partition" => partition, "paused" => pause);
            }
            Err(e) => {
                warn!(self.spec.log, "Pause/resume failed."; "partition" => partition, "error" => %e)
            }
        }
    }

    fn on_written(&mut self, written: RecordWritten, ctx: &mut Context<Self>) {
        let limit = self.spec.writer.max_in_flight_per_partition;
        let Some(ledger) = ledger::owning(&mut self.ledgers, written.partition, written.epoch) else {
            debug!(self.spec.log, "Dropped an ack for a partition no longer owned."; "partition" => written.partition, "offset" => written.offset);
            return;
        };
        if written.outcome == WriteOutcome::Abandoned {
            // Only an ended assignment abandons writes, and its ledger is gone by then.
            return;
        }
        if !ledger.written(written.offset) {
            return;
        }
        let gauge = self.spec.metrics.in_flight.with_label_values(&[&written.partition.to_string()]);
        gauge.set(ledger.in_flight() as i64);
        match written.outcome {
            WriteOutcome::Stored(_) => self.progress.stored += 1,
            WriteOutcome::DeadLettered(_) => self.progress.dead_lettered += 1,
            WriteOutcome::Abandoned => {}
        }
        let mut ready = Vec::new();
        while let Some(next) = ledger.next_ready(limit) {
            ledger.dispatched(next.offset, Instant::now());
            ready.push(next);
        }
        let resume = ledger.paused && ledger.backlog_len() == 0 && ledger.in_flight() < limit;
        for record in ready {
            // `dispatch` marks it again: harmless (a set), and keeps one code path.
            self.dispatch(record, ctx);
        }
        if resume {
            self.set_paused(written.partition, false);
        }
        self.wake_waiters();
    }

    fn idle(&self, partitions: &[i32]) -> bool {
        partitions.iter().all(|p| self.ledgers.get(p).is_none_or(|l| l.in_flight() == 0))
    }

    fn wake_waiters(&mut self) {
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            if self.idle(&w.partitions) {
                let _ = w.done.send(());
            } else {
                self.waiters.push(w);
            }
        }
    }

    /// Resolves once `partitions` have nothing in flight or the drain bound passed.
    fn wait_idle(&mut self, partitions: Vec<i32>) -> impl std::future::Future<Output = bool> + 'static {
        let (done, rx) = oneshot::channel();
        if self.idle(&partitions) {
            let _ = done.send(());
        } else {
            self.waiters.push(DrainWaiter { partitions, done });
        }
        let bound = self.spec.writer.drain_timeout();
        async move { tokio::time::timeout(bound, rx).await.is_ok() }
    }
}

impl Actor for KafkaReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        info!(self.spec.log, "KafkaReader started."; "topic" => &self.spec.kafka.topic, "group" => &self.spec.kafka.consumer_group);
        let every = Duration::from_millis(self.spec.writer.commit_interval_ms);
        ctx.run_interval(every, |act, ctx| act.commit_in_background(ctx));
        ctx.run_interval(STALL_GAUGE_EVERY, |act, _| act.gauge_oldest_write());
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.commit_now(None);
        for l in self.ledgers.values() {
            l.end();
        }
        self.spec.metrics.assigned_partitions.set(0);
        self.spec.metrics.oldest_write_age.set(0.0);
        self.closing.store(true, Ordering::SeqCst);
        info!(self.spec.log, "KafkaReader stopped."; "committed" => ?self.progress.committed);
    }
}

impl Handler<Consumed> for KafkaReader {
    type Result = ();

    /// Dispatches a record, or defers it and pauses the partition at the in-flight limit.
    fn handle(&mut self, Consumed(record): Consumed, ctx: &mut Self::Context) {
        if ChaosConfig::roll(self.spec.panic_rate) {
            panic!(
                "chaos: injected KafkaReader panic at partition {} offset {}",
                record.partition, record.offset
            );
        }
        self.progress.consumed += 1;
        self.spec.metrics.records_consumed.inc();
        let limit = self.spec.writer.max_in_flight_per_partition;
        let draining = self.draining;
        let Some(ledger) = self.ledgers.get_mut(&record.partition) else {
            debug!(self.spec.log, "Record of an unassigned partition dropped; its owner will read it."; "partition" => record.partition, "offset" => record.offset);
            return;
        };
        if draining || ledger.revoking {
            return;
        }
        if !ledger.accept(record.offset) {
            debug!(self.spec.log, "Re-delivered record skipped: it is already being written or written."; "partition" => record.partition, "offset" => record.offset);
            return;
        }
        if ledger.in_flight() >= limit || ledger.backlog_len() > 0 {
            let partition = record.partition;
            let pause = !ledger.paused;
            ledger.defer(record);
            if pause {
                self.set_paused(partition, true);
            }
            return;
        }
        self.dispatch(record, ctx);
    }
}

impl Handler<GetProgress> for KafkaReader {
    type Result = MessageResult<GetProgress>;

    fn handle(&mut self, _: GetProgress, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

impl Handler<Drain> for KafkaReader {
    type Result = ResponseActFuture<Self, ReaderProgress>;

    /// Graceful stop: no new dispatches, bounded wait for in-flight writes, sync commit;
    /// answers with the final progress once the consumer has left the group.
    fn handle(&mut self, _: Drain, _ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        if let Some(l) = self.lifeline.as_mut() {
            l.stop_requested();
        }
        for l in self.ledgers.values_mut() {
            l.clear_backlog();
        }
        let all: Vec<i32> = self.ledgers.keys().copied().collect();
        let wait = self.wait_idle(all);
        Box::pin(
            wait.into_actor(self)
                .then(|drained, act, _| {
                    if !drained {
                        warn!(act.spec.log, "Shutdown drain timed out; committing what is written (the rest is re-read on restart).");
                    }
                    act.commit_now(None);
                    for l in act.ledgers.values() {
                        l.end();
                    }
                    act.release_consumer().into_actor(act)
                })
                .map(|(), act, ctx| {
                    ctx.stop();
                    act.snapshot()
                }),
        )
    }
}
