//! Scenario 7: poison messages mixed into a stream of valid ones — malformed JSON, wrong
//! types, huge payloads, unsafe symbols, invalid UTF-8, duplicate keys, implausible
//! prices, empty payloads. Every poison message lands in the dead-letter topic with its
//! reason and origin; every valid one is written; nothing stops.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use egx_actors::writer::dead_letter_headers;

use super::{Peak, Proc, Row};
use crate::support;

/// Poison message `i` of kind `i % 8`, and the words its dead-letter reason must contain.
fn poison(i: usize) -> (Vec<u8>, &'static str) {
    let bar = |symbol: &str, open: &str| {
        format!(
            r#"{{"symbol":"{symbol}","interval":"Daily","datetime":"2025-01-20","open":{open},"high":1,"low":1,"close":1,"volume":{i}}}"#
        )
    };
    match i % 8 {
        0 => (format!("{{\"symbol\":\"COMI\",\"n\":{i}").into_bytes(), "not a valid market message"),
        1 => (bar("COMI", "\"45\"").into_bytes(), "invalid type"),
        2 => (
            format!(
                r#"{{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20","pad":"{}"}}"#,
                "x".repeat(100_000 + i)
            )
            .into_bytes(),
            "exceeds the limit",
        ),
        3 => (bar("../../etc", "1").into_bytes(), "invalid symbol"),
        4 => {
            let mut p = bar("CO_MI", "1").into_bytes();
            p[13] = 0xff;
            (p, "not a valid market message")
        }
        5 => (bar("COMI\",\"symbol\":\"ETEL", "1").into_bytes(), "duplicate field"),
        6 => (bar("COMI", "-5").into_bytes(), "not a plausible value"),
        _ => (Vec::new(), "not a valid market message"),
    }
}

#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn poison_goes_to_the_dead_letter_topic_and_the_rest_is_written() {
    let (topic, bucket, group) =
        (support::unique("rel-dlq"), support::unique("rel-dlq"), support::unique("g"));
    let kafka = support::kafka();
    support::create_topic(&topic, 3).await;
    let (valid, every) = super::scaled((3_000, 25), (10_000, 25));
    // Poison keys name their kind's expected reason; the dead-letter topic keeps the key.
    let mut reasons = BTreeMap::new();
    let mut stream = Vec::new();
    for i in 0..valid {
        if i % every == 0 {
            let n = i / every;
            let (payload, reason) = poison(n);
            let key = format!("POISON-{n}");
            reasons.insert(key.clone(), reason);
            stream.push((key, payload));
        }
        let (key, payload) = super::bar(i);
        stream.push((key, payload.into_bytes()));
    }
    let total = stream.len();
    support::publish(&support::idempotent_producer(&kafka), &topic, stream).await;

    let cfg = support::config_file(&topic, &bucket, &group, "[writer]\nmax_record_bytes = 65536\n");
    let peak = Peak::default();
    let start = Instant::now();
    let mut consumer = Proc::spawn(cfg.path(), &["consume"], &[], &peak);
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(180)).await;
    let recover = start.elapsed();
    assert!(consumer.terminate().success(), "the consumer drains and exits cleanly");
    let log = consumer.log_text();
    assert!(done, "everything committed:\n{log}");
    assert!(!log.contains("Actor ended unexpectedly"), "bad input crashes nothing:\n{log}");

    let dead = support::read_topic(&format!("{topic}.dlq"), reasons.len(), Duration::from_secs(60));
    assert_eq!(dead.len(), reasons.len(), "every poison message dead-lettered once");
    for m in &dead {
        let key = String::from_utf8_lossy(rdkafka::message::Message::key(m).unwrap_or_default()).into_owned();
        let expected = reasons.get(&key).unwrap_or_else(|| panic!("{key} is not a poison message"));
        let reason = support::header(m, dead_letter_headers::REASON).expect("reason header");
        assert!(reason.contains(expected), "{key}: reason {reason:?} lacks {expected:?}");
        assert_eq!(support::header(m, dead_letter_headers::TOPIC).as_deref(), Some(topic.as_str()));
        assert!(support::header(m, dead_letter_headers::OFFSET).is_some(), "{key}: origin offset");
    }

    let messages = support::read_topic(&topic, total, Duration::from_secs(60));
    assert_eq!(messages.len(), total);
    let s3 = support::s3().await;
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    assert_eq!(check.expected_objects, valid, "only the valid messages map to objects");
    assert_eq!(support::list_keys(&s3, &bucket, "").await.len(), check.objects, "nothing outside the prefix");
    Row {
        id: "7-poison",
        scenario: "poison mixed in",
        messages: total,
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "{} poison of 8 kinds -> {} dead-lettered, each with its reason",
            reasons.len(),
            dead.len()
        ),
    }
    .record_and_check();
}
