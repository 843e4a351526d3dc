//! Scenario 9: a zombie writer. Member A's requests to the store are held in a proxy while
//! it writes version 1 of a bar; member B joins, A's revoke drain times out and B takes the
//! partition over; version 2 of the same bar arrives and B writes both versions and
//! commits past them. Then A's held requests reach the store. A write that outlived its
//! assignment must not roll the object back to version 1 (DESIGN.md rule 10): the
//! assignment's writes are cancelled when it ends, and the store refuses to let an older
//! offset replace a newer one.

use std::time::{Duration, Instant};

use super::Row;
use crate::support;
use crate::support::latency_proxy::LatencyProxy;
use crate::support::process::{Peak, Proc};

/// Bars published before the fault (bar 0 is the one that gets a second version).
const BARS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn a_zombie_write_never_rolls_an_object_back() {
    let (topic, bucket, group) =
        (support::unique("rel-zombie"), support::unique("rel-zombie"), support::unique("g"));
    let kafka = support::kafka();
    let s3 = support::s3().await;
    let proxy = LatencyProxy::start(support::s3_endpoint().trim_start_matches("http://"), Duration::ZERO);
    // One partition: whoever owns it owns every bar.
    support::create_topic(&topic, 1).await;
    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        "[writer]\ncommit_interval_ms = 100\ndrain_timeout_ms = 1000\n",
    );
    let peak = Peak::default();
    let (admin_a, admin_b) = (support::free_port(), support::free_port());
    // Static members: the range assignor orders them by instance id, so B takes the
    // partition from A as soon as it joins.
    let member = |name: &str, admin: u16, endpoint: String| {
        vec![
            ("EGX__KAFKA__GROUP_INSTANCE_ID", name.to_string()),
            ("EGX__KAFKA__SESSION_TIMEOUT_MS", "6000".to_string()),
            ("EGX__ADMIN__LISTEN", format!("127.0.0.1:{admin}")),
            ("EGX__SINK__ENDPOINT", endpoint),
            ("EGX__LOG__LEVEL", "DEBUG".to_string()),
        ]
    };
    let mut a =
        Proc::spawn(cfg.path(), &["consume"], &member("z-member-a", admin_a, proxy.endpoint()), &peak);
    let ready = support::eventually(Duration::from_secs(60), || async {
        matches!(support::http_get(admin_a, "/readyz"), Some((200, _)))
    })
    .await;
    assert!(ready, "A is ready:\n{}", a.log_text());

    // A's writes leave it but do not reach the store.
    proxy.hold();
    let producer = support::idempotent_producer(&kafka);
    let keys = support::bars::publish_bars(&producer, &topic, 0..BARS).await;
    let held_puts = || proxy.requests().iter().filter(|r| r.held && r.line.starts_with("PUT ")).count();
    let stuck = support::eventually(Duration::from_secs(60), || {
        let n = held_puts();
        async move { n >= BARS }
    })
    .await;
    assert!(stuck, "A's writes are held ({} of {BARS}):\n{}", held_puts(), a.log_text());

    // The fault: B joins, A's revoke drain times out, B owns the partition.
    let takeover = Instant::now();
    let mut b =
        Proc::spawn(cfg.path(), &["consume"], &member("a-member-b", admin_b, support::s3_endpoint()), &peak);
    let moved = support::eventually(Duration::from_secs(60), || async {
        super::metric(admin_b, "egx_assigned_partitions") == Some(1.0)
    })
    .await;
    assert!(moved, "B takes the partition over:\n{}", b.log_text());
    // Version 2 of bar 0, which A never sees.
    let (symbol, v1) = support::bars::bar(0);
    let v2 = v1.replace(r#""close":1.75"#, r#""close":1.8"#);
    support::publish(&producer, &topic, vec![(symbol, v2.clone().into_bytes())]).await;
    let key = keys.values().next().expect("bar 0's key").clone();
    let written = super::all_committed(&kafka, &group, &topic, Duration::from_secs(60)).await
        && support::get(&s3, &bucket, &key).await == v2.as_bytes();
    let recover = takeover.elapsed();
    assert!(written, "B writes both versions and commits:\n{}", b.log_text());

    // A's held requests land now; whatever A still does with its old assignment settles.
    proxy.release();
    let settled = support::eventually(Duration::from_secs(60), || {
        let log = a.log_text();
        let done = log.lines().any(|l| {
            l.contains(&key) && (l.contains("Object stored.") || l.contains("Object write abandoned"))
        });
        let answered = proxy.requests().iter().filter(|r| r.held).all(|r| r.answered);
        async move { done && answered }
    })
    .await;
    assert!(settled, "A's zombie write settled:\n{}", a.log_text());
    let stored = support::get(&s3, &bucket, &key).await;
    let zombie = a
        .log_text()
        .lines()
        .filter(|l| l.contains(&key))
        .find_map(|l| {
            if l.contains("Object write abandoned") {
                Some("abandoned when the assignment ended".to_string())
            } else {
                l.contains("Object stored.").then(|| {
                    format!(
                        "landed: {}",
                        l.split("\"outcome\":").nth(1).unwrap_or("?").split(',').next().unwrap_or("?")
                    )
                })
            }
        })
        .unwrap_or_default();
    assert!(b.terminate().success(), "B drains and exits cleanly");
    assert!(a.terminate().success(), "A drains and exits cleanly");
    assert_eq!(
        String::from_utf8_lossy(&stored),
        v2,
        "the object keeps version 2; A's log:\n{}",
        a.log_text()
    );

    let messages = support::read_topic_to_end(&topic);
    assert_eq!(messages.len(), BARS + 1);
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    Row {
        id: "9-zombie-writer",
        scenario: "zombie writer after revoke timeout",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "A's {BARS} writes held in a proxy; B took over after A's 1 s drain and wrote v1 and v2 of a bar; A's held requests then reached the store ({} in all); A's write of v1: {zombie}",
            proxy.requests().iter().filter(|r| r.held).count()
        ),
    }
    .record_and_check();
}
