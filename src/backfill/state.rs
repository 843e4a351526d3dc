//! The backfill's state file: its parameters and, per symbol, the last bar Kafka
//! confirmed. Written atomically after every confirmed chunk; refused by a backfill with
//! other parameters.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use egx_actors::market::Bar;
use serde::{Deserialize, Serialize};

/// Layout version of the state file.
const STATE_VERSION: u32 = 1;

/// What a backfill covers. A state file belongs to one set of parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillParams {
    /// Source name: `tradingview`, `csv` or `synthetic`.
    pub source: String,
    /// Exchange code.
    pub exchange: String,
    /// Interval name (`Daily`, `5 Minute`).
    pub interval: String,
    /// First trading date.
    pub start_date: NaiveDate,
    /// Last trading date (inclusive).
    pub end_date: NaiveDate,
    /// The symbols of this process (after `--shard`), in order.
    pub symbols: Vec<String>,
    /// Kafka bootstrap servers.
    pub bootstrap_servers: String,
    /// Kafka topic.
    pub topic: String,
}

impl BackfillParams {
    /// `field: value in the file, value now` for each field that differs from `now`.
    fn differences(&self, now: &Self) -> Vec<String> {
        let (Ok(serde_json::Value::Object(file)), Ok(serde_json::Value::Object(now))) =
            (serde_json::to_value(self), serde_json::to_value(now))
        else {
            return vec!["parameters unreadable".into()];
        };
        let null = serde_json::Value::Null;
        file.iter()
            .filter(|(k, v)| now.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}: {v} in the file, {} now", now.get(k).unwrap_or(&null)))
            .collect()
    }
}

/// Progress of one symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymbolProgress {
    /// Opening time (UTC) of the last bar Kafka confirmed; later bars are still to publish.
    pub last_confirmed: Option<DateTime<Utc>>,
    /// Bars confirmed, over all runs.
    pub published: u64,
    /// True once every bar of the range is confirmed.
    pub done: bool,
}

impl SymbolProgress {
    /// The bars of `bars` (oldest first) still to publish: those after the last confirmed one.
    pub fn remaining(&self, bars: Vec<Bar>) -> Vec<Bar> {
        match (self.done, self.last_confirmed) {
            (true, _) => Vec::new(),
            (false, None) => bars,
            (false, Some(last)) => bars.into_iter().filter(|b| b.time > last).collect(),
        }
    }
}

/// The state file: the backfill's parameters and, per symbol, its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillState {
    /// Layout version.
    version: u32,
    /// The backfill this file belongs to.
    params: BackfillParams,
    /// Progress per symbol.
    symbols: BTreeMap<String, SymbolProgress>,
}

impl BackfillState {
    /// A state with no progress.
    pub fn new(params: BackfillParams) -> Self {
        Self { version: STATE_VERSION, params, symbols: BTreeMap::new() }
    }

