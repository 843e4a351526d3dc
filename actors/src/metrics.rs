//! Prometheus metrics of the pipeline. One [`Metrics`] value is created per pipeline and
//! passed to every actor (no global registry), then served by [`crate::admin`].
//!
//! Names follow Prometheus conventions: `egx_` prefix, base units in the name
//! (`_seconds`), `_total` on counters.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::refusal::Refusal;

/// Every metric the pipeline exports.
pub struct Metrics {
    registry: Registry,
    /// Why a dependency (`kafka`, `store`) refuses the pipeline right now — credentials,
    /// TLS trust, permissions — so that `/readyz` can say it while it lasts. Not a metric.
    refusals: Mutex<BTreeMap<&'static str, Refusal>>,
    /// Fetch cycles per symbol and outcome (`ok`, `error`).
    pub fetches: IntCounterVec,
    /// Unix time of each symbol's last successful fetch cycle.
    pub fetch_last_success: IntGaugeVec,
    /// Fetched bars dropped unpublished, per symbol: a Fetcher's pending set overflowed
    /// during a long Kafka outage (each drop is also logged as an ERROR).
    pub bars_dropped: IntCounterVec,
    /// Messages acknowledged by Kafka.
    pub messages_produced: IntCounter,
    /// Messages Kafka did not acknowledge.
    pub produce_errors: IntCounter,
    /// Records received from Kafka by the reader.
    pub records_consumed: IntCounter,
    /// Records stored as objects.
    pub records_written: IntCounter,
    /// Records sent to the dead-letter topic.
    pub records_dead_lettered: IntCounter,
    /// Failed object writes (each is retried), by class of the store's answer.
    pub write_errors: IntCounterVec,
    /// Object writes by what they did (created, unchanged, replaced, superseded, abandoned).
    pub writes: IntCounterVec,
    /// Age of the oldest record handed to the writer and not yet confirmed (0 when none):
    /// how long the commit has not moved.
    pub oldest_write_age: prometheus::Gauge,
    /// Checks of the object store (at start, then every few seconds), by outcome.
    pub store_checks: IntCounterVec,
    /// Duration of successful object writes, retries included.
    pub write_seconds: Histogram,
    /// Per partition: the topic's end offset minus the written watermark.
    pub consumer_lag: IntGaugeVec,
    /// Per partition: the last committed offset.
    pub committed_offset: IntGaugeVec,
    /// Per partition: records handed to the writer and not yet confirmed.
    pub in_flight: IntGaugeVec,
    /// Per partition: 1 while paused at the in-flight limit.
    pub paused: IntGaugeVec,
    /// Actor restarts by the supervisor, per actor kind.
    pub restarts: IntCounterVec,
    /// 1 while a dependency answers: `kafka`, `store`.
    pub up: IntGaugeVec,
    /// Partitions assigned to this consumer-group member.
    pub assigned_partitions: IntGauge,
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let write_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "egx_object_write_duration_seconds",
                "Duration of successful object writes, retries included.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        )?;
        r.register(Box::new(write_seconds.clone()))?;
        Ok(Self {
            fetches: counter_vec(
                &r,
                "egx_fetches_total",
                "Fetch cycles per symbol and outcome.",
                &["symbol", "outcome"],
            )?,
            fetch_last_success: gauge_vec(
                &r,
                "egx_fetch_last_success_timestamp_seconds",
                "Unix time of the last successful fetch cycle per symbol.",
                &["symbol"],
            )?,
            bars_dropped: counter_vec(
                &r,
                "egx_bars_dropped_total",
                "Fetched bars dropped unpublished because a pending set overflowed during a Kafka outage.",
                &["symbol"],
            )?,
            messages_produced: counter(&r, "egx_messages_produced_total", "Messages acknowledged by Kafka.")?,
            produce_errors: counter(&r, "egx_produce_errors_total", "Messages Kafka did not acknowledge.")?,
            records_consumed: counter(&r, "egx_records_consumed_total", "Records received from Kafka.")?,
            records_written: counter(&r, "egx_records_written_total", "Records stored as objects.")?,
            records_dead_lettered: counter(
                &r,
                "egx_records_dead_lettered_total",
                "Records sent to the dead-letter topic.",
            )?,
            write_errors: counter_vec(
                &r,
                "egx_object_write_errors_total",
                "Failed object writes (each is retried), by class: authentication, tls, forbidden, not_found, throttled, server_error, unreachable, other.",
                &["class"],
            )?,
            writes: counter_vec(
                &r,
                "egx_object_writes_total",
                "Object writes by outcome: created, unchanged, replaced, superseded, abandoned.",
                &["outcome"],
            )?,
            oldest_write_age: {
                let g = prometheus::Gauge::new(
                    "egx_oldest_write_age_seconds",
                    "Age of the oldest record handed to the writer and not yet confirmed (0 when none).",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            store_checks: counter_vec(
                &r,
                "egx_store_checks_total",
                "Checks of the object store, by outcome (ok, error).",
                &["outcome"],
            )?,
            write_seconds,
            consumer_lag: gauge_vec(
                &r,
                "egx_consumer_lag_records",
                "Topic end offset minus the written watermark, per partition.",
                &["partition"],
            )?,
            committed_offset: gauge_vec(
                &r,
                "egx_committed_offset",
                "Last committed offset per partition.",
                &["partition"],
            )?,
            in_flight: gauge_vec(
                &r,
                "egx_in_flight_records",
                "Records being written, per partition.",
                &["partition"],
            )?,
            paused: gauge_vec(&r, "egx_partition_paused", "1 while a partition is paused.", &["partition"])?,
            restarts: counter_vec(
                &r,
                "egx_actor_restarts_total",
                "Actor restarts by the supervisor.",
                &["actor"],
            )?,
            up: gauge_vec(
                &r,
                "egx_dependency_up",
                "1 while a dependency (kafka, store) answers.",
                &["dependency"],
            )?,
            assigned_partitions: {
                let g =
                    IntGauge::new("egx_assigned_partitions", "Partitions assigned to this group member.")?;
                r.register(Box::new(g.clone()))?;
                g
            },
            registry: r,
            refusals: Mutex::default(),
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Notes that `dependency` refuses the pipeline (until [`Self::accepted`]).
    pub fn refused(&self, dependency: &'static str, refusal: Refusal) {
        if let Ok(mut r) = self.refusals.lock() {
            r.insert(dependency, refusal);
        }
    }

    /// Notes that `dependency` accepts the pipeline again.
    pub fn accepted(&self, dependency: &'static str) {
        if let Ok(mut r) = self.refusals.lock() {
            r.remove(dependency);
        }
    }

    /// Why `dependency` refuses the pipeline, if it does.
    pub fn refusal(&self, dependency: &str) -> Option<Refusal> {
        self.refusals.lock().ok().and_then(|r| r.get(dependency).cloned())
    }

    /// Forgets the per-partition gauges of partitions this member no longer owns.
    pub fn forget_partition(&self, partition: i32) {
        let p = partition.to_string();
        for g in [&self.consumer_lag, &self.in_flight, &self.paused] {
            let _ = g.remove_label_values(&[&p]);
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The metric names this binary exports (dashboards and alert rules are checked against it).
pub const METRIC_NAMES: [&str; 20] = [
    "egx_dependency_up",
    "egx_assigned_partitions",
    "egx_fetches_total",
    "egx_fetch_last_success_timestamp_seconds",
    "egx_bars_dropped_total",
    "egx_messages_produced_total",
    "egx_produce_errors_total",
    "egx_records_consumed_total",
    "egx_records_written_total",
    "egx_records_dead_lettered_total",
    "egx_object_write_errors_total",
    "egx_object_write_duration_seconds",
    "egx_object_writes_total",
    "egx_oldest_write_age_seconds",
    "egx_store_checks_total",
    "egx_consumer_lag_records",
    "egx_committed_offset",
    "egx_in_flight_records",
    "egx_partition_paused",
    "egx_actor_restarts_total",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_under_its_documented_name() {
        let m = Metrics::new().unwrap();
        m.fetches.with_label_values(&["COMI", "ok"]).inc();
        m.fetch_last_success.with_label_values(&["COMI"]).set(1);
        m.bars_dropped.with_label_values(&["COMI"]).inc();
        m.write_seconds.observe(0.01);
        for g in [&m.consumer_lag, &m.committed_offset, &m.in_flight, &m.paused] {
            g.with_label_values(&["0"]).set(1);
        }
        m.restarts.with_label_values(&["writer"]).inc();
        m.write_errors.with_label_values(&["forbidden"]).inc();
        m.writes.with_label_values(&["created"]).inc();
        m.store_checks.with_label_values(&["ok"]).inc();
        m.up.with_label_values(&["kafka"]).set(1);
        m.assigned_partitions.set(3);
        let text = m.render();
        for name in METRIC_NAMES {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing from:\n{text}");
        }
        m.forget_partition(0);
        assert!(!m.render().contains("egx_in_flight_records{partition=\"0\"}"));
    }
}
