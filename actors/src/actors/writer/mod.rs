//! The S3Writer: turns each Kafka record into one object (key and bytes a pure function
//! of the record), many writes in flight at once, each retried with backoff until the
//! store accepts it. It answers a [`WriteRecord`] only when the object is durable, or
//! when an invalid record has been accepted by the dead-letter topic.
//!
//! Writes of the same key run one after the other in arrival (offset) order, so a newer
//! version of a bar is never overwritten by an older one still in flight. A write belongs
//! to its partition's assignment: when the assignment ends, the write and its retries stop
//! (the record is answered [`WriteOutcome::Abandoned`]); and each object carries the
//! record that wrote it, so the store itself refuses an older record's late write.

mod config;
mod dead_letter;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::{FutureExt, Shared};
use slog::{debug, info, warn, Logger};
use tokio::sync::{oneshot, Semaphore};

pub use config::WriterConfig;
pub use dead_letter::{headers as dead_letter_headers, DeadLetters};

use crate::actors::supervisor::ChaosConfig;
use crate::contract::key::{KeyTemplate, ObjectKey};
use crate::contract::record::MarketRecord;
use crate::io::sink::{ObjectSink, Origin, PutOutcome, SinkError};
use crate::lifeline::Lifeline;
use crate::messages::{RecordWritten, Stop, WriteOutcome, WriteRecord};
use crate::metrics::Metrics;
use crate::retry::{Backoff, Report, RetryReport};

/// Mailbox size: the in-flight limits bound what is queued, this only has to exceed them.
const MAILBOX_CAPACITY: usize = 65_536;

/// How often the store is probed for readiness.
const STORE_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Everything an S3Writer needs.
#[derive(Clone)]
pub struct WriterSpec {
    /// Where objects go.
    pub sink: Arc<dyn ObjectSink>,
    /// How keys are built.
    pub template: KeyTemplate,
    /// Where refused records go.
    pub dead_letters: DeadLetters,
    /// Limits and retry policy.
    pub config: WriterConfig,
    /// Probability of an injected panic per record (tests only; 0 in production).
    pub panic_rate: f64,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Logger.
    pub log: Logger,
}

type KeyTail = Shared<oneshot::Receiver<()>>;

/// Writes records as objects.
pub struct S3Writer {
    spec: WriterSpec,
    backoff: Backoff,
    permits: Arc<Semaphore>,
    /// Per key: the id and completion signal of the last write queued for it.
    tails: HashMap<ObjectKey, (u64, KeyTail)>,
    next_job: u64,
    lifeline: Option<Lifeline>,
    failures: Failures,
}

impl S3Writer {
    /// A writer for a spec.
    pub fn new(spec: WriterSpec) -> Self {
        let backoff = Backoff::from_millis(spec.config.retry_initial_ms, spec.config.retry_max_ms);
        let permits = Arc::new(Semaphore::new(spec.config.max_concurrent_writes));
        Self {
            spec,
            backoff,
            permits,
            tails: HashMap::new(),
            next_job: 0,
            lifeline: None,
            failures: Failures::new(),
        }
    }

    /// Reports this actor's end to a supervisor.
    pub fn with_lifeline(mut self, lifeline: Lifeline) -> Self {
        self.lifeline = Some(lifeline);
        self
    }

