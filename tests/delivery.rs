//! Delivery rules under failure: injected panics and S3 errors never let a commit pass an
//! unwritten record; too many restarts end the process non-zero; consumers joining and
//! leaving the group lose nothing.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use egx_actors::key::ObjectKey;
use egx_actors::sink::{FailureKind, ObjectSink, Origin, PutOutcome, SinkError};
use egx_actors::supervisor::ChaosConfig;
use egx_actors::supervisor::{PipelineExit, Supervisor};
use egx_actors::KeyTemplate;
use futures::future::BoxFuture;
use futures::FutureExt;
use rdkafka::message::Message;

use crate::support;
use crate::support::process::Proc;

/// An object store that fails a share of writes before they reach the real one.
struct FlakySink {
    inner: Arc<dyn ObjectSink>,
    failure_rate: f64,
}

impl ObjectSink for FlakySink {
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>> {
        self.inner.prepare()
    }
    fn put(
        &self,
        key: ObjectKey,
        body: Vec<u8>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
        if rand::random::<f64>() < self.failure_rate {
            let target = key.to_string();
            return async move {
                Err(SinkError {
                    operation: "PUT",
                    target,
                    detail: "injected failure".into(),
                    kind: FailureKind::ServerError,
                })
            }
            .boxed();
        }
        self.inner.put(key, body, origin)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

const SYMBOLS: [&str; 8] = ["COMI", "ETEL", "HRHO", "TMGH", "EAST", "SWDY", "ABUK", "FWRY"];

/// Panics in the S3Writer and the KafkaReader at random records, plus failing S3 writes:
/// the committed offset never passes an unwritten record, and the final output is complete.
#[actix_rt::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn commits_never_pass_unwritten_records_under_panics_and_s3_errors() {
    let (topic, bucket, group) =
        (support::unique("egx-chaos"), support::unique("egx-chaos"), support::unique("g"));
    let mut produce = support::pipeline_spec(&topic, &bucket, &group, &SYMBOLS, 100).await;
    produce.consume = false;
    let (_, exit) = Supervisor::start(produce).expect("spec");
    assert!(matches!(exit.await.expect("exit"), PipelineExit::Finished(_)));
    let messages = support::read_topic_to_end(&topic);
    assert_eq!(messages.len(), 800);
    let template = KeyTemplate::default();
    let expected_key: BTreeMap<(i32, i64), String> = messages
        .iter()
        .map(|m| {
            let record = egx_actors::MarketRecord::decode(m.payload(), 1 << 20).expect("valid");
            ((m.partition(), m.offset()), template.render(&record).to_string())
        })
        .collect();

    let mut consume = support::pipeline_spec(&topic, &bucket, &group, &SYMBOLS, 100).await;
    consume.produce = false;
    consume.chaos = ChaosConfig { writer_panic_rate: 0.01, reader_panic_rate: 0.004 };
    consume.supervisor.max_restarts = 1_000;
    consume.writer.max_in_flight_per_partition = 16;
    consume.writer.retry_initial_ms = 5;
    consume.writer.retry_max_ms = 50;
    consume.object_sink = Arc::new(FlakySink { inner: consume.object_sink.clone(), failure_rate: 0.1 });
    let (_, exit) = Supervisor::start(consume).expect("spec");
    tokio::pin!(exit);
    let (s3, kafka) = (support::s3().await, support::kafka());
    let mut checks = 0;
    let outcome = loop {
        tokio::select! {
            outcome = &mut exit => break outcome.expect("exit"),
            () = tokio::time::sleep(Duration::from_millis(150)) => {
                checks += support::commits_backed_by_objects(&s3, &bucket, &kafka, &group, &topic, &expected_key).await;
            }
        }
    };
    let PipelineExit::Finished(summary) = outcome else { panic!("pipeline did not finish: {outcome:?}") };
    assert!(summary.restarts > 0, "chaos caused restarts: {summary:?}");
    assert!(checks > 0, "the commit check ran while records were being written");
    support::commits_backed_by_objects(&s3, &bucket, &kafka, &group, &topic, &expected_key).await;
    let check = support::check_bucket(&s3, &bucket, &messages, &template).await;
    assert!(check.is_exact(), "{check:?}");
    assert_eq!(support::committed(&group, &topic, 3), support::end_offsets(&topic));
}

/// More restarts than the limit within the window end the process with exit code 3.
#[test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
fn restart_limit_exits_non_zero() {
    let (topic, bucket, group) =
        (support::unique("egx-limit"), support::unique("egx-limit"), support::unique("g"));
    let extra = "[fetch]\nsymbols = [\"COMI\"]\nn_bars = 2\n[chaos]\nwriter_panic_rate = 1.0\n[supervisor]\nmax_restarts = 2\nbackoff_initial_ms = 10\nbackoff_max_ms = 50\n";
    let cfg = support::config_file(&topic, &bucket, &group, extra);
    let out =
        support::binary().arg("--config").arg(cfg.path()).args(["run", "--once"]).output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(stderr.contains("gave up after too many actor restarts"), "{stderr}");
}

fn bar_message(i: usize) -> (String, String) {
    let symbol = format!("S{:02}", i % 30);
    let minute = i / 30;
    let payload = format!(
        r#"{{"symbol":"{symbol}","exchange":"EGX","interval":"1 Minute","datetime":"2025-03-13T{:02}:{:02}:00+02:00","open":1.5,"high":2.0,"low":1.0,"close":1.75,"volume":{i}}}"#,
        10 + minute / 60,
        minute % 60
    );
    (symbol, payload)
}

async fn produce_bars(topic: &str, range: std::ops::Range<usize>) {
    let messages: Vec<(String, String)> = range.map(bar_message).collect();
    let refs: Vec<(Option<&[u8]>, &[u8])> =
        messages.iter().map(|(k, v)| (Some(k.as_bytes()), v.as_bytes())).collect();
    support::produce(topic, &refs).await;
}

/// A second consumer joins and leaves mid-run: the group loses nothing and duplicates nothing.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn consumers_joining_and_leaving_lose_nothing() {
    let (topic, bucket, group) =
        (support::unique("egx-rebal"), support::unique("egx-rebal"), support::unique("g"));
    support::create_topic(&topic, 3).await;
    produce_bars(&topic, 0..1_500).await;
    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        "[writer]\nmax_concurrent_writes = 4\ncommit_interval_ms = 200\n",
    );
    let s3 = support::s3().await;
    let count = |at_least: usize| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        move || {
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move { support::list_keys(&s3, &bucket, "streaming/").await.len() >= at_least }
        }
    };
    let mut a = Proc::start(cfg.path(), &["consume"], &[]);
    assert!(support::eventually(Duration::from_secs(60), count(100)).await, "consumer A writes");
    let mut b = Proc::start(cfg.path(), &["consume"], &[]);
    assert!(
        support::eventually(Duration::from_secs(60), count(700)).await,
        "the group keeps writing while B joins"
    );
    assert!(b.terminate().success(), "B drains and leaves cleanly");
    produce_bars(&topic, 1_500..2_000).await;
    let ends = support::end_offsets(&topic);
    let (g, t) = (group.clone(), topic.clone());
    let done = support::eventually(Duration::from_secs(120), move || {
        let (g, t, ends) = (g.clone(), t.clone(), ends.clone());
        async move { support::committed(&g, &t, 3) == ends }
    })
    .await;
    assert!(a.terminate().success(), "A drains and leaves cleanly");
    assert!(done, "everything committed after B left");
    let messages = support::read_topic_to_end(&topic);
    assert_eq!(messages.len(), 2_000);
    let check = support::check_bucket(&s3, &bucket, &messages, &KeyTemplate::default()).await;
    assert!(check.is_exact(), "{check:?}");
    assert_eq!(check.objects, 2_000);
}

