//! The object store over HTTPS with a private CA, and what the store's refusals do: the
//! binary writes through `sink.ca_bundle` or `AWS_CA_BUNDLE`; an untrusted certificate,
//! wrong or unknown access keys and a bucket it may not create end the run at once with an
//! exit code of their own and a message naming the setting to fix — never a secret —
//! instead of waiting as for an outage; every write carries the server-side encryption
//! headers.

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egx_actors::kafka::KafkaMode;
use egx_actors::key::ObjectKey;
use egx_actors::refusal::RefusalKind;
use egx_actors::sink::SinkConfig;
use egx_actors::sink::{FailureKind, ObjectSink, Origin, PutOutcome, S3Sink, SinkError};
use egx_actors::supervisor::{PipelineExit, Supervisor};
use egx_actors::{KeyTemplate, MarketRecord};
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::support::latency_proxy::LatencyProxy;
use crate::support::{self, secure};

/// Valid bars, one object each.
const BARS: [&str; 3] = [
    r#"{"symbol":"COMI","interval":"Daily","datetime":"2025-01-20T10:00:00+02:00","open":45.5,"high":46.2,"low":45.1,"close":46.0,"volume":1250000}"#,
    r#"{"symbol":"ETEL","interval":"Daily","datetime":"2025-01-20T10:00:00+02:00","open":21.5,"high":22.0,"low":21.1,"close":21.9,"volume":80000}"#,
    r#"{"symbol":"HRHO","interval":"Daily","datetime":"2025-01-21T10:00:00+02:00","open":18.0,"high":18.4,"low":17.9,"close":18.2,"volume":5000}"#,
];

/// How long a refused run may take at most; before refusals ended the run, it waited for
/// the store for ever.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(60);

/// A topic on the plain test broker holding [`BARS`] (a `--once` run of an empty topic
/// would finish without ever writing).
async fn topic_with_bars() -> String {
    let topic = support::unique("egx-tls");
    support::create_topic(&topic, 3).await;
    let messages: Vec<(Option<&[u8]>, &[u8])> =
        BARS.iter().map(|b| (Some(&b"BAR"[..]), b.as_bytes())).collect();
    support::produce(&topic, &messages).await;
    topic
}

/// A config file for `consume` from the plain broker into `bucket` on the HTTPS store;
/// `sink` is appended to the `[sink]` section.
fn config(topic: &str, bucket: &str, sink: &str) -> tempfile::NamedTempFile {
    let text = format!(
        r#"[kafka]
mode = "external"
bootstrap_servers = "{kafka}"
topic = "{topic}"
consumer_group = "{group}"
partitions = 3
session_timeout_ms = 10000

[sink]
kind = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
{sink}

[log]
format = "json"
"#,
        kafka = support::kafka(),
        group = support::unique("g"),
        endpoint = secure::s3_endpoint(),
    );
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
    f.write_all(text.as_bytes()).expect("write config");
    f
}

/// How a run of the binary ended (None: still running at the deadline, then killed) and
/// everything it printed.
struct Run {
    status: Option<ExitStatus>,
    output: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Runs `cmd` until it exits or `deadline` passes (then kills it).
fn run(cmd: &mut Command, deadline: Duration) -> Run {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("binary starts");
    let read = |mut from: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = from.read_to_string(&mut text);
            text
        })
    };
    let readers = [
        read(Box::new(child.stdout.take().expect("stdout"))),
        read(Box::new(child.stderr.take().expect("stderr"))),
    ];
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = readers.into_iter().map(|r| r.join().expect("reader")).collect::<Vec<_>>().join("\n");
    Run { status, output }
}