    fn store(&mut self, msg: WriteRecord, record: MarketRecord) -> ResponseActFuture<Self, RecordWritten> {
        let key = self.spec.template.render(&record);
        let (done_tx, done_rx) = oneshot::channel();
        let job = self.next_job;
        self.next_job += 1;
        let previous = self.tails.insert(key.clone(), (job, done_rx.shared())).map(|(_, tail)| tail);
        let put = Put {
            sink: self.spec.sink.clone(),
            key: key.clone(),
            body: msg.payload.clone().unwrap_or_default(),
            origin: Origin { topic: msg.topic.clone(), partition: msg.partition, offset: msg.offset },
        };
        let (permits, backoff, log) = (self.permits.clone(), self.backoff, self.spec.log.clone());
        let (metrics, failures) = (self.spec.metrics.clone(), self.failures.clone());
        let fut = async move {
            let write = async {
                if let Some(previous) = previous {
                    let _ = previous.await;
                }
                let _permit = permits.acquire_owned().await;
                put.until_stored(backoff, &failures, &metrics, &log).await
            };
            // The assignment ending stops the write wherever it is: waiting for its turn,
            // on the wire, or between retries.
            let outcome = tokio::select! {
                biased;
                () = msg.assignment.cancelled() => None,
                outcome = write => Some(outcome),
            };
            let _ = done_tx.send(());
            let outcome = match outcome {
                Some(_) => WriteOutcome::Stored(put.key.to_string()),
                None => {
                    metrics.writes.with_label_values(&["abandoned"]).inc();
                    debug!(log, "Object write abandoned: the partition's assignment ended (its next owner writes it)."; "key" => %put.key, "partition" => msg.partition, "offset" => msg.offset);
                    WriteOutcome::Abandoned
                }
            };
            RecordWritten { partition: msg.partition, offset: msg.offset, epoch: msg.epoch, outcome }
        };
        Box::pin(fut.into_actor(self).map(move |written, act, _| {
            if act.tails.get(&key).is_some_and(|(id, _)| *id == job) {
                act.tails.remove(&key);
            }
            written
        }))
    }

    fn probe_store(&mut self, ctx: &mut Context<Self>) {
        let (sink, metrics) = (self.spec.sink.clone(), self.spec.metrics.clone());
        ctx.spawn(
            async move {
                let up = sink.prepare().await.is_ok();
                metrics.up.with_label_values(&["store"]).set(i64::from(up));
                metrics.store_checks.with_label_values(&[if up { "ok" } else { "error" }]).inc();
            }
            .into_actor(self),
        );
    }