    /// Reads `path`, or starts afresh when it does not exist. A file written for other
    /// parameters is refused with the differences named.
    pub fn open(path: &Path, params: &BackfillParams) -> Result<Self> {
        let shown = path.display();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(params.clone())),
            Err(e) => return Err(e).with_context(|| format!("cannot read the backfill state file {shown}")),
        };
        let state: Self = serde_json::from_str(&text).with_context(|| {
            format!("{shown} is not a backfill state file: pass --state with another file, or delete it")
        })?;
        if state.version != STATE_VERSION {
            bail!("the state file {shown} has layout version {}, this program writes {STATE_VERSION}: pass --state with another file", state.version);
        }
        let differences = state.params.differences(params);
        if !differences.is_empty() {
            bail!(
                "the state file {shown} belongs to another backfill ({}): run that backfill's command to resume it, or pass --state with another file (or delete this one) to start this one",
                differences.join("; ")
            );
        }
        Ok(state)
    }

    /// Writes the state to `path` atomically: a temporary file beside it, flushed to
    /// disk, then persisted (renamed) over it, so a crash leaves the old state or the new
    /// one. A failed write leaves no temporary file behind.
    pub fn save(&self, path: &Path) -> Result<()> {
        let name =
            path.file_name().ok_or_else(|| anyhow!("--state {} is not a file name", path.display()))?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut bytes = serde_json::to_vec_pretty(self)?;
        bytes.push(b'\n');
        let write = || -> std::io::Result<()> {
            let prefix = format!(".{}.", name.to_string_lossy());
            let mut builder = tempfile::Builder::new();
            builder.prefix(&prefix).suffix(".tmp");
            // A temporary file is the owner's alone; the state file is an ordinary output,
            // made as `File::create` makes one (0666 less the umask).
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let mut temp = builder.tempfile_in(dir)?;
            temp.write_all(&bytes)?;
            temp.as_file().sync_all()?;
            temp.persist(path).map_err(|e| e.error)?;
            Ok(())
        };
        write().with_context(|| format!("cannot write the backfill state file {}", path.display()))
    }

    /// A symbol's progress (none yet: the default).
    pub fn progress(&self, symbol: &str) -> SymbolProgress {
        self.symbols.get(symbol).cloned().unwrap_or_default()
    }

    /// Records a confirmed chunk of `count` bars ending with the bar opening at `last`.
    pub fn confirmed(&mut self, symbol: &str, last: DateTime<Utc>, count: u64) {
        let progress = self.symbols.entry(symbol.to_string()).or_default();
        progress.last_confirmed = Some(last);
        progress.published += count;
    }

    /// Records that every bar of the symbol is confirmed.
    pub fn finished(&mut self, symbol: &str) {
        self.symbols.entry(symbol.to_string()).or_default().done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use egx_actors::market::{Interval, Symbol};

    fn params() -> BackfillParams {
        BackfillParams {
            source: "tradingview".into(),
            exchange: "EGX".into(),
            interval: "Daily".into(),
            start_date: "2025-01-01".parse().unwrap(),
            end_date: "2025-03-31".parse().unwrap(),
            symbols: vec!["COMI".into(), "ETEL".into()],
            bootstrap_servers: "localhost:9092".into(),
            topic: "egx-market-data".into(),
        }
    }

    fn bar(day: u32) -> Bar {
        Bar {
            symbol: Symbol::parse("COMI").unwrap(),
            exchange: "EGX".into(),
            interval: Interval::Daily,
            time: Utc.with_ymd_and_hms(2025, 1, day, 8, 0, 0).unwrap(),
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: Some(10.0),
        }
    }

    #[test]
    fn state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = BackfillState::open(&path, &params()).unwrap();
        assert_eq!(state, BackfillState::new(params()), "no file: a fresh state");
        state.confirmed("COMI", bar(5).time, 500);
        state.confirmed("COMI", bar(9).time, 20);
        state.finished("COMI");
        state.confirmed("ETEL", bar(7).time, 500);
        state.save(&path).unwrap();
        let again = BackfillState::open(&path, &params()).unwrap();
        assert_eq!(again, state);
        assert_eq!(
            again.progress("COMI"),
            SymbolProgress { last_confirmed: Some(bar(9).time), published: 520, done: true }
        );
        assert_eq!(again.progress("HRHO"), SymbolProgress::default());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.json"], "no temporary file left behind");
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["symbols"]["ETEL"]["last_confirmed"], "2025-01-07T08:00:00Z");
        assert_eq!(json["params"]["interval"], "Daily");
    }

    #[cfg(unix)]
    #[test]
    fn the_state_file_gets_the_permissions_of_an_ordinary_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        BackfillState::new(params()).save(&path).unwrap();
        let ordinary = dir.path().join("ordinary");
        std::fs::File::create(&ordinary).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), mode(&ordinary), "not the owner-only mode of a temporary file");
    }

    #[test]
    fn a_state_file_of_another_backfill_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        BackfillState::new(params()).save(&path).unwrap();
        let other = BackfillParams { interval: "Weekly".into(), topic: "other".into(), ..params() };
        let err = format!("{:#}", BackfillState::open(&path, &other).unwrap_err());
        assert!(err.contains("belongs to another backfill"), "{err}");
        assert!(err.contains(r#"interval: "Daily" in the file, "Weekly" now"#), "{err}");
        assert!(err.contains("topic") && err.contains("--state"), "{err}");
        std::fs::write(&path, "{\"not\": \"a state\"}").unwrap();
        let err = format!("{:#}", BackfillState::open(&path, &params()).unwrap_err());
        assert!(err.contains("is not a backfill state file"), "{err}");
    }

    #[test]
    fn resume_publishes_only_bars_after_the_last_confirmed_one() {
        let bars: Vec<Bar> = (1..=10).map(bar).collect();
        let fresh = SymbolProgress::default();
        assert_eq!(fresh.remaining(bars.clone()), bars);
        let mut state = BackfillState::new(params());
        state.confirmed("COMI", bar(4).time, 4);
        let resumed = state.progress("COMI").remaining(bars.clone());
        assert_eq!(resumed, bars[4..].to_vec());
        state.finished("COMI");
        assert!(state.progress("COMI").remaining(bars).is_empty(), "a done symbol publishes nothing");
    }
}
