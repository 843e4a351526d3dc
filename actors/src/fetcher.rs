//! The Fetcher: one per (symbol, interval). On its schedule it asks the source for the
//! latest bars, publishes only those that are new or changed since its last confirmed
//! publish, and moves its cursor only after Kafka confirmed delivery.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{debug, info, warn, Logger};

use crate::lifeline::Lifeline;
use crate::market::{Bar, Interval, Symbol};
use crate::messages::{Delivered, FetchCompleted, FetchNow, PublishBars, Stop};
use crate::metrics::Metrics;
use crate::source::{Clock, FetchRequest, Source};

/// The last bars each Fetcher published, kept outside the actors so that a restarted
/// Fetcher does not publish everything again. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct CursorStore(Arc<Mutex<HashMap<(Symbol, Interval), Cursor>>>);

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
    busy: bool,
    lifeline: Option<Lifeline>,
}

type CycleResult = Result<(usize, Vec<Delivered>), (usize, String)>;

impl Fetcher {
    /// A Fetcher for a spec.
    pub fn new(spec: FetcherSpec) -> Self {
        Self { spec, busy: false, lifeline: None }
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
            let fresh = spec.cursors.changed(&req.symbol, req.interval, &bars);
            if fresh.is_empty() {
                return Ok((fetched, Vec::new()));
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
                .map_err(|e| (fetched, format!("publisher unavailable: {e}")))?
                .map_err(|e| (fetched, e.to_string()))?;
            let oldest = bars.first().map(|b| b.time);
            spec.cursors.advance(&req.symbol, req.interval, &fresh, oldest);
            Ok((fetched, receipt.delivered))
        }
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
        info!(self.spec.log, "Fetcher started."; "symbol" => %self.spec.request.symbol, "interval" => %self.spec.request.interval);
        ctx.notify(FetchNow);
        if let Some(every) = self.spec.poll_every {
            ctx.run_interval(every, |_, ctx| ctx.notify(FetchNow));
        }
    }
}

impl Handler<FetchNow> for Fetcher {
    type Result = ResponseActFuture<Self, ()>;

    /// Runs one cycle unless one is already running.
    fn handle(&mut self, _: FetchNow, _ctx: &mut Self::Context) -> Self::Result {
        if self.busy {
            return Box::pin(actix::fut::ready(()));
        }
        self.busy = true;
        Box::pin(self.cycle().into_actor(self).map(|result, act, _| {
            act.busy = false;
            act.report(result);
        }))
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
