//! How a backfill shows its progress: a bar on a terminal (symbols done of all, bars
//! published), plain log lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use egx_actors::market::Symbol;
use indicatif::{ProgressBar, ProgressStyle};
use slog::{info, warn, Logger};

/// Shows progress: a bar on a terminal (symbols done of all, bars published), log lines
/// otherwise.
pub enum Progress {
    /// A progress bar on stderr (a terminal).
    Bar(ProgressBar),
    /// slog lines.
    Log(Logger),
}

impl Progress {
    /// A bar when stderr is a terminal, log lines otherwise.
    pub fn new(symbols: usize, log: &Logger) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self::Log(log.clone());
        }
        let bar = ProgressBar::new(symbols as u64);
        let template = "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} symbols  {msg}";
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self::Bar(bar)
    }

    /// A symbol's history is being fetched.
    pub fn fetching(&self, symbol: &Symbol) {
        match self {
            Self::Bar(bar) => bar.set_message(format!("{symbol}: fetching history")),
            Self::Log(log) => info!(log, "Fetching the symbol's history for the range."; "symbol" => %symbol),
        }
    }

    /// A symbol's history is in: bars in the range, bars still to publish.
    pub fn fetched(&self, symbol: &Symbol, in_range: usize, to_publish: usize) {
        match self {
            Self::Bar(bar) => bar.set_message(format!("{symbol}: 0/{to_publish} bars")),
            Self::Log(log) => {
                info!(log, "History fetched."; "symbol" => %symbol, "bars" => in_range, "to_publish" => to_publish)
            }
        }
    }

    /// A chunk was confirmed and saved: bars of the symbol sent so far, in the run so far.
    pub fn published(&self, symbol: &Symbol, sent: usize, to_publish: usize, total: u64) {
        match self {
            Self::Bar(bar) => {
                bar.set_message(format!("{symbol}: {sent}/{to_publish} bars, {total} published in all"))
            }
            Self::Log(log) => {
                info!(log, "Chunk confirmed by Kafka; progress saved."; "symbol" => %symbol, "sent" => sent, "to_publish" => to_publish, "published" => total)
            }
        }
    }

    /// A symbol is complete.
    pub fn done(&self, symbol: &Symbol, published: u64) {
        match self {
            Self::Bar(bar) => bar.inc(1),
            Self::Log(log) => info!(log, "Symbol backfilled."; "symbol" => %symbol, "published" => published),
        }
    }

    /// A symbol was already complete (state file).
    pub fn skipped(&self, symbol: &Symbol, published: u64) {
        match self {
            Self::Bar(bar) => bar.inc(1),
            Self::Log(log) => {
                info!(log, "Symbol already backfilled (state file); skipped."; "symbol" => %symbol, "published" => published)
            }
        }
    }

    /// A symbol failed; the run goes on.
    pub fn failed(&self, symbol: &Symbol, error: &str) {
        match self {
            Self::Bar(bar) => {
                bar.inc(1);
                bar.println(format!("{symbol}: failed: {error}"));
            }
            Self::Log(log) => {
                warn!(log, "Symbol failed; the others go on."; "symbol" => %symbol, "error" => error)
            }
        }
    }

    /// Anything else worth telling (a signal).
    pub fn note(&self, text: &str) {
        match self {
            Self::Bar(bar) => bar.println(text),
            Self::Log(log) => info!(log, "{}", text),
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn close(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
