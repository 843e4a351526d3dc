//! The wire format readers accept: the fields a record is decoded from (unknown fields
//! allowed, duplicated ones not), and the checks that make it a [`MarketRecord`].

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

use super::{MarketRecord, RecordError, RecordField};
use crate::contract::market::{cairo_local_to_utc, Interval, Symbol, EXCHANGE_TZ};

/// Accepts a JSON object only if no key appears twice in it (any key, read or not):
/// a message with two values for one field is ambiguous and goes to the dead-letter topic.
pub(super) struct UniqueKeys;

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
pub(super) struct WireRecord {
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
    pub(super) fn validate(self) -> Result<MarketRecord, RecordError> {
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
