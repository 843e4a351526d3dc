//! The flag groups: each group of flags is defined once, flattened into every command
//! that takes it, and applied to the [`Settings`] by its one `apply`, so a flag means the
//! same thing and is checked the same way in every command (ripgrep's flags → settings).
//! A command that words a flag differently in its help, or lists it elsewhere, says so
//! in its own definition (`cli.rs`), not here.

use anyhow::{anyhow, bail, Result};
use chrono::NaiveDate;
use clap::{Args, ValueEnum};
use egx_actors::kafka::KafkaMode;
use egx_actors::market::{Interval, Shard, Symbol};
use egx_actors::sink::SinkKind;
use egx_actors::source::SourceKind;

use crate::settings::Settings;

/// Which symbols to work on, and at which interval (`run`, `produce`, `backfill`).
#[derive(Debug, Clone, Default, Args)]
pub struct SymbolArgs {
    /// Comma-separated symbols, e.g. COMI,ETEL.
    #[arg(long, value_name = "LIST")]
    pub symbols: Option<String>,
    /// Daily, Weekly, Monthly, "1 Minute", "5 Minute", "30 Minute" (or a feed code: 1D, 5…).
    #[arg(long)]
    pub interval: Option<String>,
}

impl SymbolArgs {
    /// Sets `fetch.symbols` and `fetch.interval`; a bad value names its flag.
    pub fn apply(&self, settings: &mut Settings) -> Result<()> {
        let fetch = &mut settings.fetch;
        if let Some(list) = &self.symbols {
            fetch.symbols = Symbol::parse_list(list).map_err(|e| anyhow!("--symbols: {e}"))?;
        }
        if let Some(i) = &self.interval {
            fetch.interval = Interval::parse(i).map_err(|e| anyhow!("--interval: {e}"))?;
        }
        Ok(())
    }
}

/// This process's share of the symbols (`run`, `produce`, `backfill`).
#[derive(Debug, Clone, Default, Args)]
pub struct ShardArgs {
    /// Follow only this process's share of the symbols: i/n (0-based), so that n
    /// processes split the list with no overlap and no gap.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

impl ShardArgs {
    /// Sets `fetch.shard`.
    pub fn apply(&self, settings: &mut Settings) -> Result<()> {
        if let Some(s) = &self.shard {
            settings.fetch.shard = Shard::parse(s).map_err(|e| anyhow!("--shard: {e}"))?;
        }
        Ok(())
    }
}

/// What to fetch and how often (`run`, `produce`).
#[derive(Debug, Clone, Default, Args)]
pub struct FetchArgs {
    /// The symbols and their interval.
    #[command(flatten)]
    pub symbols: SymbolArgs,
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
    /// This process's share of the symbols.
    #[command(flatten)]
    pub shard: ShardArgs,
}

/// The command whose rules [`FetchArgs::apply`] follows: they differ in what an absent
/// --poll-interval means and in when a one-shot intraday fetch must name its dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchRules {
    /// `run`: the poll interval of the configuration stands; a one-shot intraday fetch of
    /// the symbols given with --symbols needs --start-date.
    Run,
    /// `produce`, as the original producer: without --poll-interval and without a config
    /// file it fetches once, and a one-shot intraday fetch needs both dates.
    Produce {
        /// A config file was given (its `fetch.poll_interval_secs` then stands).
        has_file: bool,
    },
}

impl FetchArgs {
    /// Sets the `fetch` section from the flags, then checks the date range the command's
    /// rules ask for.
    pub fn apply(&self, settings: &mut Settings, rules: FetchRules) -> Result<()> {
        self.symbols.apply(settings)?;
        if let Some(n) = self.n_bars {
            settings.fetch.n_bars = n;
        }
        if let Some(p) = self.poll_interval {
            settings.fetch.poll_interval_secs = p;
        }
        self.shard.apply(settings)?;
        let fetch = &mut settings.fetch;
        fetch.start_date = self.start_date.or(fetch.start_date);
        fetch.end_date = self.end_date.or(fetch.end_date);
        if rules == (FetchRules::Produce { has_file: false }) && self.poll_interval.is_none() {
            // Original behaviour: no --poll-interval means fetch once and exit.
            fetch.poll_interval_secs = 0;
        }
        let one_shot_intraday = fetch.interval.is_intraday() && fetch.poll_interval_secs == 0;
        let missing = match rules {
            FetchRules::Run => self.symbols.symbols.is_some() && fetch.start_date.is_none(),
            FetchRules::Produce { .. } => fetch.start_date.is_none() || fetch.end_date.is_none(),
        };
        if one_shot_intraday && missing {
            // As the original producer: intraday history is fetched for an explicit date range.
            bail!("--start-date and --end-date are required for intraday intervals when fetching once");
        }
        Ok(())
    }
}

/// Where bars come from (`produce`, `backfill`).
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// Data source.
    #[arg(long, value_enum)]
    pub source: Option<SourceArg>,
    /// Exchange code.
    #[arg(long)]
    pub exchange: Option<String>,
}

/// Sources selectable on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// Seeded random walk, marked "source":"synthetic".
    Synthetic,
    /// TradingView's websocket feed (the default for produce).
    Tradingview,
    /// Exported OHLCV files (csv.path).
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

