//! Wiring: turns the CLI and the configuration into a running pipeline, waits for it to
//! finish or for SIGINT/SIGTERM, prints the summary and picks the exit code.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use egx_actors::admin::{self, AdminConfig, Readiness};
use egx_actors::kafka::EmbeddedKafka;
use egx_actors::kafka::KafkaMode;
use egx_actors::market::{Interval, Shard, Symbol};
use egx_actors::messages::SetSymbols;
use egx_actors::metrics::Metrics;
use egx_actors::refusal::RefusalKind;
use egx_actors::sink::SinkKind;
use egx_actors::source::SourceKind;
use egx_actors::source::{system_clock, Clock, CsvSource, Source, SyntheticSource, TradingViewSource};
use egx_actors::supervisor::{PipelineExit, PipelineSpec, PipelineSummary, Shutdown, Supervisor};
use slog::{info, Logger};

use crate::backfill;
use crate::cli::{Cli, Command, ConsumeArgs, FetchArgs, ProduceArgs};
use crate::logging;
use crate::ops;
use crate::settings::{Defaults, Settings};

/// Exit code when the configuration or the command line is wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the pipeline failed to start or a fetch failed in a one-shot run.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when the supervisor gave up after too many restarts.
pub const EXIT_GAVE_UP: u8 = 3;
/// Exit code when a static consumer was fenced by another process with the same
/// `kafka.group_instance_id` (restarting it would fence the other in turn).
pub const EXIT_FENCED: u8 = 4;
/// Exit code when Kafka or the object store refused the credentials.
pub const EXIT_AUTHENTICATION: u8 = 5;
/// Exit code when TLS failed: an untrusted certificate, or TLS on one side only.
pub const EXIT_TLS: u8 = 6;
/// Exit code when Kafka or the object store refused a permission (ACLs, S3, KMS).
pub const EXIT_AUTHORIZATION: u8 = 7;

/// The exit code of a refusal: one per cause, so that a deployment can tell them apart.
pub fn refusal_exit_code(kind: RefusalKind) -> u8 {
    match kind {
        RefusalKind::Authentication => EXIT_AUTHENTICATION,
        RefusalKind::Tls => EXIT_TLS,
        RefusalKind::Authorization => EXIT_AUTHORIZATION,
        RefusalKind::Fenced => EXIT_FENCED,
        _ => EXIT_FAILED,
    }
}

/// What the command runs.
struct Plan {
    produce: bool,
    consume: bool,
    once: bool,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let defaults = match cli.command {
        Command::Produce(_) | Command::Consume(_) => Defaults::OriginalScripts,
        Command::Run(_) | Command::CheckConfig => Defaults::Embedded,
        // Operators' commands inspect real services: the original scripts' defaults.
        Command::Check | Command::Stored { .. } | Command::Lag => Defaults::OriginalScripts,
        // A backfill publishes real history to a real cluster, as `produce` does.
        Command::Backfill(_) => Defaults::OriginalScripts,
    };
    let mut settings = Settings::load(cli.config.as_deref(), defaults, &|k| std::env::var(k).ok())?;
    if let Some(level) = &cli.log_level {
        settings.log.level = level.clone();
    }
    if let Some(format) = cli.log_format {
        settings.log.format = format;
    }
    let plan = apply_flags(&mut settings, &cli)?;
    let origin = cli.config.as_ref().map_or("built-in defaults".into(), |p| p.display().to_string());
    settings.validate(&origin)?;
    if matches!(cli.command, Command::CheckConfig) {
        print!("{}", settings.to_redacted_toml()?);
        return Ok(ExitCode::SUCCESS);
    }
    match &cli.command {
        Command::Check => return ops_command(ops::check(&settings)),
        Command::Stored { prefix } => return ops_command(ops::stored(&settings, prefix.as_deref())),
        Command::Lag => return ops_command(ops::lag(&settings)),
        _ => {}
    }
    if plan.produce && settings.fetch.symbols.is_empty() {
        return Err(anyhow!("no symbols to fetch: pass --symbols or set fetch.symbols"));
    }
    let log = logging::logger(logging::parse_level(&settings.log.level)?, settings.log.format);
    if let Command::Backfill(args) = &cli.command {
        return backfill::run(settings, args, log);
    }
    let reload = Reload { file: cli.config.clone(), defaults, symbols_flag: symbols_flag(&cli.command) };
    let code = actix::System::new().block_on(pipeline(settings, plan, reload, log))?;
    Ok(code)
}

