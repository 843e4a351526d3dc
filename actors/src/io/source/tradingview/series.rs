//! One symbol's series on a chart session: the set-up commands, and the server's events
//! reduced to what fetching and streaming need (bars, the end of a batch) or to a
//! per-symbol failure that says whether another attempt is worth it.

use std::time::Duration;

use tokio::time::timeout;

use super::client::{ChartSession, Pool};
use super::protocol::{self, ChartEvent, RawBar};
use crate::io::source::{FetchRequest, SourceError};

/// How an attempt at a series failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Connection trouble or a time-out: a fresh session may succeed.
    Retry(String),
    /// The server refused the request itself: retrying cannot help.
    Final(SourceError),
}

/// What the series delivered next.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Bars of a batch (`timescale_update`) or a live update (`du`), sorted by time.
    Bars(Vec<RawBar>),
    /// `series_completed`: the batch asked for is complete.
    Completed,
}

/// A series being loaded or followed on its own chart session.
pub struct Series {
    session: ChartSession,
    subject: Subject,
}

/// What a series is of, to name it in errors.
struct Subject {
    /// `EXCHANGE:TICKER`.
    ticker: String,
    /// The feed's resolution code.
    resolution: String,
}

impl Series {
    /// Opens a chart session and asks for the latest `count` bars of the request's symbol.
    pub async fn open(pool: &Pool, request: &FetchRequest, count: usize) -> Result<Self, Failure> {
        let session = pool.open_session().await.map_err(|e| Failure::Retry(e.to_string()))?;
        let exchange = if request.exchange.is_empty() { "EGX" } else { request.exchange.as_str() };
        let resolution = request.interval.feed_code();
        let id = session.id().to_string();
        session.send(protocol::resolve_symbol(&id, exchange, request.symbol.as_str()));
        session.send(protocol::create_series(&id, &resolution, count.max(1)));
        session.send(protocol::switch_timezone(&id));
        Ok(Self {
            session,
            subject: Subject { ticker: format!("{exchange}:{}", request.symbol), resolution },
        })
    }

    /// Asks for `count` bars older than those loaded.
    pub fn request_more(&self, count: usize) {
        self.session.send(protocol::request_more_data(self.session.id(), count.max(1)));
    }

    /// The next bars or end of batch, waiting at most `wait` (`None`: as long as the
    /// connection lives).
    pub async fn next(&mut self, wait: Option<Duration>) -> Result<Update, Failure> {
        loop {
            let event = match wait {
                Some(wait) => timeout(wait, self.session.next_event()).await.map_err(|_| {
                    Failure::Retry(format!("{}: no answer within {wait:?}", self.subject.ticker))
                })?,
                None => self.session.next_event().await,
            };
            let event =
                event.ok_or_else(|| Failure::Retry(format!("{}: connection lost", self.subject.ticker)))?;
            if let Some(update) = self.subject.update(event)? {
                return Ok(update);
            }
        }
    }
}

impl Subject {
    /// Maps one event; `None` for those that change nothing.
    fn update(&self, event: ChartEvent) -> Result<Option<Update>, Failure> {
        match event {
            ChartEvent::Bars { mut bars, .. } => {
                bars.sort_by_key(|bar| bar.time);
                Ok(Some(Update::Bars(bars)))
            }
            ChartEvent::SeriesCompleted { .. } => Ok(Some(Update::Completed)),
            ChartEvent::SymbolError { reason, .. } => {
                Err(Failure::Final(SourceError::UnknownSymbol(format!("{} ({reason})", self.ticker))))
            }
            ChartEvent::SeriesError { reason, .. } => {
                Err(Failure::Final(self.refusal("series_error", &reason)))
            }
            // A connection-wide critical error says nothing about this series: try afresh.
            ChartEvent::CriticalError { session: None, reason } => {
                Err(Failure::Retry(format!("{}: critical_error on the connection: {reason}", self.ticker)))
            }
            ChartEvent::CriticalError { reason, .. } => {
                Err(Failure::Final(self.refusal("critical_error", &reason)))
            }
            ChartEvent::ProtocolError { reason } => Err(Failure::Final(SourceError::Unavailable(format!(
                "{}: the feed reported a protocol error: {reason}",
                self.ticker
            )))),
            ChartEvent::SymbolResolved { .. } | ChartEvent::Other { .. } => Ok(None),
        }
    }

    /// A refusal of the series: an interval error when it concerns the resolution or
    /// `create_series`'s parameters, otherwise the feed being unavailable for the symbol.
    fn refusal(&self, kind: &str, reason: &str) -> SourceError {
        let lower = reason.to_ascii_lowercase();
        if lower.contains("resolution") || lower.contains("create_series") {
            SourceError::Interval(format!("{} for {} ({kind}: {reason})", self.resolution, self.ticker))
        } else {
            SourceError::Unavailable(format!("{}: {kind}: {reason}", self.ticker))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject { ticker: "EGX:COMI".into(), resolution: "240".into() }
    }

    #[test]
    fn events_map_to_updates_or_per_symbol_failures() {
        let s = subject();
        let session = || "cs_a".to_string();
        let symbol_error = ChartEvent::SymbolError { session: session(), reason: "invalid symbol".into() };
        assert_eq!(
            s.update(symbol_error),
            Err(Failure::Final(SourceError::UnknownSymbol("EGX:COMI (invalid symbol)".into())))
        );
        let series_error = ChartEvent::SeriesError { session: session(), reason: "custom_resolution".into() };
        assert!(
            matches!(s.update(series_error), Err(Failure::Final(SourceError::Interval(m))) if m.starts_with("240 for EGX:COMI"))
        );
        let other = ChartEvent::SeriesError { session: session(), reason: "no data".into() };
        assert!(matches!(s.update(other), Err(Failure::Final(SourceError::Unavailable(_)))));
        let wide = ChartEvent::CriticalError { session: None, reason: "overload".into() };
        assert!(matches!(s.update(wide), Err(Failure::Retry(_))));
        let protocol = ChartEvent::ProtocolError { reason: "wrong data".into() };
        assert!(matches!(s.update(protocol), Err(Failure::Final(SourceError::Unavailable(_)))));
        assert_eq!(s.update(ChartEvent::SymbolResolved { session: session() }), Ok(None));
        assert_eq!(s.update(ChartEvent::SeriesCompleted { session: session() }), Ok(Some(Update::Completed)));
    }

    #[test]
    fn bars_come_sorted_by_time() {
        let bar = |time| RawBar { time, open: 1.0, high: 1.0, low: 1.0, close: 1.0, volume: None };
        let event =
            ChartEvent::Bars { session: "cs_a".into(), live: true, bars: vec![bar(3), bar(1), bar(2)] };
        assert_eq!(subject().update(event), Ok(Some(Update::Bars(vec![bar(1), bar(2), bar(3)]))));
    }
}
