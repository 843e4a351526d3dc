//! The S3 sink against the real S3 server: what each write does to an existing object, and
//! the fence that keeps an older record of a partition from replacing a newer one's object
//! (DESIGN.md rule 10) — also when writers race for the same key.

use std::sync::Arc;
use std::time::Duration;

use egx_actors::key::ObjectKey;
use egx_actors::sink::{ObjectSink, Origin, PutOutcome, S3Sink};
use egx_actors::sink::{ReplacePolicy, SinkConfig};
use egx_actors::{KeyTemplate, MarketRecord};

use crate::support;
use crate::support::latency_proxy::LatencyProxy;

fn key() -> ObjectKey {
    let bar = br#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20T10:00:00+02:00","open":1,"high":1,"low":1,"close":1}"#;
    KeyTemplate::default().render(&MarketRecord::decode(Some(bar), 1024).expect("valid bar"))
}

fn at(offset: i64) -> Origin {
    Origin { topic: "egx_market_data".into(), partition: 2, offset }
}

async fn sink(bucket: &str, replace: ReplacePolicy) -> Arc<dyn ObjectSink> {
    let cfg = SinkConfig { replace, ..support::sink_config(bucket) };
    let sink = Arc::new(S3Sink::new(&cfg).await);
    sink.prepare().await.expect("bucket");
    sink
}

/// Created, then Unchanged for a replay, Replaced by a newer offset, Superseded for an
/// older one (which leaves the newer bytes), and the object carries its origin.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn an_older_offset_never_replaces_a_newer_one() {
    let bucket = support::unique("egx-fence");
    let sink = sink(&bucket, ReplacePolicy::NewerOffset).await;
    assert_eq!(sink.put(key(), b"v1".to_vec(), at(5)).await.expect("put"), PutOutcome::Created);
    assert_eq!(sink.put(key(), b"v1".to_vec(), at(5)).await.expect("put"), PutOutcome::Unchanged);
    assert_eq!(sink.put(key(), b"v2".to_vec(), at(9)).await.expect("put"), PutOutcome::Replaced);
    assert_eq!(sink.put(key(), b"v1".to_vec(), at(5)).await.expect("put"), PutOutcome::Superseded);
    let s3 = support::s3().await;
    assert_eq!(support::get(&s3, &bucket, key().as_str()).await, b"v2");
    let head = s3.head_object().bucket(&bucket).key(key().as_str()).send().await.expect("HEAD");
    let origin = head.metadata().and_then(|m| m.get("egx-origin")).cloned();
    assert_eq!(origin.as_deref(), Some("egx_market_data/2/9"));
}

/// An object the original consumer wrote (no origin) with the same bytes is a replay: it
/// is stamped with the record's origin, after which an older record cannot replace it.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn objects_without_an_origin_are_compared_by_bytes_then_fenced() {
    let bucket = support::unique("egx-fence");
    let sink = sink(&bucket, ReplacePolicy::NewerOffset).await;
    let s3 = support::s3().await;
    s3.put_object()
        .bucket(&bucket)
        .key(key().as_str())
        .body(b"v2".to_vec().into())
        .send()
        .await
        .expect("a plain PUT, as the original consumer made");
    assert_eq!(sink.put(key(), b"v2".to_vec(), at(9)).await.expect("put"), PutOutcome::Unchanged);
    assert_eq!(sink.put(key(), b"v1".to_vec(), at(5)).await.expect("put"), PutOutcome::Superseded);
    assert_eq!(support::get(&s3, &bucket, key().as_str()).await, b"v2");
}

/// Many writers race for one key with different offsets of one partition: whatever the
/// interleaving, the object ends with the highest offset's bytes (the check and the write
/// cannot race: every PUT is conditional).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn racing_writers_leave_the_newest_version() {
    let bucket = support::unique("egx-fence");
    let sink = sink(&bucket, ReplacePolicy::NewerOffset).await;
    for round in 0..5 {
        let offsets: Vec<i64> = (0..12).map(|i| round * 100 + i).collect();
        let writes = offsets.iter().map(|o| {
            let sink = sink.clone();
            let o = *o;
            tokio::spawn(async move { sink.put(key(), format!("v{o}").into_bytes(), at(o)).await })
        });
        for w in futures::future::join_all(writes).await {
            w.expect("task").expect("put");
        }
        let newest = offsets.iter().max().expect("offsets");
        let s3 = support::s3().await;
        assert_eq!(
            String::from_utf8(support::get(&s3, &bucket, key().as_str()).await).expect("utf-8"),
            format!("v{newest}"),
            "round {round}"
        );
    }
}

/// `sink.replace = "always"` (a write-only role) never reads: an existing object is
/// replaced, whatever wrote it, with PUT requests only.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn write_only_mode_replaces_without_reading() {
    let bucket = support::unique("egx-fence");
    sink(&bucket, ReplacePolicy::NewerOffset).await;
    let proxy = LatencyProxy::start(support::s3_endpoint().trim_start_matches("http://"), Duration::ZERO);
    let cfg = SinkConfig {
        replace: ReplacePolicy::Always,
        endpoint: proxy.endpoint(),
        ..support::sink_config(&bucket)
    };
    let sink = S3Sink::new(&cfg).await;
    assert_eq!(sink.put(key(), b"v2".to_vec(), at(9)).await.expect("put"), PutOutcome::Created);
    assert_eq!(sink.put(key(), b"v1".to_vec(), at(5)).await.expect("put"), PutOutcome::Replaced);
    assert_eq!(support::get(&support::s3().await, &bucket, key().as_str()).await, b"v1");
    let methods: Vec<String> =
        proxy.requests().iter().map(|r| r.line.split(' ').next().unwrap_or("").to_string()).collect();
    assert_eq!(methods, ["PUT", "PUT", "PUT"], "{:?}", proxy.requests());
}
