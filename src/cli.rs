//! Command-line interface: the commands and what each takes. `produce` and `consume`
//! accept the original Python scripts' flags; every flag overrides the config file and
//! the environment. The flags themselves are defined in groups (`flags`), once each, and
//! applied to the settings by the groups' `apply`.

mod flags;

use std::path::PathBuf;

use anyhow::{bail, Result};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;
use crate::settings::{Defaults, Settings};
use flags::{FetchArgs, FetchRules, KafkaTargetArgs, S3TargetArgs, ShardArgs, SourceArgs, SymbolArgs};

/// EGX market data pipeline: source → Apache Kafka → S3-compatible storage, on actix
/// actors, losing nothing across crashes.
///
/// Configuration layers (later wins): built-in defaults → --config FILE (TOML) →
/// EGX__SECTION__KEY environment variables → KAFKA_BOOTSTRAP_SERVERS, AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY, AWS_REGION, MINIO_ENDPOINT → command-line flags.
#[derive(Debug, Parser)]
#[command(name = "egx-pipeline", version, propagate_version = true)]
pub struct Cli {
    /// Config file (TOML). Without it, `run` uses the embedded demo (in-process Kafka,
    /// local directory, synthetic data) and `produce`/`consume`/`backfill` the original
    /// scripts' defaults (Kafka on localhost:9092, MinIO on localhost:9000).
    #[arg(short, long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log level: DEBUG, INFO, WARNING or ERROR (case-insensitive).
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format: `term` (readable), `json`, or `auto` (term on a terminal, else JSON).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline: Fetchers → Kafka → S3Writer.
    Run(RunArgs),
    /// Fetch bars and publish them to Kafka (the original producer_kafka.py).
    Produce(ProduceArgs),
    /// Write Kafka records to object storage (the original consumer_kafka.py).
    Consume(ConsumeArgs),
    /// Load and validate the configuration, print it with secrets redacted, and exit.
    CheckConfig,
    /// Validate the configuration and test the connections to Kafka and the object store;
    /// exits non-zero with the reason when one is unreachable.
    Check,
    /// List what is stored: object counts by date and symbol below the prefix.
    Stored {
        /// Key prefix to list (default: sink.prefix), e.g. streaming/date=2025-01-2
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show the consumer group's committed offset, end offset and lag per partition.
    Lag,
    /// Publish the history of a date range to Kafka in confirmed chunks, recording
    /// progress in a state file: interrupted (Ctrl-C), the same command resumes.
    Backfill(BackfillArgs),
}

/// `run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Fetch once, wait until everything fetched is written and committed, print a
    /// summary and exit.
    #[arg(long)]
    pub once: bool,
    /// What to fetch and how often.
    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// `produce` flags (the original producer's). Its help lists them as the original did:
/// the fetch flags (0–6), then --exchange, --topic, --bootstrap-servers, --source.
#[derive(Debug, Args)]
#[command(
    mut_arg("exchange", |a| a.display_order(7)),
    mut_arg("topic", |a| a.display_order(8)),
    mut_arg("bootstrap_servers", |a| a.display_order(9)),
    mut_arg("source", |a| a.display_order(10)),
)]
pub struct ProduceArgs {
    /// What to fetch and how often.
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Where the bars come from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where they are published.
    #[command(flatten)]
    pub kafka: KafkaTargetArgs,
}

/// `consume` flags (the original consumer's, who called the bootstrap servers
/// --bootstrap).
#[derive(Debug, Args)]
#[command(mut_arg("bootstrap_servers", |a| a.long("bootstrap")))]
pub struct ConsumeArgs {
    /// The cluster and topic to read.
    #[command(flatten)]
    pub kafka: KafkaTargetArgs,
    /// The bucket to write to.
    #[command(flatten)]
    pub store: S3TargetArgs,
    /// Consumer group.
    #[arg(long)]
    pub consumer_group: Option<String>,
    /// Read up to the topic's end as of start, write, commit, print a summary and exit.
    #[arg(long)]
    pub once: bool,
}

/// `backfill` flags. Its help says where the defaults come from, as a backfill names
/// the range and little else.
#[derive(Debug, Args)]
#[command(
    mut_arg("symbols", |a| a.help("Comma-separated symbols, e.g. COMI,ETEL (default: fetch.symbols)")),
    mut_arg("source", |a| a.help("Data source (default: fetch.source, which is tradingview without a config file)")),
    mut_arg("shard", |a| a.help("Backfill only this process's share of the symbols: i/n (0-based), as `produce`")),
)]
pub struct BackfillArgs {
    /// The symbols and their interval.
    #[command(flatten)]
    pub symbols: SymbolArgs,
    /// First trading date to publish (YYYY-MM-DD, Africa/Cairo).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start_date: NaiveDate,
    /// Last trading date to publish (YYYY-MM-DD, Africa/Cairo), inclusive.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub end_date: NaiveDate,
    /// Where the bars come from.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where they are published.
    #[command(flatten)]
    pub kafka: KafkaTargetArgs,
    /// This process's share of the symbols.
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Progress file: written after every chunk Kafka confirmed, read to resume. It
    /// belongs to one set of parameters; another backfill refuses it.
    #[arg(long, value_name = "FILE", default_value = "egx-backfill-state.json")]
    pub state: PathBuf,
    /// Bars per chunk: the unit that is confirmed by Kafka and recorded in the state file.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub chunk_bars: u64,
}

