//! Scenario 4: the Kafka broker restarts while a `produce` process is publishing (a CSV
//! replay in stream mode) and a `consume` process is writing. Neither process is
//! restarted: the idempotent producer's retries cover the outage without duplicating a
//! message, the consumer carries on from its committed offsets, and the bucket is exact.
//! The broker is a private one (`support::PrivateKafka`): the shared one is never touched.
//!
//! The restart must really have been crossed: some bars were handed to the producer (their
//! `ingestion_timestamp`) before the restarted broker appended its first message, and
//! appended by it (the topic keeps the broker's append time as each message's timestamp),
//! so they reached the topic only by being queued and retried across the restart. Before,
//! after and at the end, every committed offset is backed by its object, the commits never
//! go back, and nothing committed before the restart is written again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{ClientConfig, Timestamp};

use super::Row;
use crate::support;
use crate::support::process::{Peak, Proc};

/// The commit rule C(p) ≤ W(p) checked now (`support::commits_backed_by_objects`), with
/// the object key of every message the topic holds so far. Returns the committed offsets
/// read just before (they only grow) and how many committed messages were checked.
async fn commits_backed(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> (BTreeMap<i32, i64>, usize) {
    let committed = support::committed_at(bootstrap, group, topic, 3);
    let keys = support::bars::keys_of(&support::topic::read_topic_to_end_at(bootstrap, topic));
    (committed, support::commits_backed_by_objects(s3, bucket, bootstrap, group, topic, &keys).await)
}

/// A counter on an admin endpoint, 0 when it does not answer.
fn counter(admin: u16, series: &str) -> u64 {
    super::metric(admin, series).unwrap_or_default() as u64
}

/// Creates the topic (3 partitions) with the broker's append time as each message's
/// timestamp: it tells the messages the restarted broker took from those it had before.
async fn create_topic_with_append_time(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let new =
        NewTopic::new(topic, 3, TopicReplication::Fixed(1)).set("message.timestamp.type", "LogAppendTime");
    for r in admin.create_topics(&[new], &AdminOptions::new()).await.expect("CreateTopics") {
        r.expect("topic created");
    }
}

/// When the broker appended a message (Unix milliseconds).
fn appended_ms(m: &OwnedMessage) -> i64 {
    match m.timestamp() {
        Timestamp::LogAppendTime(ms) => ms,
        other => panic!("offset {} of partition {}: no append time: {other:?}", m.offset(), m.partition()),
    }
}

/// How often the consumer stored each (partition, offset), from its DEBUG log.
fn stores(log: &str) -> BTreeMap<(i32, i64), usize> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["msg"] == "Object stored." {
            let (p, o) = (v["partition"].as_i64().expect("partition"), v["offset"].as_i64().expect("offset"));
            *out.entry((i32::try_from(p).expect("partition"), o)).or_default() += 1;
        }
    }
    out
}

/// The last lines of a log, for failure messages (the consumer logs at DEBUG).
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn total(offsets: &BTreeMap<i32, i64>) -> i64 {
    offsets.values().sum()
}

