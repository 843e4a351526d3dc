//! Property tests of rendering: any valid message, in either shape and any accepted
//! spelling of its interval and datetime, decodes; its key is a pure function of the
//! record; and records that differ in symbol, interval, field or instant never share
//! a key (so a replay rewrites the same object and nothing else).

use super::*;
use crate::contract::market::Interval;
use crate::contract::record::RecordField;
use chrono::{DateTime, Duration, FixedOffset, LocalResult, NaiveDate, Offset, SecondsFormat, TimeZone, Utc};
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
    (1..17 * 24).map(|h| start + Duration::hours(h)).find(|t| offset(*t - Duration::hours(1)) != offset(*t))
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
    let steps =
        vec![micro, -micro, Duration::seconds(1), Duration::hours(1), -Duration::hours(1), Duration::days(1)];
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
    (interval_spelling(id.interval), datetime_spelling(id.time), prop::array::uniform5(price), any::<bool>())
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
