//! Scenario 1: `kill -9` of the `consume` process at random moments, round after round,
//! while more messages arrive. After every kill the committed offsets are checked against
//! the bucket (a commit never passes an unwritten record); at the end the bucket is exact.

use std::time::{Duration, Instant};

use rand::Rng;

use super::{Peak, Proc, Row};
use crate::support;

#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn kill_9_of_consume_loses_nothing() {
    let (topic, bucket, group) =
        (support::unique("rel-kill"), support::unique("rel-kill"), support::unique("g"));
    let kafka = support::kafka();
    support::create_topic(&topic, 3).await;
    let rounds = super::scaled(20, 50);
    let (initial, per_round) = super::scaled((3_000, 100), (20_000, 400));
    let producer = support::idempotent_producer(&kafka);
    let mut expected_key = super::publish_bars(&producer, &topic, 0..initial).await;
    let cfg = support::config_file(&topic, &bucket, &group, "[writer]\ncommit_interval_ms = 100\n");
    // Static membership: a restarted process takes its partitions back without waiting for
    // the killed one's session to time out.
    let env = [
        ("EGX__KAFKA__GROUP_INSTANCE_ID", "writer-1".to_string()),
        ("EGX__KAFKA__SESSION_TIMEOUT_MS", "6000".to_string()),
    ];
    let s3 = support::s3().await;
    let peak = Peak::default();
    let mut next = initial;
    let mut checked = Vec::new();
    for _ in 0..rounds {
        expected_key.extend(super::publish_bars(&producer, &topic, next..next + per_round).await);
        next += per_round;
        let mut consumer = Proc::spawn(cfg.path(), &["consume"], &env, &peak);
        // The fault: a kill at a random moment, from before the group join to mid-write.
        let alive = Duration::from_millis(rand::rng().random_range(200..2_500));
        tokio::time::sleep(alive).await;
        consumer.kill9();
        checked.push(
            support::commits_backed_by_objects(&s3, &bucket, &kafka, &group, &topic, &expected_key).await,
        );
    }
    let recovery = Instant::now();
    let mut last = Proc::spawn(cfg.path(), &["consume"], &env, &peak);
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(300)).await;
    let recover = recovery.elapsed();
    assert!(last.terminate().success(), "the last consumer drains and exits cleanly");
    assert!(done, "every message committed after the last restart:\n{}", last.log_text());
    assert!(
        checked.windows(2).filter(|w| w[1] > w[0]).count() > 0,
        "commits advanced between kills: {checked:?}"
    );

    let messages = support::read_topic(&topic, next, Duration::from_secs(60));
    assert_eq!(messages.len(), next);
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    let progressed = checked.windows(2).filter(|w| w[1] > w[0]).count() + usize::from(checked[0] > 0);
    Row {
        id: "1-kill-consume",
        scenario: "kill -9 of consume",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "{rounds} kills at random moments, {progressed} with commits advanced; C<=W held after each"
        ),
    }
    .record_and_check();
}
