//! Historical fetches: load the latest bars, page back with `request_more_data` until the
//! request is covered or a round adds nothing (history exhausted), and retry attempts cut
//! by dropped connections or time-outs on fresh sessions, a bounded number of times.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use slog::debug;
use tokio::time::sleep;

use super::config::TradingViewConfig;
use super::protocol::RawBar;
use super::series::{Failure, Series, Update};
use super::{in_window, to_bar, trading_date, within, Shared};
use crate::contract::market::Bar;
use crate::io::source::{FetchRequest, SourceError};

/// The latest `n_bars` bars of the request within its dates, oldest first.
pub async fn fetch(shared: &Shared, request: &FetchRequest) -> Result<Vec<Bar>, SourceError> {
    if request.n_bars == 0 {
        return Ok(Vec::new());
    }
    let backoff = shared.config.reconnect_backoff();
    let mut attempt = 0;
    loop {
        match load(shared, request).await {
            Ok(raw) => return Ok(select(request, raw.values())),
            Err(Failure::Final(error)) => return Err(error),
            Err(Failure::Retry(reason)) => {
                attempt += 1;
                if attempt >= shared.config.fetch_attempts {
                    return Err(SourceError::Unavailable(format!("{reason} (after {attempt} attempts)")));
                }
                debug!(shared.log, "Fetch attempt failed; retrying on a fresh session."; "symbol" => %request.symbol, "reason" => &reason, "attempt" => attempt);
                sleep(backoff.delay(attempt - 1)).await;
            }
        }
    }
}

/// One attempt: a chart session loading and paging until the request is covered.
async fn load(shared: &Shared, request: &FetchRequest) -> Result<BTreeMap<i64, RawBar>, Failure> {
    let mut paging = Paging::new(request, &shared.config);
    let mut series = Series::open(&shared.pool, request, paging.first_count()).await?;
    let wait = Some(shared.config.request_timeout());
    loop {
        match series.next(wait).await? {
            Update::Bars(bars) => paging.add(bars),
            Update::Completed => match paging.next_round() {
                Some(count) => series.request_more(count),
                None => return Ok(paging.bars),
            },
        }
    }
}

/// The bars of the request's window, limited to the last `n_bars`, oldest first.
pub fn select<'a>(request: &FetchRequest, raw: impl Iterator<Item = &'a RawBar>) -> Vec<Bar> {
    let bars: Vec<Bar> = raw.filter_map(|r| to_bar(request, r)).filter(|b| in_window(request, b)).collect();
    let skip = bars.len().saturating_sub(request.n_bars);
    bars.into_iter().skip(skip).collect()
}

/// Bars loaded so far, keyed by time, and the decision to page further back.
struct Paging {
    bars: BTreeMap<i64, RawBar>,
    loaded_before_round: usize,
    wanted: usize,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    page: usize,
    max: usize,
}

impl Paging {
    fn new(request: &FetchRequest, config: &TradingViewConfig) -> Self {
        Self {
            bars: BTreeMap::new(),
            loaded_before_round: 0,
            wanted: request.n_bars,
            start: request.start_date,
            end: request.end_date,
            page: config.page_bars,
            max: config.max_history_bars,
        }
    }

    /// Bars asked for by `create_series`: the request's count, or a full page when an end
    /// date may push the window back into history.
    fn first_count(&self) -> usize {
        match self.end {
            Some(_) => self.page,
            None => self.wanted.min(self.page),
        }
    }

    /// Adds a batch, replacing bars already held at the same time.
    fn add(&mut self, bars: Vec<RawBar>) {
        for bar in bars {
            self.bars.insert(bar.time, bar);
        }
    }

