//! Clients for the secured test services that `scripts/services.sh` starts beside the
//! plain ones: `kafka-secure` (SASL_SSL with SCRAM-SHA-512 and PLAIN, ACLs, a private CA)
//! and `s3-tls` (versitygw over HTTPS, same CA). Where they are and the credentials come
//! from the environment: `scripts/test.sh` sources `.cache/run/secure/credentials.env`
//! (`EGX_TEST_SECURE_KAFKA`, `EGX_TEST_CA`, `EGX_TEST_OTHER_CA`, `EGX_TEST_*_USER`,
//! `EGX_TEST_*_PASSWORD`, `EGX_TEST_S3_TLS`, `EGX_TEST_S3_TLS_ACCESS_KEY`,
//! `EGX_TEST_S3_TLS_SECRET_KEY`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientConfig;

/// A variable of the secured services' credentials file; panics with a hint when unset.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run scripts/test.sh, or `scripts/services.sh start` and \
             `source .cache/run/secure/credentials.env`"
        )
    })
}

/// Bootstrap servers of the SASL_SSL listener (`EGX_TEST_SECURE_KAFKA`).
pub fn kafka() -> String {
    var("EGX_TEST_SECURE_KAFKA")
}

/// PEM file of the private CA that signed the servers' certificates (`EGX_TEST_CA`).
pub fn ca() -> String {
    var("EGX_TEST_CA")
}

/// PEM file of an unrelated CA (`EGX_TEST_OTHER_CA`).
pub fn other_ca() -> String {
    var("EGX_TEST_OTHER_CA")
}

/// A Kafka user of the secured broker.
#[derive(Debug, Clone)]
pub struct User {
    /// SASL mechanism: `SCRAM-SHA-512` or `PLAIN`.
    pub mechanism: &'static str,
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
}

fn user(mechanism: &'static str, prefix: &str) -> User {
    User { mechanism, name: var(&format!("{prefix}_USER")), password: var(&format!("{prefix}_PASSWORD")) }
}

/// `egx-scram`: SCRAM-SHA-512, full rights on topics and groups `secure-*`.
pub fn scram_user() -> User {
    user("SCRAM-SHA-512", "EGX_TEST_SCRAM")
}

/// `egx-plain`: PLAIN, full rights on topics and groups `secure-*`.
pub fn plain_user() -> User {
    user("PLAIN", "EGX_TEST_PLAIN")
}

/// `egx-readonly`: SCRAM-SHA-512, Read/Describe on topics and groups `secure-*`.
pub fn readonly_user() -> User {
    user("SCRAM-SHA-512", "EGX_TEST_READONLY")
}

/// `egx-nogroup`: SCRAM-SHA-512, full rights on topics `secure-*`, none on groups.
pub fn nogroup_user() -> User {
    user("SCRAM-SHA-512", "EGX_TEST_NOGROUP")
}

/// Client settings for the SASL_SSL listener as `user`, trusting only the PEM file `ca`.
pub fn client_config(user: &User, ca: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka())
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanisms", user.mechanism)
        .set("sasl.username", &user.name)
        .set("sasl.password", &user.password)
        .set("ssl.ca.location", ca)
        .set("socket.timeout.ms", "10000")
        .set("message.timeout.ms", "20000");
    config
}

/// What librdkafka reported through a client's context: global errors and log lines.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Global errors (error callback): code and reason, without consecutive repeats.
    pub errors: Vec<(RDKafkaErrorCode, String)>,
    /// Log lines of level info or worse (as far as the client's log level lets them
    /// through: by default only errors when no logger is installed): `facility: message`.
    pub logs: Vec<String>,
    /// How the metadata request of [`connection_errors`] failed.
    pub metadata: Option<KafkaError>,
}

/// A client context that records what librdkafka reports.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Recorded>>);

impl Recorder {
    /// A copy of what was recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.0.lock().expect("recorder lock").clone()
    }
}

impl ClientContext for Recorder {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if !matches!(level, RDKafkaLogLevel::Debug) {
            self.0.lock().expect("recorder lock").logs.push(format!("{fac}: {log_message}"));
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let entry = (error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail), reason.to_string());
        let mut recorded = self.0.lock().expect("recorder lock");
        if recorded.errors.last() != Some(&entry) {
            recorded.errors.push(entry);
        }
    }
}

impl ConsumerContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Connects a client with `config`, asks for metadata (which must fail) and waits until
/// what librdkafka reported satisfies `done` (or `deadline` passes); returns it.
pub fn connection_errors(
    config: &ClientConfig,
    deadline: Duration,
    done: impl Fn(&Recorded) -> bool,
) -> Recorded {
    let recorder = Recorder::default();
    let producer: BaseProducer<Recorder> =
        config.create_with_context(recorder.clone()).expect("client created");
    let start = Instant::now();
    let metadata = producer.client().fetch_metadata(None, Duration::from_secs(3));
    let metadata = metadata.map(|m| m.brokers().len()).expect_err("the broker must not answer");
    while start.elapsed() < deadline && !done(&recorder.recorded()) {
        producer.poll(Duration::from_millis(100));
    }
    Recorded { metadata: Some(metadata), ..recorder.recorded() }
}

/// Endpoint of the HTTPS S3 server (`EGX_TEST_S3_TLS`).
pub fn s3_endpoint() -> String {
    var("EGX_TEST_S3_TLS")
}

/// An S3 client for the HTTPS server that trusts exactly the CAs in the PEM files
/// `trusted` (no system roots), signing with the given keys; one attempt per request.
pub async fn s3_client(trusted: &[String], access_key: &str, secret_key: &str) -> Client {
    let mut trust = TrustStore::empty();
    for pem in trusted {
        trust = trust.with_pem_certificate(std::fs::read(pem).expect("CA PEM readable"));
    }
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(TlsContext::builder().with_trust_store(trust).build().expect("TLS context"))
        .build_https();
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "egx-test-s3-tls"))
        .endpoint_url(s3_endpoint())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .timeout_config(TimeoutConfig::builder().operation_timeout(Duration::from_secs(20)).build())
        .load()
        .await;
    Client::from_conf(aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).build())
}

/// An S3 client for the HTTPS server with its root keys, trusting the private CA.
pub async fn s3() -> Client {
    s3_client(&[ca()], &var("EGX_TEST_S3_TLS_ACCESS_KEY"), &var("EGX_TEST_S3_TLS_SECRET_KEY")).await
}
