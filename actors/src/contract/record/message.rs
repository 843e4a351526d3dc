//! What this crate publishes: [`BarMessage`], the original fields with full OHLCV and
//! offsets on every timestamp, plus `schema_version` and `source`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

use super::SCHEMA_VERSION;
use crate::contract::market::{Bar, EXCHANGE_TZ};

/// The message this crate publishes for one bar: the original daily fields (for every
/// interval, with full OHLCV), timestamps with their offset, and two added fields.
#[derive(Debug, Clone, Serialize)]
pub struct BarMessage {
    /// Ticker, also the Kafka message key.
    pub symbol: String,
    /// Exchange code (`EGX`).
    pub exchange: String,
    /// Original interval name (`Daily`, `5 Minute`).
    pub interval: String,
    /// Bar opening time in Cairo local time with its offset.
    pub datetime: String,
    /// Opening price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Closing price.
    pub close: f64,
    /// Volume: an integer when whole (as the original wrote it), null when unknown.
    #[serde(serialize_with = "volume_as_written")]
    pub volume: Option<f64>,
    /// When the pipeline fetched the bar (UTC, microseconds, with offset).
    pub ingestion_timestamp: String,
    /// Message schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Name of the source that produced the bar (`synthetic`, `tradingview`, `csv`).
    pub source: String,
}

impl BarMessage {
    /// Builds the message for `bar`, fetched at `ingested` from `source`.
    pub fn new(bar: &Bar, ingested: DateTime<Utc>, source: &str) -> Self {
        Self {
            symbol: bar.symbol.to_string(),
            exchange: bar.exchange.clone(),
            interval: bar.interval.name(),
            datetime: bar.time.with_timezone(&EXCHANGE_TZ).to_rfc3339_opts(SecondsFormat::Secs, false),
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            ingestion_timestamp: ingested.to_rfc3339_opts(SecondsFormat::Micros, false),
            schema_version: SCHEMA_VERSION,
            source: source.to_string(),
        }
    }

    /// The JSON bytes put on the topic.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain numbers and strings into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn volume_as_written<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: larger floats are not exact integers
    match v {
        Some(v) if v.fract() == 0.0 && v.abs() < EXACT => s.serialize_i64(*v as i64),
        Some(v) => s.serialize_f64(*v),
        None => s.serialize_none(),
    }
}
