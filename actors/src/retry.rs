//! Exponential backoff with full jitter, shared by object writes, dead-letter publishing
//! and actor restarts; and [`RetryReport`], which keeps a retry loop's warnings readable
//! during an outage.

use std::time::{Duration, Instant};

/// Delays that double from `initial` up to `max`, each drawn uniformly from
/// `[delay/2, delay]` so that many retrying writers do not hit a recovering server in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Backoff {
    /// Creates a policy from millisecond bounds.
    pub fn from_millis(initial_ms: u64, max_ms: u64) -> Self {
        Self {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms.max(initial_ms)),
        }
    }

    /// The ceiling of the delay before retry number `attempt` (0-based), without jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The jittered delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + ceiling.saturating_sub(half).mul_f64(rand::random::<f64>())
    }
}

/// What a retry loop should log about one more failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The first failure after a success: log it, with its error.
    First,
    /// A summary is due: `failures` since the first one, over `over`.
    Summary {
        /// Failures since the outage began.
        failures: u64,
        /// Time since the first failure.
        over: Duration,
    },
    /// Nothing to log (the metric counts it).
    Quiet,
}

/// Rate-limits the warnings of retry loops: during an outage, every failing write or
/// check would otherwise log a line per attempt (hundreds a minute). The first failure is
/// logged, then one summary per `every` with the count; the recovery is logged once.
#[derive(Debug, Clone)]
pub struct RetryReport {
    every: Duration,
    since: Option<Instant>,
    last_report: Option<Instant>,
    failures: u64,
}

impl RetryReport {
    /// A report summarising at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Self { every, since: None, last_report: None, failures: 0 }
    }

    /// Notes a failure at `now`; what to log about it.
    pub fn failed(&mut self, now: Instant) -> Report {
        self.failures += 1;
        let Some(since) = self.since else {
            self.since = Some(now);
            self.last_report = Some(now);
            return Report::First;
        };
        if self.last_report.is_some_and(|t| now.duration_since(t) >= self.every) {
            self.last_report = Some(now);
            return Report::Summary { failures: self.failures, over: now.duration_since(since) };
        }
        Report::Quiet
    }

    /// Notes a success at `now`; the outage it ends, if there was one: (failures, length).
    pub fn recovered(&mut self, now: Instant) -> Option<(u64, Duration)> {
        let since = self.since.take()?;
        let failures = std::mem::take(&mut self.failures);
        self.last_report = None;
        Some((failures, now.duration_since(since)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_logs_its_first_failure_then_a_summary_per_interval_then_its_end() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut r = RetryReport::new(Duration::from_secs(10));
        assert_eq!(r.failed(at(0)), Report::First);
        // 350 more attempts within 40 s give four summaries, not 350 lines.
        let reports: Vec<Report> = (1..=350).map(|i| r.failed(at(i * 114))).collect();
        let summaries: Vec<&Report> = reports.iter().filter(|r| **r != Report::Quiet).collect();
        assert_eq!(summaries.len(), 3, "{summaries:?}");
        assert!(matches!(summaries[0], Report::Summary { failures, .. } if *failures > 80));
        assert_eq!(r.recovered(at(41_000)), Some((351, Duration::from_secs(41))));
        assert_eq!(r.recovered(at(42_000)), None, "the end is told once");
        assert_eq!(r.failed(at(50_000)), Report::First, "a new outage starts afresh");
    }

    #[test]
    fn delays_double_up_to_the_cap_and_stay_within_jitter_bounds() {
        let b = Backoff::from_millis(100, 1_000);
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(4), Duration::from_millis(1_000));
        assert_eq!(b.ceiling(400), Duration::from_millis(1_000));
        for attempt in 0..10 {
            let d = b.delay(attempt);
            assert!(d >= b.ceiling(attempt) / 2 && d <= b.ceiling(attempt), "{d:?}");
        }
    }
}
