//! `[tradingview]`: where the feed is, how many sockets to share, how fast to open chart
//! sessions and how long to wait. Field docs are the user docs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Secret};
use crate::retry::Backoff;

/// `[tradingview]`: the native TradingView websocket source.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TradingViewConfig {
    /// Websocket address of the chart feed (`wss://` in production, `ws://` for a local
    /// fake server in tests).
    pub url: String,
    /// `Origin` header sent with the websocket handshake.
    pub origin: String,
    /// `User-Agent` header sent with the handshake (the feed expects a browser-like one).
    pub user_agent: String,
    /// Token sent with `set_auth_token`; `unauthorized_user_token` for anonymous (delayed,
    /// about 5000 bars) data. Never logged.
    pub auth_token: Secret,
    /// Websocket connections shared by all symbols; every chart session is multiplexed
    /// over these, so 250 Fetchers still open only this many sockets.
    pub connections: usize,
    /// Chart sessions started per second across all connections (the global request
    /// rate; the feed blocks clients that open sessions in tight loops).
    pub sessions_per_second: f64,
    /// Longest wait for the server's next answer during a fetch (a connection, a symbol
    /// resolution, a batch of bars) before the attempt fails, in milliseconds.
    pub request_timeout_ms: u64,
    /// A connection that receives nothing (not even a heartbeat) for this long is taken
    /// as dead and replaced, in milliseconds.
    pub idle_timeout_ms: u64,
    /// First delay before reconnecting after a drop, in milliseconds (doubles, with
    /// jitter, up to `reconnect_max_ms`).
    pub reconnect_initial_ms: u64,
    /// Longest delay between reconnection attempts, in milliseconds.
    pub reconnect_max_ms: u64,
    /// Attempts per fetch: an attempt cut by a dropped connection or a time-out is retried
    /// on a fresh session (after a backoff delay) until this many have failed.
    pub fetch_attempts: u32,
    /// Most bars asked for in one `create_series` or `request_more_data` round.
    pub page_bars: usize,
    /// Most bars a fetch pages back through before it stops (bounds date-filtered
    /// fetches whose window lies deep in history).
    pub max_history_bars: usize,
}

impl Default for TradingViewConfig {
    fn default() -> Self {
        Self {
            url: "wss://data.tradingview.com/socket.io/websocket?from=chart&type=chart".into(),
            origin: "https://www.tradingview.com".into(),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                         Chrome/124.0 Safari/537.36"
                .into(),
            auth_token: Secret::new("unauthorized_user_token"),
            connections: 2,
            sessions_per_second: 2.0,
            request_timeout_ms: 20_000,
            idle_timeout_ms: 60_000,
            reconnect_initial_ms: 500,
            reconnect_max_ms: 30_000,
            fetch_attempts: 3,
            page_bars: 5_000,
            max_history_bars: 20_000,
        }
    }
}

fn invalid(key: &str, reason: &str) -> ConfigError {
    ConfigError { key: format!("tradingview.{key}"), reason: reason.into() }
}

impl TradingViewConfig {
    /// Checks every field; the error names the key (`tradingview.url`, …).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.url.starts_with("wss://") || self.url.starts_with("ws://")) {
            return Err(invalid("url", "must start with wss:// or ws://"));
        }
        if self.url.contains(char::is_whitespace) {
            return Err(invalid("url", "must not contain spaces"));
        }
        for (key, value) in [("origin", &self.origin), ("user_agent", &self.user_agent)] {
            if value.trim().is_empty() || value.contains(['\r', '\n']) {
                return Err(invalid(key, "must be a non-empty single line"));
            }
        }
        if self.auth_token.is_empty() {
            return Err(invalid("auth_token", "must not be empty (use unauthorized_user_token)"));
        }
        if !(1..=16).contains(&self.connections) {
            return Err(invalid("connections", "must be between 1 and 16"));
        }
        if !(self.sessions_per_second.is_finite() && self.sessions_per_second > 0.0) {
            return Err(invalid("sessions_per_second", "must be a positive number"));
        }
        self.validate_timing()?;
        if self.fetch_attempts == 0 {
            return Err(invalid("fetch_attempts", "must be at least 1"));
        }
        if self.page_bars == 0 || self.page_bars > 50_000 {
            return Err(invalid("page_bars", "must be between 1 and 50000"));
        }
        if self.max_history_bars < self.page_bars {
            return Err(invalid("max_history_bars", "must be at least page_bars"));
        }
        Ok(())
    }

    fn validate_timing(&self) -> Result<(), ConfigError> {
        if self.request_timeout_ms < 10 {
            return Err(invalid("request_timeout_ms", "must be at least 10"));
        }
        if self.idle_timeout_ms < 10 {
            return Err(invalid("idle_timeout_ms", "must be at least 10"));
        }
        if self.reconnect_initial_ms == 0 {
            return Err(invalid("reconnect_initial_ms", "must be at least 1"));
        }
        if self.reconnect_max_ms < self.reconnect_initial_ms {
            return Err(invalid("reconnect_max_ms", "must be at least reconnect_initial_ms"));
        }
        Ok(())
    }

    /// The wait for the server's next answer.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// How long a silent connection is kept.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// The reconnection (and fetch retry) policy.
    pub fn reconnect_backoff(&self) -> Backoff {
        Backoff::from_millis(self.reconnect_initial_ms, self.reconnect_max_ms)
    }

    /// The spacing between two chart sessions started anywhere.
    pub fn session_spacing(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.sessions_per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_point_at_the_real_feed() {
        let c = TradingViewConfig::default();
        c.validate().unwrap();
        assert!(c.url.starts_with("wss://data.tradingview.com/socket.io/websocket"));
        assert_eq!(c.auth_token.expose(), "unauthorized_user_token");
        assert_eq!(c.connections, 2);
    }

    #[test]
    fn errors_name_the_key() {
        let check = |c: TradingViewConfig, key: &str| assert_eq!(c.validate().unwrap_err().key, key);
        let d = TradingViewConfig::default;
        check(TradingViewConfig { url: "http://x".into(), ..d() }, "tradingview.url");
        check(TradingViewConfig { connections: 0, ..d() }, "tradingview.connections");
        check(TradingViewConfig { sessions_per_second: f64::NAN, ..d() }, "tradingview.sessions_per_second");
        check(TradingViewConfig { reconnect_max_ms: 1, ..d() }, "tradingview.reconnect_max_ms");
        check(TradingViewConfig { origin: "a\nb".into(), ..d() }, "tradingview.origin");
        check(TradingViewConfig { fetch_attempts: 0, ..d() }, "tradingview.fetch_attempts");
    }

    #[test]
    fn unknown_fields_are_refused_and_missing_ones_default() {
        let c: TradingViewConfig = serde_json::from_str(r#"{"connections": 3}"#).unwrap();
        assert_eq!((c.connections, c.request_timeout_ms), (3, 20_000));
        assert!(serde_json::from_str::<TradingViewConfig>(r#"{"conections": 3}"#).is_err());
    }
}
