//! A CSV replay source: bars from exported OHLCV files, for backfills and demos. Every
//! message it produces is marked `"source":"csv"`.
//!
//! # Layouts
//! - **One file per symbol**: a directory of `<SYMBOL>.csv` files
//!   ([`CsvSource::from_dir`]; `comi.csv` and `EGX:COMI`-style names are normalised like
//!   user input), or an explicit map from symbol to file ([`CsvSource::from_files`]).
//!   Such a file may carry a `symbol` column, but every row must then name the file's
//!   symbol.
//! - **Long format**: one file with a `symbol` column and the bars of many symbols
//!   ([`CsvSource::from_long_file`]).
//!
//! # Columns
//! A header row is required. Column names are case-insensitive, surrounding spaces are
//! ignored and so are extra columns.
//!
//! | column | required | content |
//! |---|---|---|
//! | `datetime` (or `date`) | this or `time` | the bar's opening time, ISO-8601: `2024-04-28T10:00:00+03:00` or `…Z` (an instant), `2024-04-28 10:00[:00[.fff]]` without an offset (Africa/Cairo local time, daylight saving included), or a date `2024-04-28` (stamped at 10:00 Cairo, the session open at which the feed stamps daily bars, so backfilled object keys match live ones) |
//! | `time` | this or `datetime` | Unix seconds UTC (`1736064000` or `1736064000.0`), used when there is no `datetime` column |
//! | `open`, `high`, `low`, `close` | yes | prices, finite numbers, `high` ≥ `low` |
//! | `volume` | no | traded volume, finite and ≥ 0; an empty cell means unknown |
//! | `symbol` | long format | ticker such as `COMI` or `EGX:COMI` |
//!
//! Every row is checked when the files are loaded; a bad row (also a repeated time for
//! the same symbol) fails the load with [`CsvSourceError::BadRows`], which lists the
//! file, line and reason of each.
//!
//! # Intervals
//! A file holds bars of one interval, and the source does not check which: a request's
//! interval is written into the bars it returns, so point the source at files of the
//! interval you ask for.
//!
//! # Replay
//! [`CsvSource::replay`] yields bars paced by their time stamps divided by a speed
//! factor: `60.0` plays one minute of market time per second. Gaps between bars
//! (nights, weekends) are paced too.

mod config;
mod error;
mod load;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use futures::FutureExt;

pub use config::CsvConfig;
pub use error::{BadRow, CsvSourceError, RowProblem};
use load::{Loader, Row};

use super::{FetchRequest, Source, SourceError};
use crate::contract::market::{Bar, Interval, Symbol, EXCHANGE_TZ};

/// The longest pause between two replayed bars, whatever the speed.
const MAX_REPLAY_PAUSE: Duration = Duration::from_secs(366 * 86_400);

/// Bars loaded from CSV files, served through [`Source`] and [`replay`](Self::replay).
#[derive(Debug, Clone)]
pub struct CsvSource {
    /// Rows per symbol, oldest first, times unique.
    bars: BTreeMap<Symbol, Vec<Row>>,
    /// Replay speed used when a Fetcher follows a symbol (stream mode).
    follow_speed: f64,
}

/// What [`CsvSource::replay`] plays.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRequest {
    /// Symbols to replay, interleaved by time; empty = every symbol of the source.
    pub symbols: Vec<Symbol>,
    /// Exchange code written into the bars (`EGX`).
    pub exchange: String,
    /// Interval written into the bars (the files' interval).
    pub interval: Interval,
    /// Only bars on or after this trading date.
    pub start_date: Option<NaiveDate>,
    /// Only bars on or before this trading date.
    pub end_date: Option<NaiveDate>,
    /// Market time played per unit of wall-clock time: `60.0` = one minute of market
    /// time per second. `0` or infinity (any value that is not finite and positive)
    /// plays as fast as possible.
    pub speed: f64,
}

impl ReplayRequest {
    /// Every symbol, all dates, exchange `EGX`, at `speed`.
    pub fn new(interval: Interval, speed: f64) -> Self {
        Self {
            symbols: Vec::new(),
            exchange: "EGX".into(),
            interval,
            start_date: None,
            end_date: None,
            speed,
        }
    }
}

