//! Market vocabulary shared by every actor: validated symbols, bar intervals and bars.
//!
//! Values with rules are newtypes so that an unchecked string can never reach an object
//! key or a Kafka message: a [`Symbol`] is safe to put in a path, an [`Interval`] is one
//! the feed understands.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The exchange's time zone: trading dates and key times are taken in it, never in the
/// machine's zone. Egypt observes daylight saving, so this is a tz-database zone.
pub const EXCHANGE_TZ: Tz = chrono_tz::Africa::Cairo;

/// Longest symbol accepted (EGX tickers and index names are far shorter).
const MAX_SYMBOL_LEN: usize = 32;

/// Why a symbol was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolError {
    /// The symbol was empty.
    #[error("symbol is empty")]
    Empty,
    /// The symbol was longer than the limit.
    #[error("symbol {0:?} is longer than {MAX_SYMBOL_LEN} characters")]
    TooLong(String),
    /// The symbol held a character that is not an upper-case letter, digit, `_`, `-` or `.`.
    #[error("symbol {0:?} may only hold A-Z, 0-9, '_', '-' and '.', starting with a letter or digit")]
    BadCharacter(String),
    /// The symbol held `..` or ended with `.`, which could climb out of a key prefix or
    /// run into a file extension.
    #[error("symbol {0:?} holds '..' or ends with '.'")]
    DotDot(String),
}

/// A ticker such as `COMI` or `EGX30`: upper-case ASCII letters and digits plus `_-.`,
/// starting with a letter or digit, at most 32 characters, never containing `..`.
/// Safe to embed in an object key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Symbol(String);

impl Symbol {
    /// Validates a symbol exactly as given (records from Kafka are not normalised).
    pub fn parse(raw: &str) -> Result<Self, SymbolError> {
        if raw.is_empty() {
            return Err(SymbolError::Empty);
        }
        if raw.len() > MAX_SYMBOL_LEN {
            return Err(SymbolError::TooLong(raw.chars().take(64).collect()));
        }
        let first_ok = raw.as_bytes()[0].is_ascii_uppercase() || raw.as_bytes()[0].is_ascii_digit();
        let all_ok = raw
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'));
        if !first_ok || !all_ok {
            return Err(SymbolError::BadCharacter(raw.to_string()));
        }
        if raw.contains("..") || raw.ends_with('.') {
            return Err(SymbolError::DotDot(raw.to_string()));
        }
        Ok(Self(raw.to_string()))
    }

    /// Parses user input (CLI, config): trims and upper-cases before validating, and
    /// accepts an `EGX:` exchange prefix.
    pub fn parse_user(raw: &str) -> Result<Self, SymbolError> {
        let trimmed = raw.trim();
        let bare = trimmed.split_once(':').map_or(trimmed, |(_, ticker)| ticker);
        Self::parse(&bare.to_ascii_uppercase())
    }

