//! Market hours of the exchange and the polling schedule that follows them.
//!
//! [`MarketHoursConfig`] is the `[market_hours]` section of a config file; its
//! [`validate`](MarketHoursConfig::validate) turns it into [`MarketHours`], which answers
//! "is the market open now?", "when does it open next?" and "when should a Fetcher poll
//! next?" for any injected instant. Session times are local exchange times read through
//! the tz database ([`EXCHANGE_TZ`], Africa/Cairo), never a fixed offset: Egypt observes
//! daylight saving, so a 10:00 open is 07:00 UTC in summer and 08:00 UTC in winter.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::contract::market::{cairo_local_to_utc, EXCHANGE_TZ};

/// `[market_hours]`: when the exchange trades. Defaults are EGX's regular hours.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketHoursConfig {
    /// Weekdays with a session, as names (`Sun`, `Mon`, … or full names, any case).
    /// Default Sunday–Thursday.
    pub trading_days: Vec<String>,
    /// Session open, `HH:MM` local exchange time (Africa/Cairo). Default `10:00`.
    pub open: String,
    /// Session close, `HH:MM` local exchange time, after `open`. Default `14:30`;
    /// set `13:30` for Ramadan hours.
    pub close: String,
    /// Dates without a session even though they fall on a trading day, `YYYY-MM-DD`.
    pub holidays: Vec<NaiveDate>,
    /// Seconds between polls outside the session; 0 = do not poll outside the session
    /// (apart from the catch-up poll). Default 0.
    pub off_hours_poll_secs: u64,
    /// Poll once right after the close to pick up the final bars of the session.
    /// Default true.
    pub catch_up_after_close: bool,
}

impl Default for MarketHoursConfig {
    fn default() -> Self {
        Self {
            trading_days: ["Sun", "Mon", "Tue", "Wed", "Thu"].map(String::from).to_vec(),
            open: "10:00".into(),
            close: "14:30".into(),
            holidays: Vec::new(),
            off_hours_poll_secs: 0,
            catch_up_after_close: true,
        }
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), reason: reason.into() }
}

fn parse_time(key: &str, raw: &str) -> Result<NaiveTime, ConfigError> {
    NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .map_err(|_| invalid(key, format!("{raw:?} is not a time of day HH:MM")))
}

impl MarketHoursConfig {
    /// Checks every field (the error names the key) and builds the validated hours.
    pub fn validate(&self) -> Result<MarketHours, ConfigError> {
        let mut trading_days = BTreeSet::new();
        for name in &self.trading_days {
            let day: Weekday = name.trim().parse().map_err(|_| {
                invalid("market_hours.trading_days", format!("{name:?} is not a day name such as \"Sun\""))
            })?;
            trading_days.insert(day.num_days_from_monday());
        }
        if trading_days.is_empty() {
            return Err(invalid("market_hours.trading_days", "must name at least one day"));
        }
        let open = parse_time("market_hours.open", &self.open)?;
        let close = parse_time("market_hours.close", &self.close)?;
        if open >= close {
            return Err(invalid("market_hours.close", "must be after market_hours.open"));
        }
        Ok(MarketHours {
            trading_days,
            open,
            close,
            holidays: self.holidays.iter().copied().collect(),
            off_hours_poll: (self.off_hours_poll_secs > 0).then(|| {
                i64::try_from(self.off_hours_poll_secs)
                    .ok()
                    .and_then(TimeDelta::try_seconds)
                    .unwrap_or(TimeDelta::MAX)
            }),
            catch_up_after_close: self.catch_up_after_close,
        })
    }
}

/// Validated market hours; see [`MarketHoursConfig`] for the meaning of each setting.
///
/// A session runs from its open (inclusive) to its close (exclusive) on every trading
/// day: a day whose weekday is in `trading_days` and that is not a holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketHours {
    /// Weekdays as `num_days_from_monday`.
    trading_days: BTreeSet<u32>,
    open: NaiveTime,
    close: NaiveTime,
    holidays: BTreeSet<NaiveDate>,
    off_hours_poll: Option<TimeDelta>,
    catch_up_after_close: bool,
}

