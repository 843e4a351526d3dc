//! Scenario 8: a rebalance while partitions are paused. The store is down, so every
//! partition of member A sits paused at its in-flight limit; a second member joins and
//! leaves (two rebalances, each revoking A's partitions after a short drain); then the
//! store comes back. librdkafka keeps an application's pause across unassign/assign, so a
//! partition revoked while paused and assigned again stays silent unless the reader
//! resumes it itself (DESIGN.md rule 9): the commit must still reach the topic's end.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::Row;
use crate::support;
use crate::support::process::{Peak, Proc};

/// Records one partition may hold unconfirmed: tiny, so every partition pauses at once.
const IN_FLIGHT_LIMIT: usize = 2;

/// A second group member that joins, takes some partitions and leaves without writing or
/// committing anything: all it does is make the group rebalance twice.
fn join_and_leave(bootstrap: &str, group: &str, topic: &str) {
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("second member");
    member.subscribe(&[topic]).expect("subscribe");
    let start = Instant::now();
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "the second member never got a partition");
        let _ = member.poll(Duration::from_millis(100));
    }
    // Dropping the consumer closes it: it leaves the group at once.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn rebalance_while_paused_loses_no_partition() {
    let (topic, bucket, group) =
        (support::unique("rel-pause"), support::unique("rel-pause"), support::unique("g"));
    let kafka = support::kafka();
    let mut server = support::PrivateS3::start();
    let s3 = support::s3_at(&server.endpoint()).await;
    support::create_topic(&topic, 3).await;
    let total = super::scaled(600, 3_000);
    let producer = support::idempotent_producer(&kafka);
    support::bars::publish_bars(&producer, &topic, 0..total / 10).await;

    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        &format!(
            "[writer]\ncommit_interval_ms = 100\ndrain_timeout_ms = 1000\nretry_max_ms = 500\nmax_in_flight_per_partition = {IN_FLIGHT_LIMIT}\n"
        ),
    );
    let admin = support::free_port();
    let env = [
        ("EGX__SINK__ENDPOINT", server.endpoint()),
        ("EGX__ADMIN__LISTEN", format!("127.0.0.1:{admin}")),
        ("EGX__KAFKA__SESSION_TIMEOUT_MS", "6000".to_string()),
    ];
    let peak = Peak::default();
    let mut a = Proc::spawn(cfg.path(), &["consume"], &env, &peak);
    let writing = support::eventually(Duration::from_secs(60), || async {
        !support::list_keys(&s3, &bucket, "streaming/").await.is_empty()
    })
    .await;
    assert!(writing, "A writes while the store is up:\n{}", a.log_text());

    // The fault: the store goes away and the rest of the messages arrive, so every
    // partition fills its in-flight slots and pauses.
    server.stop();
    support::bars::publish_bars(&producer, &topic, total / 10..total).await;
    let all_paused = support::eventually(Duration::from_secs(60), || async {
        super::metric(admin, "egx_partition_paused") == Some(3.0)
    })
    .await;
    assert!(all_paused, "every partition of A paused while the store is down:\n{}", a.log_text());

    // A second member joins (A's paused partitions are revoked and some re-assigned) and
    // leaves (everything goes back to A).
    let (b, g, t) = (kafka.clone(), group.clone(), topic.clone());
    tokio::task::spawn_blocking(move || join_and_leave(&b, &g, &t)).await.expect("second member");
    let all_back = support::eventually(Duration::from_secs(60), || async {
        super::metric(admin, "egx_assigned_partitions") == Some(3.0)
            && super::group_members(&kafka, &group).1.len() == 1
    })
    .await;
    assert!(all_back, "A holds every partition again after the second member left:\n{}", a.log_text());

    server.resume();
    let back = Instant::now();
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(120)).await;
    let recover = back.elapsed();
    let committed = support::committed(&group, &topic, 3);
    assert!(a.terminate().success(), "A drains and exits cleanly");
    assert!(
        done,
        "the commit reaches the end of every partition once the store is back (committed {committed:?}, end {:?}):\n{}",
        support::end_offsets(&topic),
        a.log_text()
    );

    let messages = support::read_topic_to_end(&topic);
    assert_eq!(messages.len(), total);
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    Row {
        id: "8-rebalance-paused",
        scenario: "rebalance while paused",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "store down, all 3 partitions paused at the in-flight limit ({IN_FLIGHT_LIMIT}); a second member joined and left (drain 1 s); store back"
        ),
    }
    .record_and_check();
}
