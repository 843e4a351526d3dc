//! Object keys: the original Hive-style layout `streaming/date=YYYY-MM-DD/symbol=XXX/…json`
//! with a file name derived from the bar's identity (time, interval, field), so that
//! different intervals and fields of the same instant never collide.
//!
//! A key is a pure function of the record: replaying a record rewrites the same object.

use std::fmt;

use crate::contract::market::EXCHANGE_TZ;
use crate::contract::record::MarketRecord;

/// The default file layout below the prefix.
pub const DEFAULT_KEY_TEMPLATE: &str = "date={date}/symbol={symbol}/{time}_{interval}_{field}.json";

/// Placeholders a template may use; the identity ones must all appear.
const PLACEHOLDERS: [&str; 5] = ["date", "symbol", "time", "interval", "field"];

/// Why a prefix or a key template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The template names a placeholder that does not exist.
    #[error("key template {template:?} uses unknown placeholder {{{name}}}; known: {{date}} {{symbol}} {{time}} {{interval}} {{field}}")]
    UnknownPlaceholder {
        /// The template.
        template: String,
        /// The unknown name.
        name: String,
    },
    /// The template lacks a placeholder that identifies the record, so keys could collide.
    #[error("key template {template:?} must contain {{{name}}} so that different bars never share a key")]
    MissingPlaceholder {
        /// The template.
        template: String,
        /// The missing name.
        name: &'static str,
    },
    /// The prefix or template could escape the prefix or holds unsafe characters.
    #[error(
        "{what} {value:?} is unsafe: use letters, digits, '/', '=', '_', '-', '.', no '..', no leading '/'"
    )]
    Unsafe {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// A `{` without its closing `}`.
    #[error("key template {0:?} has an unclosed '{{'")]
    Unclosed(String),
}

/// A validated object key (relative to the bucket or output directory).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(&'static str),
}

/// A prefix plus a parsed file template, checked once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    prefix: String,
    pieces: Vec<Piece>,
}

fn is_safe_text(s: &str) -> bool {
    !s.starts_with('/')
        && !s.contains("..")
        && !s.contains("//")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'=' | b'_' | b'-' | b'.'))
}

impl KeyTemplate {
    /// Validates `prefix` (e.g. `streaming/`; a missing trailing `/` is added) and
    /// `template` (e.g. [`DEFAULT_KEY_TEMPLATE`]).
    pub fn new(prefix: &str, template: &str) -> Result<Self, KeyError> {
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        if !prefix.is_empty() && !is_safe_text(&prefix) {
            return Err(KeyError::Unsafe { what: "prefix", value: prefix });
        }
        let pieces = Self::parse(template)?;
        for name in PLACEHOLDERS {
            if !pieces.contains(&Piece::Slot(name)) {
                return Err(KeyError::MissingPlaceholder { template: template.into(), name });
            }
        }
        // Two placeholders side by side could collide (`A1`+`5min` = `A`+`15min`).
        if pieces.windows(2).any(|w| matches!(w, [Piece::Slot(_), Piece::Slot(_)])) {
            return Err(KeyError::Unsafe { what: "key template", value: template.into() });
        }
        let text_ok = pieces.iter().all(|p| match p {
            Piece::Text(t) => is_safe_text(t.trim_start_matches('/')) && !t.contains("//"),
            Piece::Slot(_) => true,
        });
        if !text_ok || template.starts_with('/') {
            return Err(KeyError::Unsafe { what: "key template", value: template.into() });
        }
        Ok(Self { prefix, pieces })
    }

    fn parse(template: &str) -> Result<Vec<Piece>, KeyError> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or_else(|| KeyError::Unclosed(template.into()))?;
            let name = &rest[open + 1..open + close];
            let slot = PLACEHOLDERS.iter().find(|p| **p == name).ok_or_else(|| {
                KeyError::UnknownPlaceholder { template: template.into(), name: name.into() }
            })?;
            pieces.push(Piece::Slot(slot));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(pieces)
    }

    /// The prefix every key starts with (`streaming/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Renders the key of a record. Every value is key-safe by construction (validated
    /// symbol, fixed-format date and time, tokens), so the key cannot leave the prefix.
    pub fn render(&self, record: &MarketRecord) -> ObjectKey {
        let local = record.time.with_timezone(&EXCHANGE_TZ);
        let mut key = self.prefix.clone();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => key.push_str(t),
                Piece::Slot("date") => key.push_str(&local.format("%Y-%m-%d").to_string()),
                Piece::Slot("symbol") => key.push_str(record.symbol.as_str()),
                Piece::Slot("time") => key.push_str(&time_token(&local)),
                Piece::Slot("interval") => key.push_str(&record.interval.key_token()),
                Piece::Slot(_) => key.push_str(record.field.as_str()),
            }
        }
        ObjectKey(key)
    }
}

