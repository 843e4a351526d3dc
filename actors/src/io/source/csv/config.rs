//! `[csv]`: exported OHLCV files for the `csv` source.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[csv]`: exported OHLCV files for the `csv` source (see `egx_actors::source` docs for columns).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// A directory of `<SYMBOL>.csv` files, or one long-format file with a `symbol` column.
    pub path: PathBuf,
    /// Replay speed in stream mode: market seconds per wall-clock second (60 = a minute
    /// per second); 0 = as fast as possible.
    pub speed: f64,
}

impl Default for CsvConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("data"), speed: 0.0 }
    }
}
