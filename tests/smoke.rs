//! The plumbing against the real services, without the pipeline: rdkafka to the broker,
//! a consumer group with manual commits, aws-sdk-s3 to the S3 server.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;

use crate::support;

/// Keyed messages go through a real broker and come back as objects in a real bucket.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn kafka_to_s3_plumbing_round_trip() {
    let topic = support::unique("egx-smoke");
    let bucket = support::unique("egx-smoke");
    let group = support::unique("egx-smoke-group");
    support::create_topic(&topic, 3).await;

    let n = 30;
    let messages: Vec<(String, String)> =
        (0..n).map(|i| (format!("SYM{}", i % 5), format!(r#"{{"i":{i}}}"#))).collect();
    let refs: Vec<(Option<&[u8]>, &[u8])> =
        messages.iter().map(|(k, v)| (Some(k.as_bytes()), v.as_bytes())).collect();
    let delivered = support::produce(&topic, &refs).await;
    assert_eq!(delivered.len(), n, "every message acknowledged");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", support::kafka())
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let s3 = support::s3().await;
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket created");

    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen < n && std::time::Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("message");
        let key = format!("smoke/p{}/{:06}.json", m.partition(), m.offset());
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(m.payload().unwrap_or_default().to_vec().into())
            .send()
            .await
            .expect("object written");
        consumer.commit_message(&m, CommitMode::Sync).expect("commit");
        seen += 1;
    }
    assert_eq!(seen, n, "every message consumed");

    let committed = support::committed(&group, &topic, 3);
    let mut expected_commits = std::collections::BTreeMap::new();
    for (p, o) in &delivered {
        let e = expected_commits.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    assert_eq!(committed, expected_commits, "manual commits reached the end of every partition");

    let keys = support::list_keys(&s3, &bucket, "smoke/").await;
    assert_eq!(keys.len(), n);
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for k in &keys {
        bodies.push(support::get(&s3, &bucket, k).await);
    }
    let mut expected: Vec<Vec<u8>> = messages.iter().map(|(_, v)| v.clone().into_bytes()).collect();
    bodies.sort();
    expected.sort();
    assert_eq!(bodies, expected, "objects hold exactly the produced payloads");
}
