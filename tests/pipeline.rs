//! The whole pipeline end to end: the binary's `run --once`, run-time scaling, and the
//! embedded default that needs no services.

use std::path::Path;
use std::time::Duration;

use egx_actors::contract::partition::java_partition;
use egx_actors::messages::{AddSymbol, ListSymbols, RemoveSymbol};
use egx_actors::supervisor::{PipelineExit, Shutdown, Supervisor};
use egx_actors::KeyTemplate;
use rdkafka::message::Message;

use crate::support;

/// `run --once`: S symbols × B bars become exactly S×B objects holding the messages' bytes;
/// message keys are the symbols, each on its murmur2 partition; everything is committed.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn run_once_writes_exactly_the_published_bars() {
    let (topic, bucket, group) =
        (support::unique("egx-e2e"), support::unique("egx-e2e"), support::unique("g"));
    let symbols = ["COMI", "ETEL", "HRHO", "TMGH", "EAST", "SWDY"];
    let bars = 8;
    let fetch = format!("[fetch]\nsymbols = {symbols:?}\nn_bars = {bars}\n");
    let cfg = support::config_file(&topic, &bucket, &group, &fetch);
    let out = support::binary()
        .args(["--config"])
        .arg(cfg.path())
        .args(["run", "--once"])
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let total = symbols.len() * bars;
    assert!(stdout.contains(&format!("objects written:     {total}")), "{stdout}");

    let messages = support::read_topic_to_end(&topic);
    assert_eq!(messages.len(), total);
    for m in &messages {
        let body: serde_json::Value = serde_json::from_slice(m.payload().expect("payload")).expect("json");
        let key = m.key().expect("message key");
        assert_eq!(key, body["symbol"].as_str().expect("symbol").as_bytes(), "key = symbol");
        assert_eq!(m.partition(), java_partition(key, 3), "murmur2 partition of {body}");
        for field in [
            "symbol",
            "exchange",
            "interval",
            "datetime",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "ingestion_timestamp",
        ] {
            assert!(body.get(field).is_some(), "original field {field} kept: {body}");
        }
        assert_eq!(body["source"], "synthetic");
    }
    let s3 = support::s3().await;
    let check = support::check_bucket(&s3, &bucket, &messages, &KeyTemplate::default()).await;
    assert!(check.is_exact(), "{check:?}");
    assert_eq!(check.objects, total, "one object per bar: intervals and bars never collide");
    assert_eq!(support::committed(&group, &topic, 3), support::end_offsets(&topic), "everything committed");
}

/// `AddSymbol` while running starts a Fetcher whose objects appear; after `RemoveSymbol` the
/// symbol's `egx_fetches_total` stops while the remaining symbol's keeps counting.
#[actix_rt::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn symbols_can_be_added_and_removed_at_run_time() {
    let (topic, bucket, group) =
        (support::unique("egx-add"), support::unique("egx-add"), support::unique("g"));
    let mut spec = support::pipeline_spec(&topic, &bucket, &group, &["COMI"], 3).await;
    spec.once = false;
    let metrics = spec.metrics.clone();
    let fetches = move |symbol: &str| {
        ["ok", "error"]
            .iter()
            .map(|outcome| metrics.fetches.with_label_values(&[symbol, outcome]).get())
            .sum::<u64>()
    };
    let (supervisor, exit) = Supervisor::start(spec).expect("valid spec");
    let s3 = support::s3().await;
    let has = |symbol: &'static str| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        move || {
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move {
                support::list_keys(&s3, &bucket, &format!("streaming/date=2025-03-13/symbol={symbol}/"))
                    .await
                    .len()
                    == 1
            }
        }
    };
    assert!(support::eventually(Duration::from_secs(60), has("COMI")).await, "COMI objects appear");
    supervisor.send(AddSymbol(egx_actors::Symbol::parse("ETEL").unwrap())).await.unwrap().unwrap();
    assert!(
        support::eventually(Duration::from_secs(60), has("ETEL")).await,
        "ETEL objects appear after AddSymbol"
    );
    supervisor.send(RemoveSymbol(egx_actors::Symbol::parse("COMI").unwrap())).await.unwrap().unwrap();
    let running = supervisor.send(ListSymbols).await.unwrap();
    assert_eq!(running.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["ETEL"]);
    // ETEL polls every second; COMI's counter is compared across its cycles.
    let etel_cycles = |n: u64| {
        let (fetches, target) = (fetches.clone(), fetches("ETEL") + n);
        support::eventually(Duration::from_secs(60), move || {
            let reached = fetches("ETEL") >= target;
            async move { reached }
        })
    };
    let at_removal = fetches("COMI");
    assert!(etel_cycles(2).await, "ETEL keeps fetching");
    let settled = fetches("COMI");
    assert!(settled <= at_removal + 1, "at most the COMI cycle in flight at the removal finished");
    assert!(etel_cycles(3).await, "ETEL keeps fetching");
    assert_eq!(fetches("COMI"), settled, "no COMI fetch cycle after RemoveSymbol");
    supervisor.do_send(Shutdown);
    assert!(matches!(exit.await.expect("exit reported"), PipelineExit::Finished(_)));
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("below dir").display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// With no services at all, `run --config config/default.toml --once` writes the expected
/// Hive-style tree under the local directory.
#[test]
fn embedded_default_writes_the_expected_tree() {
    let work = tempfile::tempdir().expect("temp dir");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let out = support::binary()
        .current_dir(work.path())
        .args(["--config"])
        .arg(&config)
        .args(["run", "--once"])
        .output()
        .expect("binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("objects written:     50"), "{stdout}");
    let files = files_under(&work.path().join("egx-data"));
    assert_eq!(files.len(), 50, "5 symbols x 10 daily bars: {files:?}");
    for f in &files {
        let parts: Vec<&str> = f.split('/').collect();
        assert_eq!(parts.len(), 4, "{f}");
        assert_eq!(parts[0], "streaming");
        let date = parts[1].strip_prefix("date=").expect("date partition");
        let symbol = parts[2].strip_prefix("symbol=").expect("symbol partition");
        assert!(
            parts[3].ends_with("_1D_ohlcv.json") && parts[3].len() == "100000000000_1D_ohlcv.json".len(),
            "{f}"
        );
        let body: serde_json::Value =
            serde_json::from_slice(&std::fs::read(work.path().join("egx-data").join(f)).expect("file"))
                .expect("json");
        assert_eq!(body["symbol"], symbol);
        assert!(body["datetime"].as_str().expect("datetime").starts_with(date), "{body}");
    }
}
