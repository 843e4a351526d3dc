//! The data contract: the JSON messages on the topic, in both original shapes, and the
//! validated record the S3Writer turns into an object.
//!
//! Producers of this crate write [`BarMessage`]: the original daily fields with full
//! OHLCV for every interval, timestamps with their offset, plus `schema_version` and
//! `source`. Readers accept that, the original daily shape, and the legacy intraday
//! `value`/`field` shape from other producers. Anything else is a [`RecordError`], which
//! becomes a dead-letter record with that reason.

mod message;
mod wire;

use chrono::{DateTime, NaiveDate, Utc};

pub use message::BarMessage;
pub use wire::parse_datetime;

use crate::contract::market::{Interval, Symbol, SymbolError, EXCHANGE_TZ};
use wire::{UniqueKeys, WireRecord};

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
    /// A price or volume that is negative, not finite, or implausibly large.
    #[error("{0} is not a plausible value (finite, 0 or more, below 1e15)")]
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
        serde_json::from_slice::<UniqueKeys>(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        let wire: WireRecord = serde_json::from_slice(bytes).map_err(|e| RecordError::Json(e.to_string()))?;
        wire.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::market::Bar;
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

    /// A bar with one field replaced: `"open":1` becomes `"open":<value>`.
    fn bar_with(field: &str, value: &str) -> String {
        r#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1,"volume":10}"#
            .replace(&format!("\"{field}\":1,"), &format!("\"{field}\":{value},"))
            .replace(&format!("\"{field}\":10}}"), &format!("\"{field}\":{value}}}"))
    }

    #[test]
    fn implausible_prices_and_volumes_are_refused() {
        for (field, value) in
            [("open", "-0.5"), ("high", "1e15"), ("low", "2e15"), ("close", "-1"), ("volume", "1e16")]
        {
            let payload = bar_with(field, value);
            assert_ne!(payload, bar_with(field, "1"), "the value was replaced in {payload}");
            let err = decode(&payload).unwrap_err();
            assert!(matches!(err, RecordError::NotFinite(f) if f == field), "{payload}: {err}");
        }
        let legacy =
            r#"{"symbol":"COMI","interval":"5","datetime":"2025-01-20T09:35:00","value":-3,"field":"close"}"#;
        assert!(matches!(decode(legacy), Err(RecordError::NotFinite("value"))), "a negative legacy value");
        // Just below the bound and zero are plausible.
        assert!(decode(&bar_with("volume", "999999999999999")).is_ok());
        assert!(decode(&bar_with("open", "0")).is_ok());
    }

    #[test]
    fn dates_outside_1900_to_2200_are_refused() {
        for datetime in
            ["1899-12-31T10:00:00+02:00", "2201-01-01T10:00:00+02:00", "+10000-01-01T10:00:00+02:00"]
        {
            let payload = format!(
                r#"{{"symbol":"COMI","interval":"Daily","datetime":"{datetime}","open":1,"high":1,"low":1,"close":1}}"#
            );
            assert!(matches!(decode(&payload), Err(RecordError::Datetime(_))), "{datetime}");
        }
        for datetime in ["1900-01-01T10:00:00+02:00", "2200-12-31T10:00:00+02:00"] {
            let payload = format!(
                r#"{{"symbol":"COMI","interval":"Daily","datetime":"{datetime}","open":1,"high":1,"low":1,"close":1}}"#
            );
            assert!(decode(&payload).is_ok(), "{datetime} is within the range");
        }
    }

    #[test]
    fn a_legacy_field_named_ohlcv_is_refused() {
        // `ohlcv` names the whole bar in keys: it would overwrite the bar's object.
        let payload =
            r#"{"symbol":"COMI","interval":"5","datetime":"2025-01-20T09:35:00","value":1,"field":"ohlcv"}"#;
        assert!(matches!(decode(payload), Err(RecordError::Field(f)) if f == "ohlcv"));
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

#[cfg(test)]
mod proptests;
