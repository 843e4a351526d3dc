//! The Fetcher: one per (symbol, interval). On its schedule it asks the source for the
//! latest bars, publishes only those that are new or changed since its last confirmed
//! publish, and moves its cursor only after Kafka confirmed delivery.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{debug, info, warn, Logger};

use crate::calendar::MarketHours;
use crate::lifeline::Lifeline;
use crate::market::{Bar, Interval, Symbol};
use crate::messages::{Delivered, FetchCompleted, FetchNow, PublishBars, Stop};
use crate::metrics::Metrics;
use crate::source::{Clock, FetchRequest, Source, SourceError};

/// The last bars each Fetcher published, kept outside the actors so that a restarted
/// Fetcher does not publish everything again. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct CursorStore(Arc<Mutex<HashMap<(Symbol, Interval), Cursor>>>);

/// Bars remembered per (symbol, interval) at most, whatever the mode.
const CURSOR_CAP: usize = 10_000;

/// The last confirmed version of each recent bar of one (symbol, interval).
type Cursor = BTreeMap<DateTime<Utc>, Bar>;

impl CursorStore {
    /// The bars of `fetched` that differ from (or are missing in) the cursor.
    pub fn changed(&self, symbol: &Symbol, interval: Interval, fetched: &[Bar]) -> Vec<Bar> {
        let Ok(map) = self.0.lock() else {
            return fetched.to_vec();
        };
        let seen = map.get(&(symbol.clone(), interval));
        fetched.iter().filter(|bar| seen.and_then(|s| s.get(&bar.time)) != Some(*bar)).cloned().collect()
    }

    /// Records confirmed bars; bars older than `keep_from` are forgotten (bounded memory).
    pub fn advance(
        &self,
        symbol: &Symbol,
        interval: Interval,
        confirmed: &[Bar],
        keep_from: Option<DateTime<Utc>>,
    ) {
        let Ok(mut map) = self.0.lock() else { return };
        let entry = map.entry((symbol.clone(), interval)).or_default();
        for bar in confirmed {
            entry.insert(bar.time, bar.clone());
        }
        if let Some(from) = keep_from {
            entry.retain(|t, _| *t >= from);
        }
        while entry.len() > CURSOR_CAP {
            entry.pop_first();
        }
    }
}

/// Everything a Fetcher needs.
#[derive(Clone)]
pub struct FetcherSpec {
    /// What to fetch.
    pub request: FetchRequest,
    /// Where from.
    pub source: Arc<dyn Source>,
    /// Who publishes (normally the [`crate::publisher::Publisher`]).
    pub publisher: Recipient<PublishBars>,
    /// Time between cycles; `None` fetches once.
    pub poll_every: Option<Duration>,
    /// Poll only in the trading session (plus a catch-up after the close).
    pub market_hours: Option<MarketHours>,
    /// Follow the source's live feed instead of polling (when the source can stream);
    /// polls every `poll_every` still re-sync.
    pub stream: bool,
    /// Shared cursors.
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
}

type CycleResult = Result<(usize, Vec<Delivered>), (usize, String)>;

impl Fetcher {
    /// A Fetcher for a spec.
    pub fn new(spec: FetcherSpec) -> Self {
        Self { spec, last_poll: None, lifeline: None }
    }

    /// Reports this actor's end to a supervisor.
    pub fn with_lifeline(mut self, lifeline: Lifeline) -> Self {
        self.lifeline = Some(lifeline);
        self
    }

