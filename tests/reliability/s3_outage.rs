//! Scenario 3: the S3 server stops for 30 s while messages keep arriving, then comes back.
//! Consumption pauses (partitions at their in-flight limit are paused, so the records held
//! in memory stay bounded), everything resumes, nothing is lost.
//!
//! The bounds are asserted, and the scenario is built so that a consumer without them
//! fails: the consumer has caught up when the store stops, and the bars that arrive during
//! the outage are padded to [`RECORD_BYTES`] each and add up to more than twice
//! [`rss_bound`], so one that kept reading would hold more than the bound allows. Asserted
//! while the store is down: every partition paused with its in-flight records at the
//! limit and never above it (`egx_in_flight_records{partition}`, per label), and resident
//! memory (the process's own high-water mark) grown by at most [`rss_bound`] over what it
//! was just before the outage. After it, every committed offset is backed by its object.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::Row;
use crate::support;
use crate::support::process::{Peak, Proc};

/// Records one partition may hold unconfirmed (the writer's limit in this scenario).
const IN_FLIGHT_LIMIT: usize = 16;
/// Partitions of the topic.
const PARTITIONS: i32 = 3;
/// Size of every bar published while the store is down.
const RECORD_BYTES: usize = 64 * 1024;
/// librdkafka's prefetch for one partition: `queued.max.messages.kbytes` = 8192 (set in
/// actors/src/kafka/mod.rs), which a fetch may overshoot by `max.partition.fetch.bytes`
/// (1 MiB). librdkafka documents the limit as one for the whole queue of a subscribed
/// consumer; counting it per partition keeps the bound on the safe side.
const PREFETCH_BYTES: u64 = (8192 + 1024) * 1024;
/// Copies of a record held while its write is retried: the record in the reader's
/// request, the body the S3Writer hands to the SDK, and the request the SDK builds.
const COPIES: u64 = 3;
/// Room for everything else that moves while the store is down: the allocator's arenas
/// (freed records are not always returned to the system), retry timers and connection
/// attempts, metrics and logging.
const SLACK_BYTES: u64 = 16 << 20;
/// Longest the outage may be extended waiting for every partition to reach its limit.
const HANG_GUARD: Duration = Duration::from_secs(180);

/// How much resident memory may grow while the store is down. Per partition: what
/// librdkafka had prefetched when the partition paused, and as much again in the reader's
/// backlog (records the polling thread had already handed over before the pause took
/// effect: pausing drops librdkafka's queue, not what left it), and the records held in
/// flight; plus slack. With the values above, 3 × (2 × 9 MiB + 16 × 64 KiB × 3) + 16 MiB
/// = 79 MiB. (Measured on this machine: 48–56 MiB whether 100, 156 or 312 MiB arrived.)
fn rss_bound() -> u64 {
    let in_flight = (IN_FLIGHT_LIMIT * RECORD_BYTES) as u64 * COPIES;
    PARTITIONS as u64 * (2 * PREFETCH_BYTES + in_flight) + SLACK_BYTES
}

/// A labelled gauge per partition in one metrics exposition.
fn per_partition(text: &str, name: &str) -> BTreeMap<i32, f64> {
    (0..PARTITIONS).map(|p| (p, support::metric_sum(text, &format!("{name}{{partition=\"{p}\"}}")))).collect()
}

