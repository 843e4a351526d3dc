//! Restarts: an actor that ended without being asked to is started again after a backoff;
//! more than `supervisor.max_restarts` within the window ends the pipeline
//! ([`PipelineExit::GaveUp`]). The KafkaReader and S3Writer restart as a pair.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;
use slog::{error, warn};

use super::{PipelineExit, Supervisor};
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;

use crate::io::kafka;
use crate::messages::{ChildId, Drain, Stop};
use crate::refusal::{Refusal, RefusalKind};
use crate::retry::Backoff;

impl Supervisor {
    /// Counts a restart; false when the budget is exhausted (the pipeline gives up).
    fn allow_restart(&mut self, what: &str, ctx: &mut Context<Self>) -> Option<Duration> {
        let window = Duration::from_secs(self.spec.supervisor.restart_window_secs);
        let recent = count_recent(&mut self.restarts, Instant::now(), window);
        self.total_restarts += 1;
        self.spec.metrics.restarts.with_label_values(&[what.split(' ').next().unwrap_or(what)]).inc();
        if recent > self.spec.supervisor.max_restarts {
            let reason = format!(
                "{recent} restarts within {}s (limit {}); last: {what}",
                window.as_secs(),
                self.spec.supervisor.max_restarts
            );
            error!(self.spec.log, "Restart limit exceeded; stopping the pipeline."; "reason" => &reason);
            self.finish(PipelineExit::GaveUp(reason), ctx);
            return None;
        }
        let cfg = &self.spec.supervisor;
        let delay = Backoff::from_millis(cfg.backoff_initial_ms, cfg.backoff_max_ms)
            .delay(recent.saturating_sub(1) as u32);
        warn!(self.spec.log, "Actor ended unexpectedly; restarting."; "actor" => what, "in_ms" => delay.as_millis() as u64, "recent_restarts" => recent);
        Some(delay)
    }

    /// Replaces a producer in librdkafka's fatal state (it never delivers again) before
    /// the actors that use it — the Publisher, the writer's dead-letter path — restart.
    /// False when the pipeline ends instead: a producer that is not authorized would fail
    /// the same way however often it is recreated.
    fn renew_producer_if_fatal(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some((code, reason)) = self.producer.as_ref().and_then(|p| p.client().fatal_error()) else {
            return true;
        };
        let kafka = &self.spec.kafka;
        if matches!(
            code,
            RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
        ) {
            let why = format!(
                "the producer may not write ({reason}): grant user {:?} (kafka.sasl_username) Write and Describe on topics {:?} and {:?}",
                kafka.sasl_username,
                kafka.topic,
                kafka.dlq_topic()
            );
            self.finish(PipelineExit::Refused(Refusal::kafka(RefusalKind::Authorization, why)), ctx);
            return false;
        }
        match kafka::producer(kafka, &self.watch) {
            Ok(producer) => {
                error!(self.spec.log, "The Kafka producer failed for good; a new one replaces it (its unconfirmed bars are published again)."; "code" => ?code, "reason" => &reason);
                self.producer = Some(producer);
                true
            }
            Err(e) => {
                self.finish(PipelineExit::Failed(format!("cannot recreate the Kafka producer: {e}")), ctx);
                false
            }
        }
    }

    pub(super) fn on_child_exit(&mut self, id: ChildId, ctx: &mut Context<Self>) {
        match id {
            ChildId::Fetcher(name, gen) => {
                let Some(symbol) = self
                    .fetchers
                    .iter()
                    .find(|(s, (g, _))| s.as_str() == name && *g == gen)
                    .map(|(s, _)| s.clone())
                else {
                    return;
                };
                self.fetchers.remove(&symbol);
                if let Some(delay) = self.allow_restart(&format!("Fetcher {symbol}"), ctx) {
                    ctx.run_later(delay, move |act, ctx| {
                        if !act.stopping
                            && act.wanted.contains(&symbol)
                            && !act.fetchers.contains_key(&symbol)
                        {
                            act.start_fetcher(symbol, ctx);
                        }
                    });
                }
            }
            ChildId::Publisher(gen) => {
                if self.publisher.as_ref().is_none_or(|(g, _)| *g != gen) {
                    return;
                }
                self.publisher = None;
                if !self.renew_producer_if_fatal(ctx) {
                    return;
                }
                if let Some(delay) = self.allow_restart("Publisher", ctx) {
                    ctx.run_later(delay, |act, ctx| {
                        if act.stopping {
                            return;
                        }
                        // Fetchers hold the old publisher's address: restart them with the new one.
                        act.start_publisher(ctx);
                        for symbol in act.wanted.clone() {
                            act.start_fetcher(symbol, ctx);
                        }
                    });
                }
            }
            ChildId::Reader(gen) | ChildId::Writer(gen) => {
                if self.pair.as_ref().is_none_or(|(g, _, _)| *g != gen) {
                    return;
                }
                if let Some((_, reader, writer)) = self.pair.take() {
                    reader.do_send(Drain);
                    writer.do_send(Stop);
                }
                if !self.renew_producer_if_fatal(ctx) {
                    return;
                }
                if let Some(delay) = self.allow_restart("KafkaReader/S3Writer", ctx) {
                    ctx.run_later(delay, |act, ctx| {
                        if !act.stopping && act.pair.is_none() {
                            act.start_pair(ctx);
                        }
                    });
                }
            }
        }
    }
}

/// Notes a restart at `now` in `restarts` and forgets those older than `window`; returns
/// how many restarts the window holds now (the one just noted included).
fn count_recent(restarts: &mut VecDeque<Instant>, now: Instant, window: Duration) -> usize {
    restarts.push_back(now);
    while restarts.front().is_some_and(|t| now.duration_since(*t) > window) {
        restarts.pop_front();
    }
    restarts.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_spread_beyond_the_window_never_add_up() {
        let (t0, window) = (Instant::now(), Duration::from_secs(10));
        let at = |s| t0 + Duration::from_secs(s);
        let mut restarts = VecDeque::new();
        // Every 6 s for a minute: never more than two in any 10 s window.
        let counts: Vec<usize> = (0..10).map(|i| count_recent(&mut restarts, at(i * 6), window)).collect();
        assert!(counts.iter().all(|c| *c <= 2), "{counts:?}");
        // Three within the window add up.
        let mut burst = VecDeque::new();
        let counts: Vec<usize> = [0, 1, 2].map(|s| count_recent(&mut burst, at(s), window)).to_vec();
        assert_eq!(counts, [1, 2, 3]);
    }
}