/// Runs an operator command to completion; its failure is exit code 1 with the reason.
fn ops_command(fut: impl std::future::Future<Output = Result<()>>) -> Result<ExitCode> {
    match actix::System::new().block_on(fut) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("egx-pipeline: error: {e:#}");
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}

fn apply_fetch_flags(settings: &mut Settings, f: &FetchArgs) -> Result<()> {
    let fetch = &mut settings.fetch;
    if let Some(list) = &f.symbols {
        fetch.symbols = Symbol::parse_list(list).map_err(|e| anyhow!("--symbols: {e}"))?;
    }
    if let Some(i) = &f.interval {
        fetch.interval = Interval::parse(i).map_err(|e| anyhow!("--interval: {e}"))?;
    }
    if let Some(n) = f.n_bars {
        fetch.n_bars = n;
    }
    if let Some(p) = f.poll_interval {
        fetch.poll_interval_secs = p;
    }
    if let Some(s) = &f.shard {
        fetch.shard = Shard::parse(s).map_err(|e| anyhow!("--shard: {e}"))?;
    }
    fetch.start_date = f.start_date.or(fetch.start_date);
    fetch.end_date = f.end_date.or(fetch.end_date);
    if fetch.interval.is_intraday()
        && f.symbols.is_some()
        && fetch.start_date.is_none()
        && fetch.poll_interval_secs == 0
    {
        // The original producer required the date range for intraday history.
        return Err(anyhow!(
            "--start-date and --end-date are required for intraday intervals when fetching once"
        ));
    }
    Ok(())
}

fn apply_produce_flags(settings: &mut Settings, a: &ProduceArgs, has_file: bool) -> Result<()> {
    apply_fetch_flags(settings, &a.fetch)?;
    if a.fetch.poll_interval.is_none() && !has_file {
        // Original behaviour: no --poll-interval means fetch once and exit.
        settings.fetch.poll_interval_secs = 0;
    }
    let fetch = &settings.fetch;
    if fetch.interval.is_intraday()
        && fetch.poll_interval_secs == 0
        && (fetch.start_date.is_none() || fetch.end_date.is_none())
    {
        // As the original producer: intraday history is fetched for an explicit date range.
        return Err(anyhow!(
            "--start-date and --end-date are required for intraday intervals when fetching once"
        ));
    }
    if let Some(e) = &a.exchange {
        settings.fetch.exchange = e.to_ascii_uppercase();
    }
    if let Some(t) = &a.topic {
        settings.kafka.topic = t.clone();
    }
    if let Some(source) = a.source {
        settings.fetch.source = source.into();
    }
    if let Some(b) = &a.bootstrap_servers {
        settings.kafka.bootstrap_servers = b.clone();
        settings.kafka.mode = KafkaMode::External;
    }
    Ok(())
}

fn apply_consume_flags(settings: &mut Settings, a: &ConsumeArgs) {
    let (kafka, sink) = (&mut settings.kafka, &mut settings.sink);
    if let Some(b) = &a.bootstrap {
        kafka.bootstrap_servers = b.clone();
        kafka.mode = KafkaMode::External;
    }
    if let Some(t) = &a.topic {
        kafka.topic = t.clone();
    }
    if let Some(g) = &a.consumer_group {
        kafka.consumer_group = g.clone();
    }
    if let Some(b) = &a.bucket {
        sink.bucket = b.clone();
        sink.kind = SinkKind::S3;
    }
    if let Some(p) = &a.prefix {
        sink.prefix = p.clone();
    }
    if let Some(e) = &a.minio_endpoint {
        sink.endpoint = e.clone();
        sink.kind = SinkKind::S3;
    }
    if a.use_aws {
        sink.kind = SinkKind::S3;
        sink.endpoint = String::new();
        sink.force_path_style = false;
    }
}