/// `HHMMSSffffff` in Cairo time. In the hour that repeats when daylight saving ends, the
/// second occurrence gets an `F` suffix, so the two instants never share a key (trading
/// hours never fall in that hour, so ordinary keys are unaffected).
fn time_token(local: &chrono::DateTime<chrono_tz::Tz>) -> String {
    use chrono::TimeZone;
    let token = local.format("%H%M%S%6f").to_string();
    match EXCHANGE_TZ.from_local_datetime(&local.naive_local()) {
        chrono::LocalResult::Ambiguous(first, _) if first != *local => token + "F",
        _ => token,
    }
}

impl Default for KeyTemplate {
    fn default() -> Self {
        Self { prefix: "streaming/".into(), pieces: Self::parse(DEFAULT_KEY_TEMPLATE).unwrap_or_default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> MarketRecord {
        MarketRecord::decode(Some(json.as_bytes()), 1 << 16).unwrap()
    }

    #[test]
    fn default_layout_keeps_the_original_partitions() {
        let t = KeyTemplate::default();
        let daily = record(
            r#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20T10:00:00+02:00","open":1,"high":1,"low":1,"close":1,"volume":5}"#,
        );
        assert_eq!(
            t.render(&daily).as_str(),
            "streaming/date=2025-01-20/symbol=COMI/100000000000_1D_ohlcv.json"
        );
        let legacy = record(
            r#"{"symbol":"COMI","interval":"5 Minute","datetime":"2025-01-20T09:35:00.5","value":1,"field":"close"}"#,
        );
        assert_eq!(
            t.render(&legacy).as_str(),
            "streaming/date=2025-01-20/symbol=COMI/093500500000_5min_close.json"
        );
    }

    #[test]
    fn intervals_and_fields_of_one_instant_never_collide() {
        let t = KeyTemplate::default();
        let base = r#""symbol":"COMI","datetime":"2025-01-20T10:00:00+02:00""#;
        let keys: std::collections::HashSet<_> = [
            format!(r#"{{{base},"interval":"Daily","open":1,"high":1,"low":1,"close":1}}"#),
            format!(r#"{{{base},"interval":"Weekly","open":1,"high":1,"low":1,"close":1}}"#),
            format!(r#"{{{base},"interval":"5","value":1,"field":"close"}}"#),
            format!(r#"{{{base},"interval":"5","value":1,"field":"open"}}"#),
            format!(r#"{{{base},"interval":"5","open":1,"high":1,"low":1,"close":1}}"#),
        ]
        .iter()
        .map(|j| t.render(&record(j)))
        .collect();
        assert_eq!(keys.len(), 5);
    }

    #[test]
    fn the_repeated_hour_of_daylight_saving_keeps_two_keys() {
        let t = KeyTemplate::default();
        let at = |utc: &str| {
            t.render(&record(&format!(r#"{{"symbol":"COMI","interval":"30","datetime":"{utc}","open":1,"high":1,"low":1,"close":1}}"#)))
        };
        // Both are 23:30 in Cairo on 2023-10-26: summer time first, then winter time.
        let (first, second) = (at("2023-10-26T20:30:00Z"), at("2023-10-26T21:30:00Z"));
        assert_eq!(first.as_str(), "streaming/date=2023-10-26/symbol=COMI/233000000000_30min_ohlcv.json");
        assert_eq!(second.as_str(), "streaming/date=2023-10-26/symbol=COMI/233000000000F_30min_ohlcv.json");
    }

    #[test]
    fn utc_instants_land_on_the_cairo_trading_date() {
        let t = KeyTemplate::default();
        let r = record(
            r#"{"symbol":"COMI","interval":"Daily","datetime":"2024-07-01T21:30:00Z","open":1,"high":1,"low":1,"close":1}"#,
        );
        assert!(t.render(&r).as_str().starts_with("streaming/date=2024-07-02/"));
    }

    #[test]
    fn bad_prefixes_and_templates_are_refused() {
        assert!(matches!(KeyTemplate::new("../x", DEFAULT_KEY_TEMPLATE), Err(KeyError::Unsafe { .. })));
        assert!(matches!(KeyTemplate::new("/abs", DEFAULT_KEY_TEMPLATE), Err(KeyError::Unsafe { .. })));
        assert!(matches!(
            KeyTemplate::new("p", "date={date}/{symbol}.json"),
            Err(KeyError::MissingPlaceholder { .. })
        ));
        assert!(matches!(
            KeyTemplate::new("p", "{date}{symbol}{time}{interval}{field}{oops}"),
            Err(KeyError::UnknownPlaceholder { .. })
        ));
        assert!(matches!(KeyTemplate::new("p", "{date"), Err(KeyError::Unclosed(_))));
        let t = KeyTemplate::new("raw", "{symbol}/{date}/{time}-{interval}-{field}.json").unwrap();
        assert_eq!(t.prefix(), "raw/");
    }
}

#[cfg(test)]
mod proptests;
