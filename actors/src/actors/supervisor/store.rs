//! The consume side joins the consumer group only once the object store answers. A
//! consumer that cannot write would otherwise take partitions from members that can (and
//! only pause them); and one that exited instead — as it once did when the store was down
//! at start — would crash-loop through a rolling restart during an outage. Until then the
//! process runs, reports not ready (`/readyz` names the store), and checks again with
//! backoff; `egx-pipeline check` stays the fail-fast command.
//!
//! A refusal is not an outage: a store that answers but will not serve the pipeline as
//! configured (an untrusted certificate, refused access keys, a missing permission, a
//! bucket it may not create) ends the run at once with a message naming the setting to
//! fix, instead of a wait that looks like an outage. Refusals of later writes are retried
//! like any failure (a partition waits, it never skips), and `/readyz` names them while
//! they last.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use slog::{error, info, warn};

use super::{PipelineExit, Supervisor};
use crate::io::sink::SinkKind;
use crate::io::sink::{FailureKind, SinkError, WatchedSink};
use crate::retry::{Backoff, Report, RetryReport};

/// How often a continuing store outage at start is summarised in the log.
const SUMMARY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl Supervisor {
    /// Starts the KafkaReader/S3Writer pair as soon as the object store answers; ends the
    /// run if it refuses.
    pub(super) fn start_consume_side(&mut self, ctx: &mut Context<Self>) {
        // Every call of the consume side to the store notes its refusals for /readyz.
        let watched = WatchedSink::new(self.spec.object_sink.clone(), self.spec.metrics.clone());
        self.spec.object_sink = Arc::new(watched);
        self.check_store(0, RetryReport::new(SUMMARY_EVERY), ctx);
    }

    /// How a failed check at start ends the run, if it does: a refusal, or a missing
    /// bucket the pipeline may not create. None for an outage, which is waited for.
    fn ends_the_run(&self, e: &SinkError) -> Option<PipelineExit> {
        if let Some(refusal) = e.refusal() {
            return Some(PipelineExit::Refused(refusal));
        }
        let sink = &self.spec.sink;
        (e.kind == FailureKind::NotFound && sink.kind == SinkKind::S3 && !sink.create_bucket)
            .then(|| PipelineExit::Failed(e.to_string()))
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
                    if let Some(exit) = act.ends_the_run(&e) {
                        error!(log, "The object store refuses the pipeline as configured; stopping (retrying cannot help until a setting changes)."; "class" => e.kind.as_str(), "error" => %e);
                        act.finish(exit, ctx);
                        return;
                    }
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
