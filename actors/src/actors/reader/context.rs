//! The consumer's callbacks and its polling thread.
//!
//! librdkafka calls the rebalance callback from inside `poll`, so polling runs on a
//! thread of its own: on a revoke it can block until the KafkaReader (on its actix
//! thread, still free to receive the S3Writer's acks) has drained and committed the
//! revoked partitions — delivery rule 6 — without stalling the actors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message as _;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use slog::{info, warn, Logger};

use super::ledger::OwnedRecord;
use super::KafkaReader;
use crate::io::kafka::{classify, KafkaWatch};
use crate::metrics::Metrics;
use crate::refusal::{Refusal, RefusalKind};

/// Records arrived from Kafka.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct Consumed(pub OwnedRecord);

/// Partitions were assigned to this member.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct PartitionsAssigned(pub Vec<i32>);

/// The consumer's position in a partition: every record below it has been handed to the
/// reader (sent before this message), or was never meant for the application (transaction
/// markers, aborted records).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct PositionReached {
    pub partition: i32,
    pub offset: i64,
}

/// The consumer is in librdkafka's fatal state (e.g. fenced by another member with the
/// same `group.instance.id`): it will never consume or commit again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct ConsumerFailed {
    pub code: rdkafka::types::RDKafkaErrorCode,
    pub reason: String,
}

/// The brokers refuse the consumer a permission it needs (the topic, the group).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct ConsumerRefused(pub Refusal);

/// Partitions are being taken away; answered once they are drained and committed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct PartitionsRevoked(pub Vec<i32>);

/// Consumer callbacks, forwarding group events to the reader.
pub struct ReaderContext {
    reader: Arc<Mutex<Option<Addr<KafkaReader>>>>,
    closing: Arc<AtomicBool>,
    topic: String,
    watch: KafkaWatch,
    metrics: Arc<Metrics>,
    log: Logger,
}

impl ReaderContext {
    pub(super) fn new(
        closing: Arc<AtomicBool>,
        watch: KafkaWatch,
        metrics: Arc<Metrics>,
        log: Logger,
    ) -> Self {
        let topic = watch.config().topic.clone();
        Self { reader: Arc::new(Mutex::new(None)), closing, topic, watch, metrics, log }
    }

    pub(super) fn attach(&self, reader: Addr<KafkaReader>) {
        if let Ok(mut slot) = self.reader.lock() {
            *slot = Some(reader);
        }
    }

    fn reader(&self) -> Option<Addr<KafkaReader>> {
        self.reader.lock().ok().and_then(|r| r.clone())
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect()
    }

    /// Clears the application's pause on `tpl`'s partitions (a no-op where none is set).
    fn resume(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList, why: &'static str) {
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = consumer.resume(tpl) {
            warn!(self.log, "Cannot clear the pause of partitions; they may stay silent until the next rebalance."; "partitions" => ?self.partitions(tpl), "when" => why, "error" => %e);
        }
    }
}

impl ClientContext for ReaderContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.watch.error(&error, reason);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, line: &str) {
        self.watch.log_line(level, fac, line);
    }

    /// librdkafka's periodic statistics: the per-partition lag of the group (end offset
    /// minus committed offset, which never passes the written watermark).
    fn stats(&self, statistics: Statistics) {
        let up = statistics.brokers.values().any(|b| b.state == "UP");
        self.metrics.up.with_label_values(&["kafka"]).set(i64::from(up));
        if up {
            self.watch.clear();
        }
        let Some(topic) = statistics.topics.get(&self.topic) else { return };
        for p in topic.partitions.values().filter(|p| p.partition >= 0) {
            let lag = if p.committed_offset >= 0 { p.hi_offset - p.committed_offset } else { p.consumer_lag };
            if p.hi_offset >= 0 && lag >= 0 {
                self.metrics.consumer_lag.with_label_values(&[&p.partition.to_string()]).set(lag);
            }
        }
    }
}

impl ConsumerContext for ReaderContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        // While closing, the reader has already committed and is gone or going.
        if !self.closing.load(Ordering::SeqCst) {
            if let Some(reader) = self.reader() {
                let partitions = self.partitions(tpl);
                info!(self.log, "Partitions revoked; draining them before letting go."; "partitions" => ?partitions);
                // The reader bounds the wait itself (writer.drain_timeout_ms).
                let _ = futures::executor::block_on(reader.send(PartitionsRevoked(partitions)));
            }
        }
        // librdkafka keeps an application's pause across unassign/assign: a partition
        // revoked while paused at the in-flight limit would stay silent after its next
        // assignment (DESIGN.md rule 9). Whoever paused it resumes it on the way out.
        self.resume(consumer, tpl, "revoked");
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match (rebalance, self.reader()) {
            (Rebalance::Assign(tpl), Some(reader)) => {
                // A new assignment starts unpaused whatever happened before, matching the
                // fresh ledgers the reader opens for it.
                self.resume(consumer, tpl, "assigned");
                reader.do_send(PartitionsAssigned(self.partitions(tpl)))
            }
            (Rebalance::Error(e), _) => warn!(self.log, "Rebalance failed."; "error" => %e),
            _ => {}
        }
    }
}

/// Polls the consumer and forwards records to the reader until `closing` is set or the
/// reader is gone; then releases its handle on the consumer (the last handle closes it,
/// leaving the group).
pub(super) fn spawn_poller(
    consumer: Arc<BaseConsumer<ReaderContext>>,
    reader: Addr<KafkaReader>,
    closing: Arc<AtomicBool>,
    log: Logger,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("egx-kafka-poll".into()).spawn(move || {
        let mut positions = BTreeMap::new();
        while !closing.load(Ordering::SeqCst) {
            match consumer.poll(Duration::from_millis(100)) {
                // Caught up: tell where the consumer stands, after the records themselves.
                None => report_positions(&consumer, &reader, &mut positions),
                Some(Ok(m)) => reader.do_send(Consumed(OwnedRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                })),
                Some(Err(e)) => {
                    // A permission the consumer lacks fails every poll: the run ends.
                    let watch = &consumer.context().watch;
                    match classify(e.rdkafka_error_code(), &e.to_string(), watch.config()) {
                        Some(refusal) if refusal.kind == RefusalKind::Authorization => {
                            reader.do_send(ConsumerRefused(refusal));
                            break;
                        }
                        _ => watch.error(&e, "poll"),
                    }
                }
            }
            // A fatal consumer stays alive but useless; the reader decides what follows.
            if let Some((code, reason)) = consumer.client().fatal_error() {
                reader.do_send(ConsumerFailed { code, reason });
                break;
            }
            if !reader.connected() {
                warn!(
                    log,
                    "KafkaReader is gone; closing its consumer (uncommitted records will be re-consumed)."
                );
                break;
            }
        }
        closing.store(true, Ordering::SeqCst);
        drop(consumer);
    })
}

/// Sends the reader every position that changed since the last report. Positions move
/// past records the application never sees (transaction markers, aborted transactions):
/// without them a partition ending in those could never be committed to its end.
fn report_positions(
    consumer: &BaseConsumer<ReaderContext>,
    reader: &Addr<KafkaReader>,
    sent: &mut BTreeMap<i32, i64>,
) {
    let Ok(positions) = consumer.position() else { return };
    let topic = &consumer.context().topic;
    for e in positions.elements_for_topic(topic) {
        if let Offset::Offset(offset) = e.offset() {
            if sent.insert(e.partition(), offset) != Some(offset) {
                reader.do_send(PositionReached { partition: e.partition(), offset });
            }
        }
    }
}