/// The binary with the HTTPS store's keys in its environment (overridden by `env`) and no
/// CA bundle unless given.
fn binary(env: &[(&str, &str)]) -> Command {
    let mut cmd = support::binary();
    cmd.env_remove("AWS_CA_BUNDLE")
        .env_remove("EGX__SINK__CA_BUNDLE")
        .env("AWS_ACCESS_KEY_ID", secure::var("EGX_TEST_S3_TLS_ACCESS_KEY"))
        .env("AWS_SECRET_ACCESS_KEY", secure::var("EGX_TEST_S3_TLS_SECRET_KEY"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// `consume --once` with `cfg`.
fn consume(cfg: &tempfile::NamedTempFile, env: &[(&str, &str)], deadline: Duration) -> Run {
    run(binary(env).arg("--config").arg(cfg.path()).args(["consume", "--once"]), deadline)
}

/// Nothing printed contains the HTTPS store's secret key or any of `others`.
fn assert_no_secret(run: &Run, others: &[&str]) {
    let secret = secure::var("EGX_TEST_S3_TLS_SECRET_KEY");
    for s in others.iter().copied().chain([secret.as_str()]) {
        assert!(!run.output.contains(s), "a secret was printed:\n{}", run.output.replace(s, "<SECRET>"));
    }
}

/// `consume --once` writes every bar into a new bucket of the HTTPS store, trusting the
/// private CA through `env` or `sink` settings.
async fn writes_every_bar_through_https(sink: &str, env: &[(&str, &str)]) {
    let (topic, bucket) = (topic_with_bars().await, support::unique("egx-tls"));
    let cfg = config(&topic, &bucket, sink);
    let out = consume(&cfg, env, Duration::from_secs(120));
    assert_eq!(out.code(), Some(0), "consume --once over HTTPS:\n{}", out.output);
    assert_no_secret(&out, &[]);
    let messages = support::read_topic_to_end(&topic);
    assert_eq!(messages.len(), BARS.len());
    let check = support::check_bucket(&secure::s3().await, &bucket, &messages, &KeyTemplate::default()).await;
    assert!(check.is_exact() && check.objects == BARS.len(), "{check:?}");
}

/// With `sink.ca_bundle` naming the private CA, the pipeline writes through HTTPS.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn writes_through_https_trusting_sink_ca_bundle() {
    writes_every_bar_through_https(&format!("ca_bundle = \"{}\"", secure::ca()), &[]).await;
}

/// With `AWS_CA_BUNDLE` (the AWS CLI's variable) naming the private CA, the pipeline
/// writes through HTTPS.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn writes_through_https_trusting_aws_ca_bundle() {
    writes_every_bar_through_https("", &[("AWS_CA_BUNDLE", &secure::ca())]).await;
}

/// Without the CA, or trusting an unrelated one, the run ends at once with exit code 6
/// and a message naming TLS trust and `sink.ca_bundle`.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn an_untrusted_certificate_ends_the_run_with_exit_code_6() {
    let topic = topic_with_bars().await;
    let other = format!("ca_bundle = \"{}\"", secure::other_ca());
    for sink in ["", other.as_str()] {
        let cfg = config(&topic, &support::unique("egx-tls"), sink);
        let out = consume(&cfg, &[], REFUSAL_DEADLINE);
        eprintln!("{sink:?}: {}", out.output.lines().last().unwrap_or_default());
        assert_eq!(out.code(), Some(6), "{sink:?}:\n{}", out.output);
        assert!(
            out.output.contains("the object store refused (TLS failed)")
                && out.output.contains("not trusted")
                && out.output.contains("sink.ca_bundle"),
            "{sink:?}:\n{}",
            out.output
        );
        assert_no_secret(&out, &[]);
    }
}

/// A wrong secret key (403 SignatureDoesNotMatch) and an unknown access key (versitygw:
/// 404 XAdminUserNotFound) end the run with exit code 5 and a message naming the access
/// keys; neither secret is printed.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn wrong_access_keys_end_the_run_with_exit_code_5() {
    let topic = topic_with_bars().await;
    let ca = format!("ca_bundle = \"{}\"", secure::ca());
    let wrong_secret = "egx-wrong-secret-4f1d9c";
    let cases = [
        ("wrong secret", [("AWS_SECRET_ACCESS_KEY", wrong_secret)]),
        ("unknown access key", [("AWS_ACCESS_KEY_ID", "egx-unknown-key")]),
    ];
    for (case, env) in cases {
        let cfg = config(&topic, &support::unique("egx-tls"), &ca);
        let out = consume(&cfg, &env, REFUSAL_DEADLINE);
        eprintln!("{case}: {}", out.output.lines().last().unwrap_or_default());
        assert_eq!(out.code(), Some(5), "{case}:\n{}", out.output);
        assert!(
            out.output.contains("the object store refused (authentication failed)")
                && out.output.contains("refused the access keys")
                && out.output.contains("sink.access_key_id"),
            "{case}:\n{}",
            out.output
        );
        assert_no_secret(&out, &[wrong_secret]);
    }
}