#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn broker_restart_duplicates_nothing_and_consumer_resumes() {
    let (topic, bucket, group) =
        (support::unique("rel-broker"), support::unique("rel-broker"), support::unique("g"));
    let broker = support::PrivateKafka::start();
    let kafka = broker.bootstrap();
    create_topic_with_append_time(&kafka, &topic).await;

    // The replay: SYMBOLS symbols, one 1-minute bar each per market minute, paced so that
    // the whole of it lasts `replay` (well beyond the restart).
    let (per_symbol, replay) = super::scaled((60, 90), (400, 240));
    let expected = support::bars::SYMBOLS * per_symbol;
    let symbols: Vec<String> = (0..support::bars::SYMBOLS).map(|s| format!("R{s:02}")).collect();
    let first = 1_740_902_400_i64; // 2025-03-02T08:00:00Z
    let data = tempfile::tempdir().expect("temp dir");
    let csv = data.path().join("bars.csv");
    let mut text = String::from("symbol,time,open,high,low,close,volume\n");
    for minute in 0..per_symbol {
        for (s, symbol) in symbols.iter().enumerate() {
            let open = 10.0 + s as f64 + minute as f64 / 100.0;
            text.push_str(&format!(
                "{symbol},{},{open:.2},{:.2},{:.2},{:.2},{}\n",
                first + 60 * minute as i64,
                open + 0.5,
                open - 0.5,
                open + 0.25,
                minute * 100 + s
            ));
        }
    }
    std::fs::write(&csv, text).expect("write the CSV");
    let speed = (per_symbol - 1) as f64 * 60.0 / replay as f64;
    let quoted: Vec<String> = symbols.iter().map(|s| format!("\"{s}\"")).collect();
    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        &format!(
            "[writer]\ncommit_interval_ms = 100\n\n[fetch]\nsource = \"csv\"\nsymbols = [{}]\ninterval = \"1 Minute\"\nmode = \"stream\"\nresync_secs = 0\n\n[csv]\npath = \"{}\"\nspeed = {speed}\n",
            quoted.join(", "),
            csv.display()
        ),
    );
    let (produce_admin, consume_admin) = (support::free_port(), support::free_port());
    // Deliveries wait (librdkafka retries, idempotently) far longer than the restart takes.
    let env = |admin: u16| {
        [
            ("EGX__KAFKA__BOOTSTRAP_SERVERS", kafka.clone()),
            ("EGX__KAFKA__MESSAGE_TIMEOUT_MS", "600000".to_string()),
            ("EGX__ADMIN__LISTEN", format!("127.0.0.1:{admin}")),
        ]
    };
    let s3 = support::s3().await;
    let peak = Peak::default();
    let mut producer = Proc::spawn(cfg.path(), &["produce"], &env(produce_admin), &peak);
    // DEBUG: the consumer logs every object it stores, with its partition and offset.
    let mut consumer =
        Proc::spawn(cfg.path(), &["--log-level", "DEBUG", "consume"], &env(consume_admin), &peak);

    // Mid-produce and mid-consume: messages in the topic and objects in the bucket.
    let busy = support::eventually(Duration::from_secs(120), || async {
        total(&support::end_offsets_at(&kafka, &topic)) >= (expected / 10) as i64
            && support::list_keys(&s3, &bucket, "streaming/").await.len() >= expected / 20
    })
    .await;
    assert!(
        busy,
        "produce and consume are both under way:\n{}\n{}",
        producer.log_text(),
        tail(&consumer.log_text())
    );
    let (before, checked_before) = commits_backed(&s3, &bucket, &kafka, &group, &topic).await;
    let ends_before = support::end_offsets_at(&kafka, &topic);
    assert!(total(&ends_before) < expected as i64, "the restart comes before the replay ended");

    // The fault: a controlled broker shutdown and start, processes left running.
    let stopping = Instant::now();
    broker.stop();
    let starting_at = chrono::Utc::now();
    broker.resume();
    let (restart, back) = (stopping.elapsed(), Instant::now());
    let ends_back = support::end_offsets_at(&kafka, &topic);
    // Both carry on by themselves: the topic grows, then the consumer commits again.
    let producing = support::eventually(Duration::from_secs(120), || async {
        total(&support::end_offsets_at(&kafka, &topic)) > total(&ends_back)
    })
    .await;
    assert!(producing, "produce publishes again after the restart:\n{}", producer.log_text());
    let produce_resumed = back.elapsed();
    let committing = support::eventually(Duration::from_secs(120), || async {
        let now = support::committed_at(&kafka, &group, &topic, 3);
        // Past the topic's end at the restart: committed after it.
        total(&now) > total(&ends_back)
    })
    .await;
    assert!(committing, "the consumer commits again after the restart:\n{}", tail(&consumer.log_text()));
    let consume_resumed = back.elapsed();
    let (after, checked_after) = commits_backed(&s3, &bucket, &kafka, &group, &topic).await;

    // Produce carries on to the end of the replay, then stops on request.
    let published = support::eventually(Duration::from_secs(replay + 300), || async {
        total(&support::end_offsets_at(&kafka, &topic)) >= expected as i64
    })
    .await;
    let produced = counter(produce_admin, "egx_messages_produced_total");
    let produce_errors = counter(produce_admin, "egx_produce_errors_total");
    let produce_restarts = counter(produce_admin, "egx_actor_restarts_total");
    assert!(producer.terminate().success(), "produce stops cleanly:\n{}", producer.log_text());
    assert!(published, "the whole replay reaches the topic:\n{}", producer.log_text());

    let done = super::all_committed(&kafka, &group, &topic, Duration::from_secs(300)).await;
    let consumed = counter(consume_admin, "egx_records_consumed_total");
    let consume_restarts = counter(consume_admin, "egx_actor_restarts_total");
    let assignments = consumer.log_text().matches("Partitions assigned.").count();
    assert!(
        consumer.terminate().success(),
        "consume drains and exits cleanly:\n{}",
        tail(&consumer.log_text())
    );
    assert!(done, "everything committed after the restart:\n{}", tail(&consumer.log_text()));
    let (end, checked_end) = commits_backed(&s3, &bucket, &kafka, &group, &topic).await;

    // No duplicates: every (symbol, datetime) of the replay exactly once, nothing else.
    let messages = support::topic::read_topic_to_end_at(&kafka, &topic);
    let mut seen: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for m in &messages {
        let record = egx_actors::MarketRecord::decode(m.payload(), 1 << 20).expect("valid bar");
        *seen.entry((record.symbol.to_string(), record.time.timestamp())).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "messages published twice: {duplicated:?}");
    let want = symbols.iter().flat_map(|s| (0..per_symbol).map(move |m| (s.clone(), first + 60 * m as i64)));
    let missing: Vec<_> = want.filter(|k| !seen.contains_key(k)).collect();
    assert!(missing.is_empty(), "bars missing from the topic: {missing:?}");
    assert_eq!(messages.len(), expected, "exactly the replayed bars, once each");
    assert_eq!(produced as usize, expected, "the producer confirmed each bar once");
    // Bars queued across the restart: handed to the producer (stamped) before the
    // restarted broker appended its first message, and appended by it. librdkafka held
    // and retried them, and delivered each once.
    let restarted: Vec<(&OwnedMessage, i64)> = messages
        .iter()
        .map(|m| (m, appended_ms(m)))
        .filter(|(_, at)| *at >= starting_at.timestamp_millis())
        .collect();
    let first_append = restarted.iter().map(|(_, at)| *at).min().expect("messages after the restart");
    let across =
        restarted.iter().filter(|(m, _)| super::ingested(m).timestamp_millis() < first_append).count();
    assert!(across > 0, "no bar was queued across the restart");

    // The consumer resumed from its committed offsets: the broker's commits never went
    // back and never passed an unwritten record, and nothing committed before the
    // restart was read and written again (records read again, if the group rebalanced,
    // start at or after those offsets).
    for p in 0..3 {
        let at = |c: &BTreeMap<i32, i64>| c.get(&p).copied().unwrap_or(0);
        assert!(
            at(&before) <= at(&after) && at(&after) <= at(&end),
            "commits of partition {p} went back: {before:?} -> {after:?} -> {end:?}"
        );
    }
    let checked = [checked_before, checked_after, checked_end];
    let stored = stores(&consumer.log_text());
    let unstored: Vec<_> =
        messages.iter().map(|m| (m.partition(), m.offset())).filter(|k| !stored.contains_key(k)).collect();
    assert!(unstored.is_empty(), "records the consumer never stored: {unstored:?}");
    let again: Vec<(i32, i64)> = stored.iter().filter(|(_, n)| **n > 1).map(|(k, _)| *k).collect();
    let below: Vec<_> = again.iter().filter(|(p, o)| before.get(p).is_some_and(|c| o < c)).collect();
    assert!(below.is_empty(), "committed before the restart ({before:?}) yet written again: {below:?}");
    let reread = consumed as i64 - expected as i64;
    let check = support::check_bucket(&s3, &bucket, &messages, &egx_actors::KeyTemplate::default()).await;
    Row {
        id: "4-broker-restart",
        scenario: "Kafka broker restarted",
        messages: messages.len(),
        check,
        // Back to normal: both processes doing their work again.
        recover: produce_resumed.max(consume_resumed),
        peak_mib: peak.mib(),
        notes: format!(
            "restart {:.1} s at {}/{expected} in the topic; produce delivering {:.1} s and consume committing {:.1} s after; {produced} confirmed ({produce_errors} errors), {} in the topic, 0 duplicates ({across} queued across the restart); {reread} re-read, {} rewritten, {assignments} assignment(s); C<=W held ({} commits checked); {} actor restarts",
            restart.as_secs_f64(),
            total(&ends_before),
            produce_resumed.as_secs_f64(),
            consume_resumed.as_secs_f64(),
            messages.len(),
            again.len(),
            checked.iter().sum::<usize>(),
            produce_restarts + consume_restarts,
        ),
    }
    .record_and_check();
}
