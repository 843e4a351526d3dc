//! Interoperability with the original Python world: messages from a kafka-python
//! producer in both original shapes are written correctly, and our messages read by a
//! plain kafka-python consumer carry the original fields. Uses the original CLI flags.

use std::path::Path;
use std::process::Command;

use egx_actors::contract::partition::java_partition;
use egx_actors::KeyTemplate;

use crate::support;

fn python() -> Command {
    let python = std::env::var("EGX_PYTHON")
        .expect("EGX_PYTHON must name a Python with kafka-python (scripts/test.sh sets it)");
    let mut cmd = Command::new(python);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_client.py"));
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Both original message shapes from kafka-python are written under the original layout,
/// intraday fields of one instant never overwrite each other, and Python's partitioner
/// agrees with ours.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn python_produced_original_shapes_are_written() {
    let (topic, bucket, group) = (support::unique("egx-py"), support::unique("egx-py"), support::unique("g"));
    support::create_topic(&topic, 3).await;
    let sent: serde_json::Value = serde_json::from_str(&run_ok(python().args([
        "produce",
        "--bootstrap",
        &support::kafka(),
        "--topic",
        &topic,
    ])))
    .expect("json");
    for s in sent.as_array().expect("list") {
        let key = s["key"].as_str().expect("key");
        assert_eq!(
            s["partition"].as_i64(),
            Some(i64::from(java_partition(key.as_bytes(), 3))),
            "same partition as ours for {key}"
        );
    }
    let stdout = run_ok(
        support::binary()
            .env("AWS_ACCESS_KEY_ID", "minioadmin")
            .args(["consume", "--bootstrap", &support::kafka(), "--topic", &topic, "--bucket", &bucket])
            .args([
                "--minio-endpoint",
                &support::s3_endpoint(),
                "--consumer-group",
                &group,
                "--prefix",
                "streaming/",
                "--once",
            ]),
    );
    assert!(stdout.contains("objects written:     6"), "{stdout}");
    let s3 = support::s3().await;
    let keys = support::list_keys(&s3, &bucket, "streaming/").await;
    assert_eq!(
        keys,
        [
            "streaming/date=2025-01-20/symbol=COMI/000000000000_1D_ohlcv.json",
            "streaming/date=2025-01-20/symbol=COMI/093500000000_5min_close.json",
            "streaming/date=2025-01-20/symbol=COMI/093500000000_5min_high.json",
            "streaming/date=2025-01-20/symbol=COMI/093500000000_5min_low.json",
            "streaming/date=2025-01-20/symbol=COMI/093500000000_5min_open.json",
            "streaming/date=2025-01-20/symbol=ETEL/000000000000_1D_ohlcv.json",
        ]
    );
    let messages = support::read_topic_to_end(&topic);
    assert_eq!(messages.len(), 6);
    let check = support::check_bucket(&s3, &bucket, &messages, &KeyTemplate::default()).await;
    assert!(check.is_exact(), "{check:?}");
}

/// `produce` with the original flags publishes messages a plain Python consumer reads with
/// every original field, correctly typed, timestamps with offsets.
#[test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
fn python_consumer_reads_the_original_fields() {
    let topic = support::unique("egx-py-out");
    run_ok(
        support::binary()
            .args([
                "produce",
                "--source",
                "synthetic",
                "--symbols",
                "COMI,ETEL",
                "--interval",
                "Daily",
                "--n-bars",
                "5",
            ])
            .args(["--bootstrap-servers", &support::kafka(), "--topic", &topic, "--log-level", "WARNING"]),
    );
    let summary: serde_json::Value = serde_json::from_str(&run_ok(python().args([
        "consume",
        "--bootstrap",
        &support::kafka(),
        "--topic",
        &topic,
        "--count",
        "10",
    ])))
    .expect("json");
    assert_eq!(summary["count"], 10, "{summary}");
    assert_eq!(summary["keys"], serde_json::json!(["COMI", "ETEL"]));
    assert_eq!(summary["problems"], serde_json::json!([]), "{summary}");
}
