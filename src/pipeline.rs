//! `run`, `produce` and `consume`: the pipeline, or one side of it, under the
//! Supervisor until it finishes or a signal stops it; then the summary and the exit
//! code. The three commands differ only in their [`Plan`], so they share this module.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use actix::Addr;
use anyhow::{anyhow, Result};
use egx_actors::admin::{self, AdminConfig, Readiness};
use egx_actors::fetcher::FetchConfig;
use egx_actors::kafka::{EmbeddedKafka, KafkaConfig};
use egx_actors::market::Symbol;
use egx_actors::messages::SetSymbols;
use egx_actors::metrics::Metrics;
use egx_actors::sink::SinkKind;
use egx_actors::source::{self, system_clock};
use egx_actors::supervisor::{PipelineExit, PipelineSpec, PipelineSummary, Shutdown, Supervisor};
use slog::{info, Logger};
use tokio::sync::oneshot;

use crate::cli::{Cli, Command};
use crate::settings::{Defaults, Settings};
use crate::{exit, logging, signals};

/// What the command runs.
struct Plan {
    produce: bool,
    consume: bool,
    once: bool,
}

impl Plan {
    /// The plan of a pipeline command; any other command produces and consumes nothing.
    fn of(command: &Command, fetch: &FetchConfig) -> Self {
        match command {
            Command::Run(a) => Plan { produce: true, consume: true, once: a.once },
            Command::Produce(_) => {
                Plan { produce: true, consume: false, once: fetch.poll_interval_secs == 0 }
            }
            Command::Consume(a) => Plan { produce: false, consume: true, once: a.once },
            _ => Plan { produce: false, consume: false, once: true },
        }
    }
}

/// How to re-read the symbol list on SIGHUP.
struct Reload {
    file: Option<PathBuf>,
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

/// Runs the pipeline the command asks for with the validated `settings`.
pub fn run(cli: &Cli, settings: Settings) -> Result<ExitCode> {
    let plan = Plan::of(&cli.command, &settings.fetch);
    if plan.produce && settings.fetch.symbols.is_empty() {
        return Err(anyhow!("no symbols to fetch: pass --symbols or set fetch.symbols"));
    }
    let log = logging::logger(&settings.log)?;
    let reload = Reload {
        file: cli.config.clone(),
        defaults: cli.command.defaults(),
        symbols_flag: cli.command.symbols_flag().map(str::to_string),
    };
    actix::System::new().block_on(pipeline(settings, plan, reload, log))
}

async fn pipeline(settings: Settings, plan: Plan, reload: Reload, log: Logger) -> Result<ExitCode> {
    // Kept until the pipeline ends: dropping it stops the in-process cluster.
    let (kafka, _embedded) = start_kafka(&settings, &log)?;
    let spec = spec(&settings, &plan, kafka, &log).await?;
    let readiness = Readiness { consumes: plan.consume, stall_after: settings.writer.stall_timeout() };
    start_admin(&settings.admin, spec.metrics.clone(), readiness, &log).await?;
    let (supervisor, exit) = Supervisor::start(spec)?;
    Ok(match supervise(supervisor, exit, &reload, &log).await? {
        Some(outcome) => report(outcome, &settings, &plan),
        None => ExitCode::from(exit::FAILED),
    })
}

/// Starts the in-process cluster when `kafka.mode` is embedded; returns the Kafka
/// settings that point at it (or the external ones as they are).
fn start_kafka(settings: &Settings, log: &Logger) -> Result<(KafkaConfig, Option<EmbeddedKafka>)> {
    if !settings.embedded_kafka() {
        return Ok((settings.kafka.clone(), None));
    }
    let (embedded, pointed) = EmbeddedKafka::start(&settings.kafka)?;
    info!(log, "Embedded Kafka (librdkafka mock cluster) started in this process."; "bootstrap" => embedded.bootstrap_servers());
    Ok((pointed, Some(embedded)))
}

/// Everything the Supervisor starts the pipeline with.
async fn spec(settings: &Settings, plan: &Plan, kafka: KafkaConfig, log: &Logger) -> Result<PipelineSpec> {
    let object_sink = egx_actors::sink::build(&settings.sink).await;
    let clock = system_clock();
    let metrics = Arc::new(Metrics::new()?);
    Ok(PipelineSpec {
        kafka,
        sink: settings.sink.clone(),
        writer: settings.writer.clone(),
        fetch: settings.fetch.clone(),
        supervisor: settings.supervisor.clone(),
        chaos: settings.chaos.clone(),
        produce: plan.produce,
        consume: plan.consume,
        once: plan.once,
        source: source::build(settings.source_spec(), clock.clone(), log)?,
        market_hours: Some(settings.market_hours.validate()?),
        object_sink,
        clock,
        metrics,
        log: log.clone(),
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

/// Waits for the pipeline's end, reloading the symbol list on SIGHUP and asking it to
/// drain on SIGINT/SIGTERM. `None`: a second signal stopped the wait at once.
async fn supervise(
    supervisor: Addr<Supervisor>,
    mut exit: oneshot::Receiver<PipelineExit>,
    reload: &Reload,
    log: &Logger,
) -> Result<Option<PipelineExit>> {
    let outcome = loop {
        tokio::select! {
            outcome = &mut exit => break outcome,
            () = signals::reload() => match reload.symbols() {
                Ok(symbols) => {
                    info!(log, "SIGHUP: reloading the symbol list."; "symbols" => symbols.len());
                    if let Err(e) = supervisor.send(SetSymbols(symbols)).await? {
                        slog::warn!(log, "Symbol reload refused."; "error" => %e);
                    }
                }
                Err(e) => slog::error!(log, "SIGHUP: the configuration is invalid; keeping the current symbols."; "error" => format!("{e:#}")),
            },
            () = signals::shutdown() => {
                info!(log, "Signal received; draining and committing before exit (send it again to stop at once).");
                supervisor.do_send(Shutdown);
                tokio::select! {
                    outcome = &mut exit => break outcome,
                    () = signals::shutdown() => return Ok(None),
                }
            }
        }
    };
    outcome.map(Some).map_err(|_| anyhow!("the supervisor ended without reporting"))
}

/// Prints the summary or the reason the pipeline ended, and picks the exit code.
fn report(outcome: PipelineExit, settings: &Settings, plan: &Plan) -> ExitCode {
    match outcome {
        PipelineExit::Finished(summary) => {
            print_summary(&summary, settings, plan);
            if summary.fetch_failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("egx-pipeline: some fetches failed:\n  {}", summary.fetch_failures.join("\n  "));
                ExitCode::from(exit::FAILED)
            }
        }
        PipelineExit::GaveUp(reason) => {
            eprintln!("egx-pipeline: error: gave up after too many actor restarts: {reason}");
            ExitCode::from(exit::GAVE_UP)
        }
        PipelineExit::Refused(refusal) => {
            eprintln!("egx-pipeline: error: {refusal}");
            ExitCode::from(exit::refused(refusal.kind))
        }
        PipelineExit::Failed(reason) => {
            eprintln!("egx-pipeline: error: {reason}");
            ExitCode::from(exit::FAILED)
        }
        other => {
            eprintln!("egx-pipeline: error: the pipeline ended: {other:?}");
            ExitCode::from(exit::FAILED)
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
