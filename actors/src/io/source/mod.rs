//! Where bars come from. A [`Source`] answers "the latest bars of this symbol"; the
//! Fetchers call it on their schedule. Real feeds implement the same trait.

mod build;
mod csv;
mod synthetic;
pub mod tradingview;

use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use build::{build, SourceBuildError, SourceSpec};
pub use csv::{BadRow, CsvConfig, CsvSource, CsvSourceError, ReplayRequest, RowProblem};
pub use synthetic::SyntheticSource;
pub use tradingview::{TradingViewConfig, TradingViewSource};

use crate::contract::market::{Bar, Interval, Symbol};

/// Which source the Fetchers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Seeded random walk; every message is marked `"source":"synthetic"`.
    Synthetic,
    /// TradingView's websocket feed (`[tradingview]`), the feed the original egxpy used.
    Tradingview,
    /// Exported OHLCV files replayed from disk (`[csv]`).
    Csv,
}

/// A clock, passed in so that sources and schedules can be tested at any instant.
pub type Clock = std::sync::Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(Utc::now)
}

/// What a Fetcher asks its source for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The instrument.
    pub symbol: Symbol,
    /// Exchange code (`EGX`).
    pub exchange: String,
    /// Bar interval.
    pub interval: Interval,
    /// How many of the latest bars.
    pub n_bars: usize,
    /// Only bars on or after this trading date.
    pub start_date: Option<NaiveDate>,
    /// Only bars on or before this trading date.
    pub end_date: Option<NaiveDate>,
}

/// A failed fetch, reported per symbol; the Fetcher retries on its next cycle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source does not know the symbol.
    #[error("unknown symbol {0}")]
    UnknownSymbol(String),
    /// The source cannot serve this interval.
    #[error("interval {0} is not available from this source")]
    Interval(String),
    /// Network or protocol trouble; worth retrying.
    #[error("source unavailable: {0}")]
    Unavailable(String),
}

/// A market data source.
pub trait Source: Send + Sync + 'static {
    /// Short name written into every message (`synthetic`, `tradingview`, `csv`).
    fn name(&self) -> &str;
    /// The latest bars for a request, oldest first.
    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Vec<Bar>, SourceError>>;
    /// Follows a symbol live: bars as they appear or change, oldest first. `None` when the
    /// source cannot stream (the Fetcher then polls).
    fn follow(&self, _request: FetchRequest) -> Option<BarFeed> {
        None
    }
}

/// Bars pushed by a streaming source; an `Err` item reports trouble without ending it.
pub type BarFeed = tokio::sync::mpsc::Receiver<Result<Bar, SourceError>>;
