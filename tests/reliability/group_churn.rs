//! Scenario 6: three consumers join and leave the group while messages keep arriving —
//! clean leaves (SIGTERM: drain, commit, leave) and a `kill -9` (its partitions move on
//! after the session times out). Every rebalance hands partitions over at their committed
//! offsets; nothing is lost.
//!
//! What each member stores is observed, not inferred: every member's S3 requests go
//! through a proxy of its own that records them, and every PUT names the record it writes
//! (`x-amz-meta-egx-origin: topic/partition/offset`). So the scenario asserts that each
//! hand-over committed what was written before letting go:
//! - after each hand-over (B's SIGTERM, C's `kill -9`, A's SIGTERM), no record below the
//!   offset committed at that moment is PUT again by anyone;
//! - over the whole run, no record is PUT twice, except what the killed member had written
//!   at or past its last commit (rewritten once by the next owner): a member that let go
//!   of a partition (at a leave or at any rebalance) without committing what it wrote
//!   would see its last records written again by the next owner;
//! - right after each hand-over, every committed offset is backed by its object (C ≤ W).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Row;
use crate::support;
use crate::support::latency_proxy::LatencyProxy;
use crate::support::process::{Peak, Proc};

/// A record as the pipeline names it: (partition, offset).
type Position = (i32, i64);

/// One consumer process and the recording proxy in front of its S3 endpoint.
struct Member {
    name: &'static str,
    process: Proc,
    proxy: LatencyProxy,
}

/// A PUT of a record's object, as one member's proxy saw it.
#[derive(Debug, Clone, Copy)]
struct Put {
    /// Index of the member in the order they were started.
    member: usize,
    /// Index of the request among the member's requests.
    request: usize,
    record: Position,
    /// The store answered it (a PUT left unanswered, by a killed member, wrote nothing it
    /// could have committed).
    answered: bool,
}

/// Object keys of everything published so far, by (partition, offset).
type Published = Arc<Mutex<BTreeMap<Position, String>>>;

/// What the hand-over checks look at.
struct Watch<'a> {
    s3: &'a aws_sdk_s3::Client,
    bucket: &'a str,
    kafka: &'a str,
    group: &'a str,
    topic: &'a str,
    published: Published,
}

impl Watch<'_> {
    /// Right after a member left: C ≤ W (returns how many commits it checked), then the
    /// committed offsets, then the requests each member's proxy has seen so far.
    async fn hand_over(&self, what: &'static str, members: &[&Member]) -> (HandOver, usize) {
        let expected_key = self.published.lock().expect("published").clone();
        let checked = support::commits_backed_by_objects(
            self.s3,
            self.bucket,
            self.kafka,
            self.group,
            self.topic,
            &expected_key,
        )
        .await;
        let committed = support::committed_at(self.kafka, self.group, self.topic, 3);
        let seen = members.iter().map(|m| m.proxy.requests().len()).collect();
        (HandOver { what, committed, seen }, checked)
    }
}

/// A member left: the offsets committed right after, then how many requests each member's
/// proxy had seen (read in that order, so every request counted after it came after the
/// commit).
struct HandOver {
    what: &'static str,
    committed: BTreeMap<i32, i64>,
    seen: Vec<usize>,
}

impl HandOver {
    fn after(&self, put: &Put) -> bool {
        put.request >= self.seen.get(put.member).copied().unwrap_or(0)
    }
}

/// The record a request writes, if it is a PUT of an object.
fn put_record(request: &support::latency_proxy::SeenRequest) -> Option<Position> {
    if request.method() != "PUT" {
        return None;
    }
    let origin = request.header("x-amz-meta-egx-origin")?;
    let mut parts = origin.rsplitn(3, '/');
    let offset = parts.next()?.parse().ok()?;
    let partition = parts.next()?.parse().ok()?;
    Some((partition, offset))
}

/// Every PUT of every member, in each member's request order.
fn puts(members: &[&Member]) -> Vec<Put> {
    let mut out = Vec::new();
    for (member, m) in members.iter().enumerate() {
        for (request, r) in m.proxy.requests().iter().enumerate() {
            if let Some(record) = put_record(r) {
                out.push(Put { member, request, record, answered: r.answered });
            }
        }
    }
    out
}

