//! Running the pipeline in tests: random names, config files, the binary, an in-process
//! spec, the admin endpoint, and waiting for a condition.

use std::time::{Duration, Instant};

use super::*;

/// A fresh name for a topic, bucket or group (lower case, S3- and Kafka-safe).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Waits until `cond` holds or the deadline passes; true if it held.
pub async fn eventually<F, Fut>(deadline: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A config file for the binary pointing at the test services.
pub fn config_file(topic: &str, bucket: &str, group: &str, extra: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let text = format!(
        r#"[kafka]
mode = "external"
bootstrap_servers = "{kafka}"
topic = "{topic}"
dead_letter_topic = "{topic}.dlq"
consumer_group = "{group}"
partitions = 3
session_timeout_ms = 10000

[sink]
kind = "s3"
bucket = "{bucket}"
endpoint = "{s3}"
access_key_id = "minioadmin"

[log]
format = "json"
{extra}
"#,
        kafka = kafka(),
        s3 = s3_endpoint(),
    );
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
    f.write_all(text.as_bytes()).expect("write config");
    f
}

/// The binary, with the test S3 secret in its environment (never in a file) and the admin
/// endpoint off.
pub fn binary() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_egx-pipeline"));
    cmd.env("AWS_SECRET_ACCESS_KEY", "minioadmin");
    // Tests run side by side: no shared admin port unless a test asks for one.
    cmd.env("EGX__ADMIN__LISTEN", "");
    cmd
}

/// A logger for tests: warnings and errors go to the captured test output.
pub fn test_logger() -> slog::Logger {
    use slog::Drain;
    let decorator = slog_term::PlainSyncDecorator::new(slog_term::TestStdoutWriter);
    let drain = slog_term::FullFormat::new(decorator).build().filter_level(slog::Level::Warning).fuse();
    slog::Logger::root(drain, slog::o!())
}

/// A pipeline spec against the test services, with the synthetic source at a fixed instant.
pub async fn pipeline_spec(
    topic: &str,
    bucket: &str,
    group: &str,
    symbols: &[&str],
    n_bars: usize,
) -> egx_actors::supervisor::PipelineSpec {
    use chrono::TimeZone;
    use egx_actors::fetcher::FetchConfig;
    use egx_actors::writer::WriterConfig;
    use std::sync::Arc;
    let sink = sink_config(bucket);
    let now = chrono::Utc.with_ymd_and_hms(2025, 3, 13, 12, 0, 0).single().expect("valid instant");
    let clock: egx_actors::source::Clock = Arc::new(move || now);
    egx_actors::supervisor::PipelineSpec {
        kafka: kafka_config(topic, group),
        sink: sink.clone(),
        writer: WriterConfig {
            commit_interval_ms: 200,
            drain_timeout_ms: 10_000,
            retry_max_ms: 1_000,
            ..WriterConfig::default()
        },
        fetch: FetchConfig {
            symbols: symbols.iter().map(|s| egx_actors::Symbol::parse(s).expect("symbol")).collect(),
            n_bars,
            poll_interval_secs: 1,
            ..FetchConfig::default()
        },
        supervisor: egx_actors::supervisor::SupervisorConfig {
            backoff_initial_ms: 50,
            backoff_max_ms: 500,
            ..Default::default()
        },
        chaos: egx_actors::supervisor::ChaosConfig::default(),
        produce: true,
        consume: true,
        once: true,
        source: Arc::new(egx_actors::source::SyntheticSource::new(11, clock.clone())),
        object_sink: egx_actors::sink::build(&sink).await,
        clock,
        market_hours: None,
        metrics: std::sync::Arc::new(egx_actors::metrics::Metrics::new().expect("metrics")),
        log: test_logger(),
    }
}

/// A free TCP port on localhost (bound and released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET path` on a local HTTP endpoint: (status code, body); None when nothing listens.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// The value of an unlabelled or labelled sample in a Prometheus text exposition, summed
/// over every series whose name and labels start with `series`.
pub fn metric_sum(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(series))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}
