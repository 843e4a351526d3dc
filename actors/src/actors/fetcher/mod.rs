//! The Fetcher: one per (symbol, interval). On its schedule it asks the source for the
//! latest bars, publishes only those that are new or changed since its last confirmed
//! publish, and moves its cursor only after Kafka confirmed delivery.
//!
//! A fetched bar that Kafka did not confirm stays pending in the [`CursorStore`] and goes
//! out with every later attempt until it is confirmed: a source answers with its latest
//! bars only, so a bar that left that window during an outage would otherwise never be
//! published (see the `cursor` module). While bars are pending the Fetcher also retries
//! on its own, with backoff, so that a stream without re-syncs, or a poll schedule that
//! sleeps until the next session, does not leave them waiting.

mod config;
mod cursor;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{debug, error, info, warn, Logger};

pub use config::{FetchConfig, FetchMode};
pub use cursor::{CursorStore, Dropped, PENDING_CAP};

use crate::contract::calendar::MarketHours;
use crate::contract::market::Bar;
use crate::io::source::{Clock, FetchRequest, Source, SourceError};
use crate::lifeline::Lifeline;
use crate::messages::{Delivered, FetchCompleted, FetchNow, PublishBars, Stop};
use crate::metrics::Metrics;
use crate::retry::Backoff;

/// Pending bars sent to the Publisher at once: a long outage's backlog goes out in
/// confirmed steps instead of one request that must succeed whole.
const PUBLISH_CHUNK: usize = 500;

/// Delays between retries of pending bars when nothing else publishes them.
const RETRY: Backoff = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(30) };

/// Everything a Fetcher needs.
#[derive(Clone)]
pub struct FetcherSpec {
    /// What to fetch.
    pub request: FetchRequest,
    /// Where from.
    pub source: Arc<dyn Source>,
    /// Who publishes (normally the [`crate::actors::publisher::Publisher`]).
    pub publisher: Recipient<PublishBars>,
    /// Time between cycles; `None` fetches once.
    pub poll_every: Option<Duration>,
    /// Poll only in the trading session (plus a catch-up after the close).
    pub market_hours: Option<MarketHours>,
    /// Follow the source's live feed instead of polling (when the source can stream);
    /// polls every `poll_every` still re-sync.
    pub stream: bool,
    /// Shared cursors and pending bars.
    pub cursors: CursorStore,
    /// Who hears about finished cycles (a supervisor, a test).
    pub events: Option<Recipient<FetchCompleted>>,
    /// Time source for `ingestion_timestamp`.
    pub clock: Clock,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Logger.
    pub log: Logger,
}

/// Follows one symbol.
pub struct Fetcher {
    spec: FetcherSpec,
    last_poll: Option<DateTime<Utc>>,
    lifeline: Option<Lifeline>,
    /// Publish attempts started so far: a retry timer fires only if no attempt came since.
    attempts: u64,
    /// Retries since the pending set was last empty (the backoff's exponent).
    retries: u32,
}

/// What one publish attempt did.
#[derive(Debug, Default)]
struct Attempt {
    /// Bars the source returned (0 for a retry).
    fetched: usize,
    /// Where Kafka put the bars it confirmed.
    delivered: Vec<Delivered>,
    /// Why the attempt failed (source or Kafka); pending bars stay pending.
    error: Option<String>,
}

/// Asks a Fetcher to publish its pending bars (a retry, not a fetch).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
struct RetryPending;

impl Fetcher {
    /// A Fetcher for a spec.
    pub fn new(spec: FetcherSpec) -> Self {
        Self { spec, last_poll: None, lifeline: None, attempts: 0, retries: 0 }
    }

    /// Reports this actor's end to a supervisor.
    pub fn with_lifeline(mut self, lifeline: Lifeline) -> Self {
        self.lifeline = Some(lifeline);
        self
    }