impl Cli {
    /// Applies the global flags and the command's: they win over the config file and the
    /// environment.
    pub fn apply(&self, settings: &mut Settings) -> Result<()> {
        if let Some(level) = &self.log_level {
            settings.log.level = level.clone();
        }
        if let Some(format) = self.log_format {
            settings.log.format = format;
        }
        match &self.command {
            Command::Run(a) => a.fetch.apply(settings, FetchRules::Run),
            Command::Produce(a) => a.apply(settings, self.config.is_some()),
            Command::Consume(a) => {
                a.apply(settings);
                Ok(())
            }
            Command::Backfill(a) => a.apply(settings),
            Command::CheckConfig | Command::Check | Command::Stored { .. } | Command::Lag => Ok(()),
        }
    }

    /// Where the configuration came from, for error messages.
    pub fn origin(&self) -> String {
        self.config.as_ref().map_or("built-in defaults".into(), |p| p.display().to_string())
    }
}

impl Command {
    /// The built-in defaults the command starts from, before the config file.
    pub fn defaults(&self) -> Defaults {
        match self {
            Command::Produce(_) | Command::Consume(_) => Defaults::OriginalScripts,
            Command::Run(_) | Command::CheckConfig => Defaults::Embedded,
            // Operators' commands inspect real services: the original scripts' defaults.
            Command::Check | Command::Stored { .. } | Command::Lag => Defaults::OriginalScripts,
            // A backfill publishes real history to a real cluster, as `produce` does.
            Command::Backfill(_) => Defaults::OriginalScripts,
        }
    }

    /// The symbols given with --symbols to a command that follows them.
    pub fn symbols_flag(&self) -> Option<&str> {
        match self {
            Command::Run(a) => a.fetch.symbols.symbols.as_deref(),
            Command::Produce(a) => a.fetch.symbols.symbols.as_deref(),
            _ => None,
        }
    }
}

impl ProduceArgs {
    fn apply(&self, settings: &mut Settings, has_file: bool) -> Result<()> {
        self.fetch.apply(settings, FetchRules::Produce { has_file })?;
        self.source.apply(settings);
        self.kafka.apply(settings);
        Ok(())
    }
}

impl ConsumeArgs {
    fn apply(&self, settings: &mut Settings) {
        self.kafka.apply(settings);
        if let Some(g) = &self.consumer_group {
            settings.kafka.consumer_group = g.clone();
        }
        self.store.apply(settings);
    }
}

impl BackfillArgs {
    /// The range is the backfill's own: it replaces `fetch.start_date`/`end_date`.
    fn apply(&self, settings: &mut Settings) -> Result<()> {
        if self.start_date > self.end_date {
            bail!("--start-date {} is after --end-date {}", self.start_date, self.end_date);
        }
        self.symbols.apply(settings)?;
        self.shard.apply(settings)?;
        self.source.apply(settings);
        (settings.fetch.start_date, settings.fetch.end_date) = (Some(self.start_date), Some(self.end_date));
        self.kafka.apply(settings);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use egx_actors::kafka::KafkaMode;
    use egx_actors::sink::SinkKind;

    fn settings_of(args: &[&str]) -> Result<Settings> {
        let cli = Cli::try_parse_from(args)?;
        let mut settings = Settings::default();
        cli.apply(&mut settings)?;
        Ok(settings)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        // Also proves that every flag a command re-words or re-orders exists.
        Cli::command().debug_assert();
    }

    #[test]
    fn consume_takes_the_kafka_target_as_bootstrap() {
        let s = settings_of(&["egx-pipeline", "consume", "--bootstrap", "k:1", "--bucket", "b"]).unwrap();
        assert_eq!((s.kafka.mode, s.kafka.bootstrap_servers.as_str()), (KafkaMode::External, "k:1"));
        assert_eq!((s.sink.kind, s.sink.bucket.as_str()), (SinkKind::S3, "b"));
        assert!(Cli::try_parse_from(["egx-pipeline", "consume", "--bootstrap-servers", "k:1"]).is_err());
        assert!(Cli::try_parse_from(["egx-pipeline", "produce", "--bootstrap", "k:1"]).is_err());
    }

    #[test]
    fn backfill_takes_its_range_and_refuses_it_backwards() {
        let args = ["egx-pipeline", "backfill", "--symbols", "COMI", "--exchange", "egx"];
        let mut ok = args.to_vec();
        ok.extend(["--start-date", "2025-01-01", "--end-date", "2025-01-31", "--bootstrap-servers", "k:1"]);
        let s = settings_of(&ok).unwrap();
        assert_eq!(s.fetch.start_date, "2025-01-01".parse().ok());
        assert_eq!((s.fetch.exchange.as_str(), s.kafka.mode), ("EGX", KafkaMode::External));
        let mut backwards = args.to_vec();
        backwards.extend(["--start-date", "2025-02-01", "--end-date", "2025-01-31"]);
        let err = settings_of(&backwards).unwrap_err().to_string();
        assert_eq!(err, "--start-date 2025-02-01 is after --end-date 2025-01-31");
    }
}