/// An asynchronous commit the broker refuses is made again: the reader counts offsets as
/// committed only when the broker confirms them, so a `--once` run still reaches its end
/// (it waits for the broker's committed offsets) instead of waiting forever.
#[actix_rt::test]
async fn refused_commits_are_made_again() {
    use egx_actors::kafka::KafkaMode;
    use egx_actors::sink::{SinkConfig, SinkKind};
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let (topic, group) = (support::unique("egx-commit"), support::unique("g"));
    let cfg =
        egx_actors::kafka::KafkaConfig { mode: KafkaMode::Embedded, ..support::kafka_config(&topic, &group) };
    let (embedded, kafka) = egx_actors::kafka::EmbeddedKafka::start(&cfg).expect("mock cluster");
    let bootstrap = kafka.bootstrap_servers.clone();
    let messages: Vec<(String, String)> = (0..300).map(bar_message).collect();
    let producer = support::idempotent_producer(&bootstrap);
    support::publish(&producer, &topic, messages.into_iter().map(|(k, p)| (k, p.into_bytes())).collect())
        .await;
    // The broker refuses the first commits, all of them asynchronous periodic ones.
    embedded.cluster().request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE; 5],
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = support::pipeline_spec(&topic, "unused", &group, &[], 1).await;
    spec.sink = SinkConfig { kind: SinkKind::Local, local_dir: dir.path().into(), ..SinkConfig::default() };
    spec.object_sink = egx_actors::sink::build(&spec.sink).await;
    spec.kafka = kafka;
    spec.produce = false;
    spec.writer.commit_interval_ms = 100;
    let (_, exit) = Supervisor::start(spec).expect("spec");
    let outcome = tokio::time::timeout(Duration::from_secs(60), exit).await;
    let Ok(Ok(PipelineExit::Finished(_))) = outcome else {
        panic!("the run never saw its offsets committed: {outcome:?}")
    };
    let (b, g, t) = (bootstrap.clone(), group.clone(), topic.clone());
    let committed =
        tokio::task::spawn_blocking(move || support::committed_at(&b, &g, &t, 3)).await.expect("probe");
    let b = bootstrap.clone();
    let ends = tokio::task::spawn_blocking(move || support::end_offsets_at(&b, &topic)).await.expect("probe");
    assert_eq!(committed, ends);
}