    /// The ticker as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses a comma-separated list of user symbols, dropping duplicates, keeping order.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, SymbolError> {
        let mut out: Vec<Self> = Vec::new();
        for part in raw.split(',').filter(|p| !p.trim().is_empty()) {
            let symbol = Self::parse_user(part)?;
            if !out.contains(&symbol) {
                out.push(symbol);
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Symbol {
    type Err = SymbolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_user(s)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse_user(&raw).map_err(serde::de::Error::custom)
    }
}

/// A deterministic share of the symbols for one of several `produce` processes: process
/// `index` of `count` follows exactly the symbols whose murmur2 hash modulo `count` is
/// `index`, so `count` processes cover every symbol once, with no coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a shard was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard {0:?} must be i/n with 0 <= i < n, e.g. 0/3")]
pub struct ShardError(pub String);

impl Shard {
    /// The whole symbol list (one process).
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/n`.
    pub fn parse(raw: &str) -> Result<Self, ShardError> {
        let err = || ShardError(raw.chars().take(32).collect());
        let (i, n) = raw.trim().split_once('/').ok_or_else(err)?;
        let (index, count): (u32, u32) =
            (i.trim().parse().map_err(|_| err())?, n.trim().parse().map_err(|_| err())?);
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Self { index, count })
    }

    /// True when this shard follows `symbol`.
    pub fn owns(&self, symbol: &Symbol) -> bool {
        crate::contract::partition::murmur2(symbol.as_str().as_bytes()) % self.count == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Self::ALL
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Minute resolutions the TradingView feed serves.
const MINUTE_RESOLUTIONS: [u16; 10] = [1, 3, 5, 15, 30, 45, 60, 120, 180, 240];

/// Why an interval was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown interval {0:?}: use Daily, Weekly, Monthly, 'N Minute' or a feed code (1 3 5 15 30 45 60 120 180 240 1D 1W 1M)")]
pub struct IntervalError(pub String);

/// A bar interval. Accepts the original scripts' names (`Daily`, `5 Minute`) and the
/// feed's resolution codes (`1D`, `5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    /// Intraday bars of this many minutes (one of the feed's minute resolutions).
    Minutes(u16),
    /// One bar per trading day.
    Daily,
    /// One bar per week.
    Weekly,
    /// One bar per month.
    Monthly,
}

impl Interval {
    /// Parses an original name or a feed code.
    pub fn parse(raw: &str) -> Result<Self, IntervalError> {
        let err = || IntervalError(raw.chars().take(64).collect());
        let s = raw.trim();
        match s {
            "Daily" | "1D" | "D" => return Ok(Self::Daily),
            "Weekly" | "1W" | "W" => return Ok(Self::Weekly),
            "Monthly" | "1M" | "M" => return Ok(Self::Monthly),
            _ => {}
        }
        let digits = s.strip_suffix(" Minute").or_else(|| s.strip_suffix("min")).unwrap_or(s);
        let minutes: u16 = digits.parse().map_err(|_| err())?;
        if MINUTE_RESOLUTIONS.contains(&minutes) {
            Ok(Self::Minutes(minutes))
        } else {
            Err(err())
        }
    }

    /// The original scripts' name, as written in messages (`Daily`, `5 Minute`).
    pub fn name(&self) -> String {
        match self {
            Self::Minutes(m) => format!("{m} Minute"),
            Self::Daily => "Daily".into(),
            Self::Weekly => "Weekly".into(),
            Self::Monthly => "Monthly".into(),
        }
    }

    /// The feed's resolution code (`5`, `1D`).
    pub fn feed_code(&self) -> String {
        match self {
            Self::Minutes(m) => m.to_string(),
            Self::Daily => "1D".into(),
            Self::Weekly => "1W".into(),
            Self::Monthly => "1M".into(),
        }
    }

    /// A short path-safe token used in object names (`5min`, `1D`, `1W`, `1M`).
    pub fn key_token(&self) -> String {
        match self {
            Self::Minutes(m) => format!("{m}min"),
            other => other.feed_code(),
        }
    }

    /// True for minute bars.
    pub fn is_intraday(&self) -> bool {
        matches!(self, Self::Minutes(_))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Interval {
    type Err = IntervalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Interval {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// One OHLCV bar of one symbol, as a source delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The instrument.
    pub symbol: Symbol,
    /// The exchange code, `EGX` for everything this pipeline fetches.
    pub exchange: String,
    /// The bar's interval.
    pub interval: Interval,
    /// The bar's opening time (UTC instant).
    pub time: DateTime<Utc>,
    /// Opening price.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Closing (or latest) price.
    pub close: f64,
    /// Traded volume, when the source gives it.
    pub volume: Option<f64>,
}

impl Bar {
    /// The bar's trading date in the exchange's time zone.
    pub fn trading_date(&self) -> NaiveDate {
        self.time.with_timezone(&EXCHANGE_TZ).date_naive()
    }
}

/// Interprets a naive exchange-local time (legacy messages carry no offset) in Cairo.
/// In the hour that daylight saving skips, the time is read with the offset in force
/// just before the gap; in the repeated hour, the earlier instant is taken.
pub fn cairo_local_to_utc(naive: NaiveDateTime) -> DateTime<Utc> {
    match EXCHANGE_TZ.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        chrono::LocalResult::None => {
            let before = naive - chrono::Duration::hours(1);
            cairo_local_to_utc(before) + chrono::Duration::hours(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_symbol_exactly_once() {
        let symbols: Vec<Symbol> = "COMI TMGH HRHO EAST ETEL ABUK EFIH FWRY AMOC EGAL ORAS ORHD PHDC EMFD ISPH RMDA CCAP EFID JUFO BTFH GBCO RAYA HELI EGCH ARCC ORWE OIH MCQE ADIB VLMR"
            .split(' ')
            .map(|s| Symbol::parse(s).unwrap())
            .collect();
        for n in 1..=5 {
            let shards: Vec<Shard> = (0..n).map(|i| Shard::parse(&format!("{i}/{n}")).unwrap()).collect();
            for s in &symbols {
                assert_eq!(shards.iter().filter(|sh| sh.owns(s)).count(), 1, "{s} in {n} shards");
            }
        }
        assert!(Shard::ALL.owns(&symbols[0]));
        for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symbols_reject_path_tricks_and_odd_bytes() {
        for bad in ["", "../X", "A/B", "A..B", "a", ".A", "A B", "A\0", "ÄB", &"A".repeat(33), "A%2F"] {
            assert!(Symbol::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["COMI", "EGX30", "EGX70EWI", "A.B", "X_1-2"] {
            assert_eq!(Symbol::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn user_symbols_are_normalised_and_deduplicated() {
        let list = Symbol::parse_list(" comi,EGX:ETEL,COMI ,").unwrap();
        let names: Vec<_> = list.iter().map(Symbol::as_str).collect();
        assert_eq!(names, ["COMI", "ETEL"]);
    }

    #[test]
    fn intervals_accept_original_names_and_feed_codes() {
        assert_eq!(Interval::parse("Daily").unwrap(), Interval::Daily);
        assert_eq!(Interval::parse("1D").unwrap(), Interval::Daily);
        assert_eq!(Interval::parse("5 Minute").unwrap(), Interval::Minutes(5));
        assert_eq!(Interval::parse("30").unwrap(), Interval::Minutes(30));
        assert_eq!(Interval::parse("1M").unwrap(), Interval::Monthly);
        assert!(Interval::parse("7 Minute").is_err());
        assert!(Interval::parse("Hourly").is_err());
        assert_eq!(Interval::Minutes(5).name(), "5 Minute");
        assert_eq!(Interval::Minutes(5).key_token(), "5min");
        assert_eq!(Interval::Monthly.key_token(), "1M");
    }

    #[test]
    fn trading_date_follows_cairo_daylight_saving() {
        // 2024-07-01 21:30 UTC is 00:30 on 2 July in Cairo (UTC+3 in summer)...
        let summer = Utc.with_ymd_and_hms(2024, 7, 1, 21, 30, 0).unwrap();
        // ...while 2024-01-01 21:30 UTC is 23:30 on 1 January (UTC+2 in winter).
        let winter = Utc.with_ymd_and_hms(2024, 1, 1, 21, 30, 0).unwrap();
        let bar = |time| Bar {
            symbol: Symbol::parse("COMI").unwrap(),
            exchange: "EGX".into(),
            interval: Interval::Daily,
            time,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: None,
        };
        assert_eq!(bar(summer).trading_date().to_string(), "2024-07-02");
        assert_eq!(bar(winter).trading_date().to_string(), "2024-01-01");
    }

    #[test]
    fn naive_cairo_times_map_through_gaps_and_overlaps() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap();
        assert_eq!(cairo_local_to_utc(t("2025-01-20T10:00:00")).to_rfc3339(), "2025-01-20T08:00:00+00:00");
        // 2024-04-26 00:00 does not exist in Cairo (clocks jump to 01:00).
        let gap = cairo_local_to_utc(t("2024-04-26T00:30:00"));
        assert_eq!(gap.with_timezone(&EXCHANGE_TZ).date_naive().to_string(), "2024-04-26");
    }
}
