//! Scenario 1: `kill -9` of the `consume` process at random moments, round after round,
//! while more messages arrive. After every kill the committed offsets are checked against
//! the bucket (a commit never passes an unwritten record); at the end the bucket is exact.
//!
//! The replay path must really have run, not merely been possible: some rounds must have
//! been killed with objects in the bucket for records at or past the committed offset
//! (written, not yet committed), which the next process reads and writes again. Each
//! process's count of such replays (`egx_object_writes_total{outcome="unchanged"}`: the
//! store fence found the object already written by the same record) is read just before
//! it ends, and their sum must be positive too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::Rng;

use super::Row;
use crate::support;
use crate::support::process::{Peak, Proc};

/// Replays a process reported so far (0 while its admin endpoint is not up yet).
fn replays(admin: u16) -> u64 {
    super::metric(admin, "egx_object_writes_total{outcome=\"unchanged\"}").unwrap_or_default() as u64
}

/// Records at or past the committed offset of their partition whose objects are in the
/// bucket: how many, and how many of those objects were not in `before` (written by the
/// process that was just killed).
fn past_committed(
    expected_key: &BTreeMap<(i32, i64), String>,
    committed: &BTreeMap<i32, i64>,
    keys: &[String],
    before: &BTreeSet<String>,
) -> (usize, usize) {
    let past: Vec<&String> = expected_key
        .iter()
        .filter(|((p, o), key)| committed.get(p).is_none_or(|c| o >= c) && keys.binary_search(key).is_ok())
        .map(|(_, key)| key)
        .collect();
    let fresh = past.iter().filter(|key| !before.contains(**key)).count();
    (past.len(), fresh)
}

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
    let mut expected_key = support::bars::publish_bars(&producer, &topic, 0..initial).await;
    let cfg = support::config_file(&topic, &bucket, &group, "[writer]\ncommit_interval_ms = 100\n");
    // Static membership: a restarted process takes its partitions back without waiting for
    // the killed one's session to time out.
    let env = |admin: u16| {
        [
            ("EGX__KAFKA__GROUP_INSTANCE_ID", "writer-1".to_string()),
            ("EGX__KAFKA__SESSION_TIMEOUT_MS", "6000".to_string()),
            ("EGX__ADMIN__LISTEN", format!("127.0.0.1:{admin}")),
        ]
    };
    let s3 = support::s3().await;
    let peak = Peak::default();
    let mut next = initial;
    let (mut checked, mut past_rounds, mut fresh_rounds, mut replayed) = (Vec::new(), 0, 0, 0);
    let mut past_max = 0;
    for _ in 0..rounds {
        expected_key.extend(support::bars::publish_bars(&producer, &topic, next..next + per_round).await);
        next += per_round;
        let before: BTreeSet<String> =
            support::list_keys(&s3, &bucket, "streaming/").await.into_iter().collect();
        let admin = support::free_port();
        let mut consumer = Proc::spawn(cfg.path(), &["consume"], &env(admin), &peak);
        // The fault: a kill at a random moment, from before the group join to mid-write.
        let alive = Duration::from_millis(rand::rng().random_range(200..2_500));
        tokio::time::sleep(alive).await;
        replayed += replays(admin);
        consumer.kill9();
        checked.push(
            support::commits_backed_by_objects(&s3, &bucket, &kafka, &group, &topic, &expected_key).await,
        );
        // Written but not committed when it died: the next process replays these.
        let committed = support::committed_at(&kafka, &group, &topic, 3);
        let keys = support::list_keys(&s3, &bucket, "streaming/").await;
        let (past, fresh) = past_committed(&expected_key, &committed, &keys, &before);
        past_rounds += usize::from(past > 0);
        fresh_rounds += usize::from(fresh > 0);
        past_max = past_max.max(past);
    }
    let recovery = Instant::now();
    let admin = support::free_port();
    let mut last = Proc::spawn(cfg.path(), &["consume"], &env(admin), &peak);
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(300)).await;
    let recover = recovery.elapsed();
    replayed += replays(admin);
    assert!(last.terminate().success(), "the last consumer drains and exits cleanly");
    assert!(done, "every message committed after the last restart:\n{}", last.log_text());
    assert!(
        checked.windows(2).filter(|w| w[1] > w[0]).count() > 0,
        "commits advanced between kills: {checked:?}"
    );
    assert!(past_rounds > 0, "no kill left objects written past the committed offset: {checked:?}");
    assert!(replayed > 0, "objects past the committed offset were never written again by a later process");

    let messages = support::topic::read_topic_to_end(&topic);
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
            "{rounds} kills at random moments, {progressed} with commits advanced; C<=W held after each; \
             {past_rounds} killed with objects past the committed offset ({fresh_rounds} written by the \
             killed process itself, up to {past_max}), {replayed} replayed by the next process (unchanged)"
        ),
    }
    .record_and_check();
}
