//! The Publisher: one idempotent Kafka producer (acks=all, murmur2 partitioner, key =
//! symbol) shared by every Fetcher. It answers a [`PublishBars`] only once Kafka has
//! acknowledged every message, so a Fetcher's cursor never runs ahead of Kafka.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::join_all;
use rdkafka::producer::{FutureRecord, Producer};
use slog::{debug, info, Logger};

use crate::io::kafka::KafkaProducer;
use crate::lifeline::Lifeline;

use crate::contract::record::BarMessage;
pub use crate::messages::PublisherError;
use crate::messages::{Delivered, PublishBars, PublishReceipt, Stop};
use crate::metrics::Metrics;

/// How long a full producer queue may delay a send before it fails.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long stopping waits for queued messages to be delivered.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes bars to the topic.
pub struct Publisher {
    producer: KafkaProducer,
    topic: String,
    metrics: Arc<Metrics>,
    log: Logger,
    lifeline: Option<Lifeline>,
}

impl Publisher {
    /// A publisher writing to `topic` through `producer` (see [`crate::io::kafka::producer`]).
    pub fn new(
        producer: KafkaProducer,
        topic: impl Into<String>,
        metrics: Arc<Metrics>,
        log: Logger,
    ) -> Self {
        Self { producer, topic: topic.into(), metrics, log, lifeline: None }
    }

    /// Reports this actor's end to a supervisor.
    pub fn with_lifeline(mut self, lifeline: Lifeline) -> Self {
        self.lifeline = Some(lifeline);
        self
    }
}

impl Actor for Publisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        info!(self.log, "Publisher started."; "topic" => &self.topic);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Err(e) = self.producer.flush(FLUSH_TIMEOUT) {
            slog::warn!(self.log, "Some messages were not confirmed before the producer stopped; their Fetchers will publish them again."; "error" => %e);
        }
    }
}

impl Handler<PublishBars> for Publisher {
    type Result = ResponseActFuture<Self, Result<PublishReceipt, PublisherError>>;

    /// Sends every bar (in order) and resolves once all are acknowledged.
    fn handle(&mut self, msg: PublishBars, _ctx: &mut Self::Context) -> Self::Result {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let log = self.log.clone();
        let metrics = self.metrics.clone();
        let fut = async move {
            let messages: Vec<BarMessage> =
                msg.bars.iter().map(|bar| BarMessage::new(bar, msg.fetched_at, &msg.source)).collect();
            let payloads: Vec<Vec<u8>> = messages.iter().map(BarMessage::to_bytes).collect();
            let sends = messages.iter().zip(&payloads).map(|(m, payload)| {
                producer
                    .send(FutureRecord::to(&topic).key(m.symbol.as_bytes()).payload(payload), QUEUE_TIMEOUT)
            });
            let mut receipt = PublishReceipt::default();
            let results = join_all(sends).await;
            let failed = results.iter().filter(|r| r.is_err()).count() as u64;
            metrics.messages_produced.inc_by(results.len() as u64 - failed);
            metrics.produce_errors.inc_by(failed);
            metrics.up.with_label_values(&["kafka"]).set(i64::from(failed < results.len() as u64));
            for (result, m) in results.into_iter().zip(&messages) {
                let delivery = result.map_err(|(source, _)| PublisherError::Delivery {
                    symbol: m.symbol.clone(),
                    datetime: m.datetime.clone(),
                    source: Box::new(source),
                })?;
                receipt.delivered.push(Delivered { partition: delivery.partition, offset: delivery.offset });
            }
            debug!(log, "Bars confirmed by Kafka."; "count" => receipt.delivered.len());
            Ok(receipt)
        };
        Box::pin(fut.into_actor(self).map(|result, act, ctx| {
            let Err(e) = &result else {
                act.producer.watch().clear();
                return result;
            };
            // A topic this user may not write fails every publish, whatever the retries:
            // the run ends with the permission to grant.
            if let PublisherError::Delivery { source, .. } = e {
                let watch = act.producer.watch();
                let refusal = crate::io::kafka::classify(source.rdkafka_error_code(), &source.to_string(), watch.config());
                if let Some(refusal) = refusal.filter(|r| r.kind == crate::refusal::RefusalKind::Authorization) {
                    slog::error!(act.log, "Kafka refuses the publish; stopping the pipeline."; "reason" => %refusal);
                    if let Some(l) = act.lifeline.as_mut() {
                        l.refused(refusal);
                    }
                    ctx.stop();
                    return result;
                }
            }
            // A fatal producer fails every send from now on: stop, so that the supervisor
            // replaces it, instead of living on useless.
            let Some((code, reason)) = act.producer.client().fatal_error() else { return result };
            slog::error!(act.log, "The Kafka producer failed for good; stopping so that a new one replaces it."; "code" => ?code, "reason" => &reason);
            ctx.stop();
            Err(PublisherError::Fatal { code, reason })
        }))
    }
}

impl Handler<Stop> for Publisher {
    type Result = ();

    /// Flushes and stops.
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        if let Some(l) = self.lifeline.as_mut() {
            l.stop_requested();
        }
        ctx.stop();
    }
}
