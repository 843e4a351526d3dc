//! Scenario 3: the S3 server stops for 30 s mid-run while messages keep arriving, then
//! comes back. Consumption pauses (partitions at their in-flight limit are paused, so the
//! records held in memory stay bounded), everything resumes, nothing is lost.

use std::time::{Duration, Instant};

use super::{Peak, Proc, Row};
use crate::support;

/// Records one partition may hold unconfirmed (the writer's limit in this scenario).
const IN_FLIGHT_LIMIT: usize = 64;

#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn s3_outage_pauses_and_resumes_without_loss() {
    let (topic, bucket, group) = (support::unique("rel-s3"), support::unique("rel-s3"), support::unique("g"));
    let kafka = support::kafka();
    let mut server = support::PrivateS3::start();
    let s3 = support::s3_at(&server.endpoint()).await;
    support::create_topic(&topic, 3).await;
    let (before, during) = super::scaled((3_000, 1_500), (10_000, 5_000));
    let outage = Duration::from_secs(30);
    let producer = support::idempotent_producer(&kafka);
    super::publish_bars(&producer, &topic, 0..before).await;

    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        &format!("[writer]\ncommit_interval_ms = 100\nmax_in_flight_per_partition = {IN_FLIGHT_LIMIT}\n"),
    );
    let admin = support::free_port();
    let env =
        [("EGX__SINK__ENDPOINT", server.endpoint()), ("EGX__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))];
    let peak = Peak::default();
    let mut consumer = Proc::spawn(cfg.path(), &["consume"], &env, &peak);
    let writing = support::eventually(Duration::from_secs(60), || async {
        support::list_keys(&s3, &bucket, "streaming/").await.len() >= 300
    })
    .await;
    assert!(writing, "the consumer writes before the outage:\n{}", consumer.log_text());
    let rss_before = super::proc_kib(consumer.pid(), "VmRSS:").unwrap_or_default();

    server.stop();
    let down = Instant::now();
    super::publish_bars(&producer, &topic, before..before + during).await;
    // Watch the consumer for the length of the outage.
    let (mut paused_max, mut in_flight_max, mut rss_max) = (0.0_f64, 0.0_f64, 0);
    while down.elapsed() < outage {
        if let Some((200, text)) = support::http_get(admin, "/metrics") {
            paused_max = paused_max.max(support::metric_sum(&text, "egx_partition_paused"));
            in_flight_max = in_flight_max.max(support::metric_sum(&text, "egx_in_flight_records"));
        }
        rss_max = rss_max.max(super::proc_kib(consumer.pid(), "VmRSS:").unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let committed_during = support::committed(&group, &topic, 3);
    server.resume();
    let back = Instant::now();
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(180)).await;
    let recover = back.elapsed();
    assert!(consumer.terminate().success(), "the consumer drains and exits cleanly");
    assert!(done, "everything committed after the store came back:\n{}", consumer.log_text());
    assert!(paused_max >= 1.0, "partitions paused while the store was down");
    assert!(
        in_flight_max <= (3 * IN_FLIGHT_LIMIT) as f64,
        "in-flight records bounded by the limit: {in_flight_max}"
    );

    let total = before + during;
    let messages = support::read_topic(&topic, total, Duration::from_secs(60));
    assert_eq!(messages.len(), total);
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    Row {
        id: "3-s3-outage",
        scenario: "S3 server down 30 s",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "{during} arrived during the outage; up to {paused_max} partitions paused, in-flight max {in_flight_max} (limit {}); RSS {:.0} -> max {:.0} MiB while down; committed while down {committed_during:?}",
            3 * IN_FLIGHT_LIMIT,
            rss_before as f64 / 1024.0,
            rss_max as f64 / 1024.0
        ),
    }
    .record_and_check();
}
