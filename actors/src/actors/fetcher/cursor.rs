//! What each Fetcher has published and what it still owes Kafka, kept outside the actors
//! so that a restarted Fetcher neither publishes everything again nor forgets bars it
//! fetched but never got confirmed.
//!
//! A source only ever returns its latest `n_bars`: a bar whose publish failed is not
//! fetched again once it has left that window (and a live bar in stream mode is never
//! sent again at all). So a fetched bar stays *pending* until Kafka confirmed it, and
//! every publish attempt sends the whole pending set. The set is bounded: past
//! [`PENDING_CAP`] bars the oldest are dropped and reported, so a week-long outage cannot
//! exhaust memory. No I/O here: the Fetcher does the publishing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::contract::market::{Bar, Interval, Symbol};

/// Confirmed bars remembered per (symbol, interval) at most, whatever the mode.
const CURSOR_CAP: usize = 10_000;

/// Unconfirmed bars kept per (symbol, interval) at most: a week of 1-minute bars around
/// the clock, several weeks of trading sessions.
pub const PENDING_CAP: usize = 10_000;

/// The bars of one (symbol, interval).
#[derive(Debug, Default)]
struct Track {
    /// The last confirmed version of each recent bar.
    confirmed: BTreeMap<DateTime<Utc>, Bar>,
    /// Fetched bars that differ from their confirmed version (or have none), newest
    /// version per bar time, waiting for Kafka.
    pending: BTreeMap<DateTime<Utc>, Bar>,
}

/// Bars dropped from a full pending set, unpublished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// How many.
    pub count: usize,
    /// The oldest dropped bar's time.
    pub first: DateTime<Utc>,
    /// The newest dropped bar's time.
    pub last: DateTime<Utc>,
}

/// The confirmed and pending bars of every Fetcher, kept outside the actors so that a
/// restarted Fetcher carries on where the last one stopped. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct CursorStore {
    tracks: Arc<Mutex<HashMap<(Symbol, Interval), Track>>>,
    pending_cap: usize,
}

impl Default for CursorStore {
    fn default() -> Self {
        Self { tracks: Arc::default(), pending_cap: PENDING_CAP }
    }
}