/// Per partition the larger of two samples.
fn max_into(into: &mut BTreeMap<i32, f64>, sample: &BTreeMap<i32, f64>) {
    for (p, v) in sample {
        let at = into.entry(*p).or_insert(0.0);
        *at = at.max(*v);
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn s3_outage_pauses_and_resumes_without_loss() {
    let (topic, bucket, group) = (support::unique("rel-s3"), support::unique("rel-s3"), support::unique("g"));
    let kafka = support::kafka();
    let mut server = support::PrivateS3::start();
    let s3 = support::s3_at(&server.endpoint()).await;
    support::create_topic(&topic, PARTITIONS).await;
    let (before, during) = super::scaled((3_000, 3_000), (10_000, 6_000));
    let outage = Duration::from_secs(30);
    // A consumer that did not pause would read all of it while the store is down.
    let arriving = (during * RECORD_BYTES) as u64;
    assert!(arriving >= 2 * rss_bound(), "the outage's {arriving} bytes must dwarf the bound");
    let producer = support::idempotent_producer(&kafka);
    let mut expected_key = support::bars::publish_bars(&producer, &topic, 0..before).await;

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
    // Caught up first: the records the consumer holds while the store is down are then
    // the large ones that arrive during the outage.
    let caught_up = super::all_committed(&kafka, &group, &topic, Duration::from_secs(120)).await;
    assert!(caught_up, "the consumer writes everything before the outage:\n{}", consumer.log_text());
    let rss_before = support::process::proc_kib(consumer.pid(), "VmRSS:").expect("consumer running");

    server.stop();
    let down = Instant::now();
    expected_key.extend(
        support::bars::publish_padded_bars(&producer, &topic, before..before + during, RECORD_BYTES).await,
    );
    // Watch the consumer for the length of the outage, and on until every partition is
    // at its limit: that is the pressure the bounds are about.
    let (mut paused_max, mut in_flight_max) = (BTreeMap::new(), BTreeMap::new());
    let mut rss_max = rss_before;
    loop {
        if let Some((200, text)) = support::http_get(admin, "/metrics") {
            max_into(&mut paused_max, &per_partition(&text, "egx_partition_paused"));
            max_into(&mut in_flight_max, &per_partition(&text, "egx_in_flight_records"));
        }
        rss_max = rss_max.max(support::process::proc_kib(consumer.pid(), "VmRSS:").unwrap_or_default());
        let pressed = (0..PARTITIONS).all(|p| {
            paused_max.get(&p) == Some(&1.0) && in_flight_max.get(&p) >= Some(&(IN_FLIGHT_LIMIT as f64))
        });
        if pressed && down.elapsed() >= outage {
            break;
        }
        assert!(
            down.elapsed() < HANG_GUARD,
            "every partition paused at its limit while the store is down: paused {paused_max:?}, \
             in flight {in_flight_max:?}:\n{}",
            consumer.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let down_for = down.elapsed();
    let hwm = support::process::proc_kib(consumer.pid(), "VmHWM:").expect("consumer running");
    let committed_during = support::committed(&group, &topic, PARTITIONS);
    server.resume();
    let back = Instant::now();
    let backed =
        support::commits_backed_by_objects(&s3, &bucket, &kafka, &group, &topic, &expected_key).await;
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(300)).await;
    let recover = back.elapsed();
    assert!(consumer.terminate().success(), "the consumer drains and exits cleanly");
    assert!(done, "everything committed after the store came back:\n{}", consumer.log_text());

    // The bounds, per partition and in memory.
    for p in 0..PARTITIONS {
        let in_flight = in_flight_max.get(&p).copied().unwrap_or_default();
        assert!(
            in_flight <= IN_FLIGHT_LIMIT as f64,
            "partition {p}: {in_flight} records in flight, limit {IN_FLIGHT_LIMIT}: {in_flight_max:?}"
        );
    }
    let grown = hwm.saturating_sub(rss_before) * 1024;
    assert!(
        grown <= rss_bound(),
        "resident memory grew by {:.1} MiB while the store was down ({:.0} -> peak {:.0} MiB), bound {:.0} \
         MiB; {:.0} MiB arrived",
        grown as f64 / f64::from(1 << 20),
        mib(rss_before),
        mib(hwm),
        rss_bound() as f64 / f64::from(1 << 20),
        arriving as f64 / f64::from(1 << 20)
    );

    let messages = support::topic::read_topic_to_end(&topic);
    assert_eq!(messages.len(), before + during);
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    Row {
        id: "3-s3-outage",
        scenario: "S3 server down 30 s",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "down {:.0} s; {during} bars of {} KiB ({:.0} MiB) arrived meanwhile; every partition paused, \
             in flight max {in_flight_max:?} (limit {IN_FLIGHT_LIMIT} each); RSS {:.0} -> max {:.0} MiB sampled, \
             high-water {:.0} MiB: +{:.1} MiB (bound {:.0}); committed while down {committed_during:?}; \
             C<=W held after the outage ({backed} commits checked)",
            down_for.as_secs_f64(),
            RECORD_BYTES / 1024,
            arriving as f64 / f64::from(1 << 20),
            mib(rss_before),
            mib(rss_max),
            mib(hwm),
            grown as f64 / f64::from(1 << 20),
            rss_bound() as f64 / f64::from(1 << 20),
        ),
    }
    .record_and_check();
}