/// A missing bucket with `sink.create_bucket = false` ends the run with exit code 1 and a
/// message naming the setting, instead of waiting as for an outage.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn a_bucket_it_may_not_create_ends_the_run() {
    let topic = topic_with_bars().await;
    let sink = format!("ca_bundle = \"{}\"\ncreate_bucket = false", secure::ca());
    let cfg = config(&topic, &support::unique("egx-tls"), &sink);
    let out = consume(&cfg, &[], REFUSAL_DEADLINE);
    assert_eq!(out.code(), Some(1), "{}", out.output);
    assert!(out.output.contains("bucket does not exist and sink.create_bucket is false"), "{}", out.output);
}

/// `check` prints the classified refusal (TLS trust, `sink.ca_bundle`) and exits 1.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn check_names_the_refusal() {
    let topic = topic_with_bars().await;
    let cfg = config(&topic, &support::unique("egx-tls"), "");
    let out = run(binary(&[]).arg("--config").arg(cfg.path()).arg("check"), REFUSAL_DEADLINE);
    assert_eq!(out.code(), Some(1), "{}", out.output);
    assert!(out.output.contains("TLS failed") && out.output.contains("sink.ca_bundle"), "{}", out.output);
    assert_no_secret(&out, &[]);
}

/// A `ca_bundle` that is missing or holds no valid certificate is a configuration error
/// naming `sink.ca_bundle` (exit code 2): an invalid PEM never reaches the TLS library.
#[test]
fn an_invalid_ca_bundle_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let cases = [
        (dir.path().join("absent.pem").display().to_string(), "cannot read"),
        (bad("empty.pem", "no certificate here\n"), "holds no PEM certificate"),
        (bad("base64.pem", "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n"), "not valid PEM"),
        (bad("open.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n"), "not valid PEM"),
        (
            bad("der.pem", "-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n"),
            "not one the TLS library accepts",
        ),
    ];
    for (path, reason) in cases {
        let cfg = dir.path().join("config.toml");
        let text = format!(
            "[sink]\nkind = \"s3\"\nbucket = \"egx-bucket\"\nendpoint = \"https://127.0.0.1:1\"\nca_bundle = \"{path}\"\n"
        );
        std::fs::write(&cfg, text).expect("write config");
        let mut cmd = support::binary();
        cmd.env_remove("AWS_CA_BUNDLE");
        let out = run(cmd.arg("--config").arg(&cfg).arg("check-config"), REFUSAL_DEADLINE);
        assert_eq!(out.code(), Some(2), "{path}:\n{}", out.output);
        assert!(
            out.output.contains("sink.ca_bundle") && out.output.contains(reason),
            "{path}:\n{}",
            out.output
        );
    }
}

/// The system's whole bundle (144 certificates here, as a company's `AWS_CA_BUNDLE` might
/// hold) passes validation and loads into the TLS library without a panic; it does not
/// trust the private CA, so the store's certificate is refused as untrusted.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn a_large_bundle_loads_and_trusts_only_what_it_holds() {
    // Debian's bundle, present on every machine this suite runs on (ca-certificates).
    let system = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(system.is_file(), "{} is the system's CA bundle", system.display());
    let cfg = SinkConfig {
        endpoint: secure::s3_endpoint(),
        access_key_id: secure::var("EGX_TEST_S3_TLS_ACCESS_KEY"),
        secret_access_key: egx_actors::config::Secret::new(secure::var("EGX_TEST_S3_TLS_SECRET_KEY")),
        ca_bundle: system.into(),
        ..support::sink_config(&support::unique("egx-tls"))
    };
    cfg.validate().expect("the system bundle is valid");
    assert!(cfg.ca_bundle_pem().expect("every certificate loads").is_some());
    let err = S3Sink::new(&cfg).await.prepare().await.expect_err("the private CA is not in it");
    assert_eq!(err.kind, FailureKind::Tls, "{err}");
}

