//! Scenario 7: poison messages mixed into a stream of valid ones — every kind of the poison
//! table (malformed JSON, wrong types, huge payloads and one beyond the dead-letter cut,
//! unsafe symbols, invalid UTF-8, duplicate keys, implausible prices, empty payloads).
//! The dead-letter topic holds exactly the poison, each once, unchanged, with its reason
//! and its real origin; every valid message is written; no actor restarts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Row;
use crate::support::poison::{self, Sent};
use crate::support::process::{Peak, Proc};
use crate::support::{self, bars};

/// The dead-letter topic is exactly the poison (by source partition and offset), unchanged
/// and with its reason; the bucket is exactly the valid messages; `egx_actor_restarts_total`
/// stays 0.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn poison_goes_to_the_dead_letter_topic_and_the_rest_is_written() {
    let (topic, bucket, group) =
        (support::unique("rel-dlq"), support::unique("rel-dlq"), support::unique("g"));
    let kafka = support::kafka();
    support::create_topic(&topic, 3).await;
    let (valid, every) = super::scaled((3_000, 25), (10_000, 25));
    let mut stream = Vec::new();
    let mut poisons = Vec::new();
    for i in 0..valid {
        if i % every == 0 {
            let n = i / every;
            let p = poison::poison(n);
            stream.push((format!("POISON-{n}"), p.payload.clone()));
            poisons.push((stream.len() - 1, p));
        }
        let (key, payload) = bars::bar(i);
        stream.push((key, payload.into_bytes()));
    }
    let total = stream.len();
    let keys: Vec<String> = stream.iter().map(|(k, _)| k.clone()).collect();
    let positions = support::publish(&support::idempotent_producer(&kafka), &topic, stream).await;
    let sent: BTreeMap<(i32, i64), Sent> = poisons
        .into_iter()
        .map(|(at, p)| (positions[at], Sent { key: keys[at].clone().into(), poison: p }))
        .collect();

    let max_bytes = poison::MAX_RECORD_BYTES;
    let cfg =
        support::config_file(&topic, &bucket, &group, &format!("[writer]\nmax_record_bytes = {max_bytes}\n"));
    let admin = support::free_port();
    let peak = Peak::default();
    let start = Instant::now();
    let env = [("EGX__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))];
    let mut consumer = Proc::spawn(cfg.path(), &["consume"], &env, &peak);
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(180)).await;
    let recover = start.elapsed();
    let dead_lettered = super::metric(admin, "egx_records_dead_lettered_total");
    let restarts = super::metric(admin, "egx_actor_restarts_total");
    assert!(consumer.terminate().success(), "the consumer drains and exits cleanly");
    let log = consumer.log_text();
    assert!(done, "everything committed:\n{log}");
    assert_eq!(dead_lettered, Some(sent.len() as f64), "the metrics of this run are read:\n{log}");
    assert_eq!(restarts, Some(0.0), "bad input restarts no actor:\n{log}");

    let dead = support::read_topic_to_end(&format!("{topic}.dlq"));
    poison::assert_dead_letters(&dead, &topic, &sent);

    let messages = support::read_topic_to_end(&topic);
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
            "{} poison of {} kinds -> exactly those {} offsets dead-lettered, unchanged, each with its reason",
            sent.len(),
            poison::KINDS,
            dead.len()
        ),
    }
    .record_and_check();
}
