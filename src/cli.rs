//! Command-line interface. `produce` and `consume` accept the original Python scripts'
//! flags; every flag overrides the config file and the environment.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use egx_actors::source::SourceKind;

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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Terminal when stderr is a terminal, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Term,
    /// One JSON object per line.
    Json,
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

/// Flags that choose what to fetch (shared by `run` and `produce`).
#[derive(Debug, Clone, Default, Args)]
pub struct FetchArgs {
    /// Comma-separated symbols, e.g. COMI,ETEL.
    #[arg(long, value_name = "LIST")]
    pub symbols: Option<String>,
    /// Daily, Weekly, Monthly, "1 Minute", "5 Minute", "30 Minute" (or a feed code: 1D, 5…).
    #[arg(long)]
    pub interval: Option<String>,
    /// Number of latest bars per fetch.
    #[arg(long, value_name = "N")]
    pub n_bars: Option<usize>,
    /// Seconds between fetches; 0 = fetch once and exit. Absent = fetch.poll_interval_secs
    /// from the config, or, for `produce` without --config, fetch once (the original).
    #[arg(long, value_name = "SECS")]
    pub poll_interval: Option<u64>,
    /// First date (YYYY-MM-DD), for intraday history.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start_date: Option<NaiveDate>,
    /// Last date (YYYY-MM-DD), for intraday history.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub end_date: Option<NaiveDate>,
    /// Follow only this process's share of the symbols: i/n (0-based), so that n
    /// processes split the list with no overlap and no gap.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

/// `run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Fetch once, wait until everything fetched is written and committed, print a
    /// summary and exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub fetch: FetchArgs,
}

/// `produce` flags (the original producer's).
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub fetch: FetchArgs,
    /// Exchange code.
    #[arg(long)]
    pub exchange: Option<String>,
    /// Kafka topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_servers: Option<String>,
    /// Data source.
    #[arg(long, value_enum)]
    pub source: Option<SourceArg>,
}

/// Sources selectable on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// Seeded random walk, marked "source":"synthetic".
    Synthetic,
    /// TradingView's websocket feed (the default for produce).
    Tradingview,
    /// Exported OHLCV files ([csv] path).
    Csv,
}

impl From<SourceArg> for SourceKind {
    fn from(arg: SourceArg) -> Self {
        match arg {
            SourceArg::Synthetic => SourceKind::Synthetic,
            SourceArg::Tradingview => SourceKind::Tradingview,
            SourceArg::Csv => SourceKind::Csv,
        }
    }
}

/// `backfill` flags.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Comma-separated symbols, e.g. COMI,ETEL (default: fetch.symbols).
    #[arg(long, value_name = "LIST")]
    pub symbols: Option<String>,
    /// Daily, Weekly, Monthly, "1 Minute", "5 Minute", "30 Minute" (or a feed code: 1D, 5…).
    #[arg(long)]
    pub interval: Option<String>,
    /// First trading date to publish (YYYY-MM-DD, Africa/Cairo).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub start_date: NaiveDate,
    /// Last trading date to publish (YYYY-MM-DD, Africa/Cairo), inclusive.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub end_date: NaiveDate,
    /// Data source (default: fetch.source, which is tradingview without a config file).
    #[arg(long, value_enum)]
    pub source: Option<SourceArg>,
    /// Exchange code.
    #[arg(long)]
    pub exchange: Option<String>,
    /// Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_servers: Option<String>,
    /// Kafka topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Backfill only this process's share of the symbols: i/n (0-based), as `produce`.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Progress file: written after every chunk Kafka confirmed, read to resume. It
    /// belongs to one set of parameters; another backfill refuses it.
    #[arg(long, value_name = "FILE", default_value = "egx-backfill-state.json")]
    pub state: PathBuf,
    /// Bars per chunk: the unit that is confirmed by Kafka and recorded in the state file.
    #[arg(long, value_name = "N", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub chunk_bars: u64,
}

/// `consume` flags (the original consumer's).
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap: Option<String>,
    /// Kafka topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Bucket.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Key prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// S3 endpoint of MinIO or another S3 server (env MINIO_ENDPOINT).
    #[arg(long, value_name = "URL")]
    pub minio_endpoint: Option<String>,
    /// Write to AWS S3 (no custom endpoint, virtual-host addressing).
    #[arg(long)]
    pub use_aws: bool,
    /// Consumer group.
    #[arg(long)]
    pub consumer_group: Option<String>,
    /// Read up to the topic's end as of start, write, commit, print a summary and exit.
    #[arg(long)]
    pub once: bool,
}