impl CsvSource {
    /// Loads every `<SYMBOL>.csv` file directly inside `dir` (one symbol per file).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, CsvSourceError> {
        let dir = dir.as_ref();
        let io = |source| CsvSourceError::Io { path: dir.to_path_buf(), source };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(CsvSourceError::NoFiles { path: dir.to_path_buf() });
        }
        files.sort();
        let named = files.into_iter().map(|path| {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            (stem, path)
        });
        Self::from_files(named)
    }

    /// Loads one file per symbol from a map of symbol → file (symbols as user input).
    pub fn from_files<S, P>(files: impl IntoIterator<Item = (S, P)>) -> Result<Self, CsvSourceError>
    where
        S: AsRef<str>,
        P: AsRef<Path>,
    {
        let mut loader = Loader::default();
        for (name, path) in files {
            let (name, path) = (name.as_ref(), path.as_ref());
            let symbol = Symbol::parse_user(name).map_err(|source| CsvSourceError::Symbol {
                path: path.to_path_buf(),
                name: name.to_string(),
                source,
            })?;
            loader.read_file(path, Some(&symbol))?;
        }
        Ok(Self { bars: loader.finish()?, follow_speed: 0.0 })
    }

    /// Loads a long-format file: one `symbol` column, many symbols.
    pub fn from_long_file(path: impl AsRef<Path>) -> Result<Self, CsvSourceError> {
        let mut loader = Loader::default();
        loader.read_file(path.as_ref(), None)?;
        Ok(Self { bars: loader.finish()?, follow_speed: 0.0 })
    }

    /// Loads CSV text from any reader; `name` labels errors. With `symbol`, the text is
    /// one symbol's file; without, it is long format.
    pub fn from_reader(
        name: &str,
        reader: impl Read,
        symbol: Option<&Symbol>,
    ) -> Result<Self, CsvSourceError> {
        let mut loader = Loader::default();
        loader.read(Path::new(name), reader, symbol)?;
        Ok(Self { bars: loader.finish()?, follow_speed: 0.0 })
    }

    /// The symbols loaded, in order.
    pub fn symbols(&self) -> Vec<Symbol> {
        self.bars.keys().cloned().collect()
    }

    /// The rows of a symbol whose trading date lies within the bounds, oldest first.
    fn rows_between(
        &self,
        symbol: &Symbol,
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
    ) -> Result<Vec<Row>, SourceError> {
        let rows = self.bars.get(symbol).ok_or_else(|| SourceError::UnknownSymbol(symbol.to_string()))?;
        let in_range = |row: &&Row| {
            let date = row.time.with_timezone(&EXCHANGE_TZ).date_naive();
            start.is_none_or(|s| date >= s) && end.is_none_or(|e| date <= e)
        };
        Ok(rows.iter().filter(in_range).copied().collect())
    }

    /// The bars a [`fetch`](Source::fetch) returns: the symbol's bars within the
    /// request's trading dates, the last `n_bars` of them, oldest first.
    pub fn bars(&self, request: &FetchRequest) -> Result<Vec<Bar>, SourceError> {
        let rows = self.rows_between(&request.symbol, request.start_date, request.end_date)?;
        let skip = rows.len().saturating_sub(request.n_bars);
        Ok(rows[skip..]
            .iter()
            .map(|r| r.to_bar(&request.symbol, &request.exchange, request.interval))
            .collect())
    }

    /// The bars of the requested symbols (all when none are named), interleaved by
    /// time (ties in symbol order), as a stream paced with tokio's clock: the first bar
    /// comes at once, each later one when `(its time − the first bar's time) / speed`
    /// has passed since the first was polled. An unknown symbol fails before anything
    /// is played.
    pub fn replay(&self, request: &ReplayRequest) -> Result<BoxStream<'static, Bar>, SourceError> {
        let mut symbols = if request.symbols.is_empty() { self.symbols() } else { request.symbols.clone() };
        symbols.sort();
        symbols.dedup();
        let mut bars = Vec::new();
        for symbol in &symbols {
            let rows = self.rows_between(symbol, request.start_date, request.end_date)?;
            bars.extend(rows.into_iter().map(|r| r.to_bar(symbol, &request.exchange, request.interval)));
        }
        bars.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.symbol.cmp(&b.symbol)));
        Ok(paced(bars, request.speed))
    }
}

impl Source for CsvSource {
    fn name(&self) -> &str {
        "csv"
    }