    /// At the end of a round: how many older bars to ask for, or `None` when the request
    /// is covered, the history is exhausted (the round added nothing) or the cap is hit.
    fn next_round(&mut self) -> Option<usize> {
        let added = self.bars.len() - self.loaded_before_round;
        self.loaded_before_round = self.bars.len();
        if added == 0 || self.bars.len() >= self.max {
            return None;
        }
        let oldest = self.bars.keys().next().copied().and_then(trading_date);
        if let (Some(start), Some(oldest)) = (self.start, oldest) {
            if oldest < start {
                return None;
            }
        }
        let matched = self.bars.keys().filter_map(|t| trading_date(*t)).filter(|d| self.covers(*d)).count();
        if matched >= self.wanted {
            return None;
        }
        let count = match self.end {
            Some(_) => self.page,
            None => (self.wanted - matched).min(self.page),
        };
        Some(count.min(self.max - self.bars.len()))
    }

    fn covers(&self, date: NaiveDate) -> bool {
        within(self.start, self.end, date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::market::{Interval, Symbol};

    const DAY: i64 = 86_400;
    /// 2025-01-05T08:00:00Z, 10:00 in Cairo.
    const T0: i64 = 1_736_064_000;

    fn request(n_bars: usize, start: Option<&str>, end: Option<&str>) -> FetchRequest {
        FetchRequest {
            symbol: Symbol::parse("COMI").unwrap(),
            exchange: "EGX".into(),
            interval: Interval::Daily,
            n_bars,
            start_date: start.map(|s| s.parse().unwrap()),
            end_date: end.map(|s| s.parse().unwrap()),
        }
    }

    fn bars(days: std::ops::Range<i64>) -> Vec<RawBar> {
        days.map(|d| RawBar { time: T0 + d * DAY, open: 1.0, high: 2.0, low: 0.5, close: 1.5, volume: None })
            .collect()
    }

    fn paging(request: &FetchRequest, page: usize) -> Paging {
        let config = TradingViewConfig { page_bars: page, max_history_bars: 1_000, ..Default::default() };
        Paging::new(request, &config)
    }

    #[test]
    fn pages_until_enough_bars_then_stops() {
        let mut p = paging(&request(25, None, None), 10);
        assert_eq!(p.first_count(), 10);
        p.add(bars(90..100));
        assert_eq!(p.next_round(), Some(10));
        p.add(bars(80..90));
        assert_eq!(p.next_round(), Some(5));
        p.add(bars(75..80));
        assert_eq!(p.next_round(), None);
    }

    #[test]
    fn an_empty_round_means_history_is_exhausted() {
        let mut p = paging(&request(50, None, None), 10);
        p.add(bars(0..10));
        assert_eq!(p.next_round(), Some(10));
        p.add(bars(0..3));
        assert_eq!(p.next_round(), None);
    }

    #[test]
    fn date_windows_page_until_the_start_is_passed() {
        // Day 0 is 2025-01-05; the window is days 10..=19.
        let mut p = paging(&request(100, Some("2025-01-15"), Some("2025-01-24")), 10);
        assert_eq!(p.first_count(), 10);
        p.add(bars(40..50));
        assert_eq!(p.next_round(), Some(10));
        p.add(bars(10..40));
        assert_eq!(p.next_round(), Some(10), "the oldest bar is on the start date: keep going");
        p.add(bars(9..10));
        assert_eq!(p.next_round(), None);
        let selected = select(&request(100, Some("2025-01-15"), Some("2025-01-24")), p.bars.values());
        assert_eq!(selected.len(), 10);
        assert_eq!(selected[0].trading_date().to_string(), "2025-01-15");
    }

    #[test]
    fn selection_keeps_the_last_n_bars_oldest_first() {
        let raw = bars(0..10);
        let selected = select(&request(3, None, None), raw.iter());
        let times: Vec<i64> = selected.iter().map(|b| b.time.timestamp()).collect();
        assert_eq!(times, [T0 + 7 * DAY, T0 + 8 * DAY, T0 + 9 * DAY]);
        assert_eq!(selected[0].exchange, "EGX");
    }
}
