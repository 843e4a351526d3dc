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
mod proptests {
    //! Property tests of rendering: any valid message, in either shape and any accepted
    //! spelling of its interval and datetime, decodes; its key is a pure function of the
    //! record; and records that differ in symbol, interval, field or instant never share
    //! a key (so a replay rewrites the same object and nothing else).

    use super::*;
    use crate::contract::market::Interval;
    use crate::contract::record::RecordField;
    use chrono::{
        DateTime, Duration, FixedOffset, LocalResult, NaiveDate, Offset, SecondsFormat, TimeZone, Utc,
    };
    use proptest::prelude::*;
    use proptest::sample::select;
    use serde_json::{json, Value};

    /// What a key must tell apart; the key's time resolution is the microsecond.
    #[derive(Debug, Clone, PartialEq)]
    struct Identity {
        symbol: String,
        interval: Interval,
        field: RecordField,
        time: DateTime<Utc>,
    }

    /// The feed's minute resolutions.
    const MINUTES: [u16; 10] = [1, 3, 5, 15, 30, 45, 60, 120, 180, 240];
    /// 2000-01-01T00:00:00Z and 2036-01-01T00:00:00Z.
    const FROM: i64 = 946_684_800;
    const TO: i64 = 2_082_758_400;

    /// True when the instant's Cairo wall-clock time also names another instant.
    ///
    /// The instant Cairo's offset changes in the second half of that month, if it does.
    fn dst_change(year: i32, month: u32) -> Option<DateTime<Utc>> {
        let offset = |t: DateTime<Utc>| t.with_timezone(&EXCHANGE_TZ).offset().fix();
        let start = Utc.with_ymd_and_hms(year, month, 15, 0, 0, 0).single()?;
        (1..17 * 24)
            .map(|h| start + Duration::hours(h))
            .find(|t| offset(*t - Duration::hours(1)) != offset(*t))
    }

    fn symbol() -> impl Strategy<Value = String> {
        "[A-Z0-9][A-Z0-9_-]{0,7}(\\.[A-Z0-9_-]{1,3})?"
    }

    fn interval() -> impl Strategy<Value = Interval> {
        prop_oneof![
            Just(Interval::Daily),
            Just(Interval::Weekly),
            Just(Interval::Monthly),
            select(MINUTES.to_vec()).prop_map(Interval::Minutes),
        ]
    }

    fn field() -> impl Strategy<Value = RecordField> {
        prop_oneof![
            Just(RecordField::Ohlcv),
            // A legacy field named `ohlcv` is refused by the decoder (it would share the
            // whole bar's key), so such records never reach rendering.
            prop_oneof![
                3 => "[a-z_]{1,32}",
                1 => select(vec!["open", "high", "low", "close", "volume", "ohlcv"]).prop_map(String::from),
            ]
            .prop_filter("named like the whole bar", |f| f != "ohlcv")
            .prop_map(RecordField::Named),
        ]
    }