/// `sink.ca_bundle` comes from the file, then `EGX__SINK__CA_BUNDLE`, then `AWS_CA_BUNDLE`
/// (as `AWS_REGION` wins over `EGX__SINK__REGION`).
#[test]
fn the_ca_bundle_layers_are_file_then_egx_then_aws_ca_bundle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("config.toml");
    // A local sink reads no bundle, so the paths need not exist.
    std::fs::write(&cfg, "[sink]\nca_bundle = \"/file/ca.pem\"\n").expect("write config");
    let effective = |env: &[(&str, &str)]| {
        let mut cmd = support::binary();
        cmd.env_remove("AWS_CA_BUNDLE").env_remove("EGX__SINK__CA_BUNDLE").envs(env.iter().copied());
        let out = run(cmd.arg("--config").arg(&cfg).arg("check-config"), REFUSAL_DEADLINE);
        assert_eq!(out.code(), Some(0), "{}", out.output);
        let line = out.output.lines().find(|l| l.starts_with("ca_bundle = ")).map(str::to_string);
        line.expect("ca_bundle in the effective configuration")
    };
    assert_eq!(effective(&[]), r#"ca_bundle = "/file/ca.pem""#);
    let egx = ("EGX__SINK__CA_BUNDLE", "/egx/ca.pem");
    assert_eq!(effective(&[egx]), r#"ca_bundle = "/egx/ca.pem""#);
    assert_eq!(effective(&[egx, ("AWS_CA_BUNDLE", "/aws/ca.pem")]), r#"ca_bundle = "/aws/ca.pem""#);
}

fn key(symbol: &str) -> ObjectKey {
    let bar = format!(
        r#"{{"symbol":"{symbol}","interval":"Daily","datetime":"2025-01-20T10:00:00+02:00","open":1,"high":1,"low":1,"close":1}}"#
    );
    KeyTemplate::default().render(&MarketRecord::decode(Some(bar.as_bytes()), 1024).expect("valid bar"))
}

fn at(offset: i64) -> Origin {
    Origin { topic: "egx_market_data".into(), partition: 1, offset }
}

/// Every PUT the sink sends — the creating one (`If-None-Match`) and the conditional
/// replace (`If-Match`) — carries the server-side encryption headers, and only PUTs do
/// (S3 rejects them on HEAD and GET). versitygw accepts and ignores them (a HEAD reports
/// none), so they are checked where they leave: in the proxy.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn every_write_carries_the_server_side_encryption_headers() {
    let cases =
        [("AES256", ""), ("aws:kms", ""), ("aws:kms", "arn:aws:kms:eu-central-1:111122223333:key/egx-test")];
    for (sse, kms_key) in cases {
        let bucket = support::unique("egx-sse");
        let proxy = LatencyProxy::start(support::s3_endpoint().trim_start_matches("http://"), Duration::ZERO);
        let cfg = SinkConfig {
            endpoint: proxy.endpoint(),
            server_side_encryption: sse.into(),
            sse_kms_key_id: kms_key.into(),
            ..support::sink_config(&bucket)
        };
        let sink = S3Sink::new(&cfg).await;
        sink.prepare().await.expect("bucket");
        let k = key("COMI");
        assert_eq!(sink.put(k.clone(), b"v1".to_vec(), at(5)).await.expect("put"), PutOutcome::Created);
        assert_eq!(sink.put(k.clone(), b"v2".to_vec(), at(9)).await.expect("put"), PutOutcome::Replaced);
        let requests = proxy.requests();
        let puts: Vec<_> =
            requests.iter().filter(|r| r.method() == "PUT" && r.line.contains("x-id=PutObject")).collect();
        assert_eq!(
            puts.len(),
            3,
            "create, then If-None-Match refused and the If-Match replace: {requests:#?}"
        );
        assert!(puts.iter().any(|r| r.header("if-match").is_some()), "the replace is conditional: {puts:#?}");
        for put in &puts {
            assert_eq!(put.header("x-amz-server-side-encryption"), Some(sse), "{put:#?}");
            let kms = put.header("x-amz-server-side-encryption-aws-kms-key-id");
            assert_eq!(kms, (!kms_key.is_empty()).then_some(kms_key), "{put:#?}");
        }
        for other in requests.iter().filter(|r| !r.line.contains("x-id=PutObject")) {
            assert_eq!(other.header("x-amz-server-side-encryption"), None, "{other:#?}");
        }
    }
}

/// A store that refuses every call with one kind of failure, and counts its checks.
struct RefusingSink {
    kind: FailureKind,
    checks: Arc<Mutex<usize>>,
}

impl RefusingSink {
    fn error(&self) -> SinkError {
        SinkError {
            operation: "HEAD bucket",
            target: "s3://b/".into(),
            detail: "refused".into(),
            kind: self.kind,
        }
    }
}

impl ObjectSink for RefusingSink {
    fn prepare(&self) -> BoxFuture<'static, Result<(), SinkError>> {
        *self.checks.lock().expect("checks") += 1;
        let e = self.error();
        async move { Err(e) }.boxed()
    }
    fn put(&self, _: ObjectKey, _: Vec<u8>, _: Origin) -> BoxFuture<'static, Result<PutOutcome, SinkError>> {
        let e = self.error();
        async move { Err(e) }.boxed()
    }
    fn location(&self) -> String {
        "s3://b".into()
    }
}

