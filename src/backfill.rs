//! `backfill`: publishes the bars of a date range to Kafka, resumably.
//!
//! For each symbol it pages back through the source's history for the range (requests
//! with the dates and [`PAGE_BARS`] bars a page), then publishes the bars oldest first
//! through the [`Publisher`] in chunks. A chunk counts once Kafka has confirmed all of
//! it; only then is the state file rewritten (atomically) with the symbol's last
//! confirmed bar. The messages are the live ones (`BarMessage`), so objects get the same
//! keys as live data and a chunk published twice rewrites the same objects.
//!
//! SIGINT/SIGTERM stop the run once the chunk in flight is confirmed (a fetch in progress
//! is abandoned: nothing of it was published). The same command resumes: symbols done
//! are skipped and an interrupted symbol publishes only the bars after its last confirmed
//! one.
//!
//! - `state`: the state file.
//! - `progress`: the progress bar or log lines.

mod progress;
mod state;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use actix::prelude::*;
use anyhow::{anyhow, bail, Context, Result};
use egx_actors::kafka::KafkaMode;
use egx_actors::kafka::{self, KafkaSetupError, KafkaWatch};
use egx_actors::market::{Bar, Symbol};
use egx_actors::messages::{PublishBars, Stop};
use egx_actors::metrics::Metrics;
use egx_actors::publisher::Publisher;
use egx_actors::source::{self, system_clock, Clock, FetchRequest, Source, SourceError};
use slog::Logger;
use tokio::sync::watch;

use crate::cli::BackfillArgs;
use crate::settings::Settings;
use crate::{exit, logging, signals};
use progress::Progress;
use state::{BackfillParams, BackfillState};

/// Bars asked of the source per page of history.
const PAGE_BARS: usize = 5_000;

/// Runs a backfill to its end or to an interruption; the exit code says which. Errors
/// before anything is published (parameters, a state file of another backfill) are `Err`.
pub fn run(settings: Settings, args: &BackfillArgs) -> Result<ExitCode> {
    let log = logging::logger(&settings.log)?;
    let job = Backfill::new(settings, args)?;
    let state = BackfillState::open(&job.state_path, &job.params)?;
    actix::System::new().block_on(job.execute(state, log))
}

/// A validated backfill, ready to run.
struct Backfill {
    settings: Settings,
    params: BackfillParams,
    symbols: Vec<Symbol>,
    state_path: PathBuf,
    chunk_bars: usize,
}

impl Backfill {
    fn new(settings: Settings, args: &BackfillArgs) -> Result<Self> {
        if settings.kafka.mode != KafkaMode::External {
            bail!("backfill publishes to a Kafka cluster: set kafka.mode = \"external\" or pass --bootstrap-servers");
        }
        let fetch = &settings.fetch;
        let symbols: Vec<Symbol> = fetch.symbols.iter().filter(|s| fetch.shard.owns(s)).cloned().collect();
        if symbols.is_empty() {
            bail!("no symbols to backfill: pass --symbols or set fetch.symbols (shard {})", fetch.shard);
        }
        let params = BackfillParams {
            source: serde_json::to_value(fetch.source)?.as_str().unwrap_or_default().to_string(),
            exchange: fetch.exchange.clone(),
            interval: fetch.interval.name(),
            start_date: args.start_date,
            end_date: args.end_date,
            symbols: symbols.iter().map(ToString::to_string).collect(),
            bootstrap_servers: settings.kafka.bootstrap_servers.clone(),
            topic: settings.kafka.topic.clone(),
        };
        let chunk_bars = usize::try_from(args.chunk_bars).context("--chunk-bars is too large")?;
        Ok(Self { settings, params, symbols, state_path: args.state.clone(), chunk_bars })
    }

    /// The request for a symbol's range, one page long.
    fn request(&self, symbol: &Symbol) -> FetchRequest {
        FetchRequest {
            symbol: symbol.clone(),
            exchange: self.settings.fetch.exchange.clone(),
            interval: self.settings.fetch.interval,
            n_bars: PAGE_BARS,
            start_date: Some(self.params.start_date),
            end_date: Some(self.params.end_date),
        }
    }