impl SourceArgs {
    /// Sets `fetch.source` and `fetch.exchange` (upper-cased, as exchanges are named).
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(source) = self.source {
            settings.fetch.source = source.into();
        }
        if let Some(e) = &self.exchange {
            settings.fetch.exchange = e.to_ascii_uppercase();
        }
    }
}

/// The Kafka cluster and topic to publish to or read from (`produce`, `backfill`,
/// `consume`, which calls the first flag --bootstrap as the original consumer did).
#[derive(Debug, Clone, Default, Args)]
pub struct KafkaTargetArgs {
    /// Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_servers: Option<String>,
    /// Kafka topic.
    #[arg(long)]
    pub topic: Option<String>,
}

impl KafkaTargetArgs {
    /// Sets `kafka.topic` and `kafka.bootstrap_servers`; servers on the command line are
    /// a real cluster, so they switch `kafka.mode` to external.
    pub fn apply(&self, settings: &mut Settings) {
        let kafka = &mut settings.kafka;
        if let Some(b) = &self.bootstrap_servers {
            kafka.bootstrap_servers = b.clone();
            kafka.mode = KafkaMode::External;
        }
        if let Some(t) = &self.topic {
            kafka.topic = t.clone();
        }
    }
}

/// The bucket to write to (`consume`).
#[derive(Debug, Clone, Default, Args)]
pub struct S3TargetArgs {
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
}

impl S3TargetArgs {
    /// Sets the `sink` section; a bucket or an endpoint on the command line means S3, and
    /// --use-aws wins over --minio-endpoint.
    pub fn apply(&self, settings: &mut Settings) {
        let sink = &mut settings.sink;
        if let Some(b) = &self.bucket {
            sink.bucket = b.clone();
            sink.kind = SinkKind::S3;
        }
        if let Some(p) = &self.prefix {
            sink.prefix = p.clone();
        }
        if let Some(e) = &self.minio_endpoint {
            sink.endpoint = e.clone();
            sink.kind = SinkKind::S3;
        }
        if self.use_aws {
            sink.kind = SinkKind::S3;
            sink.endpoint = String::new();
            sink.force_path_style = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intraday(symbols: Option<&str>) -> FetchArgs {
        FetchArgs {
            symbols: SymbolArgs { symbols: symbols.map(Into::into), interval: Some("5 Minute".into()) },
            ..FetchArgs::default()
        }
    }

    fn once() -> Settings {
        let mut settings = Settings::default();
        settings.fetch.poll_interval_secs = 0;
        settings
    }

    #[test]
    fn produce_without_a_file_fetches_once_and_needs_both_dates_for_intraday() {
        let mut settings = Settings::default();
        let mut args = intraday(None);
        args.start_date = "2025-01-20".parse().ok();
        let err = args.apply(&mut settings, FetchRules::Produce { has_file: false }).unwrap_err();
        assert!(err.to_string().contains("--start-date and --end-date are required"), "{err}");
        assert_eq!(settings.fetch.poll_interval_secs, 0, "no --poll-interval: fetch once");
        let mut settings = Settings::default();
        args.apply(&mut settings, FetchRules::Produce { has_file: true }).unwrap();
        assert_eq!(settings.fetch.poll_interval_secs, 60, "the config's poll interval stands");
    }

    #[test]
    fn run_needs_the_start_date_only_for_symbols_given_on_the_command_line() {
        intraday(None).apply(&mut once(), FetchRules::Run).unwrap();
        let err = intraday(Some("COMI")).apply(&mut once(), FetchRules::Run).unwrap_err();
        assert!(err.to_string().contains("required for intraday"), "{err}");
        let mut args = intraday(Some("COMI"));
        args.start_date = "2025-01-20".parse().ok();
        args.apply(&mut once(), FetchRules::Run).unwrap();
    }

    #[test]
    fn bad_values_name_their_flag() {
        let args = FetchArgs { shard: ShardArgs { shard: Some("3/2".into()) }, ..FetchArgs::default() };
        let err = args.apply(&mut Settings::default(), FetchRules::Run).unwrap_err().to_string();
        assert!(err.starts_with("--shard: "), "{err}");
        let args = SymbolArgs { symbols: Some("COMI,../x".into()), interval: None };
        let err = args.apply(&mut Settings::default()).unwrap_err().to_string();
        assert!(err.starts_with("--symbols: "), "{err}");
    }

    #[test]
    fn bootstrap_servers_switch_kafka_to_external() {
        let mut settings = Settings::default();
        assert_eq!(settings.kafka.mode, KafkaMode::Embedded);
        let args = KafkaTargetArgs { bootstrap_servers: Some("k:9092".into()), topic: None };
        args.apply(&mut settings);
        assert_eq!(settings.kafka.mode, KafkaMode::External);
        assert_eq!(settings.kafka.bootstrap_servers, "k:9092");
    }

    #[test]
    fn use_aws_wins_over_the_minio_endpoint() {
        let mut settings = Settings::default();
        let args = S3TargetArgs {
            minio_endpoint: Some("http://m:9000".into()),
            use_aws: true,
            ..S3TargetArgs::default()
        };
        args.apply(&mut settings);
        assert_eq!(settings.sink.kind, SinkKind::S3);
        assert_eq!(settings.sink.endpoint, "");
        assert!(!settings.sink.force_path_style);
    }
}
