//! Loading CSV text: finding the columns, parsing and checking each row, collecting
//! the rows of every file per symbol and the problems of the bad ones.

use std::collections::btree_map::{BTreeMap, Entry};
use std::io::Read;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use super::error::{BadRow, CsvSourceError, RowProblem};
use crate::contract::market::{cairo_local_to_utc, Bar, Interval, Symbol};

/// At most this many bad rows are kept in [`CsvSourceError::BadRows`].
const MAX_REPORTED_ROWS: usize = 100;

/// One row's values, before the symbol, exchange and interval are attached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Row {
    pub(super) time: DateTime<Utc>,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: Option<f64>,
}

impl Row {
    pub(super) fn to_bar(self, symbol: &Symbol, exchange: &str, interval: Interval) -> Bar {
        Bar {
            symbol: symbol.clone(),
            exchange: exchange.to_string(),
            interval,
            time: self.time,
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
        }
    }
}

/// Where the cells of a file are.
struct Columns {
    time: (&'static str, usize),
    prices: [usize; 4],
    volume: Option<usize>,
    symbol: Option<usize>,
}

const PRICE_COLUMNS: [&str; 4] = ["open", "high", "low", "close"];

impl Columns {
    fn find(path: &Path, header: &csv::StringRecord, long_format: bool) -> Result<Self, CsvSourceError> {
        let names: Vec<String> =
            header.iter().map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase()).collect();
        let index = |name: &str| names.iter().position(|n| n == name);
        let time = match (index("datetime").or_else(|| index("date")), index("time")) {
            (Some(i), _) => Some(("datetime", i)),
            (None, Some(i)) => Some(("time", i)),
            (None, None) => None,
        };
        let prices = PRICE_COLUMNS.map(index);
        let symbol = index("symbol");
        let mut missing: Vec<&str> = Vec::new();
        if time.is_none() {
            missing.push("datetime or time");
        }
        missing.extend(PRICE_COLUMNS.iter().zip(prices).filter(|(_, i)| i.is_none()).map(|(n, _)| *n));
        if long_format && symbol.is_none() {
            missing.push("symbol");
        }
        match (time, prices) {
            (Some(time), [Some(o), Some(h), Some(l), Some(c)]) if missing.is_empty() => {
                Ok(Self { time, prices: [o, h, l, c], volume: index("volume"), symbol })
            }
            _ => Err(CsvSourceError::Header {
                path: path.to_path_buf(),
                reason: format!(
                    "the header row lacks column(s) {} (a header row is required)",
                    missing.join(", ")
                ),
            }),
        }
    }

    /// Reads one record into a symbol and a row.
    fn parse(
        &self,
        record: &csv::StringRecord,
        file_symbol: Option<&Symbol>,
    ) -> Result<(Symbol, Row), RowProblem> {
        let cell = |i: usize| record.get(i).unwrap_or("");
        let symbol = match (file_symbol, self.symbol.map(cell)) {
            (Some(expected), None | Some("")) => expected.clone(),
            (expected, raw) => {
                let found = Symbol::parse_user(raw.unwrap_or("")).map_err(RowProblem::Symbol)?;
                if let Some(expected) = expected.filter(|e| **e != found) {
                    return Err(RowProblem::OtherSymbol { expected: expected.clone(), found });
                }
                found
            }
        };
        let (time_column, time_index) = self.time;
        let time = match cell(time_index) {
            "" => return Err(RowProblem::Missing(time_column)),
            raw if time_column == "time" => parse_unix(raw),
            raw => parse_datetime(raw),
        }
        .ok_or_else(|| RowProblem::Time { column: time_column, value: cell(time_index).to_string() })?;
        let mut prices = [0.0; 4];
        for ((price, column), index) in prices.iter_mut().zip(PRICE_COLUMNS).zip(self.prices) {
            *price = number(column, cell(index))?.ok_or(RowProblem::Missing(column))?;
        }
        let [open, high, low, close] = prices;
        if high < low {
            return Err(RowProblem::HighBelowLow { high, low });
        }
        let volume = match self.volume {
            Some(i) => number("volume", cell(i))?,
            None => None,
        };
        if let Some(v) = volume.filter(|v| *v < 0.0) {
            return Err(RowProblem::NegativeVolume(v));
        }
        Ok((symbol, Row { time, open, high, low, close, volume }))
    }
}