/// `consume --once` finishes when a partition has nothing left to write although its end
/// offset is past the group's (absent) commit: one partition holds only an aborted
/// transaction (records never delivered, then a control marker), another only deleted
/// records (as if all expired). The aborted one is committed to its end.
#[test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
fn consume_once_finishes_when_only_markers_or_expired_records_remain() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let (topic, bucket, group) =
        (support::unique("egx-markers"), support::unique("egx-markers"), support::unique("g"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(support::create_topic(&topic, 3));
    let bar = |minute: usize| bar_message(minute * 30).1;
    let plain = support::producer();
    let send = |producer: &FutureProducer, partition: i32, payload: String| {
        let record = FutureRecord::to(&topic).key("S00").partition(partition).payload(&payload);
        rt.block_on(producer.send(record, Duration::from_secs(30))).map_err(|(e, _)| e).expect("delivered");
    };
    // Partition 0: one bar, written as usual.
    send(&plain, 0, bar(0));
    // Partition 1: a transaction of three bars, aborted.
    let txn: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", support::kafka())
        .set("transactional.id", support::unique("egx-txn"))
        .create()
        .expect("transactional producer");
    txn.init_transactions(Duration::from_secs(30)).expect("init transactions");
    txn.begin_transaction().expect("begin");
    for minute in 1..4 {
        send(&txn, 1, bar(minute));
    }
    txn.abort_transaction(Duration::from_secs(30)).expect("abort");
    // Partition 2: two bars, then deleted (the log starts at its end, as after expiry).
    send(&plain, 2, bar(4));
    send(&plain, 2, bar(5));
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", support::kafka()).create().expect("admin");
    let mut upto = TopicPartitionList::new();
    upto.add_partition_offset(&topic, 2, Offset::Offset(2)).expect("offset");
    rt.block_on(admin.delete_records(&upto, &AdminOptions::new())).expect("DeleteRecords");
    let ends = support::end_offsets(&topic);
    assert_eq!(ends, BTreeMap::from([(0, 1), (1, 4), (2, 2)]), "three bars and an abort marker");

    let cfg = support::config_file(&topic, &bucket, &group, "");
    let mut child = support::binary()
        .arg("--config")
        .arg(cfg.path())
        .args(["consume", "--once"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("consume starts");
    // Far longer than a run of three records takes; the old reader waited forever.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().expect("output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(status.is_some_and(|s| s.success()), "consume --once finishes:\n{text}");
    let committed = support::committed(&group, &topic, 3);
    assert_eq!(committed.get(&0), Some(&1), "{committed:?}");
    assert_eq!(committed.get(&1), Some(&4), "committed past the aborted transaction: {committed:?}");
    let keys = rt.block_on(async { support::list_keys(&support::s3().await, &bucket, "streaming/").await });
    assert_eq!(keys.len(), 1, "only the one delivered bar is written: {keys:?}");
}

/// The idempotent producer's fatal state (here: the broker answers the first produce
/// request out of sequence) does not leave the process alive and useless: the producer is
/// recreated and the bars are published by the next cycles.
#[actix_rt::test]
async fn a_fatal_producer_error_recreates_the_producer() {
    use egx_actors::kafka::KafkaMode;
    use egx_actors::supervisor::Shutdown;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let (topic, group) = (support::unique("egx-fatal"), support::unique("g"));
    let cfg =
        egx_actors::kafka::KafkaConfig { mode: KafkaMode::Embedded, ..support::kafka_config(&topic, &group) };
    let (embedded, kafka) = egx_actors::kafka::EmbeddedKafka::start(&cfg).expect("mock cluster");
    embedded.cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let bootstrap = kafka.bootstrap_servers.clone();
    let mut spec = support::pipeline_spec(&topic, "unused", &group, &["COMI", "ETEL"], 3).await;
    spec.kafka = kafka;
    spec.consume = false;
    spec.once = false;
    let metrics = spec.metrics.clone();
    let (supervisor, exit) = Supervisor::start(spec).expect("spec");
    let t = topic.clone();
    let messages = tokio::task::spawn_blocking(move || {
        support::read_topic_at(&bootstrap, &t, 6, Duration::from_secs(60))
    })
    .await
    .expect("reader");
    supervisor.do_send(Shutdown);
    let _ = exit.await;
    let bars: std::collections::BTreeSet<Vec<u8>> =
        messages.iter().map(|m| m.payload().unwrap_or_default().to_vec()).collect();
    assert_eq!(messages.len(), 6, "every bar published after the producer's fatal error");
    assert_eq!(bars.len(), 6);
    let recreated = metrics.restarts.with_label_values(&["Publisher"]).get();
    assert!(recreated >= 1, "the Publisher restarted with a new producer");
}

/// A static member fenced by another process with the same `kafka.group_instance_id`
/// does not stay alive and useless: it exits with code 4 and says which setting to fix.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn a_fenced_static_member_exits_with_a_clear_error() {
    let (topic, bucket, group) =
        (support::unique("egx-fence"), support::unique("egx-fence"), support::unique("g"));
    support::create_topic(&topic, 3).await;
    let cfg = support::config_file(&topic, &bucket, &group, "");
    let port = support::free_port();
    let spawn = |admin: String| {
        support::binary()
            .env("EGX__KAFKA__GROUP_INSTANCE_ID", "writer-1")
            .env("EGX__KAFKA__SESSION_TIMEOUT_MS", "6000")
            .env("EGX__ADMIN__LISTEN", admin)
            .arg("--config")
            .arg(cfg.path())
            .arg("consume")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("consume starts")
    };
    let a = spawn(format!("127.0.0.1:{port}"));
    let assigned = support::eventually(Duration::from_secs(60), || async {
        support::http_get(port, "/metrics")
            .is_some_and(|(_, m)| support::metric_sum(&m, "egx_assigned_partitions") == 3.0)
    })
    .await;
    assert!(assigned, "A holds the partitions");
    let mut b = spawn(String::new());
    // A learns it was fenced at its next heartbeat (every session/10).
    let a = tokio::task::spawn_blocking(move || {
        let mut a = a;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while a.try_wait().expect("wait").is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = a.kill();
        a.wait_with_output().expect("output")
    })
    .await
    .expect("waiter");
    let _ = std::process::Command::new("kill").args(["-TERM", &b.id().to_string()]).status();
    let _ = b.wait();
    let stderr = String::from_utf8_lossy(&a.stderr);
    assert_eq!(a.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("kafka.group_instance_id") && stderr.contains("fenced"), "{stderr}");
}