impl MarketHours {
    /// True when `date` (an exchange-local calendar date) has a session.
    pub fn is_trading_day(&self, date: NaiveDate) -> bool {
        self.trading_days.contains(&date.weekday().num_days_from_monday()) && !self.holidays.contains(&date)
    }

    /// The session of an exchange-local date as UTC instants `(open, close)`, or `None`
    /// when the date has no session.
    pub fn session_of(&self, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_trading_day(date) {
            return None;
        }
        let open = cairo_local_to_utc(date.and_time(self.open));
        let close = cairo_local_to_utc(date.and_time(self.close));
        // Only a session straddling a daylight-saving fold could invert; treat it as none.
        (open < close).then_some((open, close))
    }

    /// True while a session is running at `now` (open inclusive, close exclusive).
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.session_of(local_date(now)).is_some_and(|(open, close)| open <= now && now < close)
    }

    /// The start of the first session that opens at or after `now` (while a session is
    /// running, that is the next trading day's).
    pub fn next_open(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut date = local_date(now);
        for _ in 0..self.search_days() {
            if let Some((open, _)) = self.session_of(date).filter(|(open, _)| *open >= now) {
                return open;
            }
            date = date.succ_opt().unwrap_or(date);
        }
        // Unreachable for validated hours: some weekday trades and holidays are finite,
        // so `search_days` always reaches a session. Retry in a week rather than panic.
        after(now, TimeDelta::days(7))
    }

    /// The close of the latest session that closed at or before `now`, if any within
    /// the search window.
    fn previous_close(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut date = local_date(now);
        for _ in 0..self.search_days() {
            if let Some((_, close)) = self.session_of(date).filter(|(_, close)| *close <= now) {
                return Some(close);
            }
            date = date.pred_opt()?;
        }
        None
    }

    /// Days to search before giving up: every run of 7 days holds a trading weekday, and
    /// each holiday can cancel at most one of them.
    fn search_days(&self) -> usize {
        7 * (self.holidays.len() + 1) + 1
    }

    /// When a Fetcher that polls every `poll_every` in session should poll next, given
    /// the time `now` and its last poll (`None` = never polled). The rules, in order:
    ///
    /// 1. **Catch-up**: when `catch_up_after_close` is on and the last poll was before
    ///    the close of the latest session that has closed (or there was none), poll
    ///    now. The poll that follows the close therefore happens exactly once, and
    ///    a Fetcher started outside the session fetches the last session's bars once.
    /// 2. **In session**: poll `poll_every` after the last poll (now if that is already
    ///    past). When that would fall after the close, poll at the close instead (the
    ///    catch-up poll), or, with catch-up off, follow rule 3 from the close.
    /// 3. **Outside the session**: with `off_hours_poll_secs` = 0, not before the next
    ///    open; otherwise every `off_hours_poll_secs` after the last poll, but never
    ///    later than the next open.
    ///
    /// The result is never before `now`. A zero `poll_every` counts as one second, so a
    /// loop driven by this function cannot spin.
    pub fn next_poll(
        &self,
        now: DateTime<Utc>,
        poll_every: Duration,
        last_poll: Option<DateTime<Utc>>,
    ) -> DateTime<Utc> {
        if self.catch_up_after_close {
            if let Some(close) = self.previous_close(now) {
                if last_poll.is_none_or(|last| last < close) {
                    return now;
                }
            }
        }
        if let Some((_, close)) = self.session_of(local_date(now)).filter(|_| self.is_open(now)) {
            let every = TimeDelta::from_std(poll_every).unwrap_or(TimeDelta::MAX).max(TimeDelta::seconds(1));
            let due = last_poll.map_or(now, |last| after(last, every)).max(now);
            if due < close {
                return due;
            }
            if self.catch_up_after_close {
                return close;
            }
            return self.off_hours_poll_from(close, last_poll);
        }
        self.off_hours_poll_from(now, last_poll)
    }

    /// Rule 3 of [`next_poll`](Self::next_poll), evaluated at `from` (outside a session).
    fn off_hours_poll_from(&self, from: DateTime<Utc>, last_poll: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let next_open = self.next_open(from);
        match self.off_hours_poll {
            None => next_open,
            Some(every) => last_poll.map_or(from, |last| after(last, every)).max(from).min(next_open),
        }
    }
}

