//! The pipeline's own sections: `[writer]`, `[fetch]`, `[csv]`, `[supervisor]`, `[chaos]`.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};
use crate::market::{Interval, Shard, Symbol};

/// `[writer]`: the Kafka→S3 side's limits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Records of one partition handed to the writer and not yet confirmed; at the limit
    /// the partition is paused (the consumer keeps polling, so it stays in the group).
    pub max_in_flight_per_partition: usize,
    /// Object writes running at once across all partitions.
    pub max_concurrent_writes: usize,
    /// Larger payloads go to the dead-letter topic.
    pub max_record_bytes: usize,
    /// First retry delay of a failed write, in milliseconds (doubles, with jitter).
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds. Writes are retried until they succeed.
    pub retry_max_ms: u64,
    /// How long a revoke or shutdown waits for in-flight writes before committing what is done.
    pub drain_timeout_ms: u64,
    /// How often written offsets are committed, in milliseconds.
    pub commit_interval_ms: u64,
    /// Readiness fails (`/readyz` 503) once the oldest unconfirmed write has waited this
    /// long, in seconds: the store refuses or ignores writes and the commit cannot move.
    /// 0 = never.
    pub stall_timeout_secs: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_in_flight_per_partition: 256,
            max_concurrent_writes: 64,
            max_record_bytes: 1 << 20,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
            drain_timeout_ms: 30_000,
            commit_interval_ms: 1_000,
            stall_timeout_secs: 300,
        }
    }
}

impl WriterConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("writer.max_in_flight_per_partition", self.max_in_flight_per_partition as u64),
            ("writer.max_concurrent_writes", self.max_concurrent_writes as u64),
            ("writer.max_record_bytes", self.max_record_bytes as u64),
            ("writer.retry_initial_ms", self.retry_initial_ms),
            ("writer.commit_interval_ms", self.commit_interval_ms),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.retry_max_ms < self.retry_initial_ms {
            return Err(invalid("writer.retry_max_ms", "must be at least writer.retry_initial_ms"));
        }
        Ok(())
    }

    /// After how long without progress readiness fails; None = never.
    pub fn stall_timeout(&self) -> Option<Duration> {
        (self.stall_timeout_secs > 0).then(|| Duration::from_secs(self.stall_timeout_secs))
    }

    /// Drain bound as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

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

/// `[csv]`: exported OHLCV files for the `csv` source (see `egx_actors::source` docs for columns).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// A directory of `<SYMBOL>.csv` files, or one long-format file with a `symbol` column.
    pub path: PathBuf,
    /// Replay speed in stream mode: market seconds per wall-clock second (60 = a minute
    /// per second); 0 = as fast as possible.
    pub speed: f64,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("data"), speed: 0.0 }
    }
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

/// `[supervisor]`: restart policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// More than this many restarts within `restart_window_secs` stops the pipeline
    /// with an error (the process exits non-zero so an outer supervisor sees it).
    pub max_restarts: usize,
    /// The window for `max_restarts`, in seconds.
    pub restart_window_secs: u64,
    /// First restart delay, in milliseconds (doubles per restart of the same actor).
    pub backoff_initial_ms: u64,
    /// Longest restart delay, in milliseconds.
    pub backoff_max_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self { max_restarts: 10, restart_window_secs: 60, backoff_initial_ms: 200, backoff_max_ms: 10_000 }
    }
}

impl SupervisorConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.restart_window_secs == 0 {
            return Err(invalid("supervisor.restart_window_secs", "must be greater than 0"));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(invalid("supervisor.backoff_max_ms", "must be at least backoff_initial_ms"));
        }
        Ok(())
    }
}

/// `[chaos]`: fault injection for resilience tests. Leave at 0 in production.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChaosConfig {
    /// Probability (0–1) that the S3Writer panics on a record.
    pub writer_panic_rate: f64,
    /// Probability (0–1) that the KafkaReader panics on a record.
    pub reader_panic_rate: f64,
}

impl ChaosConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("chaos.writer_panic_rate", self.writer_panic_rate),
            ("chaos.reader_panic_rate", self.reader_panic_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, "must be between 0 and 1"));
            }
        }
        Ok(())
    }

    /// Draws whether to panic now, given a rate.
    pub fn roll(rate: f64) -> bool {
        rate > 0.0 && rand::random::<f64>() < rate
    }
}
