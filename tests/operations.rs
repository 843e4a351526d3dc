//! Operating the pipeline: metrics that match what was written, readiness that follows the
//! object store, symbol shards with no overlap or gap, symbol reload on SIGHUP, and the
//! `check`, `stored` and `lag` commands.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use rdkafka::message::Message;

use crate::support;
use crate::support::process::Proc;

/// `run` with a config file and the admin endpoint on `port`.
fn run_with_admin(config: &std::path::Path, port: u16) -> Proc {
    Proc::start(config, &["run"], &[("EGX__ADMIN__LISTEN", format!("127.0.0.1:{port}"))])
}

/// `consume` against the store at `endpoint`, the admin endpoint on `port`.
fn consume_with_admin(config: &std::path::Path, port: u16, endpoint: String) -> Proc {
    let env = [("EGX__ADMIN__LISTEN", format!("127.0.0.1:{port}")), ("MINIO_ENDPOINT", endpoint)];
    Proc::start(config, &["consume"], &env)
}

/// Publishes `n` daily bars of 10 symbols `<prefix>00`…`<prefix>09`, each its own object.
async fn publish_daily_bars(topic: &str, prefix: &str, n: usize) {
    let bars: Vec<(String, String)> = (0..n)
        .map(|i| {
            let symbol = format!("{prefix}{:02}", i % 10);
            let body = format!(
                r#"{{"symbol":"{symbol}","interval":"Daily","datetime":"2025-01-{:02}","open":1,"high":1,"low":1,"close":1}}"#,
                1 + i / 10
            );
            (symbol, body)
        })
        .collect();
    let refs: Vec<(Option<&[u8]>, &[u8])> =
        bars.iter().map(|(k, v)| (Some(k.as_bytes()), v.as_bytes())).collect();
    support::produce(topic, &refs).await;
}

async fn wait_for<F: FnMut() -> bool>(what: &str, deadline: Duration, mut cond: F) {
    let ok = support::eventually(deadline, || std::future::ready(cond())).await;
    assert!(ok, "timed out waiting for {what}");
}

/// During a real run the metrics count exactly what was written, lag returns to zero, and
/// `stored` and `lag` report the same; SIGTERM then drains and exits 0.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn metrics_match_what_was_written_and_lag_returns_to_zero() {
    let (topic, bucket, group) =
        (support::unique("egx-ops"), support::unique("egx-ops"), support::unique("g"));
    let port = support::free_port();
    let extra = "[fetch]\nsymbols = [\"COMI\", \"ETEL\", \"HRHO\", \"EAST\"]\nn_bars = 5\npoll_interval_secs = 3600\n";
    let cfg = support::config_file(&topic, &bucket, &group, extra);
    let mut run = run_with_admin(cfg.path(), port);
    let scrape = || support::http_get(port, "/metrics").map(|(_, body)| body).unwrap_or_default();
    wait_for("20 objects written", Duration::from_secs(60), || {
        support::metric_sum(&scrape(), "egx_records_written_total") >= 20.0
    })
    .await;
    wait_for("lag back to zero", Duration::from_secs(30), || {
        let m = scrape();
        support::metric_sum(&m, "egx_consumer_lag_records") == 0.0 && m.contains("egx_consumer_lag_records{")
    })
    .await;
    let m = scrape();
    assert_eq!(support::metric_sum(&m, "egx_messages_produced_total"), 20.0);
    assert_eq!(support::metric_sum(&m, "egx_records_written_total"), 20.0);
    assert_eq!(support::metric_sum(&m, "egx_records_dead_lettered_total"), 0.0);
    assert_eq!(support::metric_sum(&m, "egx_fetches_total{outcome=\"ok\""), 4.0);
    let committed: f64 = support::committed(&group, &topic, 3).values().map(|v| *v as f64).sum();
    assert_eq!(support::metric_sum(&m, "egx_committed_offset"), committed, "committed offsets exported");
    assert_eq!(support::http_get(port, "/readyz").map(|(s, _)| s), Some(200));
    let objects = support::list_keys(&support::s3().await, &bucket, "streaming/").await.len();
    assert_eq!(objects, 20);

    let ops = |cmd: &str| {
        let out = support::binary()
            .env("AWS_ACCESS_KEY_ID", "minioadmin")
            .arg("--config")
            .arg(cfg.path())
            .arg(cmd)
            .output()
            .expect("runs");
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(ops("stored").contains("total: 20 objects, 5 dates, 4 symbols"), "{}", ops("stored"));
    assert!(ops("lag").contains("total lag: 0"), "{}", ops("lag"));
    assert!(run.terminate().success(), "SIGTERM drains and exits 0");
}

