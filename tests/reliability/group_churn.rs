//! Scenario 6: three consumers join and leave the group while messages keep arriving —
//! clean leaves (SIGTERM: drain, commit, leave) and a `kill -9` (its partitions move on
//! after the session times out). Every rebalance hands partitions over at their committed
//! offsets; nothing is lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Peak, Proc, Row};
use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn three_consumers_joining_and_leaving_lose_nothing() {
    let (topic, bucket, group) =
        (support::unique("rel-churn"), support::unique("rel-churn"), support::unique("g"));
    let kafka = support::kafka();
    support::create_topic(&topic, 3).await;
    let (initial, step) = super::scaled((2_000, 300), (6_000, 1_000));
    let producer = support::idempotent_producer(&kafka);
    super::publish_bars(&producer, &topic, 0..initial).await;

    // Messages keep arriving for the whole churn.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicUsize::new(initial));
    let feeder = {
        let (stop, published, topic) = (stop.clone(), published.clone(), topic.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let from = published.load(Ordering::Relaxed);
                super::publish_bars(&producer, &topic, from..from + 25).await;
                published.store(from + 25, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let cfg = support::config_file(&topic, &bucket, &group, "[writer]\ncommit_interval_ms = 200\n");
    let env = [("EGX__KAFKA__SESSION_TIMEOUT_MS", "6000".to_string())];
    let s3 = support::s3().await;
    let peak = Peak::default();
    let spawn = || Proc::spawn(cfg.path(), &["consume"], &env, &peak);
    // Each membership change waits for `step` more objects: the group keeps writing.
    let mut written = 0;
    let mut progress = || {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        let target = written + step;
        written = target;
        async move {
            support::eventually(Duration::from_secs(120), || async {
                support::list_keys(&s3, &bucket, "streaming/").await.len() >= target
            })
            .await
        }
    };
    let mut a = spawn();
    assert!(progress().await, "A writes alone");
    let mut b = spawn();
    assert!(progress().await, "A and B write");
    let mut c = spawn();
    assert!(progress().await, "A, B and C write");
    assert!(b.terminate().success(), "B drains and leaves");
    assert!(progress().await, "A and C write after B left");
    c.kill9();
    assert!(progress().await, "the group writes after C was killed");
    let mut b2 = spawn();
    assert!(progress().await, "B rejoined");
    assert!(a.terminate().success(), "A drains and leaves");
    assert!(progress().await, "B writes alone");
    stop.store(true, Ordering::Relaxed);
    feeder.await.expect("feeder");

    let last_change = Instant::now();
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(180)).await;
    let recover = last_change.elapsed();
    assert!(b2.terminate().success(), "B drains and leaves");
    assert!(done, "everything committed after the churn:\n{}", b2.log_text());

    let total = published.load(Ordering::Relaxed);
    let messages = support::read_topic(&topic, total, Duration::from_secs(60));
    assert_eq!(messages.len(), total);
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    Row {
        id: "6-group-churn",
        scenario: "3 consumers join and leave",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: "A; +B; +C; B leaves; C kill -9; B rejoins; A leaves - while messages kept arriving".into(),
    }
    .record_and_check();
}