impl CursorStore {
    /// A store whose pending sets hold at most `cap` bars each (tests).
    #[cfg(test)]
    pub(crate) fn with_pending_cap(cap: usize) -> Self {
        Self { pending_cap: cap, ..Self::default() }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(Symbol, Interval), Track>> {
        // Nothing in here panics mid-update, so a poisoned map is still consistent; giving
        // up on it would drop every Fetcher's pending bars.
        self.tracks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds the bars of `fetched` that differ from their confirmed version to the pending
    /// set, replacing older pending versions of the same bar time; a fetched bar equal to
    /// its confirmed version withdraws a pending one. When the set outgrows its bound the
    /// oldest bars are dropped and returned.
    pub fn stage(&self, symbol: &Symbol, interval: Interval, fetched: &[Bar]) -> Option<Dropped> {
        let mut tracks = self.lock();
        let track = tracks.entry((symbol.clone(), interval)).or_default();
        for bar in fetched {
            if track.confirmed.get(&bar.time) == Some(bar) {
                track.pending.remove(&bar.time);
            } else {
                track.pending.insert(bar.time, bar.clone());
            }
        }
        let excess = track.pending.len().saturating_sub(self.pending_cap);
        let mut dropped: Option<Dropped> = None;
        for _ in 0..excess {
            let Some((time, _)) = track.pending.pop_first() else { break };
            let d = dropped.get_or_insert(Dropped { count: 0, first: time, last: time });
            d.count += 1;
            d.last = time;
        }
        dropped
    }

    /// Up to `max` pending bars, oldest first.
    pub fn pending(&self, symbol: &Symbol, interval: Interval, max: usize) -> Vec<Bar> {
        let tracks = self.lock();
        let Some(track) = tracks.get(&(symbol.clone(), interval)) else { return Vec::new() };
        track.pending.values().take(max).cloned().collect()
    }

    /// How many bars are pending.
    pub fn pending_len(&self, symbol: &Symbol, interval: Interval) -> usize {
        self.lock().get(&(symbol.clone(), interval)).map_or(0, |t| t.pending.len())
    }

    /// Records bars Kafka confirmed: they become the cursor and leave the pending set
    /// (unless a newer version of the bar arrived meanwhile). Confirmed bars older than
    /// `keep_from` are forgotten (bounded memory).
    pub fn advance(
        &self,
        symbol: &Symbol,
        interval: Interval,
        confirmed: &[Bar],
        keep_from: Option<DateTime<Utc>>,
    ) {
        let mut tracks = self.lock();
        let track = tracks.entry((symbol.clone(), interval)).or_default();
        for bar in confirmed {
            if track.pending.get(&bar.time) == Some(bar) {
                track.pending.remove(&bar.time);
            }
            track.confirmed.insert(bar.time, bar.clone());
        }
        if let Some(from) = keep_from {
            track.confirmed.retain(|t, _| *t >= from);
        }
        while track.confirmed.len() > CURSOR_CAP {
            track.confirmed.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sym() -> Symbol {
        Symbol::parse("COMI").unwrap()
    }

    fn bar(day: u32, close: f64) -> Bar {
        Bar {
            symbol: sym(),
            exchange: "EGX".into(),
            interval: Interval::Daily,
            time: Utc.with_ymd_and_hms(2025, 1, day, 8, 0, 0).unwrap(),
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close,
            volume: Some(10.0),
        }
    }

    fn pending(store: &CursorStore) -> Vec<Bar> {
        store.pending(&sym(), Interval::Daily, usize::MAX)
    }

    #[test]
    fn only_new_or_changed_bars_become_pending() {
        let store = CursorStore::default();
        let first = [bar(19, 1.0), bar(20, 1.5)];
        store.stage(&sym(), Interval::Daily, &first);
        assert_eq!(pending(&store), first);
        store.advance(&sym(), Interval::Daily, &first, None);
        assert!(pending(&store).is_empty(), "confirmed bars leave the pending set");
        store.stage(&sym(), Interval::Daily, &[bar(19, 1.0), bar(20, 1.6), bar(21, 1.7)]);
        assert_eq!(pending(&store), [bar(20, 1.6), bar(21, 1.7)]);
        // Another interval of the same symbol has its own cursor.
        store.stage(&sym(), Interval::Weekly, &first);
        assert_eq!(store.pending_len(&sym(), Interval::Weekly), 2);
    }

    #[test]
    fn unconfirmed_bars_stay_pending_after_they_leave_the_window() {
        let store = CursorStore::default();
        // Three failed cycles of a 2-bar window: nothing is confirmed.
        for day in 2..=4 {
            store.stage(&sym(), Interval::Daily, &[bar(day - 1, 1.0), bar(day, 1.0)]);
        }
        assert_eq!(pending(&store), [1, 2, 3, 4].map(|d| bar(d, 1.0)), "oldest first");
        assert_eq!(store.pending(&sym(), Interval::Daily, 2), [bar(1, 1.0), bar(2, 1.0)], "at most max");
        // The first chunk is confirmed; the rest still waits.
        store.advance(&sym(), Interval::Daily, &[bar(1, 1.0), bar(2, 1.0)], Some(bar(3, 1.0).time));
        assert_eq!(pending(&store), [bar(3, 1.0), bar(4, 1.0)]);
    }

    #[test]
    fn newer_data_replaces_a_pending_bar() {
        let store = CursorStore::default();
        store.stage(&sym(), Interval::Daily, &[bar(20, 1.0)]);
        store.stage(&sym(), Interval::Daily, &[bar(20, 1.1)]);
        assert_eq!(pending(&store), [bar(20, 1.1)]);
        // A confirmation of the older version keeps the newer one pending.
        store.advance(&sym(), Interval::Daily, &[bar(20, 1.0)], None);
        assert_eq!(pending(&store), [bar(20, 1.1)]);
        // Newer data equal to the confirmed version withdraws the pending one.
        store.stage(&sym(), Interval::Daily, &[bar(20, 1.0)]);
        assert!(pending(&store).is_empty());
    }

    #[test]
    fn a_full_pending_set_drops_its_oldest_bars_and_says_how_many() {
        let store = CursorStore::with_pending_cap(3);
        assert_eq!(store.stage(&sym(), Interval::Daily, &[bar(1, 1.0), bar(2, 1.0)]), None);
        let dropped = store.stage(&sym(), Interval::Daily, &[bar(3, 1.0), bar(4, 1.0), bar(5, 1.0)]);
        assert_eq!(dropped, Some(Dropped { count: 2, first: bar(1, 1.0).time, last: bar(2, 1.0).time }));
        assert_eq!(pending(&store), [3, 4, 5].map(|d| bar(d, 1.0)));
        // Replacing a pending bar does not grow the set.
        assert_eq!(store.stage(&sym(), Interval::Daily, &[bar(5, 2.0)]), None);
    }

    #[test]
    fn a_clone_shares_the_pending_set() {
        // The supervisor hands a clone to each Fetcher it (re)starts.
        let store = CursorStore::default();
        store.clone().stage(&sym(), Interval::Daily, &[bar(20, 1.0)]);
        assert_eq!(pending(&store), [bar(20, 1.0)]);
    }
}
