//! The consume side joins the consumer group only once the object store answers. A
//! consumer that cannot write would otherwise take partitions from members that can (and
//! only pause them); and one that exited instead — as it once did when the store was down
//! at start — would crash-loop through a rolling restart during an outage. Until then the
//! process runs, reports not ready (`/readyz` names the store), and checks again with
//! backoff; `egx-pipeline check` stays the fail-fast command.

use std::time::Instant;

use actix::prelude::*;
use slog::{info, warn};

use super::Supervisor;
use crate::retry::{Backoff, Report, RetryReport};

/// How often a continuing store outage at start is summarised in the log.
const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl Supervisor {
    /// Starts the KafkaReader/S3Writer pair as soon as the object store answers.
    pub(super) fn start_consume_side(&mut self, ctx: &mut Context<Self>) {
        self.check_store(0, RetryReport::new(SUMMARY_EVERY), ctx);
    }

    fn check_store(&mut self, attempt: u32, mut report: RetryReport, ctx: &mut Context<Self>) {
        let sink = self.spec.object_sink.clone();
        let check = async move { sink.prepare().await };
        ctx.spawn(check.into_actor(self).map(move |result, act, ctx| {
            if act.stopping {
                return;
            }
            let metrics = &act.spec.metrics;
            metrics.up.with_label_values(&["store"]).set(i64::from(result.is_ok()));
            metrics.store_checks.with_label_values(&[if result.is_ok() { "ok" } else { "error" }]).inc();
            let log = &act.spec.log;
            match result {
                Ok(()) => {
                    if let Some((failures, over)) = report.recovered(Instant::now()) {
                        info!(log, "The object store answers; joining the consumer group."; "failed_checks" => failures, "waited_secs" => over.as_secs());
                    }
                    act.start_pair(ctx);
                }
                Err(e) => {
                    match report.failed(Instant::now()) {
                        Report::First => warn!(log, "The object store does not answer; the consumer joins the group once it does (not ready until then)."; "class" => e.kind.as_str(), "error" => %e),
                        Report::Summary { failures, over } => warn!(log, "Still waiting for the object store."; "failed_checks" => failures, "for_secs" => over.as_secs(), "error" => %e),
                        Report::Quiet => {}
                    }
                    let w = &act.spec.writer;
                    let delay = Backoff::from_millis(w.retry_initial_ms, w.retry_max_ms).delay(attempt);
                    ctx.run_later(delay, move |act, ctx| act.check_store(attempt.saturating_add(1), report, ctx));
                }
            }
        }));
    }
}