    fn cycle(&self) -> impl std::future::Future<Output = CycleResult> + 'static {
        let spec = self.spec.clone();
        async move {
            let req = &spec.request;
            let bars = spec.source.fetch(req.clone()).await.map_err(|e| (0, e.to_string()))?;
            let fetched = bars.len();
            let oldest = bars.first().map(|b| b.time);
            let delivered = publish_changed(&spec, bars, oldest).await.map_err(|e| (fetched, e))?;
            Ok((fetched, delivered))
        }
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
            warn!(self.spec.log, "This source cannot stream; polling instead."; "source" => self.spec.source.name());
            return false;
        };
        ctx.add_stream(futures::stream::unfold(feed, |mut feed| async move {
            feed.recv().await.map(|item| (item, feed))
        }));
        true
    }

    fn report(&mut self, result: CycleResult) {
        let req = &self.spec.request;
        let symbol = req.symbol.as_str();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.spec.metrics.fetches.with_label_values(&[symbol, outcome]).inc();
        if result.is_ok() {
            self.spec
                .metrics
                .fetch_last_success
                .with_label_values(&[symbol])
                .set((self.spec.clock)().timestamp());
        }
        let (fetched, delivered, error) = match result {
            Ok((fetched, delivered)) => {
                debug!(self.spec.log, "Fetch cycle done."; "symbol" => %req.symbol, "fetched" => fetched, "published" => delivered.len());
                (fetched, delivered, None)
            }
            Err((fetched, error)) => {
                warn!(self.spec.log, "Fetch cycle failed; the cursor stays and the next cycle retries."; "symbol" => %req.symbol, "error" => &error);
                (fetched, Vec::new(), Some(error))
            }
        };
        if let Some(events) = &self.spec.events {
            events.do_send(FetchCompleted {
                symbol: req.symbol.clone(),
                interval: req.interval,
                fetched,
                delivered,
                error,
            });
        }
    }
}

impl Actor for Fetcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(self.spec.log, "Fetcher started."; "symbol" => %self.spec.request.symbol, "interval" => %self.spec.request.interval, "stream" => self.spec.stream);
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
        let spec = self.spec.clone();
        // `wait`, not `spawn`: one publish at a time (see `Handler<FetchNow>`).
        ctx.wait(
            async move { publish_changed(&spec, vec![bar], None).await }
                .into_actor(self)
                .map(|result, act, _| act.report(result.map(|d| (d.len(), d)).map_err(|e| (1, e)))),
        );
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {
        warn!(self.spec.log, "The live feed ended; the Fetcher keeps its re-sync polls."; "symbol" => %self.spec.request.symbol);
    }
}

/// Publishes the bars of `bars` that changed since the last confirmed publish and moves
/// the cursor once Kafka confirmed them; bars older than `keep_from` are forgotten.
async fn publish_changed(
    spec: &FetcherSpec,
    bars: Vec<Bar>,
    keep_from: Option<DateTime<Utc>>,
) -> Result<Vec<Delivered>, String> {
    let req = &spec.request;
    let fresh = spec.cursors.changed(&req.symbol, req.interval, &bars);
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let publish = PublishBars {
        bars: fresh.clone(),
        source: spec.source.name().to_string(),
        fetched_at: (spec.clock)(),
    };
    let receipt = spec
        .publisher
        .send(publish)
        .await
        .map_err(|e| format!("publisher unavailable: {e}"))?
        .map_err(|e| e.to_string())?;
    spec.cursors.advance(&req.symbol, req.interval, &fresh, keep_from);
    Ok(receipt.delivered)
}

impl Handler<FetchNow> for Fetcher {
    // Atomic: cycles and live bars are published one at a time, so two of them can never
    // both find the same changed bar missing from the cursor and publish it twice.
    type Result = AtomicResponse<Self, ()>;

    /// Runs one cycle; other events wait until it is done.
    fn handle(&mut self, _: FetchNow, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin(self.cycle().into_actor(self).map(|result, act, _| act.report(result))))
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
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn bar(day: u32, close: f64) -> Bar {
        Bar {
            symbol: Symbol::parse("COMI").unwrap(),
            exchange: "EGX".into(),
            interval: Interval::Daily,
            time: Utc.with_ymd_and_hms(2025, 1, day, 8, 0, 0).unwrap(),
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close,
            volume: Some(10.0),
        }
    }

    #[test]
    fn cursor_passes_only_new_or_changed_bars() {
        let store = CursorStore::default();
        let sym = Symbol::parse("COMI").unwrap();
        let first = [bar(19, 1.0), bar(20, 1.5)];
        assert_eq!(store.changed(&sym, Interval::Daily, &first).len(), 2);
        store.advance(&sym, Interval::Daily, &first, None);
        let second = [bar(19, 1.0), bar(20, 1.6), bar(21, 1.7)];
        let fresh = store.changed(&sym, Interval::Daily, &second);
        assert_eq!(fresh, vec![bar(20, 1.6), bar(21, 1.7)]);
        // Another interval of the same symbol has its own cursor.
        assert_eq!(store.changed(&sym, Interval::Weekly, &first).len(), 2);
    }
}
