//! Errors of the CSV source: a refused row ([`BadRow`], [`RowProblem`]) and a failed
//! load ([`CsvSourceError`]).

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::contract::market::{Symbol, SymbolError};

/// Why a CSV row was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RowProblem {
    /// The row is not well-formed CSV (another number of fields than the header, bad
    /// UTF-8, an unclosed quote).
    #[error("malformed CSV: {0}")]
    Malformed(String),
    /// A required cell is empty.
    #[error("{0} is empty")]
    Missing(&'static str),
    /// A cell that must hold a finite number does not.
    #[error("{column} {value:?} is not a finite number")]
    Number {
        /// The column.
        column: &'static str,
        /// The cell as written.
        value: String,
    },
    /// The time cell is neither an ISO-8601 date-time, a date nor Unix seconds.
    #[error("{column} {value:?} is not a valid time")]
    Time {
        /// The column.
        column: &'static str,
        /// The cell as written.
        value: String,
    },
    /// The `symbol` cell is not a valid symbol.
    #[error("symbol: {0}")]
    Symbol(#[source] SymbolError),
    /// The `symbol` cell of a per-symbol file names another symbol.
    #[error("symbol {found} in the file of {expected}")]
    OtherSymbol {
        /// The file's symbol.
        expected: Symbol,
        /// The symbol in the row.
        found: Symbol,
    },
    /// `high` is below `low`.
    #[error("high {high} is below low {low}")]
    HighBelowLow {
        /// The high price.
        high: f64,
        /// The low price.
        low: f64,
    },
    /// `volume` is negative.
    #[error("volume {0} is negative")]
    NegativeVolume(f64),
    /// An earlier row already holds a bar of this symbol at this time.
    #[error("a second bar of {symbol} at {time}")]
    DuplicateTime {
        /// The symbol.
        symbol: Symbol,
        /// The repeated time.
        time: DateTime<Utc>,
    },
}

/// A refused row: where it is and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}: {problem}", path.display())]
pub struct BadRow {
    /// The file (or the name given to [`CsvSource::from_reader`](super::CsvSource::from_reader)).
    pub path: PathBuf,
    /// 1-based line number (the header is line 1).
    pub line: u64,
    /// What is wrong.
    #[source]
    pub problem: RowProblem,
}

/// Why CSV files could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvSourceError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The header row is missing or lacks a required column.
    #[error("{}: {reason}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// A symbol taken from a file name or the symbol map is not valid.
    #[error("{}: symbol {name:?}: {source}", path.display())]
    Symbol {
        /// The file.
        path: PathBuf,
        /// The name as given.
        name: String,
        /// Why it was refused.
        #[source]
        source: SymbolError,
    },
    /// The directory holds no `.csv` file.
    #[error("{}: no .csv files", path.display())]
    NoFiles {
        /// The directory.
        path: PathBuf,
    },
    /// Rows failed validation: `rows` holds the first 100 in file order, `total` counts all.
    #[error("{total} bad CSV row(s):{}{}", list_rows(rows), more(*total, rows.len()))]
    BadRows {
        /// The first bad rows.
        rows: Vec<BadRow>,
        /// How many rows were bad in all.
        total: usize,
    },
}

fn list_rows(rows: &[BadRow]) -> String {
    rows.iter().map(|r| format!("\n  {r}")).collect()
}

fn more(total: usize, listed: usize) -> String {
    if total > listed {
        format!("\n  … and {} more", total - listed)
    } else {
        String::new()
    }
}
