//! The one place a [`Source`] is built from its configuration, beside `sink::build`.
//! Every command that fetches (the pipeline's Fetchers, a backfill) builds its source
//! here, so `fetch.source = "csv"` means the same files and the same errors everywhere.

use std::path::PathBuf;
use std::sync::Arc;

use slog::Logger;

use super::{Clock, CsvConfig, CsvSource, CsvSourceError, Source, SourceKind, SyntheticSource};
use super::{TradingViewConfig, TradingViewSource};
use crate::config::ConfigError;

/// What [`build`] needs: which source, and the settings of each kind (only the chosen
/// kind's are read).
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Which source (`fetch.source`).
    pub kind: SourceKind,
    /// Seed of the synthetic source (`fetch.seed`): same seed, same prices.
    pub seed: u64,
    /// The TradingView feed (`[tradingview]`).
    pub tradingview: TradingViewConfig,
    /// Exported OHLCV files (`[csv]`).
    pub csv: CsvConfig,
}

/// Why a source could not be built. Nothing has connected yet: each is a configuration
/// or data problem to fix before starting again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceBuildError {
    /// A `[tradingview]` setting is invalid; the error names the key.
    #[error(transparent)]
    TradingView(#[from] ConfigError),
    /// The CSV files under `csv.path` could not be loaded (unreadable, or a bad row).
    #[error("cannot load CSV data from {} (csv.path)", path.display())]
    Csv {
        /// `csv.path`: a directory of `<SYMBOL>.csv` files or one long-format file.
        path: PathBuf,
        /// What was wrong with them.
        #[source]
        source: CsvSourceError,
    },
}

/// Builds the source `spec.kind` names. The synthetic source reads time from `clock`;
/// the CSV files are read and checked here, before anything is published; the
/// TradingView source validates its settings and connects on its first fetch.
pub fn build(spec: SourceSpec, clock: Clock, log: &Logger) -> Result<Arc<dyn Source>, SourceBuildError> {
    Ok(match spec.kind {
        SourceKind::Synthetic => Arc::new(SyntheticSource::new(spec.seed, clock)),
        SourceKind::Tradingview => Arc::new(TradingViewSource::new(spec.tradingview, log.clone())?),
        SourceKind::Csv => {
            let path = spec.csv.path;
            let loaded =
                if path.is_dir() { CsvSource::from_dir(&path) } else { CsvSource::from_long_file(&path) };
            match loaded {
                Ok(source) => Arc::new(source.with_follow_speed(spec.csv.speed)),
                Err(source) => return Err(SourceBuildError::Csv { path, source }),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: SourceKind, csv_path: &std::path::Path) -> SourceSpec {
        SourceSpec {
            kind,
            seed: 7,
            tradingview: TradingViewConfig::default(),
            csv: CsvConfig { path: csv_path.to_path_buf(), speed: 0.0 },
        }
    }

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    #[test]
    fn each_kind_builds_its_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("COMI.csv"), "datetime,open,high,low,close\n2025-01-20,1,2,0.5,1.5\n")
            .unwrap();
        let clock = super::super::system_clock();
        for (kind, name) in [
            (SourceKind::Synthetic, "synthetic"),
            (SourceKind::Csv, "csv"),
            (SourceKind::Tradingview, "tradingview"),
        ] {
            let source = build(spec(kind, dir.path()), clock.clone(), &log()).unwrap();
            assert_eq!(source.name(), name);
        }
    }

    #[test]
    fn missing_csv_data_names_the_path_and_the_key() {
        let missing = std::path::Path::new("/nonexistent/egx-csv");
        let err = build(spec(SourceKind::Csv, missing), super::super::system_clock(), &log())
            .err()
            .expect("no CSV data there");
        assert!(matches!(err, SourceBuildError::Csv { .. }), "{err:?}");
        assert_eq!(err.to_string(), "cannot load CSV data from /nonexistent/egx-csv (csv.path)");
    }
}
