//! The reliability suite: the pipeline's binaries against the real Kafka broker and S3
//! server under crashes, outages, slowness, group churn and bad input. Every scenario
//! checks the bucket against the topic (lost, extra and wrong-bytes objects) and records
//! one report row; `scripts/reliability.sh` prints the rows as a table.
//!
//! `EGX_RELIABILITY=full` runs the long variant (more messages and rounds); the default
//! is the shorter one the test command runs. Rows go to `EGX_REPORT_DIR` (default
//! `target/reliability/`), one file per scenario.

mod broker_restart;
mod group_churn;
mod kill_consume;
mod kill_produce;
mod poison;
mod rebalance_paused;
mod s3_outage;
mod slow_s3;
mod zombie_writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

use crate::support::{self, BucketCheck};

/// Short (the test command) or full (`EGX_RELIABILITY=full`, the documented long run).
pub fn full() -> bool {
    std::env::var("EGX_RELIABILITY").is_ok_and(|v| v == "full")
}

/// `short` in the test command's run, `long` in the full one.
pub fn scaled<T>(short: T, long: T) -> T {
    if full() {
        long
    } else {
        short
    }
}

/// Symbols of the generated stream: enough keys to spread over every partition.
pub const SYMBOLS: usize = 50;

/// Message `i` of the generated stream: a valid 1-minute bar, unique per `i` (its own
/// symbol and minute, so its own object), keyed by symbol as the producer keys them.
pub fn bar(i: usize) -> (String, String) {
    let symbol = format!("R{:02}", i % SYMBOLS);
    let start = NaiveDate::from_ymd_opt(2025, 3, 2).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("valid date");
    let minute = i64::try_from(i / SYMBOLS).expect("small index");
    let at = start + chrono::Duration::minutes(minute);
    let payload = format!(
        r#"{{"symbol":"{symbol}","exchange":"EGX","interval":"1 Minute","datetime":"{}","open":1.5,"high":2.0,"low":1.0,"close":1.75,"volume":{i}}}"#,
        at.format("%Y-%m-%dT%H:%M:%S")
    );
    (symbol, payload)
}

/// Publishes bars `range` of the generated stream; returns (partition, offset) → object key.
pub async fn publish_bars(
    producer: &FutureProducer,
    topic: &str,
    range: std::ops::Range<usize>,
) -> BTreeMap<(i32, i64), String> {
    let template = egx_actors::KeyTemplate::default();
    let bars: Vec<(String, String)> = range.map(bar).collect();
    let keys: Vec<String> = bars
        .iter()
        .map(|(_, p)| {
            let record = egx_actors::MarketRecord::decode(Some(p.as_bytes()), 1 << 20).expect("valid bar");
            template.render(&record).to_string()
        })
        .collect();
    let positions =
        support::publish(producer, topic, bars.into_iter().map(|(k, p)| (k, p.into_bytes())).collect()).await;
    positions.into_iter().zip(keys).collect()
}

/// When the pipeline fetched the bar of a message (its `ingestion_timestamp`): tells the
/// messages published before a fault from those published after it.
pub fn ingested(m: &rdkafka::message::OwnedMessage) -> chrono::DateTime<chrono::Utc> {
    use rdkafka::message::Message;
    let body: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON");
    let at = body["ingestion_timestamp"].as_str().unwrap_or_else(|| panic!("ingestion_timestamp in {body}"));
    chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339 timestamp").to_utc()
}

/// Waits until the group committed every message of the topic (lag 0 on every partition).
pub async fn all_committed(bootstrap: &str, group: &str, topic: &str, deadline: Duration) -> bool {
    support::eventually(deadline, || async {
        let ends = support::end_offsets_at(bootstrap, topic);
        !ends.is_empty() && support::committed_at(bootstrap, group, topic, 3) == ends
    })
    .await
}

/// The highest resident memory of every process it watched, in KiB.
#[derive(Debug, Clone, Default)]
pub struct Peak(Arc<AtomicU64>);