    fn cycle(&mut self) -> impl std::future::Future<Output = Attempt> + 'static {
        self.attempts += 1;
        let spec = self.spec.clone();
        async move {
            let bars = match spec.source.fetch(spec.request.clone()).await {
                Ok(bars) => bars,
                Err(e) => return Attempt { error: Some(e.to_string()), ..Attempt::default() },
            };
            let oldest = bars.first().map(|b| b.time);
            publish_pending(&spec, bars, oldest).await
        }
    }

    /// Publishes a live bar (and whatever is pending).
    fn live(&mut self, bar: Bar) -> impl std::future::Future<Output = Attempt> + 'static {
        self.attempts += 1;
        let spec = self.spec.clone();
        async move { publish_pending(&spec, vec![bar], None).await }
    }

    /// Publishes the pending bars only.
    fn retry(&mut self) -> impl std::future::Future<Output = Attempt> + 'static {
        self.attempts += 1;
        let spec = self.spec.clone();
        async move { publish_pending(&spec, Vec::new(), None).await }
    }

    /// Schedules the next poll by the market calendar (in session at the poll rate, one
    /// catch-up after the close, none outside).
    fn schedule_by_calendar(&mut self, ctx: &mut Context<Self>) {
        let (Some(hours), Some(every)) = (&self.spec.market_hours, self.spec.poll_every) else { return };
        let now = (self.spec.clock)();
        let next = hours.next_poll(now, every, self.last_poll);
        let delay = (next - now).to_std().unwrap_or_default();
        ctx.run_later(delay, |act, ctx| {
            act.last_poll = Some((act.spec.clock)());
            ctx.notify(FetchNow);
            act.schedule_by_calendar(ctx);
        });
    }

    fn follow(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(feed) = self.spec.source.follow(self.spec.request.clone()) else {
            warn!(self.spec.log, "This source cannot stream; polling instead."; "symbol" => %self.spec.request.symbol, "source" => self.spec.source.name());
            return false;
        };
        ctx.add_stream(futures::stream::unfold(feed, |mut feed| async move {
            feed.recv().await.map(|item| (item, feed))
        }));
        true
    }

    /// Whether this Fetcher keeps running (a one-shot run reports failures instead of
    /// retrying them).
    fn keeps_running(&self) -> bool {
        self.spec.stream || self.spec.poll_every.is_some()
    }

    fn pending(&self) -> usize {
        self.spec.cursors.pending_len(&self.spec.request.symbol, self.spec.request.interval)
    }

    /// After an attempt: while bars are pending, retry them with backoff unless another
    /// attempt (a poll, a live bar) comes first; once none are, start the backoff afresh.
    fn plan_retry(&mut self, ctx: &mut Context<Self>) {
        let pending = self.pending();
        if pending == 0 {
            if self.retries > 0 {
                info!(self.spec.log, "Kafka confirmed every pending bar."; "symbol" => %self.spec.request.symbol, "interval" => %self.spec.request.interval);
            }
            self.retries = 0;
            return;
        }
        if !self.keeps_running() {
            return;
        }
        let delay = RETRY.delay(self.retries);
        self.retries = self.retries.saturating_add(1);
        let after = self.attempts;
        debug!(self.spec.log, "Bars are pending; retrying them."; "symbol" => %self.spec.request.symbol, "pending" => pending, "in_ms" => delay.as_millis());
        ctx.run_later(delay, move |act, ctx| {
            if act.attempts == after {
                ctx.notify(RetryPending);
            }
        });
    }

    /// Counts and announces a fetch cycle (a poll or a live bar).
    fn report_cycle(&mut self, attempt: Attempt, ctx: &mut Context<Self>) {
        let req = &self.spec.request;
        let symbol = req.symbol.as_str();
        let outcome = if attempt.error.is_none() { "ok" } else { "error" };
        self.spec.metrics.fetches.with_label_values(&[symbol, outcome]).inc();
        match &attempt.error {
            None => {
                self.spec
                    .metrics
                    .fetch_last_success
                    .with_label_values(&[symbol])
                    .set((self.spec.clock)().timestamp());
                debug!(self.spec.log, "Fetch cycle done."; "symbol" => %req.symbol, "fetched" => attempt.fetched, "published" => attempt.delivered.len());
            }
            Some(error) => {
                warn!(self.spec.log, "Fetch cycle failed; unconfirmed bars stay pending and are published again."; "symbol" => %req.symbol, "pending" => self.pending(), "error" => error);
            }
        }
        self.announce(attempt);
        self.plan_retry(ctx);
    }

    /// Announces a retry's deliveries; its failures are quiet (the cycle that left the bars
    /// pending warned, and the produce-error metric counts every one).
    fn report_retry(&mut self, attempt: Attempt, ctx: &mut Context<Self>) {
        if let Some(error) = &attempt.error {
            debug!(self.spec.log, "Retry of pending bars failed."; "symbol" => %self.spec.request.symbol, "error" => error);
        }
        if !attempt.delivered.is_empty() {
            self.announce(attempt);
        }
        self.plan_retry(ctx);
    }

    fn announce(&self, attempt: Attempt) {
        if let Some(events) = &self.spec.events {
            events.do_send(FetchCompleted {
                symbol: self.spec.request.symbol.clone(),
                interval: self.spec.request.interval,
                fetched: attempt.fetched,
                delivered: attempt.delivered,
                error: attempt.error,
            });
        }
    }
}