/// The records PUT after a hand-over although they were below the offset committed then.
fn rewritten_below_commit(puts: &[Put], hand_over: &HandOver) -> Vec<Position> {
    puts.iter()
        .filter(|put| hand_over.after(put))
        .filter(|put| hand_over.committed.get(&put.record.0).is_some_and(|c| put.record.1 < *c))
        .map(|put| put.record)
        .collect()
}

/// Records the store answered a PUT of more than once: (how many were the killed member's
/// uncommitted tail, written again once by the next owner after the kill; every other
/// one, with the members that PUT it).
fn stored_twice(puts: &[Put], killed: usize, kill: &HandOver) -> (usize, Vec<(Position, Vec<usize>)>) {
    let mut by_record: BTreeMap<Position, Vec<&Put>> = BTreeMap::new();
    for put in puts.iter().filter(|p| p.answered) {
        by_record.entry(put.record).or_default().push(put);
    }
    let (mut tail, mut other) = (0, Vec::new());
    for (record, all) in by_record.into_iter().filter(|(_, all)| all.len() > 1) {
        let uncommitted = kill.committed.get(&record.0).is_none_or(|c| record.1 >= *c);
        let replayed = all.len() == 2
            && all.iter().any(|p| p.member == killed)
            && all.iter().any(|p| p.member != killed && kill.after(p));
        if uncommitted && replayed {
            tail += 1;
        } else {
            other.push((record, all.iter().map(|p| p.member).collect()));
        }
    }
    (tail, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn three_consumers_joining_and_leaving_lose_nothing() {
    let (topic, bucket, group) =
        (support::unique("rel-churn"), support::unique("rel-churn"), support::unique("g"));
    let kafka = support::kafka();
    support::create_topic(&topic, 3).await;
    let (initial, step) = super::scaled((2_000, 300), (6_000, 1_000));
    let producer = support::idempotent_producer(&kafka);
    let published: Published =
        Arc::new(Mutex::new(support::bars::publish_bars(&producer, &topic, 0..initial).await));

    // Messages keep arriving for the whole churn.
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (stop, published, topic) = (stop.clone(), published.clone(), topic.clone());
        tokio::spawn(async move {
            let mut next = initial;
            while !stop.load(Ordering::Relaxed) {
                let keys = support::bars::publish_bars(&producer, &topic, next..next + 25).await;
                published.lock().expect("published").extend(keys);
                next += 25;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let cfg = support::config_file(&topic, &bucket, &group, "[writer]\ncommit_interval_ms = 200\n");
    let upstream = support::s3_endpoint().trim_start_matches("http://").to_string();
    let s3 = support::s3().await;
    let peak = Peak::default();
    let spawn = |name| {
        let proxy = LatencyProxy::start(&upstream, Duration::ZERO);
        let env = [
            ("EGX__KAFKA__SESSION_TIMEOUT_MS", "6000".to_string()),
            ("EGX__SINK__ENDPOINT", proxy.endpoint()),
        ];
        Member { name, process: Proc::spawn(cfg.path(), &["consume"], &env, &peak), proxy }
    };
    // Each membership change waits for `step` more commits: the group keeps writing.
    let mut target = 0;
    let mut progress = || {
        target += step as i64;
        let (kafka, group, topic, target) = (kafka.clone(), group.clone(), topic.clone(), target);
        async move {
            support::eventually(Duration::from_secs(120), || async {
                support::committed_at(&kafka, &group, &topic, 3).values().sum::<i64>() >= target
            })
            .await
        }
    };
    let watch = Watch { s3: &s3, bucket: &bucket, kafka: &kafka, group: &group, topic: &topic, published };
    let mut a = spawn("A");
    assert!(progress().await, "A writes alone");
    let mut b = spawn("B");
    assert!(progress().await, "A and B write");
    let mut c = spawn("C");
    assert!(progress().await, "A, B and C write");
    assert!(b.process.terminate().success(), "B drains and leaves");
    let (b_left, b_checked) = watch.hand_over("B left", &[&a, &b, &c]).await;
    assert!(progress().await, "A and C write after B left");
    c.process.kill9();
    let (c_killed, c_checked) = watch.hand_over("C killed", &[&a, &b, &c]).await;
    assert!(progress().await, "the group writes after C was killed");
    let mut b2 = spawn("B2");
    assert!(progress().await, "B rejoined");
    assert!(a.process.terminate().success(), "A drains and leaves");
    let (a_left, a_checked) = watch.hand_over("A left", &[&a, &b, &c, &b2]).await;
    assert!(progress().await, "B writes alone");
    stop.store(true, Ordering::Relaxed);
    feeder.await.expect("feeder");

    let last_change = Instant::now();
    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(180)).await;
    let recover = last_change.elapsed();
    assert!(b2.process.terminate().success(), "B drains and leaves");
    assert!(done, "everything committed after the churn:\n{}", b2.process.log_text());

    // Each hand-over committed what was written before letting go.
    let members = [&a, &b, &c, &b2];
    let all = puts(&members);
    for h in [&b_left, &c_killed, &a_left] {
        let again = rewritten_below_commit(&all, h);
        assert!(
            again.is_empty(),
            "{}: committed {:?}, yet stored again after: {again:?}",
            h.what,
            h.committed
        );
    }
    let killed = members.iter().position(|m| m.name == "C").expect("C");
    let (tail, twice) = stored_twice(&all, killed, &c_killed);
    let named: Vec<_> =
        twice.iter().map(|(r, by)| (*r, by.iter().map(|m| members[*m].name).collect::<Vec<_>>())).collect();
    assert!(
        twice.is_empty(),
        "records stored twice that were not the killed member's uncommitted tail (by whom): {named:?}"
    );

    let messages = support::topic::read_topic_to_end(&topic);
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    Row {
        id: "6-group-churn",
        scenario: "3 consumers join and leave",
        messages: messages.len(),
        check,
        recover,
        peak_mib: peak.mib(),
        notes: format!(
            "A; +B; +C; B leaves; C kill -9; B rejoins; A leaves - while messages kept arriving; {} PUTs \
             seen, none stored again below a hand-over's commit; {tail} of C's uncommitted records \
             rewritten after the kill, nothing else stored twice; C<=W held after B left, C was killed \
             and A left ({b_checked}, {c_checked}, {a_checked} commits checked)",
            all.len()
        ),
    }
    .record_and_check();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(member: usize, request: usize, record: Position) -> Put {
        Put { member, request, record, answered: true }
    }

    /// A (0) and the killed C (1): committed {0: 10} at the kill, when each had sent 5 requests.
    fn kill() -> HandOver {
        HandOver { what: "C killed", committed: BTreeMap::from([(0, 10)]), seen: vec![5, 5] }
    }

    #[test]
    fn a_record_below_the_commit_put_after_a_hand_over_is_found() {
        let puts = [put(1, 2, (0, 9)), put(0, 7, (0, 9)), put(0, 8, (0, 10)), put(2, 0, (0, 3))];
        assert_eq!(rewritten_below_commit(&puts, &kill()), vec![(0, 9), (0, 3)]);
    }

    #[test]
    fn only_the_killed_members_uncommitted_tail_may_be_stored_twice() {
        // C wrote 10 and 11 past its commit; A wrote them again after the kill: allowed.
        let tail = [put(1, 3, (0, 10)), put(0, 6, (0, 10)), put(1, 4, (0, 11)), put(0, 7, (0, 11))];
        assert_eq!(stored_twice(&tail, 1, &kill()), (2, vec![]));
        // Below C's commit, by a member other than C, before the kill, or three times: not.
        let below = [put(1, 1, (0, 9)), put(0, 6, (0, 9))];
        let others = [put(0, 1, (0, 12)), put(2, 0, (0, 12))];
        let early = [put(1, 1, (0, 13)), put(0, 4, (0, 13))];
        let thrice = [put(1, 1, (0, 14)), put(0, 6, (0, 14)), put(2, 0, (0, 14))];
        for (puts, by) in
            [(&below[..], vec![1, 0]), (&others, vec![0, 2]), (&early, vec![1, 0]), (&thrice, vec![1, 0, 2])]
        {
            let (tail, twice) = stored_twice(puts, 1, &kill());
            assert_eq!((tail, twice.len()), (0, 1), "{puts:?}");
            assert_eq!(twice[0].1, by);
        }
        // A PUT the store never answered does not count.
        let unanswered = [Put { answered: false, ..put(2, 0, (0, 9)) }, put(0, 1, (0, 9))];
        assert_eq!(stored_twice(&unanswered, 1, &kill()), (0, vec![]));
    }
}