/// A finite number, `None` for an empty cell.
fn number(column: &'static str, raw: &str) -> Result<Option<f64>, RowProblem> {
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(RowProblem::Number { column, value: raw.to_string() }),
    }
}

/// Unix seconds, whole or fractional (kept to the millisecond).
fn parse_unix(raw: &str) -> Option<DateTime<Utc>> {
    if let Ok(secs) = raw.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0);
    }
    let secs = raw.parse::<f64>().ok().filter(|s| s.is_finite())?;
    DateTime::from_timestamp_millis((secs * 1000.0).round() as i64)
}

/// An ISO-8601 instant, a naive Cairo date-time or a date (at the 10:00 Cairo open).
fn parse_datetime(raw: &str) -> Option<DateTime<Utc>> {
    // Accept a space between date and time as well as `T`.
    let normal = match raw.as_bytes().get(10) {
        Some(b' ') => format!("{}T{}", &raw[..10], raw[11..].trim_start()),
        _ => raw.to_string(),
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&normal) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(&normal, "%Y-%m-%dT%H:%M%:z") {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(&normal, format) {
            return Some(cairo_local_to_utc(naive));
        }
    }
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
    Some(cairo_local_to_utc(date.and_time(NaiveTime::from_hms_opt(10, 0, 0)?)))
}

/// Accumulates the rows of several files and their problems.
#[derive(Default)]
pub(super) struct Loader {
    bars: BTreeMap<Symbol, BTreeMap<DateTime<Utc>, Row>>,
    bad: Vec<BadRow>,
    total_bad: usize,
}

impl Loader {
    pub(super) fn read_file(&mut self, path: &Path, symbol: Option<&Symbol>) -> Result<(), CsvSourceError> {
        let file = std::fs::File::open(path)
            .map_err(|source| CsvSourceError::Io { path: path.to_path_buf(), source })?;
        self.read(path, std::io::BufReader::new(file), symbol)
    }

    /// Reads one file's text; `file_symbol` is `None` for long format.
    pub(super) fn read(
        &mut self,
        path: &Path,
        input: impl Read,
        file_symbol: Option<&Symbol>,
    ) -> Result<(), CsvSourceError> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
        let header = reader.headers().map_err(|e| csv_error(path, e))?.clone();
        let columns = Columns::find(path, &header, file_symbol.is_none())?;
        for result in reader.records() {
            let (line, parsed) = match result {
                Ok(record) => {
                    (record.position().map_or(0, csv::Position::line), columns.parse(&record, file_symbol))
                }
                Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return Err(csv_error(path, e)),
                Err(e) => {
                    (e.position().map_or(0, csv::Position::line), Err(RowProblem::Malformed(e.to_string())))
                }
            };
            self.add(path, line, parsed);
        }
        Ok(())
    }

    /// Keeps a parsed row, or records why it was refused.
    fn add(&mut self, path: &Path, line: u64, parsed: Result<(Symbol, Row), RowProblem>) {
        let problem = match parsed {
            Ok((symbol, row)) => match self.bars.entry(symbol.clone()).or_default().entry(row.time) {
                Entry::Vacant(slot) => {
                    slot.insert(row);
                    return;
                }
                Entry::Occupied(_) => RowProblem::DuplicateTime { symbol, time: row.time },
            },
            Err(problem) => problem,
        };
        self.total_bad += 1;
        if self.bad.len() < MAX_REPORTED_ROWS {
            self.bad.push(BadRow { path: path.to_path_buf(), line, problem });
        }
    }

    /// The rows per symbol, oldest first, or every bad row.
    pub(super) fn finish(self) -> Result<BTreeMap<Symbol, Vec<Row>>, CsvSourceError> {
        if self.total_bad > 0 {
            return Err(CsvSourceError::BadRows { rows: self.bad, total: self.total_bad });
        }
        Ok(self.bars.into_iter().map(|(symbol, rows)| (symbol, rows.into_values().collect())).collect())
    }
}

