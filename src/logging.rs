//! slog set-up: readable on a terminal, JSON otherwise, filtered by level.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use slog::{o, Drain, Level, Logger};

use crate::cli::LogFormat;

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

/// Builds the root logger writing to stderr.
pub fn logger(level: Level, format: LogFormat) -> Logger {
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Term => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    if json {
        let d = slog_json::Json::new(std::io::stderr()).add_default_keys().build().fuse();
        Logger::root(std::sync::Mutex::new(d).fuse().filter_level(level).fuse(), o!())
    } else {
        let decorator = slog_term::TermDecorator::new().stderr().build();
        let d = slog_term::FullFormat::new(decorator).build().fuse();
        Logger::root(std::sync::Mutex::new(d).fuse().filter_level(level).fuse(), o!())
    }
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
