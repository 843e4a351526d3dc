//! Bad input: every invalid record lands in the dead-letter topic with its reason, the
//! valid ones are written, nothing crashes and nothing is written outside the prefix.

use std::time::Duration;

use egx_actors::supervisor::{PipelineExit, Supervisor};
use egx_actors::writer::dead_letter_headers;
use egx_actors::KeyTemplate;
use rdkafka::message::Message;

use crate::support;

/// Poison records (malformed JSON, wrong types, huge payloads, unsafe symbols, invalid
/// UTF-8, duplicate keys, no payload) go to the dead-letter topic with a reason.
#[actix_rt::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn invalid_records_go_to_the_dead_letter_topic_with_a_reason() {
    let (topic, bucket, group) =
        (support::unique("egx-dlq"), support::unique("egx-dlq"), support::unique("g"));
    support::create_topic(&topic, 3).await;
    let huge = format!(
        r#"{{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1,"pad":"{}"}}"#,
        "x".repeat(200_000)
    );
    let poison: Vec<(&[u8], &str)> = vec![
        (b"{\"symbol\":\"COMI\"", "not a valid market message"),
        (br#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20","open":"45","high":1,"low":1,"close":1}"#, "invalid type"),
        (huge.as_bytes(), "exceeds the limit"),
        (br#"{"symbol":"../../etc","interval":"Daily","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1}"#, "invalid symbol"),
        (br#"{"symbol":"A/B","interval":"Daily","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1}"#, "invalid symbol"),
        (b"{\"symbol\":\"CO\xffMI\",\"interval\":\"Daily\"}", "not a valid market message"),
        (br#"{"symbol":"COMI","symbol":"ETEL","interval":"Daily","datetime":"2025-01-20","open":1,"high":1,"low":1,"close":1}"#, "duplicate field"),
        (b"", "not a valid market message"),
    ];
    let valid: Vec<&[u8]> = vec![
        br#"{"symbol":"COMI","exchange":"EGX","interval":"Daily","datetime":"2025-01-20T00:00:00","open":45.5,"high":46.2,"low":45.1,"close":46.0,"volume":1250000,"ingestion_timestamp":"2025-01-20T14:30:52.123456"}"#,
        br#"{"symbol":"COMI","interval":"5 Minute","datetime":"2025-01-20T09:35:00","value":45.75,"field":"close","ingestion_timestamp":"2025-01-20T14:30:52.123456"}"#,
        br#"{"symbol":"ETEL","interval":"5 Minute","datetime":"2025-01-20T09:35:00","value":21.5,"field":"open","ingestion_timestamp":"2025-01-20T14:30:52.123456"}"#,
    ];
    let mut all: Vec<(Option<&[u8]>, &[u8])> =
        poison.iter().map(|(p, _)| (Some(&b"POISON"[..]), *p)).collect();
    all.extend(valid.iter().map(|p| (Some(&b"COMI"[..]), *p)));
    support::produce(&topic, &all).await;

    let mut spec = support::pipeline_spec(&topic, &bucket, &group, &[], 1).await;
    spec.produce = false;
    spec.writer.max_record_bytes = 64 * 1024;
    let (_, exit) = Supervisor::start(spec).expect("spec");
    let PipelineExit::Finished(summary) = exit.await.expect("exit") else {
        panic!("pipeline did not finish")
    };
    assert_eq!(summary.restarts, 0, "bad input crashes nothing");
    assert_eq!(summary.reader.dead_lettered, poison.len() as u64);

    let dead = support::read_topic(&format!("{topic}.dlq"), poison.len(), Duration::from_secs(30));
    assert_eq!(dead.len(), poison.len());
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|m| support::header(m, dead_letter_headers::REASON).expect("reason header"))
        .collect();
    for (_, expected) in &poison {
        let at = reasons
            .iter()
            .position(|r| r.contains(expected))
            .unwrap_or_else(|| panic!("no reason with {expected:?} in {reasons:?}"));
        reasons.remove(at);
    }
    for m in &dead {
        assert_eq!(support::header(m, dead_letter_headers::TOPIC).as_deref(), Some(topic.as_str()));
        assert!(support::header(m, dead_letter_headers::OFFSET).is_some());
        assert_eq!(m.key(), Some(&b"POISON"[..]), "original key kept");
    }

    let messages = support::read_topic(&topic, all.len(), Duration::from_secs(30));
    let s3 = support::s3().await;
    let check = support::check_bucket(&s3, &bucket, &messages, &KeyTemplate::default()).await;
    assert!(check.is_exact(), "{check:?}");
    assert_eq!(check.objects, valid.len());
    assert_eq!(support::list_keys(&s3, &bucket, "").await.len(), valid.len(), "nothing outside the prefix");
}

/// `consume --topic X` without a dead-letter topic configured dead-letters into `X.dlq`,
/// not into the default topic's `egx_market_data.dlq`.
#[test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
fn the_dead_letter_topic_follows_the_topic_flag() {
    let (topic, bucket, group) =
        (support::unique("egx-dlqflag"), support::unique("egx-dlqflag"), support::unique("g"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(support::create_topic(&topic, 1));
    rt.block_on(support::produce(&topic, &[(Some(&b"POISON"[..]), &b"{not json"[..])]));
    let out = support::binary()
        .args(["consume", "--once", "--bootstrap", &support::kafka(), "--topic", &topic])
        .args(["--bucket", &bucket, "--minio-endpoint", &support::s3_endpoint(), "--consumer-group", &group])
        .env("AWS_ACCESS_KEY_ID", "minioadmin")
        .output()
        .expect("consume runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("dead-lettered:       1 (topic {topic}.dlq)")), "{stdout}");
    let dead = support::read_topic(&format!("{topic}.dlq"), 1, Duration::from_secs(30));
    assert_eq!(dead.len(), 1, "the poison record is in {topic}.dlq");
    assert_eq!(dead[0].payload(), Some(&b"{not json"[..]));
}
