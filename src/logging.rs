//! slog set-up: readable on a terminal, JSON otherwise, filtered by level. The `[log]`
//! section and the level names of the original scripts live here, so the configuration,
//! the command line and the logger read them the same way.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use slog::{o, Drain, Level, Logger};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Terminal when stderr is a terminal, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Term,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// DEBUG, INFO, WARNING or ERROR.
    pub level: String,
    /// `auto`, `term` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "INFO".into(), format: LogFormat::Auto }
    }
}

/// Parses the original scripts' level names (DEBUG, INFO, WARNING, ERROR) and slog's.
pub fn parse_level(raw: &str) -> Result<Level> {
    Ok(match raw.to_ascii_uppercase().as_str() {
        "TRACE" => Level::Trace,
        "DEBUG" => Level::Debug,
        "INFO" => Level::Info,
        "WARNING" | "WARN" => Level::Warning,
        "ERROR" => Level::Error,
        "CRITICAL" => Level::Critical,
        _ => bail!("unknown log level {raw:?}: use DEBUG, INFO, WARNING or ERROR"),
    })
}

/// Builds the root logger writing to stderr, as `[log]` asks.
pub fn logger(cfg: &LogConfig) -> Result<Logger> {
    let level = parse_level(&cfg.level)?;
    let json = match cfg.format {
        LogFormat::Json => true,
        LogFormat::Term => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    Ok(if json {
        let d = slog_json::Json::new(std::io::stderr()).add_default_keys().build().fuse();
        Logger::root(std::sync::Mutex::new(d).fuse().filter_level(level).fuse(), o!())
    } else {
        let decorator = slog_term::TermDecorator::new().stderr().build();
        let d = slog_term::FullFormat::new(decorator).build().fuse();
        Logger::root(std::sync::Mutex::new(d).fuse().filter_level(level).fuse(), o!())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_level_names_are_accepted() {
        assert_eq!(parse_level("WARNING").unwrap(), Level::Warning);
        assert_eq!(parse_level("debug").unwrap(), Level::Debug);
        assert!(parse_level("LOUD").is_err());
    }
}
