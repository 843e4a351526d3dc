//! `[fetch]`: which symbols the Fetchers follow, from which source, and how.

use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError};
use crate::contract::market::{Interval, Shard, Symbol};
use crate::io::source::SourceKind;

/// How a Fetcher follows its symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchMode {
    /// Every `poll_interval_secs`, fetch the latest `n_bars` (the original behaviour).
    Poll,
    /// Keep the series open and publish bars as the source updates them (TradingView's
    /// live updates, or a CSV replay at `csv.speed`), re-syncing every `resync_secs`.
    Stream,
}

/// `[fetch]`: which symbols to follow and how.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// The data source.
    pub source: SourceKind,
    /// Symbols to follow (one Fetcher each), e.g. `["COMI", "ETEL"]`.
    pub symbols: Vec<Symbol>,
    /// Exchange code written into messages.
    pub exchange: String,
    /// Bar interval: `Daily`, `Weekly`, `Monthly`, `N Minute` or a feed code.
    #[serde(with = "interval_name")]
    pub interval: Interval,
    /// Bars fetched per cycle (the latest ones).
    pub n_bars: usize,
    /// Seconds between fetch cycles; 0 = fetch once.
    pub poll_interval_secs: u64,
    /// First date to fetch (intraday backfills), `YYYY-MM-DD`.
    pub start_date: Option<NaiveDate>,
    /// Last date to fetch, `YYYY-MM-DD`.
    pub end_date: Option<NaiveDate>,
    /// Seed of the synthetic source (same seed, same prices).
    pub seed: u64,
    /// This process's share of `symbols` when several `produce` processes split them:
    /// `i/n` (0-based); `0/1` = all.
    pub shard: Shard,
    /// `poll` (fetch the latest bars every `poll_interval_secs`) or `stream`.
    pub mode: FetchMode,
    /// In stream mode, how often the latest `n_bars` are fetched again to catch anything
    /// a live update missed; 0 = never.
    pub resync_secs: u64,
    /// Poll only during the trading session of `[market_hours]` (plus one catch-up poll
    /// after the close) instead of around the clock.
    pub market_hours: bool,
}

mod interval_name {
    use super::Interval;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(i: &Interval, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&i.name())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
        Interval::deserialize(d)
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        let symbols =
            ["COMI", "ETEL", "HRHO", "TMGH", "EAST"].iter().filter_map(|s| Symbol::parse(s).ok()).collect();
        Self {
            source: SourceKind::Synthetic,
            symbols,
            exchange: "EGX".into(),
            interval: Interval::Daily,
            n_bars: 10,
            poll_interval_secs: 60,
            start_date: None,
            end_date: None,
            seed: 42,
            shard: Shard::ALL,
            mode: FetchMode::Poll,
            resync_secs: 300,
            market_hours: false,
        }
    }
}

impl FetchConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.n_bars == 0 || self.n_bars > 5_000 {
            return Err(invalid("fetch.n_bars", "must be between 1 and 5000"));
        }
        if self.exchange.is_empty()
            || !self.exchange.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(invalid("fetch.exchange", "must be an upper-case code such as EGX"));
        }
        if let (Some(start), Some(end)) = (self.start_date, self.end_date) {
            if start > end {
                return Err(invalid("fetch.start_date", "must not be after fetch.end_date"));
            }
        }
        Ok(())
    }

    /// Time between cycles, or `None` to fetch once.
    pub fn poll_interval(&self) -> Option<Duration> {
        (self.poll_interval_secs > 0).then(|| Duration::from_secs(self.poll_interval_secs))
    }
}
