//! A native client of TradingView's chart websocket feed (the feed egxpy/tvDatafeed
//! scrape), as a [`Source`]. See `shared/reference/tradingview.md` for the protocol.
//!
//! - [`codec`]: the `~m~N~m~` framing (N in UTF-16 units).
//! - [`protocol`]: commands and server messages.
//! - `client`: a few shared websocket connections multiplexing chart sessions, a global
//!   session rate, heartbeat echo, reconnection with backoff and jitter.
//! - `series`, `fetch`, `stream`: one symbol's series, historical paging, live updates.
//!
//! Bars carry the feed's time (Unix seconds UTC at the bar's open); trading dates are
//! taken in Africa/Cairo.

mod client;
pub mod codec;
mod config;
mod fetch;
pub mod protocol;
mod series;
mod stream;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate};
use futures::future::BoxFuture;
use slog::Logger;

pub use client::ConnectionError;
pub use config::TradingViewConfig;
pub use stream::BarStream;

use super::{FetchRequest, Source, SourceError};
use crate::config::ConfigError;
use crate::contract::market::{Bar, EXCHANGE_TZ};
use protocol::RawBar;

/// What the fetches and streams of one source share.
struct Shared {
    config: Arc<TradingViewConfig>,
    pool: client::Pool,
    log: Logger,
}

/// Bars from TradingView's websocket feed. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct TradingViewSource {
    shared: Arc<Shared>,
}

impl TradingViewSource {
    /// Validates the config; nothing connects until the first fetch or stream.
    pub fn new(config: TradingViewConfig, log: Logger) -> Result<Self, ConfigError> {
        config.validate()?;
        let config = Arc::new(config);
        let log = log.new(slog::o!("source" => "tradingview"));
        let pool = client::Pool::new(config.clone(), log.clone());
        Ok(Self { shared: Arc::new(Shared { config, pool, log }) })
    }

    /// Follows the request's symbol live: first the latest `n_bars` bars, then every bar
    /// that is new or changed (from `du` updates), oldest first, never repeating an
    /// unchanged bar across reconnects. Transient trouble is retried without end (and
    /// reported as an `Unavailable` item every `fetch_attempts` failures in a row); the
    /// stream ends after an unknown symbol or a refused interval, or when the receiver is
    /// dropped. Must be called inside a Tokio runtime.
    pub fn stream(&self, request: FetchRequest) -> BarStream {
        stream::spawn(self.shared.clone(), request)
    }
}

impl Source for TradingViewSource {
    fn name(&self) -> &str {
        "tradingview"
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Vec<Bar>, SourceError>> {
        let shared = self.shared.clone();
        Box::pin(async move { fetch::fetch(&shared, &request).await })
    }

    fn follow(&self, request: FetchRequest) -> Option<super::BarFeed> {
        Some(self.stream(request))
    }
}

/// A feed bar as a [`Bar`] of the request; `None` for a time out of range.
fn to_bar(request: &FetchRequest, raw: &RawBar) -> Option<Bar> {
    Some(Bar {
        symbol: request.symbol.clone(),
        exchange: if request.exchange.is_empty() { "EGX".into() } else { request.exchange.clone() },
        interval: request.interval,
        time: DateTime::from_timestamp(raw.time, 0)?,
        open: raw.open,
        high: raw.high,
        low: raw.low,
        close: raw.close,
        volume: raw.volume,
    })
}

/// The trading date (Cairo) of a feed time.
fn trading_date(unix_seconds: i64) -> Option<NaiveDate> {
    Some(DateTime::from_timestamp(unix_seconds, 0)?.with_timezone(&EXCHANGE_TZ).date_naive())
}

/// True when the bar's trading date lies within the request's dates.
fn in_window(request: &FetchRequest, bar: &Bar) -> bool {
    within(request.start_date, request.end_date, bar.trading_date())
}

/// True when `date` lies within the optional inclusive bounds.
fn within(start: Option<NaiveDate>, end: Option<NaiveDate>, date: NaiveDate) -> bool {
    start.is_none_or(|s| date >= s) && end.is_none_or(|e| date <= e)
}
