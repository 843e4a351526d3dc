//! The secured test services themselves, with plain clients and no pipeline: rdkafka over
//! SASL_SSL (SCRAM-SHA-512 and PLAIN) against the broker with ACLs, aws-sdk-s3 over HTTPS,
//! both trusting the private CA, and what each refusal looks like to the client.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::support::{self, secure};

const REFUSAL_DEADLINE: Duration = Duration::from_secs(20);

/// Creates `topic` (3 partitions) as `user`.
async fn create_topic(user: &secure::User, topic: &str) {
    let admin: AdminClient<DefaultClientContext> =
        secure::client_config(user, &secure::ca()).create().expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        admin.create_topics(&[NewTopic::new(topic, 3, TopicReplication::Fixed(1))], &options),
    )
    .await
    .expect("CreateTopics answered in time")
    .expect("CreateTopics");
    for r in results {
        r.expect("topic created");
    }
}

/// Sends one record as `producer`, bounded by the producer's message timeout.
async fn send_one(producer: &FutureProducer, topic: &str) -> Result<(i32, i64), KafkaError> {
    let record = FutureRecord::to(topic).key("k").payload("v");
    tokio::time::timeout(Duration::from_secs(40), producer.send(record, Duration::from_secs(10)))
        .await
        .expect("send settled in time")
        .map(|d| (d.partition, d.offset))
        .map_err(|(e, _)| e)
}

/// A consumer of the secured broker in group `group`, manual commits.
fn consumer(user: &secure::User, group: &str) -> BaseConsumer {
    secure::client_config(user, &secure::ca())
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer")
}

/// Produces with an idempotent producer and consumes back in a group with commits.
async fn round_trip(user: secure::User) {
    let topic = support::unique("secure");
    let group = support::unique("secure-group");
    create_topic(&user, &topic).await;

    let producer: FutureProducer = secure::client_config(&user, &secure::ca())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("idempotent producer");
    let n = 20;
    let messages: Vec<(String, Vec<u8>)> =
        (0..n).map(|i| (format!("SYM{}", i % 4), format!(r#"{{"i":{i}}}"#).into_bytes())).collect();
    let delivered =
        tokio::time::timeout(Duration::from_secs(90), support::publish(&producer, &topic, messages.clone()))
            .await
            .expect("every send settled in time");
    assert_eq!(delivered.len(), n);

    let consumer = consumer(&user, &group);
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut payloads = Vec::new();
    let start = Instant::now();
    while payloads.len() < n && start.elapsed() < Duration::from_secs(60) {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("message");
            payloads.push(m.payload().unwrap_or_default().to_vec());
        }
    }
    assert_eq!(payloads.len(), n, "every message consumed");
    let mut expected: Vec<Vec<u8>> = messages.into_iter().map(|(_, v)| v).collect();
    payloads.sort();
    expected.sort();
    assert_eq!(payloads, expected, "exactly the produced payloads came back");

    consumer.commit_consumer_state(CommitMode::Sync).expect("commit");
    let committed = consumer.committed(Duration::from_secs(10)).expect("committed offsets");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert_eq!(total, n as i64, "the group committed past every message");
}

/// SCRAM-SHA-512 over SASL_SSL: create a topic, idempotent produce, consume in a group, commit.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn scram_over_sasl_ssl_round_trip() {
    round_trip(secure::scram_user()).await;
}

/// PLAIN over SASL_SSL: create a topic, idempotent produce, consume in a group, commit.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn plain_over_sasl_ssl_round_trip() {
    round_trip(secure::plain_user()).await;
}

/// True if librdkafka reported a global error with `code`.
fn has_error(seen: &secure::Recorded, code: RDKafkaErrorCode) -> bool {
    seen.errors.iter().any(|(c, _)| *c == code)
}

/// A wrong SCRAM password is reported as an authentication error (`_AUTHENTICATION`).
#[test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
fn wrong_password_is_an_authentication_error() {
    let mut user = secure::scram_user();
    user.password = "not-the-password".into();
    let config = secure::client_config(&user, &secure::ca());
    let seen = secure::connection_errors(&config, REFUSAL_DEADLINE, |r| {
        has_error(r, RDKafkaErrorCode::Authentication)
    });
    eprintln!("wrong password: {seen:#?}");
    assert!(
        seen.errors.iter().any(|(code, reason)| *code == RDKafkaErrorCode::Authentication
            && reason.contains("SASL authentication error")
            && reason.contains("invalid credentials with SASL mechanism SCRAM-SHA-512")),
        "expected an authentication error, got {seen:#?}"
    );
}

