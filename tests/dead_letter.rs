//! Bad input: the dead-letter topic holds exactly the invalid records — each once, its
//! bytes unchanged, with its reason and its real origin — the valid ones are written,
//! nothing restarts and nothing is written outside the prefix.

use std::collections::BTreeMap;

use egx_actors::supervisor::{PipelineExit, Supervisor};
use egx_actors::KeyTemplate;

use crate::support;
use crate::support::poison::{self, Sent};

/// One poison record of every kind of the poison table goes to the dead-letter topic
/// exactly once, unchanged (cut and flagged past 900 KiB), with its reason and origin;
/// the valid records are written and `egx_actor_restarts_total` stays 0.
#[actix_rt::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn invalid_records_go_to_the_dead_letter_topic_with_a_reason() {
    let (topic, bucket, group) =
        (support::unique("egx-dlq"), support::unique("egx-dlq"), support::unique("g"));
    support::create_topic(&topic, 3).await;
    let poison = poison::every_kind();
    let valid: Vec<&[u8]> = vec![
        br#"{"symbol":"COMI","exchange":"EGX","interval":"Daily","datetime":"2025-01-20T00:00:00","open":45.5,"high":46.2,"low":45.1,"close":46.0,"volume":1250000,"ingestion_timestamp":"2025-01-20T14:30:52.123456"}"#,
        br#"{"symbol":"COMI","interval":"5 Minute","datetime":"2025-01-20T09:35:00","value":45.75,"field":"close","ingestion_timestamp":"2025-01-20T14:30:52.123456"}"#,
        br#"{"symbol":"ETEL","interval":"5 Minute","datetime":"2025-01-20T09:35:00","value":21.5,"field":"open","ingestion_timestamp":"2025-01-20T14:30:52.123456"}"#,
    ];
    let mut all: Vec<(Option<&[u8]>, &[u8])> =
        poison.iter().map(|p| (Some(&b"POISON"[..]), p.payload.as_slice())).collect();
    all.extend(valid.iter().map(|p| (Some(&b"COMI"[..]), *p)));
    let positions = support::produce(&topic, &all).await;
    let sent: BTreeMap<(i32, i64), Sent> = positions
        .iter()
        .zip(&poison)
        .map(|(at, p)| (*at, Sent { key: b"POISON".to_vec(), poison: p.clone() }))
        .collect();

    let mut spec = support::pipeline_spec(&topic, &bucket, &group, &[], 1).await;
    spec.produce = false;
    spec.writer.max_record_bytes = poison::MAX_RECORD_BYTES;
    let metrics = spec.metrics.clone();
    let (_, exit) = Supervisor::start(spec).expect("spec");
    let PipelineExit::Finished(summary) = exit.await.expect("exit") else {
        panic!("pipeline did not finish")
    };
    let exposition = metrics.render();
    assert_eq!(
        support::metric_sum(&exposition, "egx_actor_restarts_total"),
        0.0,
        "bad input restarts nothing"
    );
    assert_eq!(summary.restarts, 0, "bad input restarts nothing");
    assert_eq!(summary.reader.dead_lettered, sent.len() as u64);
    assert_eq!(support::metric_sum(&exposition, "egx_records_dead_lettered_total"), sent.len() as f64);

    let dead = support::read_topic_to_end(&format!("{topic}.dlq"));
    poison::assert_dead_letters(&dead, &topic, &sent);

    let messages = support::read_topic_to_end(&topic);
    assert_eq!(messages.len(), all.len());
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
    let malformed = poison::poison(0);
    let positions = rt.block_on(support::produce(&topic, &[(Some(&b"POISON"[..]), &malformed.payload)]));
    let out = support::binary()
        .args(["consume", "--once", "--bootstrap", &support::kafka(), "--topic", &topic])
        .args(["--bucket", &bucket, "--minio-endpoint", &support::s3_endpoint(), "--consumer-group", &group])
        .env("AWS_ACCESS_KEY_ID", "minioadmin")
        .output()
        .expect("consume runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("dead-lettered:       1 (topic {topic}.dlq)")), "{stdout}");
    let sent = BTreeMap::from([(positions[0], Sent { key: b"POISON".to_vec(), poison: malformed })]);
    poison::assert_dead_letters(&support::read_topic_to_end(&format!("{topic}.dlq")), &topic, &sent);
}