    fn fetch(&self, request: FetchRequest) -> BoxFuture<'static, Result<Vec<Bar>, SourceError>> {
        let bars = self.bars(&request);
        async move { bars }.boxed()
    }

    /// Replays the symbol's bars in the request's date range at the follow speed.
    fn follow(&self, request: FetchRequest) -> Option<super::BarFeed> {
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let replay = ReplayRequest {
            symbols: vec![request.symbol.clone()],
            exchange: request.exchange.clone(),
            interval: request.interval,
            start_date: request.start_date,
            end_date: request.end_date,
            speed: self.follow_speed,
        };
        match self.replay(&replay) {
            Ok(mut bars) => {
                tokio::spawn(async move {
                    while let Some(bar) = bars.next().await {
                        if tx.send(Ok(bar)).await.is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => {
                let _ = tx.try_send(Err(e));
            }
        }
        Some(rx)
    }
}

impl CsvSource {
    /// Sets the replay speed used in stream mode (see [`ReplayRequest::speed`]).
    pub fn with_follow_speed(mut self, speed: f64) -> Self {
        self.follow_speed = speed;
        self
    }
}

/// A stream of `bars` (sorted by time) paced by their times divided by `speed`.
fn paced(bars: Vec<Bar>, speed: f64) -> BoxStream<'static, Bar> {
    let Some(first) = bars.first().map(|b| b.time) else {
        return stream::empty().boxed();
    };
    let fast = !(speed.is_finite() && speed > 0.0);
    let state = (bars.into_iter(), None::<tokio::time::Instant>);
    stream::unfold(state, move |(mut rest, started)| async move {
        let bar = rest.next()?;
        let started = started.unwrap_or_else(tokio::time::Instant::now);
        if !fast {
            let market_secs = (bar.time - first).num_milliseconds() as f64 / 1000.0;
            let pause = Duration::try_from_secs_f64(market_secs / speed).unwrap_or(MAX_REPLAY_PAUSE);
            tokio::time::sleep_until(started + pause.min(MAX_REPLAY_PAUSE)).await;
        }
        Some((bar, (rest, Some(started))))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    fn request(symbol: &str, n_bars: usize) -> FetchRequest {
        FetchRequest {
            symbol: sym(symbol),
            exchange: "EGX".into(),
            interval: Interval::Daily,
            n_bars,
            start_date: None,
            end_date: None,
        }
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn cairo_dates(bars: &[Bar]) -> Vec<String> {
        bars.iter().map(|b| b.trading_date().to_string()).collect()
    }

    const COMI: &str = "Date,Open,High,Low,Close,Volume,Adj Close\n\
        2025-01-19,10,11,9,10.5,100,0\n\
        2025-01-20,10.5,12,10,11,200,0\n\
        2025-01-21,11,11.5,10.5,11.2,,0\n\
        2025-01-22,11.2,11.4,11,11.3,400,0\n";

    const LONG: &str = "symbol,time,open,high,low,close\n\
        ETEL,1737352800,20,21,19,20.5\n\
        COMI,1737352800,10,11,9,10.5\n\
        EGX:comi,1737353100,10.5,11,10,10.8\n\
        ETEL,1737353700,20.5,21,20,20.9\n";

    fn long() -> CsvSource {
        CsvSource::from_reader("long.csv", LONG.as_bytes(), None).unwrap()
    }

    #[test]
    fn a_directory_holds_one_file_per_symbol() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("COMI.csv"), COMI).unwrap();
        std::fs::write(dir.path().join("etel.CSV"), "datetime,open,high,low,close\n2025-01-20,5,6,4,5.5\n")
            .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a csv").unwrap();
        let source = CsvSource::from_dir(dir.path()).unwrap();
        assert_eq!(source.symbols(), [sym("COMI"), sym("ETEL")]);
        let comi = source.bars(&request("COMI", 10)).unwrap();
        assert_eq!(cairo_dates(&comi), ["2025-01-19", "2025-01-20", "2025-01-21", "2025-01-22"]);
        assert_eq!((comi[1].open, comi[1].high, comi[1].low, comi[1].close), (10.5, 12.0, 10.0, 11.0));
        assert_eq!(
            comi.iter().map(|b| b.volume).collect::<Vec<_>>(),
            [Some(100.0), Some(200.0), None, Some(400.0)]
        );
        let etel = source.bars(&request("ETEL", 10)).unwrap();
        assert_eq!((etel.len(), etel[0].volume, etel[0].symbol.as_str()), (1, None, "ETEL"));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(CsvSource::from_dir(empty.path()), Err(CsvSourceError::NoFiles { .. })));
        std::fs::write(dir.path().join("bad name.csv"), COMI).unwrap();
        let err = CsvSource::from_dir(dir.path()).unwrap_err();
        assert!(matches!(&err, CsvSourceError::Symbol { name, .. } if name == "bad name"), "{err}");
    }

    #[test]
    fn a_map_names_the_file_of_each_symbol() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("export-2025.csv");
        std::fs::write(&path, COMI).unwrap();
        let source = CsvSource::from_files([("EGX:comi", &path)]).unwrap();
        assert_eq!(source.symbols(), [sym("COMI")]);
        let missing = CsvSource::from_files([("ETEL", dir.path().join("nope.csv"))]).unwrap_err();
        assert!(matches!(missing, CsvSourceError::Io { .. }), "{missing}");
    }

    #[test]
    fn a_long_file_holds_many_symbols() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.csv");
        std::fs::write(&path, LONG).unwrap();
        let source = CsvSource::from_long_file(&path).unwrap();
        assert_eq!(source.symbols(), [sym("COMI"), sym("ETEL")]);
        let comi = source.bars(&request("COMI", 10)).unwrap();
        let times: Vec<i64> = comi.iter().map(|b| b.time.timestamp()).collect();
        assert_eq!(times, [1_737_352_800, 1_737_353_100]);
    }

    #[test]
    fn fetch_filters_by_trading_date_and_keeps_the_last_n_bars() {
        let source = CsvSource::from_reader("COMI.csv", COMI.as_bytes(), Some(&sym("COMI"))).unwrap();
        assert_eq!(cairo_dates(&source.bars(&request("COMI", 2)).unwrap()), ["2025-01-21", "2025-01-22"]);
        assert!(source.bars(&request("COMI", 0)).unwrap().is_empty());
        let mut between = request("COMI", 10);
        (between.start_date, between.end_date) = (Some(date("2025-01-20")), Some(date("2025-01-21")));
        assert_eq!(cairo_dates(&source.bars(&between).unwrap()), ["2025-01-20", "2025-01-21"]);
        between.n_bars = 1;
        assert_eq!(cairo_dates(&source.bars(&between).unwrap()), ["2025-01-21"]);
        let mut weekly = request("COMI", 1);
        (weekly.interval, weekly.exchange) = (Interval::Weekly, "XEGX".into());
        let bar = &source.bars(&weekly).unwrap()[0];
        assert_eq!(
            (bar.interval, bar.exchange.as_str()),
            (Interval::Weekly, "XEGX"),
            "taken from the request"
        );
    }

    #[tokio::test]
    async fn fetch_serves_the_source_trait_and_refuses_unknown_symbols() {
        let source: Box<dyn Source> = Box::new(long());
        assert_eq!(source.name(), "csv");
        assert_eq!(source.fetch(request("ETEL", 5)).await.unwrap().len(), 2);
        assert_eq!(source.fetch(request("HRHO", 5)).await, Err(SourceError::UnknownSymbol("HRHO".into())));
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn replay_interleaves_symbols_by_time_and_paces_by_the_speed() {
        let start = tokio::time::Instant::now();
        let mut stream = long().replay(&ReplayRequest::new(Interval::Minutes(5), 60.0)).unwrap();
        let mut got = Vec::new();
        while let Some(bar) = stream.next().await {
            got.push((bar.symbol.to_string(), bar.time, start.elapsed()));
        }
        // Market gaps of 0, 0, 5 and 15 minutes become 0, 0, 5 and 15 seconds at 60x.
        let want = [
            ("COMI", at(1_737_352_800), 0),
            ("ETEL", at(1_737_352_800), 0),
            ("COMI", at(1_737_353_100), 5),
            ("ETEL", at(1_737_353_700), 15),
        ];
        let want: Vec<_> =
            want.iter().map(|(s, t, secs)| (s.to_string(), *t, Duration::from_secs(*secs))).collect();
        assert_eq!(got, want);
    }

    #[tokio::test(start_paused = true)]
    async fn replay_at_speed_zero_or_infinity_does_not_wait() {
        for speed in [0.0, f64::INFINITY] {
            let start = tokio::time::Instant::now();
            let bars: Vec<Bar> =
                long().replay(&ReplayRequest::new(Interval::Minutes(5), speed)).unwrap().collect().await;
            assert_eq!(bars.len(), 4);
            assert_eq!(start.elapsed(), Duration::ZERO, "speed {speed}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn replay_picks_symbols_and_dates_and_refuses_unknown_symbols() {
        let source = CsvSource::from_reader("COMI.csv", COMI.as_bytes(), Some(&sym("COMI"))).unwrap();
        let mut request = ReplayRequest::new(Interval::Daily, 86_400.0);
        (request.symbols, request.start_date) = (vec![sym("COMI"), sym("COMI")], Some(date("2025-01-21")));
        let start = tokio::time::Instant::now();
        let bars: Vec<Bar> = source.replay(&request).unwrap().collect().await;
        assert_eq!(cairo_dates(&bars), ["2025-01-21", "2025-01-22"]);
        assert_eq!(start.elapsed(), Duration::from_secs(1), "one market day per second");
        request.symbols.push(sym("ETEL"));
        assert_eq!(source.replay(&request).err(), Some(SourceError::UnknownSymbol("ETEL".into())));
        request.end_date = Some(date("2020-01-01"));
        request.symbols.pop();
        assert!(source.replay(&request).unwrap().collect::<Vec<_>>().await.is_empty());
    }
}
