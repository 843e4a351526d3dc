//! The data contract: the JSON messages on the topic, in both original shapes, and the
//! validated record the S3Writer turns into an object.
//!
//! Producers of this crate write [`BarMessage`]: the original daily fields with full
//! OHLCV for every interval, timestamps with their offset, plus `schema_version` and
//! `source`. Readers accept that, the original daily shape, and the legacy intraday
//! `value`/`field` shape from other producers. Anything else is a [`RecordError`], which
//! becomes a dead-letter record with that reason.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::market::{cairo_local_to_utc, Bar, Interval, Symbol, SymbolError, EXCHANGE_TZ};

/// Version of the message schema this crate writes (the original scripts' shape is 1).
pub const SCHEMA_VERSION: u32 = 2;

/// Why a record cannot be written; the text becomes the dead-letter reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The payload is larger than the configured limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Payload size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The record had no payload at all.
    #[error("record has no payload")]
    Empty,
    /// The payload is not a JSON object of the expected fields and types (this covers
    /// invalid UTF-8, malformed JSON, wrong types and duplicate keys).
    #[error("payload is not a valid market message: {0}")]
    Json(String),
    /// The symbol is not safe to use in an object key.
    #[error("invalid symbol: {0}")]
    Symbol(#[from] SymbolError),
    /// The interval is not one the pipeline knows.
    #[error("{0}")]
    Interval(String),
    /// The datetime is not ISO-8601.
    #[error("invalid datetime {0:?}: expected ISO-8601, e.g. 2025-01-20T10:00:00+02:00")]
    Datetime(String),
    /// Neither full OHLC prices nor a `value` with its `field` were present.
    #[error("message carries neither open/high/low/close nor value+field")]
    MissingPrices,
    /// A legacy `field` name that is not a plain lower-case word.
    #[error("invalid field name {0:?}")]
    Field(String),
    /// A price or volume that is not a finite number.
    #[error("non-finite number in {0}")]
    NotFinite(&'static str),
}

/// Which part of a bar a record carries: the whole bar, or one field of the legacy
/// intraday shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordField {
    /// Open, high, low, close (and volume).
    Ohlcv,
    /// One named value, e.g. `close`.
    Named(String),
}

impl RecordField {
    /// The path-safe token used in object names.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ohlcv => "ohlcv",
            Self::Named(name) => name,
        }
    }
}

/// A validated market record: everything that identifies one object.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketRecord {
    /// The instrument (validated, key-safe).
    pub symbol: Symbol,
    /// The bar interval.
    pub interval: Interval,
    /// The bar's opening instant.
    pub time: DateTime<Utc>,
    /// Which part of the bar this record carries.
    pub field: RecordField,
}

impl MarketRecord {
    /// Trading date of the bar in Africa/Cairo.
    pub fn trading_date(&self) -> NaiveDate {
        self.time.with_timezone(&EXCHANGE_TZ).date_naive()
    }

    /// Decodes and validates a payload of at most `limit` bytes.
    pub fn decode(payload: Option<&[u8]>, limit: usize) -> Result<Self, RecordError> {
        let bytes = payload.ok_or(RecordError::Empty)?;
        if bytes.len() > limit {
            return Err(RecordError::TooLarge { size: bytes.len(), limit });
        }
        let wire: WireRecord = serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        wire.validate()
    }
}

/// The fields a reader looks at; unknown fields are allowed (schemas may grow),
/// duplicate fields are not.
#[derive(Deserialize)]
struct WireRecord {
    symbol: String,
    interval: String,
    datetime: String,
    open: Option<f64>,
    high: Option<f64>,
    low: Option<f64>,
    close: Option<f64>,
    volume: Option<f64>,
    value: Option<f64>,
    field: Option<String>,
}

impl WireRecord {
    fn validate(self) -> Result<MarketRecord, RecordError> {
        let symbol = Symbol::parse(&self.symbol)?;
        let interval = Interval::parse(&self.interval).map_err(|e| RecordError::Interval(e.to_string()))?;
        let time = parse_datetime(&self.datetime)?;
        let field = match (self.value, self.field, self.open, self.high, self.low, self.close) {
            (_, _, Some(o), Some(h), Some(l), Some(c)) => {
                for (name, v) in [("open", o), ("high", h), ("low", l), ("close", c)] {
                    finite(name, v)?;
                }
                if let Some(v) = self.volume {
                    finite("volume", v)?;
                }
                RecordField::Ohlcv
            }
            (Some(value), Some(field), ..) => {
                finite("value", value)?;
                let ok = !field.is_empty()
                    && field.len() <= 32
                    && field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
                if !ok {
                    return Err(RecordError::Field(field.chars().take(64).collect()));
                }
                RecordField::Named(field)
            }
            _ => return Err(RecordError::MissingPrices),
        };
        Ok(MarketRecord { symbol, interval, time, field })
    }
}