fn apply_flags(settings: &mut Settings, cli: &Cli) -> Result<Plan> {
    Ok(match &cli.command {
        Command::Run(a) => {
            apply_fetch_flags(settings, &a.fetch)?;
            Plan { produce: true, consume: true, once: a.once }
        }
        Command::Produce(a) => {
            apply_produce_flags(settings, a, cli.config.is_some())?;
            Plan { produce: true, consume: false, once: settings.fetch.poll_interval_secs == 0 }
        }
        Command::Consume(a) => {
            apply_consume_flags(settings, a);
            Plan { produce: false, consume: true, once: a.once }
        }
        Command::Backfill(a) => {
            backfill::apply_flags(settings, a)?;
            Plan { produce: false, consume: false, once: true }
        }
        Command::CheckConfig | Command::Check | Command::Stored { .. } | Command::Lag => {
            Plan { produce: false, consume: false, once: true }
        }
    })
}

/// How to re-read the symbol list on SIGHUP.
struct Reload {
    file: Option<std::path::PathBuf>,
    defaults: Defaults,
    /// Symbols given with --symbols: they win over the file, so a reload keeps them.
    symbols_flag: Option<String>,
}

impl Reload {
    fn symbols(&self) -> Result<Vec<Symbol>> {
        if let Some(list) = &self.symbols_flag {
            return Symbol::parse_list(list).map_err(|e| anyhow!("--symbols: {e}"));
        }
        let settings = Settings::load(self.file.as_deref(), self.defaults, &|k| std::env::var(k).ok())?;
        settings.fetch.validate().map_err(|e| anyhow!("{e}"))?;
        Ok(settings.fetch.symbols)
    }
}

fn symbols_flag(command: &Command) -> Option<String> {
    match command {
        Command::Run(a) => a.fetch.symbols.clone(),
        Command::Produce(a) => a.fetch.symbols.clone(),
        _ => None,
    }
}

/// Resolves on SIGHUP (never elsewhere).
async fn reload_signal() {
    #[cfg(unix)]
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        hup.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}

async fn pipeline(settings: Settings, plan: Plan, reload: Reload, log: Logger) -> Result<ExitCode> {
    let mut kafka = settings.kafka.clone();
    let _embedded = if settings.embedded_kafka() {
        let (embedded, pointed) = EmbeddedKafka::start(&kafka)?;
        info!(log, "Embedded Kafka (librdkafka mock cluster) started in this process."; "bootstrap" => embedded.bootstrap_servers());
        kafka = pointed;
        Some(embedded)
    } else {
        None
    };
    let object_sink = egx_actors::sink::build(&settings.sink).await;
    let clock = system_clock();
    let metrics = Arc::new(Metrics::new()?);
    let spec = PipelineSpec {
        kafka,
        sink: settings.sink.clone(),
        writer: settings.writer.clone(),
        fetch: settings.fetch.clone(),
        supervisor: settings.supervisor.clone(),
        chaos: settings.chaos.clone(),
        produce: plan.produce,
        consume: plan.consume,
        once: plan.once,
        source: build_source(&settings, clock.clone(), &log)?,
        market_hours: Some(settings.market_hours.validate()?),
        object_sink,
        clock,
        metrics: metrics.clone(),
        log: log.clone(),
    };
    start_admin(
        &settings.admin,
        metrics,
        Readiness { consumes: plan.consume, stall_after: settings.writer.stall_timeout() },
        &log,
    )
    .await?;
    let (supervisor, exit) = Supervisor::start(spec)?;
    tokio::pin!(exit);
    let outcome = loop {
        tokio::select! {
            outcome = &mut exit => break outcome,
            () = reload_signal() => match reload.symbols() {
                Ok(symbols) => {
                    info!(log, "SIGHUP: reloading the symbol list."; "symbols" => symbols.len());
                    if let Err(e) = supervisor.send(SetSymbols(symbols)).await? {
                        slog::warn!(log, "Symbol reload refused."; "error" => %e);
                    }
                }
                Err(e) => slog::error!(log, "SIGHUP: the configuration is invalid; keeping the current symbols."; "error" => format!("{e:#}")),
            },
            () = shutdown_signal() => {
                info!(log, "Signal received; draining and committing before exit (send it again to stop at once).");
                supervisor.do_send(Shutdown);
                tokio::select! {
                    outcome = &mut exit => break outcome,
                    () = shutdown_signal() => return Ok(ExitCode::from(EXIT_FAILED)),
                }
            }
        }
    };
    let outcome = outcome.map_err(|_| anyhow!("the supervisor ended without reporting"))?;
    Ok(report(outcome, &settings, &plan))
}