    async fn execute(self, state: BackfillState, log: Logger) -> Result<ExitCode> {
        let source = source::build(self.settings.source_spec(), system_clock(), &log)?;
        let kafka = &self.settings.kafka;
        let metrics = Arc::new(Metrics::new()?);
        let watch = KafkaWatch::new(kafka, metrics.clone(), log.clone());
        let ready = async {
            kafka::preflight(kafka, &watch, kafka::START_TIMEOUT).await?;
            kafka::ensure_topics(kafka, &watch).await
        };
        if let Err(e) = ready.await {
            eprintln!("egx-pipeline: error: {e}");
            let code = match e {
                KafkaSetupError::Refused(refusal) => exit::refused(refusal.kind),
                _ => exit::FAILED,
            };
            return Ok(ExitCode::from(code));
        }
        let producer = kafka::producer(kafka, &watch)?;
        let publisher = Publisher::new(producer, &kafka.topic, metrics, log.clone()).start();
        let progress = Progress::new(self.symbols.len(), &log);
        let (stop_tx, stop_rx) = watch::channel(false);
        let runner = Runner {
            job: &self,
            state,
            source,
            publisher: publisher.clone().recipient(),
            clock: system_clock(),
            progress: &progress,
            stop: stop_rx,
            report: Report::default(),
        };
        let Some(report) = until_stopped(runner.run(), stop_tx, &progress).await else {
            progress.close();
            eprintln!("egx-pipeline: interrupted at once; the state file holds every confirmed chunk: run the same command again to resume");
            return Ok(ExitCode::from(exit::INTERRUPTED));
        };
        progress.close();
        publisher.do_send(Stop);
        Ok(self.summary(&report))
    }

    /// Prints the summary and picks the exit code.
    fn summary(&self, r: &Report) -> ExitCode {
        let p = &self.params;
        let left = self.symbols.len() - r.completed - r.skipped - r.failed.len();
        println!("egx-pipeline backfill {}", if r.interrupted { "interrupted" } else { "finished" });
        println!(
            "  symbols:             {} ({} completed, {} already done, {} failed, {left} left)",
            self.symbols.len(),
            r.completed,
            r.skipped,
            r.failed.len()
        );
        println!("  bars published:      {} (topic {})", r.published, p.topic);
        println!(
            "  range:               {} to {} ({}, source {})",
            p.start_date, p.end_date, p.interval, p.source
        );
        println!("  state file:          {}", self.state_path.display());
        if !r.failed.is_empty() {
            let lines: Vec<String> = r.failed.iter().map(|(s, e)| format!("{s}: {e}")).collect();
            eprintln!(
                "egx-pipeline: some symbols failed (run the same command again to retry them):\n  {}",
                lines.join("\n  ")
            );
        }
        if let Some(fatal) = &r.fatal {
            eprintln!("egx-pipeline: error: {fatal}; run the same command again to resume");
            return ExitCode::from(exit::FAILED);
        }
        if r.interrupted {
            eprintln!("egx-pipeline: interrupted; run the same command again to resume");
            return ExitCode::from(exit::INTERRUPTED);
        }
        if r.failed.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(exit::FAILED)
        }
    }
}

