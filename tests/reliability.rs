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

use std::path::{Path, PathBuf};
use std::time::Duration;

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
