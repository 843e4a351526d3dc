//! Following a symbol live: the series stays open and every `du` update is upserted by
//! bar time (a bar with a new time closes the one before). A bar is passed on when it is
//! new or differs from the version last passed on, so after a reconnect the fresh
//! snapshot re-sends nothing that is unchanged.

use std::collections::BTreeMap;

use slog::info;
use tokio::sync::mpsc;
use tokio::time::sleep;

use super::protocol::RawBar;
use super::series::{Failure, Series, Update};
use super::{in_window, to_bar, Shared};
use crate::contract::market::Bar;
use crate::io::source::{FetchRequest, SourceError};

/// Bars of a live series, or the failures met while following it.
pub type BarStream = mpsc::Receiver<Result<Bar, SourceError>>;

/// Room for bars not yet taken by the receiver.
const CHANNEL_CAPACITY: usize = 256;

/// Bars remembered beyond the request's `n_bars`, to recognise repeats after a reconnect.
const EXTRA_REMEMBERED: usize = 64;

/// Starts following the request's symbol; the task ends when the receiver is dropped or
/// after a failure retrying cannot cure (unknown symbol, refused interval).
pub fn spawn(shared: std::sync::Arc<Shared>, request: FetchRequest) -> BarStream {
    let (out, bars) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        tokio::select! {
            () = follow(&shared, &request, &out) => {}
            () = out.closed() => {}
        }
    });
    bars
}

/// Subscribes, and resubscribes after every interruption, until a final failure.
async fn follow(shared: &Shared, request: &FetchRequest, out: &mpsc::Sender<Result<Bar, SourceError>>) {
    let mut passed_on = PassedOn::new(request.n_bars.max(1) + EXTRA_REMEMBERED);
    let backoff = shared.config.reconnect_backoff();
    let mut failures = 0u32;
    loop {
        let mut subscribed = false;
        let failure = subscribe(shared, request, &mut passed_on, out, &mut subscribed).await;
        if subscribed {
            failures = 0;
        }
        match failure {
            Failure::Final(error) => {
                let _ = out.send(Err(error)).await;
                return;
            }
            Failure::Retry(reason) => {
                failures += 1;
                info!(shared.log, "Live series interrupted; subscribing again."; "symbol" => %request.symbol, "reason" => &reason, "failures" => failures);
                let report = failures.is_multiple_of(shared.config.fetch_attempts);
                if report && out.send(Err(SourceError::Unavailable(reason))).await.is_err() {
                    return;
                }
                sleep(backoff.delay(failures - 1)).await;
            }
        }
    }
}

/// One subscription: the snapshot, then live updates until the connection is lost.
async fn subscribe(
    shared: &Shared,
    request: &FetchRequest,
    passed_on: &mut PassedOn,
    out: &mpsc::Sender<Result<Bar, SourceError>>,
    subscribed: &mut bool,
) -> Failure {
    let count = request.n_bars.clamp(1, shared.config.page_bars);
    let mut series = match Series::open(&shared.pool, request, count).await {
        Ok(series) => series,
        Err(failure) => return failure,
    };
    loop {
        // Once the snapshot is complete, silence is normal: the connection's idle
        // time-out notices a dead socket.
        let wait = (!*subscribed).then(|| shared.config.request_timeout());
        let bars = match series.next(wait).await {
            Err(failure) => return failure,
            Ok(Update::Completed) => {
                *subscribed = true;
                continue;
            }
            Ok(Update::Bars(bars)) => bars,
        };
        for raw in bars.into_iter().filter(|raw| passed_on.record(*raw)) {
            let Some(bar) = to_bar(request, &raw).filter(|bar| in_window(request, bar)) else { continue };
            if out.send(Ok(bar)).await.is_err() {
                return Failure::Final(SourceError::Unavailable("the receiver is gone".into()));
            }
        }
    }
}

/// The latest version of each recent bar passed on, keyed by time.
struct PassedOn {
    bars: BTreeMap<i64, RawBar>,
    capacity: usize,
}

impl PassedOn {
    fn new(capacity: usize) -> Self {
        Self { bars: BTreeMap::new(), capacity }
    }

    /// True when the bar is new or changed (and is then remembered); false for a repeat
    /// or for a bar older than everything remembered.
    fn record(&mut self, bar: RawBar) -> bool {
        if self.bars.get(&bar.time) == Some(&bar) {
            return false;
        }
        let full = self.bars.len() >= self.capacity;
        if full && self.bars.keys().next().is_some_and(|oldest| bar.time < *oldest) {
            return false;
        }
        self.bars.insert(bar.time, bar);
        while self.bars.len() > self.capacity {
            self.bars.pop_first();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(time: i64, close: f64) -> RawBar {
        RawBar { time, open: 1.0, high: 2.0, low: 0.5, close, volume: None }
    }

    #[test]
    fn repeats_are_dropped_and_changes_passed_on() {
        let mut p = PassedOn::new(3);
        assert!(p.record(bar(1, 1.0)));
        assert!(!p.record(bar(1, 1.0)));
        assert!(p.record(bar(1, 1.1)), "an update of the forming bar");
        assert!(p.record(bar(2, 1.0)), "a new time");
        assert!(p.record(bar(3, 1.0)));
        assert!(p.record(bar(4, 1.0)));
        assert!(!p.record(bar(0, 9.0)), "older than everything remembered");
        assert!(!p.record(bar(4, 1.0)));
    }
}