    /// Instants as bars carry them (Cairo midnights, whole seconds), with microseconds,
    /// and near midnight Cairo in late April and October, where daylight saving changes.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        let epoch = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
        prop_oneof![
            1 => (0u64..13_000).prop_map(move |days| {
                crate::contract::market::cairo_local_to_utc(epoch.and_hms_opt(0, 0, 0).unwrap() + chrono::Days::new(days))
            }),
            1 => (FROM..TO).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
            1 => (FROM..TO, 0u32..1_000_000).prop_map(|(s, us)| DateTime::from_timestamp(s, us * 1_000).unwrap()),
            2 => (2000i32..2036, select(vec![4u32, 10]), -7_200i64..7_200).prop_filter_map(
                "no daylight saving that year",
                |(year, month, s)| Some(dst_change(year, month)? + Duration::seconds(s)),
            ),
        ]
    }

    fn identity() -> impl Strategy<Value = Identity> {
        (symbol(), interval(), field(), instant()).prop_map(|(symbol, interval, field, time)| Identity {
            symbol,
            interval,
            field,
            time,
        })
    }

    /// A second identity equal to the first or one step away from it: another symbol,
    /// interval or field, an instant a microsecond to a day away, or another instant with
    /// the same Cairo wall-clock time.
    fn neighbour(base: Identity) -> impl Strategy<Value = Identity> {
        let micro = Duration::microseconds(1);
        let steps = vec![
            micro,
            -micro,
            Duration::seconds(1),
            Duration::hours(1),
            -Duration::hours(1),
            Duration::days(1),
        ];
        let (b1, b2, b3, b4, b5) = (base.clone(), base.clone(), base.clone(), base.clone(), base.clone());
        prop_oneof![
            1 => Just(base),
            1 => symbol().prop_map(move |symbol| Identity { symbol, ..b1.clone() }),
            1 => interval().prop_map(move |interval| Identity { interval, ..b2.clone() }),
            1 => field().prop_map(move |field| Identity { field, ..b3.clone() }),
            2 => select(steps).prop_map(move |step| Identity { time: b4.time + step, ..b4.clone() }),
            1 => Just(Identity { time: same_wall_clock(b5.time), ..b5 }),
        ]
    }

    /// The latest instant with the same Cairo wall-clock time (itself unless in the fold).
    fn same_wall_clock(t: DateTime<Utc>) -> DateTime<Utc> {
        let local = t.with_timezone(&EXCHANGE_TZ).naive_local();
        EXCHANGE_TZ.from_local_datetime(&local).latest().map_or(t, |l| l.with_timezone(&Utc))
    }

    /// One of the spellings the decoder accepts for an interval.
    fn interval_spelling(interval: Interval) -> impl Strategy<Value = String> {
        let mut names = vec![interval.name(), interval.feed_code(), interval.key_token()];
        if let Interval::Daily | Interval::Weekly | Interval::Monthly = interval {
            names.push(interval.name()[..1].to_string());
        }
        (select(names), any::<bool>()).prop_map(|(n, pad)| if pad { format!(" {n} ") } else { n })
    }

    /// One of the spellings the decoder accepts for an instant: with `Z`, the Cairo offset
    /// or another offset, or as naive Cairo wall-clock time where that is unambiguous.
    fn datetime_spelling(t: DateTime<Utc>) -> impl Strategy<Value = String> {
        let local = t.with_timezone(&EXCHANGE_TZ).naive_local();
        let unambiguous = matches!(EXCHANGE_TZ.from_local_datetime(&local), LocalResult::Single(_));
        (0u8..6, -48i32..=56).prop_map(move |(form, quarter_hours)| {
            let offset = FixedOffset::east_opt(quarter_hours * 900).unwrap();
            match form {
                1 => t.with_timezone(&EXCHANGE_TZ).to_rfc3339_opts(SecondsFormat::AutoSi, false),
                2 => t.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::AutoSi, false),
                3 if unambiguous => local.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
                4 if unambiguous => local.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
                5 if unambiguous && local.time() == chrono::NaiveTime::MIN => {
                    local.format("%Y-%m-%d").to_string()
                }
                _ => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            }
        })
    }

    /// The message bytes of an identity, in one of its spellings and either shape.
    fn message(id: Identity) -> impl Strategy<Value = Vec<u8>> {
        // Plausible values only: the decoder refuses negative and huge ones.
        let price = prop_oneof![0.0..1.0e12f64, Just(0.0)];
        (
            interval_spelling(id.interval),
            datetime_spelling(id.time),
            prop::array::uniform5(price),
            any::<bool>(),
        )
            .prop_map(move |(interval, datetime, [o, h, l, c, v], extras)| {
                let mut m = json!({"symbol": id.symbol, "interval": interval, "datetime": datetime});
                match &id.field {
                    RecordField::Ohlcv => {
                        for (k, x) in [("open", o), ("high", h), ("low", l), ("close", c), ("volume", v)] {
                            m[k] = Value::from(x);
                        }
                    }
                    RecordField::Named(name) => {
                        m["value"] = Value::from(v);
                        m["field"] = Value::from(name.as_str());
                    }
                }
                if extras {
                    // Fields the reader ignores do not change the key.
                    m["exchange"] = json!("EGX");
                    m["schema_version"] = json!(2);
                    m["source"] = json!("synthetic");
                }
                serde_json::to_vec(&m).unwrap()
            })
    }

    /// The default layout, and one that starts with the symbol.
    fn templates() -> [KeyTemplate; 2] {
        [
            KeyTemplate::default(),
            KeyTemplate::new("raw", "{symbol}/{date}/{time}-{interval}-{field}.json").unwrap(),
        ]
    }

    fn decode(bytes: &[u8]) -> MarketRecord {
        MarketRecord::decode(Some(bytes), 1 << 16)
            .unwrap_or_else(|e| panic!("{} must decode: {e}", String::from_utf8_lossy(bytes)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Every valid message decodes to its identity, and the same bytes always give the same key.
        #[test]
        fn valid_messages_decode_to_their_identity_and_a_fixed_key(
            (id, bytes) in identity().prop_flat_map(|id| (Just(id.clone()), message(id))),
        ) {
            let record = decode(&bytes);
            prop_assert_eq!(record.symbol.as_str(), id.symbol.as_str());
            prop_assert_eq!(record.interval, id.interval);
            prop_assert_eq!(&record.field, &id.field);
            prop_assert_eq!(record.time, id.time);
            for template in templates() {
                let key = template.render(&record);
                prop_assert_eq!(&key, &template.render(&decode(&bytes)), "same bytes, same key");
                prop_assert!(key.as_str().starts_with(template.prefix()), "{}", key);
                prop_assert!(!key.as_str().contains("..") && !key.as_str().contains("//"), "{}", key);
            }
        }

        /// One record spelled two ways has one key; records one step apart have two.
        #[test]
        fn keys_differ_exactly_when_identities_differ(
            (a, b, bytes_a, bytes_b) in identity()
                .prop_flat_map(|a| (Just(a.clone()), neighbour(a)))
                .prop_flat_map(|(a, b)| (Just(a.clone()), Just(b.clone()), message(a), message(b))),
        ) {
            for template in templates() {
                let (key_a, key_b) = (template.render(&decode(&bytes_a)), template.render(&decode(&bytes_b)));
                if a == b {
                    prop_assert_eq!(key_a, key_b, "one record, spelled differently, has one key");
                } else {
                    prop_assert_ne!(key_a, key_b, "{:?} and {:?} share a key", a, b);
                }
            }
        }
    }
}