/// A client trusting an unrelated CA fails the SSL handshake: certificate verify failed (`_SSL`).
#[test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
fn untrusted_ca_is_a_certificate_verify_error() {
    let config = secure::client_config(&secure::scram_user(), &secure::other_ca());
    let seen = secure::connection_errors(&config, REFUSAL_DEADLINE, |r| has_error(r, RDKafkaErrorCode::SSL));
    eprintln!("untrusted CA: {seen:#?}");
    assert!(
        seen.errors.iter().any(|(code, reason)| *code == RDKafkaErrorCode::SSL
            && reason.contains("SSL handshake failed")
            && reason.contains("certificate verify failed")),
        "expected an SSL certificate verify error, got {seen:#?}"
    );
}

/// A plaintext client on the SASL_SSL port is disconnected during ApiVersion: only "brokers down".
#[test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
fn plaintext_client_on_the_tls_port_is_disconnected() {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", secure::kafka()).set_log_level(RDKafkaLogLevel::Info);
    let disconnected = |r: &secure::Recorded| {
        r.logs.iter().any(|l| l.contains("Disconnected") && l.contains("APIVERSION_QUERY"))
    };
    let seen = secure::connection_errors(&config, REFUSAL_DEADLINE, |r| {
        disconnected(r) && has_error(r, RDKafkaErrorCode::AllBrokersDown)
    });
    eprintln!("plaintext on the SASL_SSL port: {seen:#?}");
    assert!(disconnected(&seen), "expected a disconnect during the ApiVersion query, got {seen:#?}");
    assert!(has_error(&seen, RDKafkaErrorCode::AllBrokersDown), "got {seen:#?}");
    assert!(
        seen.errors.iter().all(|(code, _)| *code == RDKafkaErrorCode::AllBrokersDown),
        "no other global error expected, got {seen:#?}"
    );
}

/// egx-readonly reads and commits, but its produce is refused: TOPIC_AUTHORIZATION_FAILED.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn readonly_user_cannot_produce() {
    let topic = support::unique("secure");
    let writer = secure::scram_user();
    create_topic(&writer, &topic).await;
    let producer: FutureProducer = secure::client_config(&writer, &secure::ca()).create().expect("producer");
    send_one(&producer, &topic).await.expect("egx-scram writes");

    let readonly = secure::readonly_user();
    let producer: FutureProducer =
        secure::client_config(&readonly, &secure::ca()).create().expect("producer");
    let err = send_one(&producer, &topic).await.expect_err("egx-readonly must not write");
    eprintln!("readonly produce: {err:?} / {err}");
    assert_eq!(err, KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed));

    let idempotent: FutureProducer = secure::client_config(&readonly, &secure::ca())
        .set("enable.idempotence", "true")
        .create()
        .expect("idempotent producer");
    // An idempotent producer cannot even get a producer id (no Write on any topic).
    let err = send_one(&idempotent, &topic).await.expect_err("egx-readonly must not write");
    let fatal = idempotent.client().fatal_error();
    eprintln!("readonly idempotent produce: {err:?}; fatal error: {fatal:?}");
    assert_eq!(err, KafkaError::MessageProduction(RDKafkaErrorCode::PurgeQueue));
    assert!(
        matches!(&fatal, Some((RDKafkaErrorCode::ClusterAuthorizationFailed, reason))
            if reason.contains("Failed to acquire idempotence PID")),
        "expected a fatal cluster authorization failure, got {fatal:?}"
    );

    let group = support::unique("secure-group");
    let consumer = consumer(&readonly, &group);
    consumer.subscribe(&[&topic]).expect("subscribe");
    let start = Instant::now();
    let message = loop {
        assert!(start.elapsed() < Duration::from_secs(60), "egx-readonly read nothing");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            break m.expect("egx-readonly reads");
        }
    };
    consumer.commit_message(&message, CommitMode::Sync).expect("egx-readonly commits");
}