/// A csv error that stops reading a file: I/O, or an unreadable header.
fn csv_error(path: &Path, e: csv::Error) -> CsvSourceError {
    let (path, reason) = (path.to_path_buf(), format!("unreadable header row: {e}"));
    match e.into_kind() {
        csv::ErrorKind::Io(source) => CsvSourceError::Io { path, source },
        _ => CsvSourceError::Header { path, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    fn load(text: &str, symbol: Option<&str>) -> Result<BTreeMap<Symbol, Vec<Row>>, CsvSourceError> {
        let mut loader = Loader::default();
        loader.read(Path::new("COMI.csv"), text.as_bytes(), symbol.map(sym).as_ref())?;
        loader.finish()
    }

    fn bad_rows(text: &str, symbol: Option<&str>) -> Vec<(u64, RowProblem)> {
        match load(text, symbol) {
            Err(CsvSourceError::BadRows { rows, .. }) => {
                rows.into_iter().map(|r| (r.line, r.problem)).collect()
            }
            other => panic!("expected bad rows, got {other:?}"),
        }
    }

    #[test]
    fn naive_date_times_are_cairo_local_time_across_daylight_saving() {
        for (raw, want) in [
            ("2024-04-25 10:00", "2024-04-25T08:00:00Z"),    // winter, UTC+2
            ("2024-04-28T10:00:00", "2024-04-28T07:00:00Z"), // summer, UTC+3
            ("2024-10-31 10:00:00.5", "2024-10-31T07:00:00.5Z"),
            ("2024-11-03T10:00", "2024-11-03T08:00:00Z"),
            ("2024-04-28", "2024-04-28T07:00:00Z"), // a date: the 10:00 open
            ("2024-11-03", "2024-11-03T08:00:00Z"),
        ] {
            assert_eq!(parse_datetime(raw), Some(utc(want)), "{raw}");
        }
    }

    #[test]
    fn date_times_with_an_offset_are_instants() {
        for raw in [
            "2024-04-28T10:00:00+03:00",
            "2024-04-28 10:00:00+03:00",
            "2024-04-28T10:00+03:00",
            "2024-04-28T07:00:00Z",
            "2024-04-28T09:00:00+02:00",
        ] {
            assert_eq!(parse_datetime(raw), Some(utc("2024-04-28T07:00:00Z")), "{raw}");
        }
        for raw in ["yesterday", "2024-13-01", "2024-04-28T25:00", "28/04/2024", "2024-04-28 "] {
            assert_eq!(parse_datetime(raw), None, "{raw}");
        }
    }

    #[test]
    fn unix_times_are_seconds_utc() {
        assert_eq!(parse_unix("1714287600"), Some(utc("2024-04-28T07:00:00Z")));
        assert_eq!(parse_unix("1714287600.0"), Some(utc("2024-04-28T07:00:00Z")));
        assert_eq!(parse_unix("1714287600.25"), Some(utc("2024-04-28T07:00:00.25Z")));
        for raw in ["", "1e400", "NaN", "2024-04-28", "99999999999999999999"] {
            assert_eq!(parse_unix(raw), None, "{raw}");
        }
    }

    #[test]
    fn rows_are_read_with_any_column_case_and_order() {
        let text = "\u{feff} CLOSE ,Volume,Time,low,HIGH,open,comment\n11, ,1714287600.0 , 9,12,10,hi\n";
        let rows = load(text, Some("COMI")).unwrap();
        let row = rows[&sym("COMI")][0];
        assert_eq!(row.time, Utc.with_ymd_and_hms(2024, 4, 28, 7, 0, 0).unwrap());
        assert_eq!((row.open, row.high, row.low, row.close, row.volume), (10.0, 12.0, 9.0, 11.0, None));
        let both = "time,datetime,open,high,low,close\n1,2024-04-28 10:00,1,1,1,1\n";
        assert_eq!(load(both, Some("COMI")).unwrap()[&sym("COMI")][0].time, utc("2024-04-28T07:00:00Z"));
    }

    #[test]
    fn bad_rows_are_reported_with_their_line_and_reason() {
        let text = "datetime,open,high,low,close,volume\n\
            2025-01-19,10,11,9,10.5,100\n\
            2025-01-20,abc,11,9,10.5,100\n\
            2025-01-21,10,9,11,10,100\n\
            tomorrow,10,11,9,10.5,100\n\
            2025-01-22,10,11,9,,100\n\
            2025-01-19,10,11,9,10.5,100\n\
            2025-01-23,10,11,9\n\
            2025-01-25,10,11,9,10.5,-1\n\
            2025-01-26,NaN,11,9,10.5,1\n";
        let got = bad_rows(text, Some("COMI"));
        let lines: Vec<u64> = got.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(got[0].1, RowProblem::Number { column: "open", value: "abc".into() });
        assert_eq!(got[1].1, RowProblem::HighBelowLow { high: 9.0, low: 11.0 });
        assert_eq!(got[2].1, RowProblem::Time { column: "datetime", value: "tomorrow".into() });
        assert_eq!(got[3].1, RowProblem::Missing("close"));
        let first = utc("2025-01-19T08:00:00Z");
        assert_eq!(got[4].1, RowProblem::DuplicateTime { symbol: sym("COMI"), time: first });
        assert!(matches!(got[5].1, RowProblem::Malformed(_)), "{:?}", got[5].1);
        assert_eq!(got[6].1, RowProblem::NegativeVolume(-1.0));
        assert_eq!(got[7].1, RowProblem::Number { column: "open", value: "NaN".into() });
        let message = load(text, Some("COMI")).unwrap_err().to_string();
        assert!(message.starts_with("8 bad CSV row(s):"), "{message}");
        assert!(message.contains("\n  COMI.csv:3: open \"abc\" is not a finite number"), "{message}");
    }

    #[test]
    fn the_report_keeps_the_first_hundred_bad_rows() {
        let text = format!("datetime,open,high,low,close\n{}", "x,1,1,1,1\n".repeat(150));
        match load(&text, Some("COMI")) {
            Err(e @ CsvSourceError::BadRows { .. }) => {
                assert!(e.to_string().ends_with("… and 50 more"), "{e}");
                let CsvSourceError::BadRows { rows, total } = e else { unreachable!() };
                assert_eq!((rows.len(), total, rows[99].line), (100, 150, 101));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_header_row_with_the_required_columns_is_needed() {
        for (text, missing) in [
            ("", "datetime or time, open, high, low, close"),
            ("2025-01-19,10,11,9,10.5\n", "datetime or time, open, high, low, close"),
            ("date,open,high,low\n2025-01-19,10,11,9\n", "lacks column(s) close"),
        ] {
            match load(text, Some("COMI")) {
                Err(CsvSourceError::Header { path, reason }) => {
                    assert_eq!(path, Path::new("COMI.csv"));
                    assert!(reason.contains(missing), "{reason}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let long = load("date,open,high,low,close\n", None).unwrap_err();
        assert!(long.to_string().contains("lacks column(s) symbol"), "{long}");
    }

    #[test]
    fn symbols_in_rows_are_validated_and_must_match_the_file() {
        let text = "symbol,date,open,high,low,close\n../X,2025-01-19,1,1,1,1\n,2025-01-20,1,1,1,1\n";
        let got = bad_rows(text, None);
        assert!(matches!(got[0], (2, RowProblem::Symbol(_))), "{got:?}");
        assert_eq!(got[1], (3, RowProblem::Symbol(crate::contract::market::SymbolError::Empty)));
        let text = "symbol,date,open,high,low,close\nETEL,2025-01-19,1,1,1,1\n,2025-01-20,1,1,1,1\ncomi,2025-01-21,1,1,1,1\n";
        let got = bad_rows(text, Some("COMI"));
        assert_eq!(got, [(2, RowProblem::OtherSymbol { expected: sym("COMI"), found: sym("ETEL") })]);
    }

    #[test]
    fn rows_of_several_files_merge_per_symbol_in_time_order() {
        let mut loader = Loader::default();
        let (a, b) = (
            "date,open,high,low,close\n2025-01-21,1,1,1,1\n",
            "date,open,high,low,close\n2025-01-19,2,2,2,2\n",
        );
        loader.read(Path::new("a.csv"), a.as_bytes(), Some(&sym("COMI"))).unwrap();
        loader.read(Path::new("b.csv"), b.as_bytes(), Some(&sym("COMI"))).unwrap();
        let rows = loader.finish().unwrap();
        let opens: Vec<f64> = rows[&sym("COMI")].iter().map(|r| r.open).collect();
        assert_eq!(opens, [2.0, 1.0]);
    }
}