/// The one place the data source is built, from `fetch.source`.
pub fn build_source(settings: &Settings, clock: Clock, log: &Logger) -> Result<Arc<dyn Source>> {
    Ok(match settings.fetch.source {
        SourceKind::Synthetic => Arc::new(SyntheticSource::new(settings.fetch.seed, clock)),
        SourceKind::Tradingview => {
            Arc::new(TradingViewSource::new(settings.tradingview.clone(), log.clone())?)
        }
        SourceKind::Csv => {
            let path = &settings.csv.path;
            let source =
                if path.is_dir() { CsvSource::from_dir(path) } else { CsvSource::from_long_file(path) };
            let source =
                source.with_context(|| format!("cannot load CSV data from {} (csv.path)", path.display()))?;
            Arc::new(source.with_follow_speed(settings.csv.speed))
        }
    })
}

/// Binds the admin endpoint (metrics, health) unless disabled; a taken port is an error.
async fn start_admin(
    cfg: &AdminConfig,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    log: &Logger,
) -> Result<()> {
    if cfg.listen.is_empty() {
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| anyhow!("cannot listen on {} (admin.listen): {e}", cfg.listen))?;
    info!(log, "Admin endpoint listening: /metrics, /healthz, /readyz."; "address" => listener.local_addr().map(|a| a.to_string()).unwrap_or_default());
    actix::spawn(admin::serve(listener, metrics, readiness, log.clone()));
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (never elsewhere).
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn report(outcome: PipelineExit, settings: &Settings, plan: &Plan) -> ExitCode {
    match outcome {
        PipelineExit::Finished(summary) => {
            print_summary(&summary, settings, plan);
            if summary.fetch_failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("egx-pipeline: some fetches failed:\n  {}", summary.fetch_failures.join("\n  "));
                ExitCode::from(EXIT_FAILED)
            }
        }
        PipelineExit::GaveUp(reason) => {
            eprintln!("egx-pipeline: error: gave up after too many actor restarts: {reason}");
            ExitCode::from(EXIT_GAVE_UP)
        }
        PipelineExit::Refused(refusal) => {
            eprintln!("egx-pipeline: error: {refusal}");
            ExitCode::from(refusal_exit_code(refusal.kind))
        }
        PipelineExit::Failed(reason) => {
            eprintln!("egx-pipeline: error: {reason}");
            ExitCode::from(EXIT_FAILED)
        }
        other => {
            eprintln!("egx-pipeline: error: the pipeline ended: {other:?}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn print_summary(s: &PipelineSummary, settings: &Settings, plan: &Plan) {
    let offsets: Vec<String> = s.committed.iter().map(|(p, o)| format!("p{p}={o}")).collect();
    let objects = match settings.sink.kind {
        SinkKind::Local => settings.sink.local_dir.join(&settings.sink.prefix).display().to_string(),
        SinkKind::S3 => format!("s3://{}/{} ({})", settings.sink.bucket, settings.sink.prefix, s.location),
    };
    println!("egx-pipeline finished");
    if plan.produce {
        println!("  bars fetched:        {}", s.fetched);
        println!("  messages published:  {} (topic {})", s.published, settings.kafka.topic);
    }
    if plan.consume {
        println!("  records consumed:    {}", s.reader.consumed);
        println!("  objects written:     {}", s.reader.stored);
        println!("  dead-lettered:       {} (topic {})", s.reader.dead_lettered, settings.kafka.dlq_topic());
        println!(
            "  committed offsets:   {}",
            if offsets.is_empty() { "none".into() } else { offsets.join(" ") }
        );
        println!("  objects under:       {objects}");
    }
    println!("  actor restarts:      {}", s.restarts);
}