/// Runs the backfill to its end. The first SIGINT/SIGTERM asks it to stop once the chunk
/// in flight is confirmed; a second stops it at once (`None`).
async fn until_stopped(
    work: impl Future<Output = Report>,
    stop: watch::Sender<bool>,
    progress: &Progress,
) -> Option<Report> {
    tokio::pin!(work);
    tokio::select! {
        report = &mut work => Some(report),
        () = signals::shutdown() => {
            progress.note("Signal received: stopping once the chunk in flight is confirmed (send it again to stop at once).");
            let _ = stop.send(true);
            tokio::select! {
                report = &mut work => Some(report),
                () = signals::shutdown() => None,
            }
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
struct Report {
    /// Bars confirmed by Kafka in this run.
    published: u64,
    /// Symbols completed in this run.
    completed: usize,
    /// Symbols the state file already had as done.
    skipped: usize,
    /// Symbols that failed, with the reason.
    failed: Vec<(Symbol, String)>,
    /// Stopped by a signal.
    interrupted: bool,
    /// What stopped the whole run (Kafka, the state file).
    fatal: Option<String>,
}

/// How a symbol's backfill ended (without stopping the run).
enum SymbolEnd {
    Done,
    Failed(String),
    Interrupted,
}

/// One run of a backfill: what it publishes with and what it has done so far.
struct Runner<'a> {
    job: &'a Backfill,
    state: BackfillState,
    source: Arc<dyn Source>,
    publisher: Recipient<PublishBars>,
    clock: Clock,
    progress: &'a Progress,
    stop: watch::Receiver<bool>,
    report: Report,
}

impl Runner<'_> {
    async fn run(mut self) -> Report {
        for symbol in &self.job.symbols {
            if *self.stop.borrow() {
                self.report.interrupted = true;
                break;
            }
            let before = self.state.progress(symbol.as_str());
            if before.done {
                self.report.skipped += 1;
                self.progress.skipped(symbol, before.published);
                continue;
            }
            match self.symbol(symbol).await {
                Ok(SymbolEnd::Done) => {
                    self.report.completed += 1;
                    self.progress.done(symbol, self.state.progress(symbol.as_str()).published);
                }
                Ok(SymbolEnd::Failed(error)) => {
                    self.progress.failed(symbol, &error);
                    self.report.failed.push((symbol.clone(), error));
                }
                Ok(SymbolEnd::Interrupted) => {
                    self.report.interrupted = true;
                    break;
                }
                Err(e) => {
                    self.report.fatal = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        self.report
    }

    /// Fetches the symbol's range and publishes what is not confirmed yet, chunk by
    /// chunk. `Err` stops the whole run (Kafka or the state file failed).
    async fn symbol(&mut self, symbol: &Symbol) -> Result<SymbolEnd> {
        self.progress.fetching(symbol);
        let fetched = tokio::select! {
            bars = history(self.source.as_ref(), self.job.request(symbol)) => bars,
            Ok(_) = self.stop.wait_for(|stop| *stop) => return Ok(SymbolEnd::Interrupted),
        };
        let bars = match fetched {
            Ok(bars) => bars,
            Err(e) => return Ok(SymbolEnd::Failed(e.to_string())),
        };
        let in_range = bars.len();
        let pending = self.state.progress(symbol.as_str()).remaining(bars);
        self.progress.fetched(symbol, in_range, pending.len());
        let mut sent = 0;
        for chunk in pending.chunks(self.job.chunk_bars) {
            if *self.stop.borrow() {
                return Ok(SymbolEnd::Interrupted);
            }
            let Some(last) = chunk.last().map(|b| b.time) else { continue };
            self.publish(chunk.to_vec()).await?;
            self.state.confirmed(symbol.as_str(), last, chunk.len() as u64);
            self.state.save(&self.job.state_path)?;
            sent += chunk.len();
            self.report.published += chunk.len() as u64;
            self.progress.published(symbol, sent, pending.len(), self.report.published);
        }
        self.state.finished(symbol.as_str());
        self.state.save(&self.job.state_path)?;
        Ok(SymbolEnd::Done)
    }

    /// Publishes one chunk; returns once Kafka confirmed every bar of it.
    async fn publish(&self, bars: Vec<Bar>) -> Result<()> {
        let message =
            PublishBars { bars, source: self.source.name().to_string(), fetched_at: (self.clock)() };
        self.publisher.send(message).await.map_err(|e| anyhow!("the publisher stopped: {e}"))??;
        Ok(())
    }
}

/// Every bar of the request's date range, oldest first. Pages of `n_bars` are asked
/// for, each ending on the trading date of the previous page's oldest bar (inclusive:
/// intraday bars of one day may straddle two pages), until a page is not full or adds
/// nothing older.
async fn history(source: &dyn Source, mut request: FetchRequest) -> Result<Vec<Bar>, SourceError> {
    let mut bars = BTreeMap::new();
    loop {
        let page = source.fetch(request.clone()).await?;
        let full = page.len() >= request.n_bars;
        let oldest = page.first().map(Bar::trading_date);
        let before = bars.len();
        bars.extend(page.into_iter().map(|b| (b.time, b)));
        match oldest {
            Some(date) if full && bars.len() > before => request.end_date = Some(date),
            _ => return Ok(bars.into_values().collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use egx_actors::market::Interval;

    /// A source with `n` daily bars from 2025-01-01 on, serving the latest bars of a window.
    struct Days(usize);

    impl Source for Days {
        fn name(&self) -> &str {
            "days"
        }

        fn fetch(
            &self,
            request: FetchRequest,
        ) -> futures::future::BoxFuture<'static, Result<Vec<Bar>, SourceError>> {
            let first = Utc.with_ymd_and_hms(2025, 1, 1, 8, 0, 0).unwrap();
            let mut bars: Vec<Bar> = (0..self.0)
                .map(|d| Bar {
                    symbol: request.symbol.clone(),
                    exchange: "EGX".into(),
                    interval: Interval::Daily,
                    time: first + chrono::Duration::days(d as i64),
                    open: 1.0,
                    high: 2.0,
                    low: 0.5,
                    close: 1.5,
                    volume: None,
                })
                .filter(|b| request.start_date.is_none_or(|s| b.trading_date() >= s))
                .filter(|b| request.end_date.is_none_or(|e| b.trading_date() <= e))
                .collect();
            let skip = bars.len().saturating_sub(request.n_bars);
            bars.drain(..skip);
            Box::pin(async move { Ok(bars) })
        }
    }

    #[tokio::test]
    async fn history_pages_back_through_the_whole_range() {
        let mut request = FetchRequest {
            symbol: Symbol::parse("COMI").unwrap(),
            exchange: "EGX".into(),
            interval: Interval::Daily,
            n_bars: 7,
            start_date: Some("2025-01-03".parse().unwrap()),
            end_date: Some("2025-01-28".parse().unwrap()),
        };
        let bars = history(&Days(40), request.clone()).await.unwrap();
        let days: Vec<u32> = bars.iter().map(|b| chrono::Datelike::day(&b.trading_date())).collect();
        assert_eq!(days, (3..=28).collect::<Vec<_>>());
        request.n_bars = 100;
        assert_eq!(history(&Days(40), request).await.unwrap().len(), 26);
    }
}