/// egx-nogroup writes a topic, but joining a group or committing is refused (group authorization).
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn nogroup_user_cannot_join_or_commit() {
    let topic = support::unique("secure");
    let user = secure::nogroup_user();
    create_topic(&user, &topic).await;
    let producer: FutureProducer = secure::client_config(&user, &secure::ca())
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let (partition, offset) = send_one(&producer, &topic).await.expect("egx-nogroup writes");

    let group = support::unique("secure-group");
    let joiner = consumer(&user, &group);
    joiner.subscribe(&[&topic]).expect("subscribe");
    let start = Instant::now();
    let err = loop {
        assert!(start.elapsed() < REFUSAL_DEADLINE, "joining the group was not refused in time");
        match joiner.poll(Duration::from_millis(200)) {
            Some(Err(e)) => break e,
            Some(Ok(m)) => panic!("egx-nogroup consumed in a group: offset {}", m.offset()),
            None => {}
        }
    };
    eprintln!("nogroup join: {err:?} / {err}");
    assert_eq!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::GroupAuthorizationFailed));

    // Without subscribing: the coordinator lookup is refused, and a commit never finds one.
    let committer = consumer(&user, &support::unique("secure-group"));
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, partition, Offset::Beginning).expect("partition");
    committer.assign(&assignment).expect("assign");
    let start = Instant::now();
    let err = loop {
        assert!(start.elapsed() < REFUSAL_DEADLINE, "the coordinator lookup was not refused in time");
        if let Some(Err(e)) = committer.poll(Duration::from_millis(200)) {
            break e;
        }
    };
    eprintln!("nogroup coordinator lookup: {err:?}");
    assert_eq!(err.rdkafka_error_code(), Some(RDKafkaErrorCode::GroupAuthorizationFailed));
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(&topic, partition, Offset::Offset(offset + 1)).expect("offset");
    let start = Instant::now();
    let err = committer.commit(&offsets, CommitMode::Sync).expect_err("egx-nogroup must not commit");
    eprintln!("nogroup commit: {err:?} after {:?}", start.elapsed());
    assert_eq!(err, KafkaError::ConsumerCommit(RDKafkaErrorCode::WaitingForCoordinator));
}

/// aws-sdk-s3 over HTTPS trusting the private CA: create a bucket, put and get an object.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn s3_over_https_with_private_ca_round_trip() {
    let s3 = secure::s3().await;
    let bucket = support::unique("egx-secure");
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket created");
    let body = br#"{"symbol":"COMI","close":81.5}"#.to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key("bars/COMI.json")
        .body(body.clone().into())
        .send()
        .await
        .expect("object written");
    let out = s3.get_object().bucket(&bucket).key("bars/COMI.json").send().await.expect("GetObject");
    let got = out.body.collect().await.expect("object body").into_bytes().to_vec();
    assert_eq!(got, body);
}

/// aws-sdk-s3 trusting an unrelated CA, or the system roots, fails the handshake: UnknownIssuer.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn s3_with_untrusted_ca_fails_the_handshake() {
    let keys = (secure::var("EGX_TEST_S3_TLS_ACCESS_KEY"), secure::var("EGX_TEST_S3_TLS_SECRET_KEY"));
    let other = secure::s3_client(&[secure::other_ca()], &keys.0, &keys.1).await;
    let err = other.list_buckets().send().await.expect_err("an unrelated CA must not be trusted");
    let text = DisplayErrorContext(&err).to_string();
    eprintln!("untrusted CA: {text}");
    assert!(matches!(err, SdkError::DispatchFailure(_)), "expected a dispatch failure, got {text}");
    assert!(text.contains("invalid peer certificate: UnknownIssuer"), "got {text}");

    // The SDK's default client trusts the system roots (or SSL_CERT_FILE) only.
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(&keys.0, &keys.1, None, None, "t"))
        .endpoint_url(secure::s3_endpoint())
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await;
    let default = aws_sdk_s3::Client::new(&shared);
    let err = default.list_buckets().send().await.expect_err("the private CA is not a system root");
    let text = DisplayErrorContext(&err).to_string();
    eprintln!("default client: {text}");
    assert!(text.contains("invalid peer certificate: UnknownIssuer"), "got {text}");
}

/// A wrong secret key gets 403 SignatureDoesNotMatch, an unknown access key 404 XAdminUserNotFound.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn s3_with_wrong_keys_is_refused() {
    let access_key = secure::var("EGX_TEST_S3_TLS_ACCESS_KEY");
    let wrong_secret = secure::s3_client(&[secure::ca()], &access_key, "not-the-secret").await;
    let err = wrong_secret.list_buckets().send().await.expect_err("a wrong secret must be refused");
    let status = err.raw_response().map(|r| r.status().as_u16());
    eprintln!("wrong secret: {status:?} {:?}: {:?}", err.code(), err.message());
    assert_eq!(status, Some(403));
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));

    let secret = secure::var("EGX_TEST_S3_TLS_SECRET_KEY");
    // versitygw's answer; AWS itself says 403 InvalidAccessKeyId.
    let wrong_key = secure::s3_client(&[secure::ca()], "egx-unknown-key", &secret).await;
    let err = wrong_key.list_buckets().send().await.expect_err("an unknown key must be refused");
    let status = err.raw_response().map(|r| r.status().as_u16());
    eprintln!("unknown access key: {status:?} {:?}: {:?}", err.code(), err.message());
    assert!(
        matches!(
            (status, err.code()),
            (Some(404), Some("XAdminUserNotFound")) | (Some(403), Some("InvalidAccessKeyId"))
        ),
        "got {}",
        DisplayErrorContext(&err)
    );
}
