//! Scenario 5: a slow object store. Every request to S3 goes through a proxy that holds it
//! for 100 ms, so writes fall far behind the reads: partitions reach their in-flight limit
//! and pause, while the consumer keeps polling and heartbeating — it is never evicted
//! from its group (one member, one assignment, for the whole run).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::Row;
use crate::support;
use crate::support::latency_proxy::LatencyProxy;
use crate::support::process::{Peak, Proc};

#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn slow_s3_pauses_partitions_without_eviction() {
    let (topic, bucket, group) =
        (support::unique("rel-slow"), support::unique("rel-slow"), support::unique("g"));
    let kafka = support::kafka();
    let upstream = support::s3_endpoint().trim_start_matches("http://").to_string();
    let delay = Duration::from_millis(100);
    let proxy = LatencyProxy::start(&upstream, delay);
    support::create_topic(&topic, 3).await;
    let total = super::scaled(2_000, 6_000);
    support::bars::publish_bars(&support::idempotent_producer(&kafka), &topic, 0..total).await;

    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        "[writer]\nmax_concurrent_writes = 8\nmax_in_flight_per_partition = 16\ncommit_interval_ms = 200\n",
    );
    let admin = support::free_port();
    // The shortest session the broker allows: an unanswered heartbeat would show quickly.
    let env = [
        ("EGX__SINK__ENDPOINT", proxy.endpoint()),
        ("EGX__ADMIN__LISTEN", format!("127.0.0.1:{admin}")),
        ("EGX__KAFKA__SESSION_TIMEOUT_MS", "6000".to_string()),
    ];
    let peak = Peak::default();
    let start = Instant::now();
    let mut consumer = Proc::spawn(cfg.path(), &["consume"], &env, &peak);
    let (mut members, mut states, mut paused_max) = (BTreeSet::new(), BTreeSet::new(), 0.0_f64);
    let done = support::eventually(Duration::from_secs(600), || {
        if let Some((200, text)) = support::http_get(admin, "/metrics") {
            paused_max = paused_max.max(support::metric_sum(&text, "egx_partition_paused"));
        }
        let (state, ids) = super::group_members(&kafka, &group);
        // From the first stable moment on (the initial join passes through rebalancing).
        if state == "Stable" || !states.is_empty() {
            states.insert(state);
        }
        members.extend(ids);
        let (kafka, group, topic) = (kafka.clone(), group.clone(), topic.clone());
        async move {
            let ends = support::end_offsets_at(&kafka, &topic);
            support::committed_at(&kafka, &group, &topic, 3) == ends
        }
    })
    .await;
    let recover = start.elapsed();
    assert!(consumer.terminate().success(), "the consumer drains and exits cleanly");
    let log = consumer.log_text();
    assert!(done, "everything committed through the slow store:\n{log}");
    assert!(paused_max >= 1.0, "partitions paused behind the slow store");
    assert_eq!(members.len(), 1, "one group member for the whole run (never evicted): {members:?}");
    assert_eq!(states, BTreeSet::from(["Stable".to_string()]), "the group never rebalanced");
    let assignments = log.lines().filter(|l| l.contains("Partitions assigned.")).count();
    assert_eq!(assignments, 1, "partitions assigned once:\n{log}");

    let messages = support::topic::read_topic_to_end(&topic);
    assert_eq!(messages.len(), total);
    let check =
        support::check_bucket(&support::s3().await, &bucket, &messages, &egx_actors::KeyTemplate::default())
            .await;
    Row {
        id: "5-slow-s3",
        scenario: "slow S3 (+100 ms per request)",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "up to {paused_max} partitions paused; 1 member, assigned once, group Stable throughout (session 6 s, run {:.0} s)",
            recover.as_secs_f64()
        ),
    }
    .record_and_check();
}
