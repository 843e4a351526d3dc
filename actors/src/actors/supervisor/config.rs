//! `[supervisor]` (the restart policy) and `[chaos]` (fault injection for tests).

use serde::{Deserialize, Serialize};

use crate::config::{invalid, ConfigError};

/// `[supervisor]`: restart policy.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    /// More than this many restarts within `restart_window_secs` stops the pipeline
    /// with an error (the process exits non-zero so an outer supervisor sees it).
    pub max_restarts: usize,
    /// The window for `max_restarts`, in seconds.
    pub restart_window_secs: u64,
    /// First restart delay, in milliseconds (doubles per restart of the same actor).
    pub backoff_initial_ms: u64,
    /// Longest restart delay, in milliseconds.
    pub backoff_max_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self { max_restarts: 10, restart_window_secs: 60, backoff_initial_ms: 200, backoff_max_ms: 10_000 }
    }
}

impl SupervisorConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.restart_window_secs == 0 {
            return Err(invalid("supervisor.restart_window_secs", "must be greater than 0"));
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(invalid("supervisor.backoff_max_ms", "must be at least backoff_initial_ms"));
        }
        Ok(())
    }
}

/// `[chaos]`: fault injection for resilience tests. Leave at 0 in production.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChaosConfig {
    /// Probability (0–1) that the S3Writer panics on a record.
    pub writer_panic_rate: f64,
    /// Probability (0–1) that the KafkaReader panics on a record.
    pub reader_panic_rate: f64,
}

impl ChaosConfig {
    /// Checks every field; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("chaos.writer_panic_rate", self.writer_panic_rate),
            ("chaos.reader_panic_rate", self.reader_panic_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(key, "must be between 0 and 1"));
            }
        }
        Ok(())
    }

    /// Draws whether to panic now, given a rate.
    pub fn roll(rate: f64) -> bool {
        rate > 0.0 && rand::random::<f64>() < rate
    }
}