/// A store that refuses at start (here: the access keys) ends the pipeline after one check
/// with `PipelineExit::Refused`, and the refusal is kept for `/readyz`; an outage is
/// waited for instead.
#[actix_rt::test]
async fn a_refusal_at_start_ends_the_pipeline_and_is_kept_for_readiness() {
    let (topic, group) = (support::unique("egx-refused"), support::unique("g"));
    let cfg =
        egx_actors::kafka::KafkaConfig { mode: KafkaMode::Embedded, ..support::kafka_config(&topic, &group) };
    let (_embedded, kafka) = egx_actors::kafka::EmbeddedKafka::start(&cfg).expect("mock cluster");
    for (kind, refused) in [(FailureKind::Authentication, true), (FailureKind::Unreachable, false)] {
        let checks = Arc::new(Mutex::new(0));
        let mut spec = support::pipeline_spec(&topic, "unused", &group, &[], 1).await;
        spec.object_sink = Arc::new(RefusingSink { kind, checks: checks.clone() });
        spec.kafka = kafka.clone();
        spec.produce = false;
        spec.once = false;
        spec.writer.retry_initial_ms = 10;
        spec.writer.retry_max_ms = 50;
        let metrics = spec.metrics.clone();
        let (supervisor, exit) = Supervisor::start(spec).expect("spec");
        let outcome = tokio::time::timeout(Duration::from_secs(3), exit).await;
        if refused {
            let Ok(Ok(PipelineExit::Refused(refusal))) = outcome else {
                panic!("a refused store must end the pipeline: {outcome:?}")
            };
            assert_eq!(refusal.kind, RefusalKind::Authentication);
            assert_eq!(*checks.lock().expect("checks"), 1, "no retry of a refusal");
            let kept = metrics.refusal("store").expect("the refusal is kept for /readyz");
            assert_eq!(kept, refusal);
        } else {
            assert!(outcome.is_err(), "an outage is waited for: {outcome:?}");
            assert!(*checks.lock().expect("checks") > 3, "and checked again");
            assert_eq!(metrics.refusal("store"), None);
            supervisor.do_send(egx_actors::supervisor::Shutdown);
        }
    }
}

/// A write refused mid-run is classified like the check at start: wrong access keys as
/// `authentication` (the metric class and the note /readyz shows), not as an outage.
#[tokio::test]
#[ignore = "needs real Kafka and S3: run scripts/test.sh"]
async fn refused_writes_are_classified_as_refusals() {
    let bucket = support::unique("egx-tls");
    secure::s3().await.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let access_key = secure::var("EGX_TEST_S3_TLS_ACCESS_KEY");
    let wrong_secret = "egx-wrong-secret-4f1d9c";
    for (access, secret) in [(access_key.as_str(), wrong_secret), ("egx-unknown-key", wrong_secret)] {
        let cfg = SinkConfig {
            endpoint: secure::s3_endpoint(),
            access_key_id: access.into(),
            secret_access_key: egx_actors::config::Secret::new(secret),
            ca_bundle: secure::ca().into(),
            ..support::sink_config(&bucket)
        };
        let err = S3Sink::new(&cfg).await.put(key("COMI"), b"v1".to_vec(), at(1)).await.expect_err("refused");
        eprintln!("{access}: {err}");
        assert_eq!(err.kind, FailureKind::Authentication, "{err}");
        assert!(!err.to_string().contains(wrong_secret));
    }
}