/// `t + d`, saturating at the largest representable instant.
fn after(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The exchange-local calendar date of an instant.
fn local_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&EXCHANGE_TZ).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn cairo(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        EXCHANGE_TZ.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().with_timezone(&Utc)
    }

    fn date(y: i32, mo: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap()
    }

    fn egx() -> MarketHours {
        MarketHoursConfig::default().validate().unwrap()
    }

    fn hours(edit: impl FnOnce(&mut MarketHoursConfig)) -> MarketHours {
        let mut config = MarketHoursConfig::default();
        edit(&mut config);
        config.validate().unwrap()
    }

    const MIN15: Duration = Duration::from_secs(15 * 60);

    /// The next poll of a Fetcher polling every 15 minutes that has just polled at `t`.
    fn after_poll_at(h: &MarketHours, t: DateTime<Utc>) -> DateTime<Utc> {
        h.next_poll(t, MIN15, Some(t))
    }

    /// Drives `next_poll` like a Fetcher would, from `start` until `until`.
    fn polls(
        h: &MarketHours,
        every: Duration,
        start: DateTime<Utc>,
        last: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let (mut now, mut last, mut out) = (start, last, Vec::new());
        loop {
            let next = h.next_poll(now, every, last);
            assert!(next >= now, "next poll {next} is before now {now}");
            if next > until {
                return out;
            }
            out.push(next);
            (now, last) = (next, Some(next));
            assert!(out.len() < 10_000, "schedule does not advance");
        }
    }

    #[test]
    fn the_defaults_are_egx_regular_hours() {
        let config: MarketHoursConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, MarketHoursConfig::default());
        let h = egx();
        // 2025-01-19 is a Sunday.
        for (d, trades) in
            [(19, true), (20, true), (21, true), (22, true), (23, true), (24, false), (25, false)]
        {
            assert_eq!(h.is_trading_day(date(2025, 1, d)), trades, "2025-01-{d}");
        }
        assert_eq!(h.session_of(date(2025, 1, 19)), Some((utc(2025, 1, 19, 8, 0), utc(2025, 1, 19, 12, 30))));
        assert_eq!(h.session_of(date(2025, 1, 24)), None);
    }

    #[test]
    fn validation_names_the_key() {
        let key = |edit: fn(&mut MarketHoursConfig)| {
            let mut config = MarketHoursConfig::default();
            edit(&mut config);
            config.validate().unwrap_err().key
        };
        assert_eq!(key(|c| c.open = "25:00".into()), "market_hours.open");
        assert_eq!(key(|c| c.close = "2pm".into()), "market_hours.close");
        assert_eq!(key(|c| c.close = "10:00".into()), "market_hours.close");
        assert_eq!(
            key(|c| c.trading_days = vec!["Sun".into(), "Funday".into()]),
            "market_hours.trading_days"
        );
        assert_eq!(key(|c| c.trading_days.clear()), "market_hours.trading_days");
        let err = serde_json::from_str::<MarketHoursConfig>(r#"{"opens": "10:00"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let parsed: MarketHoursConfig =
            serde_json::from_str(r#"{"trading_days": ["sunday", "MON"], "holidays": ["2025-04-20"]}"#)
                .unwrap();
        let h = parsed.validate().unwrap();
        assert!(h.is_trading_day(date(2025, 4, 21)) && !h.is_trading_day(date(2025, 4, 20)));
        assert!(serde_json::from_str::<MarketHoursConfig>(r#"{"holidays": ["20-04-2025"]}"#).is_err());
    }

    #[test]
    fn the_open_follows_cairo_daylight_saving() {
        let h = egx();
        // Summer time starts on Friday 2024-04-26: Thursday opens at 08:00 UTC, Sunday at 07:00.
        assert_eq!(h.session_of(date(2024, 4, 25)).unwrap().0, utc(2024, 4, 25, 8, 0));
        assert_eq!(h.session_of(date(2024, 4, 28)).unwrap().0, utc(2024, 4, 28, 7, 0));
        assert_eq!(h.session_of(date(2024, 4, 28)).unwrap().1, utc(2024, 4, 28, 11, 30));
        // It ends after Thursday 2024-10-31: that day opens at 07:00 UTC, Sunday at 08:00.
        assert_eq!(h.session_of(date(2024, 10, 31)).unwrap().0, utc(2024, 10, 31, 7, 0));
        assert_eq!(h.session_of(date(2024, 11, 3)).unwrap().0, utc(2024, 11, 3, 8, 0));
        // 07:30 UTC is inside the summer session and before the winter one.
        assert!(h.is_open(utc(2024, 10, 31, 7, 30)));
        assert!(!h.is_open(utc(2024, 11, 3, 7, 30)));
        assert_eq!(h.next_open(utc(2024, 4, 25, 13, 0)), utc(2024, 4, 28, 7, 0));
        assert_eq!(h.next_open(utc(2024, 10, 31, 13, 0)), utc(2024, 11, 3, 8, 0));
    }

    #[test]
    fn is_open_covers_open_to_close_on_trading_days_only() {
        let h = egx();
        assert!(!h.is_open(cairo(2025, 1, 20, 9, 59)));
        assert!(h.is_open(cairo(2025, 1, 20, 10, 0)));
        assert!(h.is_open(cairo(2025, 1, 20, 14, 29)));
        assert!(!h.is_open(cairo(2025, 1, 20, 14, 30)));
        assert!(!h.is_open(cairo(2025, 1, 24, 11, 0)), "Friday");
        assert!(!h.is_open(cairo(2025, 1, 25, 11, 0)), "Saturday");
    }

    #[test]
    fn weekends_and_holidays_are_skipped_by_next_open() {
        let h = hours(|c| c.holidays = vec![date(2025, 1, 26), date(2025, 1, 27)]);
        assert!(!h.is_trading_day(date(2025, 1, 26)));
        assert_eq!(h.session_of(date(2025, 1, 26)), None);
        assert!(!h.is_open(cairo(2025, 1, 26, 11, 0)));
        // From Thursday afternoon past Fri, Sat and the two holidays to Tuesday.
        assert_eq!(h.next_open(cairo(2025, 1, 23, 15, 0)), cairo(2025, 1, 28, 10, 0));
        // Before the open the same day's open is next; exactly at the open it is that open.
        assert_eq!(h.next_open(cairo(2025, 1, 28, 9, 0)), cairo(2025, 1, 28, 10, 0));
        assert_eq!(h.next_open(cairo(2025, 1, 28, 10, 0)), cairo(2025, 1, 28, 10, 0));
        assert_eq!(h.next_open(cairo(2025, 1, 28, 10, 1)), cairo(2025, 1, 29, 10, 0));
    }

    #[test]
    fn polls_at_the_rate_in_session_then_once_at_the_close_then_waits() {
        let h = egx();
        let last_thursday_close = cairo(2025, 1, 16, 14, 30);
        let start = cairo(2025, 1, 17, 12, 0); // Friday, already caught up.
        let got = polls(&h, MIN15, start, Some(last_thursday_close), cairo(2025, 1, 19, 23, 0));
        let first = cairo(2025, 1, 19, 10, 0);
        let mut want: Vec<_> = (0..18).map(|i| first + TimeDelta::minutes(15 * i)).collect();
        want.push(cairo(2025, 1, 19, 14, 30));
        assert_eq!(got, want);
        assert_eq!(*got.last().unwrap(), cairo(2025, 1, 19, 14, 30), "one catch-up poll at the close");
    }

    #[test]
    fn the_catch_up_poll_lands_on_the_close_when_the_rate_overshoots_it() {
        let h = egx();
        let last = cairo(2025, 1, 20, 14, 20);
        assert_eq!(h.next_poll(cairo(2025, 1, 20, 14, 20), MIN15, Some(last)), cairo(2025, 1, 20, 14, 30));
        // A Fetcher that wakes late after the close still catches up exactly once.
        let late = cairo(2025, 1, 20, 16, 0);
        assert_eq!(h.next_poll(late, MIN15, Some(last)), late);
        assert_eq!(after_poll_at(&h, late), cairo(2025, 1, 21, 10, 0));
        // A Fetcher started on a weekend fetches the last session once, then waits.
        let saturday = cairo(2025, 1, 25, 12, 0);
        assert_eq!(h.next_poll(saturday, MIN15, None), saturday);
        assert_eq!(after_poll_at(&h, saturday), cairo(2025, 1, 26, 10, 0));
    }

    #[test]
    fn without_catch_up_the_session_ends_with_the_last_poll_inside_it() {
        let h = hours(|c| c.catch_up_after_close = false);
        let got = polls(&h, MIN15, cairo(2025, 1, 20, 13, 50), None, cairo(2025, 1, 21, 10, 20));
        let want = [(20, 13, 50), (20, 14, 5), (20, 14, 20), (21, 10, 0), (21, 10, 15)];
        assert_eq!(got, want.map(|(d, hh, mm)| cairo(2025, 1, d, hh, mm)));
        let saturday = cairo(2025, 1, 25, 12, 0);
        assert_eq!(h.next_poll(saturday, MIN15, None), cairo(2025, 1, 26, 10, 0));
    }

    #[test]
    fn off_hours_polling_is_slow_and_stops_at_the_open() {
        let h = hours(|c| c.off_hours_poll_secs = 3 * 3600);
        let got = polls(&h, MIN15, cairo(2025, 1, 23, 14, 0), None, cairo(2025, 1, 24, 9, 0));
        let mut want =
            vec![cairo(2025, 1, 23, 14, 0), cairo(2025, 1, 23, 14, 15), cairo(2025, 1, 23, 14, 30)];
        want.extend((1..=6).map(|i| cairo(2025, 1, 23, 14, 30) + TimeDelta::hours(3 * i)));
        assert_eq!(got, want);
        // The last off-hours poll before the open is cut short by the open.
        let before_open = cairo(2025, 1, 26, 8, 0);
        assert_eq!(after_poll_at(&h, before_open), cairo(2025, 1, 26, 10, 0));
    }

    #[test]
    fn a_ramadan_session_closes_early() {
        let h = hours(|c| c.close = "13:30".into());
        assert!(h.is_open(cairo(2025, 3, 10, 13, 29)));
        assert!(!h.is_open(cairo(2025, 3, 10, 13, 30)));
        assert_eq!(after_poll_at(&h, cairo(2025, 3, 10, 13, 20)), cairo(2025, 3, 10, 13, 30));
        assert_eq!(after_poll_at(&h, cairo(2025, 3, 10, 13, 30)), cairo(2025, 3, 11, 10, 0));
    }

    #[test]
    fn the_schedule_crosses_the_daylight_saving_switch() {
        let h = egx();
        // Thursday 2024-10-31 (summer time) to Sunday 2024-11-03 (winter time).
        let close = utc(2024, 10, 31, 11, 30);
        assert_eq!(after_poll_at(&h, utc(2024, 10, 31, 11, 25)), close);
        assert_eq!(after_poll_at(&h, close), utc(2024, 11, 3, 8, 0));
        // Thursday 2024-04-25 (winter) to Sunday 2024-04-28 (summer).
        let close = utc(2024, 4, 25, 12, 30);
        assert_eq!(after_poll_at(&h, close), utc(2024, 4, 28, 7, 0));
        let open = utc(2024, 4, 28, 7, 0);
        assert_eq!(after_poll_at(&h, open), utc(2024, 4, 28, 7, 15));
    }

    #[test]
    fn a_zero_rate_cannot_spin_and_huge_values_saturate() {
        let h = hours(|c| c.off_hours_poll_secs = u64::MAX);
        let now = cairo(2025, 1, 20, 11, 0);
        assert_eq!(h.next_poll(now, Duration::ZERO, Some(now)), now + TimeDelta::seconds(1));
        assert_eq!(h.next_poll(now, Duration::MAX, Some(now)), cairo(2025, 1, 20, 14, 30));
        let friday = cairo(2025, 1, 24, 11, 0);
        assert_eq!(after_poll_at(&h, friday), cairo(2025, 1, 26, 10, 0));
    }
}