impl Peak {
    /// The peak in MiB.
    pub fn mib(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM:`, `VmRSS:`); None once the process is gone.
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One `egx-pipeline` process with its log kept in a file and its peak memory sampled.
pub struct Proc {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Proc {
    /// Starts the binary with `--config config`, `args` and extra environment variables.
    pub fn spawn(config: &Path, args: &[&str], env: &[(&str, String)], peak: &Peak) -> Self {
        let log =
            tempfile::Builder::new().prefix("egx-reliability-").suffix(".log").tempfile().expect("log file");
        let mut cmd = support::binary();
        cmd.arg("--config").arg(config).args(args).stdout(Stdio::null()).stderr(log.reopen().expect("log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("egx-pipeline starts");
        let (pid, peak) = (child.id(), peak.0.clone());
        // VmHWM is the process's own high-water mark; sampling it often enough catches the
        // last value before the process ends.
        std::thread::spawn(move || {
            while let Some(kib) = proc_kib(pid, "VmHWM:") {
                peak.fetch_max(kib, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { child, log }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill").args([signal, &pid]).status().expect("kill runs");
        self.child.wait().expect("process ends")
    }

    /// `kill -9`: no drain, no commit, no goodbye. Returns its exit status.
    pub fn kill9(&mut self) -> std::process::ExitStatus {
        self.signal("-KILL")
    }

    /// True while it has not ended.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM: drains, commits and leaves the group; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM")
    }

    /// Waits for it to end by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("process ends")
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One line of the report.
#[derive(Debug)]
pub struct Row {
    /// Sort key and file name, e.g. `1-kill-consume`.
    pub id: &'static str,
    /// What was done.
    pub scenario: &'static str,
    /// Messages in the topic at the end (valid or not, re-publishes included).
    pub messages: usize,
    /// The bucket compared with the topic.
    pub check: BucketCheck,
    /// From the end of the last fault until every message was committed.
    pub recover: Duration,
    /// Highest resident memory of any pipeline process of the scenario.
    pub peak_mib: f64,
    /// Scenario-specific observations.
    pub notes: String,
}

/// Where the rows go.
pub fn report_dir() -> PathBuf {
    std::env::var_os("EGX_REPORT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/reliability"))
}

impl Row {
    /// Writes the row (tab-separated, the table's column order) and then fails the test
    /// unless the bucket is exact: a failed scenario still shows in the report.
    pub fn record_and_check(&self) {
        let c = &self.check;
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.1} s\t{:.0} MiB\t{}\n",
            self.id,
            self.scenario,
            self.messages,
            c.objects,
            c.lost.len(),
            c.extra.len(),
            c.wrong_bytes.len(),
            self.recover.as_secs_f64(),
            self.peak_mib,
            self.notes
        );
        let dir = report_dir();
        std::fs::create_dir_all(&dir).expect("report dir");
        std::fs::write(dir.join(format!("{}.tsv", self.id)), &line).expect("report row");
        print!("report: {line}");
        assert!(c.is_exact(), "{}: the bucket differs from the topic: {c:?}", self.scenario);
        assert!(c.objects > 0, "{}: nothing was written", self.scenario);
    }
}

/// A metric's value in a pipeline's exposition on `admin`, or None while it does not answer.
pub fn metric(admin: u16, series: &str) -> Option<f64> {
    match support::http_get(admin, "/metrics") {
        Some((200, text)) => Some(support::metric_sum(&text, series)),
        _ => None,
    }
}

/// The group's state and member ids, as the broker describes them.
pub fn group_members(bootstrap: &str, group: &str) -> (String, Vec<String>) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let client: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("client");
    let list = client.fetch_group_list(Some(group), Duration::from_secs(10)).expect("DescribeGroups");
    list.groups()
        .first()
        .map(|g| (g.state().to_string(), g.members().iter().map(|m| m.id().to_string()).collect()))
        .unwrap_or_default()
}