/// Readiness turns 503 when the object store stops and 200 again when it is back.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn readiness_follows_the_object_store() {
    let mut s3 = support::PrivateS3::start();
    let (topic, bucket, group) =
        (support::unique("egx-ready"), support::unique("egx-ready"), support::unique("g"));
    support::create_topic(&topic, 3).await;
    let port = support::free_port();
    let cfg = support::config_file(&topic, &bucket, &group, "");
    let mut consume = consume_with_admin(cfg.path(), port, s3.endpoint());
    let ready = || support::http_get(port, "/readyz");
    wait_for("ready", Duration::from_secs(60), || ready().is_some_and(|(s, _)| s == 200)).await;
    s3.stop();
    wait_for("not ready while the store is down", Duration::from_secs(30), || {
        ready().is_some_and(|(s, body)| s == 503 && body.contains("object store"))
    })
    .await;
    s3.resume();
    wait_for("ready again", Duration::from_secs(30), || ready().is_some_and(|(s, _)| s == 200)).await;
    assert!(consume.terminate().success());
}

/// A consumer started while the object store is down stays up, reports not ready with
/// the reason, joins the group only once the store answers (so partitions go to members
/// that can write), then writes everything.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn a_consumer_started_during_a_store_outage_waits_for_the_store() {
    let mut s3 = support::PrivateS3::start();
    s3.stop();
    let (topic, bucket, group) =
        (support::unique("egx-wait"), support::unique("egx-wait"), support::unique("g"));
    support::create_topic(&topic, 3).await;
    publish_daily_bars(&topic, "W", 30).await;
    let port = support::free_port();
    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        "[writer]
commit_interval_ms = 100
",
    );
    let mut consume = consume_with_admin(cfg.path(), port, s3.endpoint());
    let ready = || support::http_get(port, "/readyz");
    wait_for("not ready: the store is down", Duration::from_secs(60), || {
        ready().is_some_and(|(s, body)| s == 503 && body.contains("object store"))
    })
    .await;
    // Two store checks later (the first retries come within a second) it is still up,
    // still outside the group.
    let metrics = || support::http_get(port, "/metrics").map(|(_, b)| b).unwrap_or_default();
    wait_for("a few store checks", Duration::from_secs(30), || {
        support::metric_sum(&metrics(), "egx_store_checks_total") >= 3.0
    })
    .await;
    assert!(consume.running(), "the consumer keeps running");
    let (_, members) = crate::reliability::group_members(&support::kafka(), &group);
    assert!(members.is_empty(), "no group member before the store answers: {members:?}");

    s3.resume();
    let (g, t) = (group.clone(), topic.clone());
    wait_for("everything committed once the store is back", Duration::from_secs(60), move || {
        support::committed(&g, &t, 3) == support::end_offsets(&t)
    })
    .await;
    wait_for("ready once writing", Duration::from_secs(30), || ready().is_some_and(|(s, _)| s == 200)).await;
    assert!(consume.terminate().success());
    let written = support::list_keys(&support::s3_at(&s3.endpoint()).await, &bucket, "streaming/").await;
    assert_eq!(written.len(), 30);
}

/// A stall is never silent: with the store down, the age of the oldest unconfirmed write
/// grows, readiness fails past `writer.stall_timeout_secs` naming the stall, failed
/// attempts are counted by class, and the log carries the first failure and periodic
/// summaries instead of a warning per attempt; all of it clears once writes succeed again.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn a_stalled_writer_is_seen_in_metrics_readiness_and_a_quiet_log() {
    let mut s3 = support::PrivateS3::start();
    let (topic, bucket, group) =
        (support::unique("egx-stall"), support::unique("egx-stall"), support::unique("g"));
    support::create_topic(&topic, 3).await;
    let port = support::free_port();
    let stall_secs = 2;
    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        &format!(
            "[writer]
stall_timeout_secs = {stall_secs}
retry_initial_ms = 20
retry_max_ms = 200
"
        ),
    );
    let mut consume = consume_with_admin(cfg.path(), port, s3.endpoint());
    let ready = || support::http_get(port, "/readyz");
    wait_for("ready", Duration::from_secs(60), || ready().is_some_and(|(s, _)| s == 200)).await;
    s3.stop();
    publish_daily_bars(&topic, "T", 20).await;
    wait_for("not ready: writes stalled", Duration::from_secs(60), || {
        ready().is_some_and(|(s, body)| s == 503 && body.contains("object writes stalled"))
    })
    .await;
    let metrics = || support::http_get(port, "/metrics").map(|(_, b)| b).unwrap_or_default();
    // Retries every 20-200 ms: a per-attempt warning would give hundreds of lines by now.
    wait_for("200 failed attempts", Duration::from_secs(60), || {
        support::metric_sum(&metrics(), "egx_object_write_errors_total{class=\"unreachable\"}") >= 200.0
    })
    .await;
    let m = metrics();
    assert!(support::metric_sum(&m, "egx_oldest_write_age_seconds") >= stall_secs as f64, "{m}");
    let text = consume.log_text();
    let warnings = text.lines().filter(|l| l.contains("WARN") && l.contains("Object write")).count();
    assert!(
        (1..=10).contains(&warnings),
        "the first failure and a few summaries, not one per attempt: {warnings}\n{text}"
    );

    s3.resume();
    wait_for("ready again, nothing in flight", Duration::from_secs(60), || {
        ready().is_some_and(|(s, _)| s == 200)
            && support::metric_sum(&metrics(), "egx_oldest_write_age_seconds") == 0.0
    })
    .await;
    let text = consume.log_text();
    assert!(text.contains("Object writes succeed again."), "{text}");
    assert!(consume.terminate().success());
}

