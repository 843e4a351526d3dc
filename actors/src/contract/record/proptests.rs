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
        "symbol" => {
            prop_oneof![3 => "[A-Z0-9][A-Z0-9._-]{0,10}", 1 => hostile_text()].prop_map(Value::from).boxed()
        }
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
        (309u32..100_000, any::<bool>()).prop_map(|(e, neg)| format!("{}1e{e}", if neg { "-" } else { "" })),
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