impl Actor for Fetcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(self.spec.log, "Fetcher started."; "symbol" => %self.spec.request.symbol, "interval" => %self.spec.request.interval, "stream" => self.spec.stream);
        if self.keeps_running() && self.pending() > 0 {
            // A restarted Fetcher: what the last one could not publish goes first.
            ctx.notify(RetryPending);
        }
        if self.spec.stream && self.follow(ctx) {
            // The live feed starts with a snapshot; polls only re-sync.
            if let Some(every) = self.spec.poll_every {
                ctx.run_interval(every, |_, ctx| ctx.notify(FetchNow));
            }
            return;
        }
        if self.spec.market_hours.is_some() && self.spec.poll_every.is_some() {
            self.schedule_by_calendar(ctx);
            return;
        }
        ctx.notify(FetchNow);
        if let Some(every) = self.spec.poll_every {
            ctx.run_interval(every, |_, ctx| ctx.notify(FetchNow));
        }
    }
}

impl StreamHandler<Result<Bar, SourceError>> for Fetcher {
    /// Publishes a live bar if it is new or changed; the cursor moves once Kafka confirms.
    fn handle(&mut self, item: Result<Bar, SourceError>, ctx: &mut Self::Context) {
        let bar = match item {
            Ok(bar) => bar,
            Err(e) => {
                warn!(self.spec.log, "Live feed trouble; it keeps retrying."; "symbol" => %self.spec.request.symbol, "error" => %e);
                return;
            }
        };
        // `wait`, not `spawn`: one publish at a time (see `Handler<FetchNow>`).
        ctx.wait(self.live(bar).into_actor(self).map(|attempt, act, ctx| act.report_cycle(attempt, ctx)));
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        warn!(self.spec.log, "The live feed ended; the Fetcher keeps its re-sync polls."; "symbol" => %self.spec.request.symbol);
    }
}

/// Adds `fetched` to the pending set (saying loudly when a full set drops bars), then
/// publishes every pending bar, oldest first, in chunks; the cursor moves past each chunk
/// once Kafka confirmed it. Confirmed bars older than `keep_from` are forgotten.
async fn publish_pending(spec: &FetcherSpec, fetched: Vec<Bar>, keep_from: Option<DateTime<Utc>>) -> Attempt {
    let req = &spec.request;
    if let Some(dropped) = spec.cursors.stage(&req.symbol, req.interval, &fetched) {
        error!(spec.log, "Kafka has been unreachable for so long that bars were dropped unpublished; they will not be in the topic or the bucket."; "symbol" => %req.symbol, "interval" => %req.interval, "dropped" => dropped.count, "first" => %dropped.first, "last" => %dropped.last, "pending_cap" => PENDING_CAP);
        spec.metrics.bars_dropped.with_label_values(&[req.symbol.as_str()]).inc_by(dropped.count as u64);
    }
    let mut attempt = Attempt { fetched: fetched.len(), ..Attempt::default() };
    loop {
        let chunk = spec.cursors.pending(&req.symbol, req.interval, PUBLISH_CHUNK);
        if chunk.is_empty() {
            return attempt;
        }
        let publish = PublishBars {
            bars: chunk.clone(),
            source: spec.source.name().to_string(),
            fetched_at: (spec.clock)(),
        };
        let receipt = match spec.publisher.send(publish).await {
            Ok(Ok(receipt)) => receipt,
            Ok(Err(e)) => return Attempt { error: Some(e.to_string()), ..attempt },
            Err(e) => return Attempt { error: Some(format!("publisher unavailable: {e}")), ..attempt },
        };
        spec.cursors.advance(&req.symbol, req.interval, &chunk, keep_from);
        attempt.delivered.extend(receipt.delivered);
    }
}

impl Handler<FetchNow> for Fetcher {
    // Atomic: cycles, retries and live bars are published one at a time, so two of them
    // can never both find the same bar pending and publish it twice.
    type Result = AtomicResponse<Self, ()>;

    /// Runs one cycle; other events wait until it is done.
    fn handle(&mut self, _: FetchNow, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(
            self.cycle().into_actor(self).map(|attempt, act, ctx| act.report_cycle(attempt, ctx)),
        ))
    }
}

impl Handler<RetryPending> for Fetcher {
    type Result = AtomicResponse<Self, ()>;

    /// Publishes the pending bars; other events wait until it is done.
    fn handle(&mut self, _: RetryPending, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(
            self.retry().into_actor(self).map(|attempt, act, ctx| act.report_retry(attempt, ctx)),
        ))
    }
}

impl Handler<Stop> for Fetcher {
    type Result = ();

    /// Stops following the symbol.
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        if let Some(l) = self.lifeline.as_mut() {
            l.stop_requested();
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