    fn dead_letter(&mut self, msg: WriteRecord, reason: String) -> ResponseActFuture<Self, RecordWritten> {
        let (dlq, backoff, log) = (self.spec.dead_letters.clone(), self.backoff, self.spec.log.clone());
        let metrics = self.spec.metrics.clone();
        warn!(log, "Record refused; sending it to the dead-letter topic."; "partition" => msg.partition, "offset" => msg.offset, "reason" => &reason);
        let (partition, offset, epoch) = (msg.partition, msg.offset, msg.epoch);
        let fut = async move {
            let publish = async {
                let (mut attempt, mut report) = (0u32, RetryReport::new(RETRY_SUMMARY_EVERY));
                while let Err(e) = dlq.publish(&msg, &reason).await {
                    if dlq.fatal().is_some() {
                        return false;
                    }
                    match report.failed(Instant::now()) {
                        Report::Quiet => {}
                        _ => {
                            warn!(log, "Dead-letter publish failed; retrying."; "partition" => msg.partition, "offset" => msg.offset, "attempts" => attempt + 1, "error" => %e)
                        }
                    }
                    tokio::time::sleep(backoff.delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
                true
            };
            tokio::select! {
                biased;
                () = msg.assignment.cancelled() => Some(WriteOutcome::Abandoned),
                published = publish => published.then(|| {
                    metrics.records_dead_lettered.inc();
                    WriteOutcome::DeadLettered(reason)
                }),
            }
        };
        Box::pin(fut.into_actor(self).map(move |outcome, act, ctx| {
            let outcome = outcome.unwrap_or_else(|| {
                // The producer failed for good: stop, so that the pair restarts with a new
                // one; the record is not confirmed and is read again.
                slog::error!(act.spec.log, "The dead-letter producer failed for good; stopping so that a new one replaces it."; "partition" => partition, "offset" => offset);
                ctx.stop();
                WriteOutcome::Abandoned
            });
            RecordWritten { partition, offset, epoch, outcome }
        }))
    }
}

/// One object write: retried with backoff until the store accepts it.
struct Put {
    sink: Arc<dyn ObjectSink>,
    key: ObjectKey,
    body: Vec<u8>,
    origin: Origin,
}

impl Put {
    async fn until_stored(
        &self,
        backoff: Backoff,
        failures: &Failures,
        metrics: &Metrics,
        log: &Logger,
    ) -> PutOutcome {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            match self.sink.put(self.key.clone(), self.body.clone(), self.origin.clone()).await {
                Ok(outcome) => {
                    metrics.up.with_label_values(&["store"]).set(1);
                    metrics.write_seconds.observe(started.elapsed().as_secs_f64());
                    metrics.records_written.inc();
                    metrics.writes.with_label_values(&[outcome.as_str()]).inc();
                    debug!(log, "Object stored."; "key" => %self.key, "outcome" => outcome.as_str(), "partition" => self.origin.partition, "offset" => self.origin.offset);
                    failures.recovered(log);
                    return outcome;
                }
                Err(e) => {
                    metrics.write_errors.with_label_values(&[e.kind.as_str()]).inc();
                    metrics.up.with_label_values(&["store"]).set(0);
                    failures.failed(self, &e, log);
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(backoff.delay(attempt - 1)).await;
                }
            }
        }
    }
}

/// The writer's failed writes, reported without flooding the log: the first failure of an
/// outage with its error, then a summary every [`RETRY_SUMMARY_EVERY`] with the count (the
/// metric `egx_object_write_errors_total{class}` has every attempt), then the recovery.
#[derive(Clone)]
struct Failures(Arc<Mutex<RetryReport>>);

/// How often a continuing outage is summarised in the log.
const RETRY_SUMMARY_EVERY: Duration = Duration::from_secs(10);

impl Failures {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(RetryReport::new(RETRY_SUMMARY_EVERY))))
    }

    fn failed(&self, put: &Put, e: &SinkError, log: &Logger) {
        let report = self.0.lock().map(|mut r| r.failed(Instant::now())).unwrap_or(Report::Quiet);
        let (key, partition, offset) = (&put.key, put.origin.partition, put.origin.offset);
        match report {
            Report::First => {
                warn!(log, "Object writes are failing; each is retried with backoff (partitions wait, nothing is skipped)."; "key" => %key, "partition" => partition, "offset" => offset, "class" => e.kind.as_str(), "error" => %e)
            }
            Report::Summary { failures, over } => {
                warn!(log, "Object writes are still failing."; "failures" => failures, "for_secs" => over.as_secs(), "class" => e.kind.as_str(), "last_error" => %e)
            }
            Report::Quiet => {
                debug!(log, "Object write failed; retrying."; "key" => %key, "partition" => partition, "offset" => offset, "error" => %e)
            }
        }
    }

    fn recovered(&self, log: &Logger) {
        let Ok(mut report) = self.0.lock() else { return };
        if let Some((failures, over)) = report.recovered(Instant::now()) {
            info!(log, "Object writes succeed again."; "failed_attempts" => failures, "outage_secs" => over.as_secs());
        }
    }
}

impl Actor for S3Writer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Probe the store while idle too, so readiness reflects an outage without traffic.
        self.probe_store(ctx);
        ctx.run_interval(STORE_PROBE_INTERVAL, Self::probe_store);
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        info!(self.spec.log, "S3Writer started."; "location" => self.spec.sink.location(), "prefix" => self.spec.template.prefix());
    }
}

impl Handler<WriteRecord> for S3Writer {
    type Result = ResponseActFuture<Self, RecordWritten>;

    /// Validates the record, then stores it or dead-letters it.
    fn handle(&mut self, msg: WriteRecord, _ctx: &mut Self::Context) -> Self::Result {
        if ChaosConfig::roll(self.spec.panic_rate) {
            panic!("chaos: injected S3Writer panic at partition {} offset {}", msg.partition, msg.offset);
        }
        match MarketRecord::decode(msg.payload.as_deref(), self.spec.config.max_record_bytes) {
            Ok(record) => self.store(msg, record),
            Err(reason) => self.dead_letter(msg, reason.to_string()),
        }
    }
}

impl Handler<Stop> for S3Writer {
    type Result = ();

    /// Stops; writes still in flight are abandoned (never confirmed, so replayed later).
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        if let Some(l) = self.lifeline.as_mut() {
            l.stop_requested();
        }
        ctx.stop();
    }
}
