//! `[writer]`: the Kafka→store side's limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError};

/// `[writer]`: the Kafka→S3 side's limits.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Records of one partition handed to the writer and not yet confirmed; at the limit
    /// the partition is paused (the consumer keeps polling, so it stays in the group).
    pub max_in_flight_per_partition: usize,
    /// Object writes running at once across all partitions.
    pub max_concurrent_writes: usize,
    /// Larger payloads go to the dead-letter topic.
    pub max_record_bytes: usize,
    /// First retry delay of a failed write, in milliseconds (doubles, with jitter).
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds. Writes are retried until they succeed.
    pub retry_max_ms: u64,
    /// How long a revoke or shutdown waits for in-flight writes before committing what is done.
    pub drain_timeout_ms: u64,
    /// How often written offsets are committed, in milliseconds.
    pub commit_interval_ms: u64,
    /// Readiness fails (`/readyz` 503) once the oldest unconfirmed write has waited this
    /// long, in seconds: the store refuses or ignores writes and the commit cannot move.
    /// 0 = never.
    pub stall_timeout_secs: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_in_flight_per_partition: 256,
            max_concurrent_writes: 64,
            max_record_bytes: 1 << 20,
            retry_initial_ms: 100,
            retry_max_ms: 10_000,
            drain_timeout_ms: 30_000,
            commit_interval_ms: 1_000,
            stall_timeout_secs: 300,
        }
    }
}

impl WriterConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("writer.max_in_flight_per_partition", self.max_in_flight_per_partition as u64),
            ("writer.max_concurrent_writes", self.max_concurrent_writes as u64),
            ("writer.max_record_bytes", self.max_record_bytes as u64),
            ("writer.retry_initial_ms", self.retry_initial_ms),
            ("writer.commit_interval_ms", self.commit_interval_ms),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.retry_max_ms < self.retry_initial_ms {
            return Err(invalid("writer.retry_max_ms", "must be at least writer.retry_initial_ms"));
        }
        Ok(())
    }

    /// After how long without progress readiness fails; None = never.
    pub fn stall_timeout(&self) -> Option<Duration> {
        (self.stall_timeout_secs > 0).then(|| Duration::from_secs(self.stall_timeout_secs))
    }

    /// Drain bound as a duration.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}
