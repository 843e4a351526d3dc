//! The data contract: the JSON messages on the topic, in both original shapes, and the
//! validated record the S3Writer turns into an object.
//!
//! Producers of this crate write [`BarMessage`]: the original daily fields with full
//! OHLCV for every interval, timestamps with their offset, plus `schema_version` and
//! `source`. Readers accept that, the original daily shape, and the legacy intraday
//! `value`/`field` shape from other producers. Anything else is a [`RecordError`], which
//! becomes a dead-letter record with that reason.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::contract::market::{cairo_local_to_utc, Bar, Interval, Symbol, SymbolError, EXCHANGE_TZ};

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

/// Accepts a JSON object only if no key appears twice in it (any key, read or not):
/// a message with two values for one field is ambiguous and goes to the dead-letter topic.
struct UniqueKeys;

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
                    }
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(UniqueKeys)
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Bars outside these years are refused: keys must stay `date=YYYY-MM-DD`.
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2200;
/// Largest plausible price or volume; larger values are refused as corrupt.
const MAX_VALUE: f64 = 1e15;

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
        if !YEARS.contains(&time.with_timezone(&EXCHANGE_TZ).year()) {
            return Err(RecordError::Datetime(self.datetime.chars().take(64).collect()));
        }
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
                // `ohlcv` names the whole bar in keys: a legacy field of that name would
                // overwrite it.
                let ok = !field.is_empty()
                    && field != RecordField::Ohlcv.as_str()
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
    if v.is_finite() && (0.0..MAX_VALUE).contains(&v) {
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
mod proptests {
    //! Property tests of the decoder: whatever bytes arrive it never panics; what it
    //! accepts renders to a key inside the prefix; duplicated fields, wrong types and
    //! numbers beyond `f64` are refused.

    use super::*;
    use crate::contract::key::KeyTemplate;
    use proptest::prelude::*;
    use proptest::sample::select;
    use serde_json::{Map, Value};

    const LIMIT: usize = 1 << 12;

    /// The fields the decoder reads, in the order a message is built.
    const KNOWN: [&str; 10] =
        ["symbol", "interval", "datetime", "open", "high", "low", "close", "volume", "value", "field"];
    const TEXT_FIELDS: [&str; 4] = ["symbol", "interval", "datetime", "field"];
    const NUMBER_FIELDS: [&str; 6] = ["open", "high", "low", "close", "volume", "value"];

    /// Keys of every accepted record stay inside the prefix and hold only safe characters,
    /// with the default layout and with one that starts with the symbol.
    fn assert_key_inside_prefix(record: &MarketRecord) -> Result<(), TestCaseError> {
        let templates = [
            KeyTemplate::default(),
            KeyTemplate::new("raw/egx", "{symbol}/{date}/{time}-{interval}-{field}.json").unwrap(),
        ];
        for template in templates {
            let key = template.render(record);
            let key = key.as_str();
            prop_assert!(key.starts_with(template.prefix()), "{key}");
            prop_assert!(!key.contains("..") && !key.contains("//"), "{key}");
            prop_assert!(
                key.bytes().all(|b| b.is_ascii_alphanumeric() || b"/=_-.".contains(&b)),
                "unsafe character in {key}"
            );
        }
        Ok(())
    }

    /// Path tricks, lookalikes, odd spellings and extreme or impossible dates.
    #[rustfmt::skip] // one entry per line would make a 27-line list of short strings
    const HOSTILE: [&str; 27] = [
        "", ".", "..", "../etc", "A/../B", "/abs", "COMI/", "A..B", "A.", "COMI\u{0}", "ＣＯＭＩ",
        "Daily", " Daily ", "5 Minute", "5", "1D", "0", "65536", "close", "ohlcv",
        "2025-01-20", "2025-10-30T23:30:00", "9999-12-31T23:59:59Z", "+262143-12-31T23:59:59",
        "-262144-01-01T00:00:00", "2016-12-31T23:59:60Z", "2025-02-30",
    ];

    /// Strings a careless or hostile producer might send: path tricks, separators,
    /// lookalikes, control characters, extreme dates, and anything at all.
    fn hostile_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9./=_~ %:+\\\\-]{0,12}",
            select(HOSTILE.to_vec()).prop_map(String::from),
        ]
    }

    /// A datetime-shaped string: mostly well-formed, sometimes nearly so (bad months and
    /// days, leap seconds, odd offsets), in years up to 9999.
    fn datetime_text() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "(19|20|99)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T[01][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]0[0-4]:[0-5][0-9])?)?",
            1 => "(19|20|99)[0-9]{2}-[01][0-9]-[0-3][0-9]([T ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])?)?",
        ]
    }

    /// Any JSON value: scalars of every type, hostile strings, small arrays and objects.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            // Non-finite floats become null.
            any::<f64>().prop_map(Value::from),
            hostile_text().prop_map(Value::from),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A value for one known field: mostly of the right shape, sometimes anything.
    fn field_json(name: &str) -> BoxedStrategy<Value> {
        let plausible = match name {
            "symbol" => prop_oneof![3 => "[A-Z0-9][A-Z0-9._-]{0,10}", 1 => hostile_text()].prop_map(Value::from).boxed(),
            "interval" => prop_oneof![
                3 => select(vec!["Daily", "Weekly", "Monthly", "1D", "1W", "1M", "D", "5", "15min", "240 Minute"])
                    .prop_map(String::from),
                1 => hostile_text(),
            ]
            .prop_map(Value::from)
            .boxed(),
            "datetime" => prop_oneof![3 => datetime_text(), 1 => hostile_text()].prop_map(Value::from).boxed(),
            "field" => prop_oneof![3 => "[a-z_]{1,40}", 1 => hostile_text()].prop_map(Value::from).boxed(),
            _ => any::<f64>().prop_map(Value::from).boxed(),
        };
        prop_oneof![9 => plausible, 1 => any_json()].boxed()
    }

    /// A JSON object with each known field present or absent, valid-looking or not.
    fn near_valid_message() -> impl Strategy<Value = Vec<u8>> {
        let fields: Vec<_> =
            KNOWN.iter().map(|name| proptest::option::weighted(0.95, field_json(name))).collect();
        fields.prop_map(|values| {
            let object: Map<String, Value> =
                KNOWN.iter().zip(values).filter_map(|(k, v)| Some((k.to_string(), v?))).collect();
            serde_json::to_vec(&Value::Object(object)).unwrap()
        })
    }

    /// A message that decodes: one of the two shapes with plain values.
    fn valid_message() -> impl Strategy<Value = Map<String, Value>> {
        let identity = (
            "[A-Z][A-Z0-9]{1,5}",
            select(vec!["Daily", "5 Minute", "1W"]),
            select(vec!["2025-01-20T10:00:00+02:00", "2025-01-20", "2024-07-01T09:35:00.5"]),
        );
        (
            identity,
            any::<bool>(),
            prop::array::uniform5(0.0..1.0e6f64),
            "[a-z_]{1,12}".prop_filter("the whole bar's name", |f| f != "ohlcv"),
        )
            .prop_map(|((symbol, interval, datetime), ohlcv, [o, h, l, c, v], field)| {
                let mut m = Map::new();
                m.insert("symbol".into(), symbol.into());
                m.insert("interval".into(), interval.into());
                m.insert("datetime".into(), datetime.into());
                if ohlcv {
                    for (k, x) in [("open", o), ("high", h), ("low", l), ("close", c), ("volume", v)] {
                        m.insert(k.into(), x.into());
                    }
                } else {
                    m.insert("value".into(), v.into());
                    m.insert("field".into(), field.into());
                }
                m
            })
    }

    fn to_text(m: &Map<String, Value>) -> String {
        Value::Object(m.clone()).to_string()
    }

    /// A value of a type the field does not have (never null: null is "absent" for the
    /// optional fields).
    fn wrong_type_for(name: &str) -> BoxedStrategy<Value> {
        let containers = prop_oneof![
            Just(Value::Array(vec![])),
            Just(serde_json::json!({"x": 1})),
            any::<bool>().prop_map(Value::from),
        ];
        if TEXT_FIELDS.contains(&name) {
            prop_oneof![containers, any::<i64>().prop_map(Value::from), (-1e9..1e9f64).prop_map(Value::from)]
                .boxed()
        } else {
            prop_oneof![containers, "[0-9.]{0,8}".prop_map(Value::from)].boxed()
        }
    }

    /// A number literal beyond the range of `f64`.
    fn out_of_range_number() -> impl Strategy<Value = String> {
        prop_oneof![
            (309u32..100_000, any::<bool>())
                .prop_map(|(e, neg)| format!("{}1e{e}", if neg { "-" } else { "" })),
            (310usize..2_000).prop_map(|n| format!("9{}", "9".repeat(n))),
            (1u32..9, 309u32..400).prop_map(|(d, e)| format!("-{d}.5E+{e}")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random bytes never panic the decoder; anything it accepts has a safe key.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(record) = MarketRecord::decode(Some(&bytes), LIMIT) {
                assert_key_inside_prefix(&record)?;
            }
        }

        /// Messages with hostile or mistyped fields are refused or render a key inside the prefix.
        #[test]
        fn near_valid_messages_decode_to_safe_keys_or_fail(bytes in near_valid_message()) {
            if let Ok(record) = MarketRecord::decode(Some(&bytes), LIMIT) {
                assert_key_inside_prefix(&record)?;
            }
        }

        /// Valid messages with bytes inserted and the tail cut off never panic the decoder.
        #[test]
        fn mangled_valid_messages_never_panic(
            message in valid_message(),
            cut in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            insert in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut bytes = to_text(&message).into_bytes();
            let position = at.index(bytes.len() + 1);
            bytes.splice(position..position, insert);
            bytes.truncate(cut.index(bytes.len() + 1).max(1));
            if let Ok(record) = MarketRecord::decode(Some(&bytes), LIMIT) {
                assert_key_inside_prefix(&record)?;
            }
        }

        /// A field the decoder reads, given twice, makes the message invalid.
        #[test]
        fn duplicated_fields_are_refused(
            message in valid_message(),
            name in select(KNOWN.to_vec()),
            other in any_json(),
            same in any::<bool>(),
            first in any::<bool>(),
        ) {
            let body = to_text(&message);
            prop_assert!(MarketRecord::decode(Some(body.as_bytes()), LIMIT).is_ok());
            let present = message.get(name);
            let value = present.filter(|_| same).unwrap_or(&other);
            // One copy duplicates a field the message has; a field it lacks gets two.
            let copies = if present.is_some() { 1 } else { 2 };
            let extra = vec![format!("{}:{value}", Value::from(name)); copies].join(",");
            let text = if first {
                format!("{{{extra},{}", &body[1..])
            } else {
                format!("{},{extra}}}", &body[..body.len() - 1])
            };
            let result = MarketRecord::decode(Some(text.as_bytes()), LIMIT);
            prop_assert!(matches!(result, Err(RecordError::Json(_))), "{text}: {result:?}");
            if present.is_some() && !first {
                // The original value is read first, so the copy can only fail as a duplicate.
                prop_assert!(format!("{result:?}").contains("duplicate field"), "{text}: {result:?}");
            }
        }

        /// A field of the wrong JSON type is refused as such.
        #[test]
        fn wrong_types_are_refused(
            (message, name, wrong) in valid_message()
                .prop_flat_map(|m| {
                    let present: Vec<String> = m.keys().cloned().collect();
                    (Just(m), select(present))
                })
                .prop_flat_map(|(m, name)| {
                    let wrong = wrong_type_for(&name);
                    (Just(m), Just(name), wrong)
                }),
        ) {
            let mut message = message;
            message.insert(name.clone(), wrong);
            let result = MarketRecord::decode(Some(to_text(&message).as_bytes()), LIMIT);
            prop_assert!(
                matches!(&result, Err(RecordError::Json(reason)) if reason.contains("invalid type")),
                "{name}: {result:?}"
            );
        }

        /// Prices and volumes beyond the range of `f64` are refused, never read as infinity.
        #[test]
        fn numbers_beyond_f64_are_refused(
            message in valid_message(),
            name in select(NUMBER_FIELDS.to_vec()),
            huge in out_of_range_number(),
        ) {
            let mut message = message;
            message.insert(name.into(), Value::from(0.5));
            let text = to_text(&message).replace(&format!("\"{name}\":0.5"), &format!("\"{name}\":{huge}"));
            let result = MarketRecord::decode(Some(text.as_bytes()), LIMIT);
            prop_assert!(
                matches!(&result, Err(RecordError::Json(reason)) if reason.contains("out of range")),
                "{text}: {result:?}"
            );
        }

        /// A payload one byte over the limit is refused by size, whatever it holds.
        #[test]
        fn oversized_payloads_are_refused_before_parsing(message in valid_message(), pad in 1usize..64) {
            let text = to_text(&message);
            let limit = text.len();
            let padded = format!("{text}{}", " ".repeat(pad));
            prop_assert!(MarketRecord::decode(Some(text.as_bytes()), limit).is_ok());
            prop_assert_eq!(
                MarketRecord::decode(Some(padded.as_bytes()), limit),
                Err(RecordError::TooLarge { size: limit + pad, limit })
            );
        }
    }
}