fn finite(name: &'static str, v: f64) -> Result<(), RecordError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(RecordError::NotFinite(name))
    }
}

/// Parses an ISO-8601 datetime. With an offset it is exact; without one (the original
/// scripts wrote naive exchange-local times) it is read as Africa/Cairo local time.
pub fn parse_datetime(raw: &str) -> Result<DateTime<Utc>, RecordError> {
    let bad = || RecordError::Datetime(raw.chars().take(64).collect());
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(raw, format) {
            return Ok(cairo_local_to_utc(naive));
        }
    }
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad())?;
    Ok(cairo_local_to_utc(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const LIMIT: usize = 1 << 16;

    fn decode(s: &str) -> Result<MarketRecord, RecordError> {
        MarketRecord::decode(Some(s.as_bytes()), LIMIT)
    }

    #[test]
    fn original_daily_shape_decodes_as_cairo_local() {
        let r = decode(r#"{"symbol":"COMI","exchange":"EGX","interval":"Daily","datetime":"2025-01-20T00:00:00","open":45.5,"high":46.2,"low":45.1,"close":46.0,"volume":1250000,"ingestion_timestamp":"2025-01-20T14:30:52.123456"}"#).unwrap();
        assert_eq!(r.symbol.as_str(), "COMI");
        assert_eq!(r.interval, Interval::Daily);
        assert_eq!(r.field, RecordField::Ohlcv);
        assert_eq!(r.trading_date().to_string(), "2025-01-20");
        assert_eq!(r.time.to_rfc3339(), "2025-01-19T22:00:00+00:00");
    }

    #[test]
    fn legacy_intraday_shape_keeps_its_field() {
        let r = decode(r#"{"symbol":"COMI","interval":"5 Minute","datetime":"2025-01-20T09:35:00","value":45.75,"field":"close","ingestion_timestamp":"2025-01-20T14:30:52.123456"}"#).unwrap();
        assert_eq!(r.field, RecordField::Named("close".into()));
        assert_eq!(r.interval, Interval::Minutes(5));
    }

    #[test]
    fn bad_records_name_their_reason() {
        let cases = [
            (r#"{"symbol":"COMI""#, "not a valid market message"),
            (
                r#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20","open":"1","high":1,"low":1,"close":1}"#,
                "invalid type",
            ),
            (
                r#"{"symbol":"../etc","interval":"Daily","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1}"#,
                "invalid symbol",
            ),
            (
                r#"{"symbol":"COMI","symbol":"ETEL","interval":"Daily","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1}"#,
                "duplicate field",
            ),
            (
                r#"{"symbol":"COMI","interval":"Daily","datetime":"yesterday","open":1,"high":1,"low":1,"close":1}"#,
                "invalid datetime",
            ),
            (r#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20","open":1}"#, "neither"),
            (
                r#"{"symbol":"COMI","interval":"Hourly","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1}"#,
                "unknown interval",
            ),
            (
                r#"{"symbol":"COMI","interval":"5","datetime":"2025-01-20","value":1,"field":"../x"}"#,
                "invalid field",
            ),
        ];
        for (payload, reason) in cases {
            let err = decode(payload).unwrap_err().to_string();
            assert!(err.contains(reason), "{payload}: {err}");
        }
        let err = MarketRecord::decode(Some(b"\xff\xfe{}"), LIMIT).unwrap_err();
        assert!(matches!(err, RecordError::Json(_)));
        let big = vec![b' '; LIMIT + 1];
        assert!(matches!(MarketRecord::decode(Some(&big), LIMIT), Err(RecordError::TooLarge { .. })));
        assert_eq!(MarketRecord::decode(None, LIMIT), Err(RecordError::Empty));
    }

    #[test]
    fn published_message_keeps_original_fields_and_types() {
        let bar = Bar {
            symbol: Symbol::parse("COMI").unwrap(),
            exchange: "EGX".into(),
            interval: Interval::Daily,
            time: Utc.with_ymd_and_hms(2025, 1, 20, 8, 0, 0).unwrap(),
            open: 45.5,
            high: 46.2,
            low: 45.1,
            close: 46.0,
            volume: Some(1_250_000.0),
        };
        let ingested = Utc.with_ymd_and_hms(2025, 1, 20, 12, 30, 52).unwrap();
        let msg: serde_json::Value =
            serde_json::from_slice(&BarMessage::new(&bar, ingested, "synthetic").to_bytes()).unwrap();
        assert_eq!(msg["datetime"], "2025-01-20T10:00:00+02:00");
        assert_eq!(msg["volume"], serde_json::json!(1_250_000));
        assert!(msg["volume"].is_i64());
        assert_eq!(msg["interval"], "Daily");
        assert_eq!(msg["ingestion_timestamp"], "2025-01-20T12:30:52.000000+00:00");
        assert_eq!(msg["source"], "synthetic");
        let back = decode(&msg.to_string()).unwrap();
        assert_eq!(back.time, bar.time);
    }
}