/// `produce --shard 0/2` and `--shard 1/2` together publish every symbol exactly once.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn shards_split_the_symbols_with_no_overlap_and_no_gap() {
    let topic = support::unique("egx-shard");
    support::create_topic(&topic, 3).await;
    let symbols = "COMI,ETEL,HRHO,TMGH,EAST,SWDY,ABUK,FWRY,EFIH,AMOC";
    let mut keys_per_shard = Vec::new();
    for shard in ["0/2", "1/2"] {
        let shard_topic = format!("{topic}-{}", &shard[..1]);
        let out = support::binary()
            .args([
                "produce",
                "--source",
                "synthetic",
                "--symbols",
                symbols,
                "--n-bars",
                "1",
                "--shard",
                shard,
            ])
            .args(["--bootstrap-servers", &support::kafka(), "--topic", &shard_topic])
            .output()
            .expect("runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let messages = support::read_topic_to_end(&shard_topic);
        let keys: BTreeSet<String> = messages
            .iter()
            .map(|m| String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned())
            .collect();
        keys_per_shard.push(keys);
    }
    assert!(keys_per_shard[0].is_disjoint(&keys_per_shard[1]), "no overlap: {keys_per_shard:?}");
    let all: BTreeSet<String> = keys_per_shard.iter().flatten().cloned().collect();
    let expected: BTreeSet<String> = symbols.split(',').map(str::to_string).collect();
    assert_eq!(all, expected, "no gap");
    assert!(!keys_per_shard[0].is_empty() && !keys_per_shard[1].is_empty());
}

/// SIGHUP re-reads the symbol list: a new symbol gets a Fetcher, a removed one loses it.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn sighup_reloads_the_symbol_list() {
    let (topic, bucket, group) =
        (support::unique("egx-hup"), support::unique("egx-hup"), support::unique("g"));
    let cfg = support::config_file(
        &topic,
        &bucket,
        &group,
        "[fetch]\nsymbols = [\"COMI\"]\nn_bars = 2\npoll_interval_secs = 1\n",
    );
    let port = support::free_port();
    let mut run = run_with_admin(cfg.path(), port);
    let fetches = |symbol: &str| {
        let m = support::http_get(port, "/metrics").map(|(_, b)| b).unwrap_or_default();
        support::metric_sum(&m, &format!("egx_fetches_total{{outcome=\"ok\",symbol=\"{symbol}\"}}"))
    };
    wait_for("COMI fetched", Duration::from_secs(60), || fetches("COMI") >= 1.0).await;
    let text = std::fs::read_to_string(cfg.path()).expect("config").replace("[\"COMI\"]", "[\"ETEL\"]");
    std::fs::File::create(cfg.path()).and_then(|mut f| f.write_all(text.as_bytes())).expect("rewrite config");
    run.hangup();
    wait_for("ETEL fetched after SIGHUP", Duration::from_secs(60), || fetches("ETEL") >= 2.0).await;
    let comi_after = fetches("COMI");
    wait_for("ETEL keeps polling", Duration::from_secs(30), || fetches("ETEL") >= 4.0).await;
    assert_eq!(fetches("COMI"), comi_after, "COMI's Fetcher was removed");
    assert!(run.terminate().success());
}

/// `check` passes against the real services and fails clearly on a wrong endpoint.
#[test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
fn check_names_what_is_unreachable() {
    let (topic, bucket, group) =
        (support::unique("egx-chk"), support::unique("egx-chk"), support::unique("g"));
    let cfg = support::config_file(&topic, &bucket, &group, "");
    let check = |envs: &[(&str, &str)]| {
        let mut cmd = support::binary();
        cmd.env("AWS_ACCESS_KEY_ID", "minioadmin").arg("--config").arg(cfg.path()).arg("check");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("runs")
    };
    let ok = check(&[]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad_kafka = check(&[("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")]);
    assert_eq!(bad_kafka.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_kafka.stderr)
        .contains("Kafka at 127.0.0.1:1 (kafka.bootstrap_servers) is not reachable"));
    let bad_s3 = check(&[("MINIO_ENDPOINT", "http://127.0.0.1:1")]);
    assert_eq!(bad_s3.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad_s3.stderr);
    assert!(stderr.contains("object store is not usable") && stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("minioadmin"), "no secret in errors");
}
