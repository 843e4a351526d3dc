//! `--once` bookkeeping: which Fetchers still owe their first cycle, and the offsets the
//! consumer group must have committed before the run counts as complete.

use std::collections::{BTreeMap, BTreeSet};

use crate::contract::market::Symbol;
use crate::messages::FetchCompleted;

/// Progress of a run that fetches once and waits until everything is written.
#[derive(Debug, Default)]
pub struct Completion {
    waiting_for: BTreeSet<Symbol>,
    /// Per partition: the committed offset that means "everything published is written".
    targets: BTreeMap<i32, i64>,
    /// Bars the sources returned.
    pub fetched: usize,
    /// Messages confirmed by Kafka.
    pub published: usize,
    /// Fetch cycles that failed.
    pub failures: Vec<String>,
}

impl Completion {
    /// Expects one completed cycle from each symbol.
    pub fn expect(&mut self, symbol: Symbol) {
        self.waiting_for.insert(symbol);
    }

    /// Stops expecting a symbol (removed at run time).
    pub fn forget(&mut self, symbol: &Symbol) {
        self.waiting_for.remove(symbol);
    }

    /// Raises the committed offset a partition must reach.
    pub fn require(&mut self, partition: i32, committed: i64) {
        let t = self.targets.entry(partition).or_insert(committed);
        *t = (*t).max(committed);
    }

    /// Records a finished cycle; true the first time this symbol reports.
    pub fn record(&mut self, event: &FetchCompleted) -> bool {
        if !self.waiting_for.remove(&event.symbol) {
            return false;
        }
        self.fetched += event.fetched;
        self.published += event.delivered.len();
        for d in &event.delivered {
            self.require(d.partition, d.offset + 1);
        }
        if let Some(e) = &event.error {
            self.failures.push(format!("{}: {e}", event.symbol));
        }
        true
    }

    /// True once every expected symbol reported.
    pub fn fetched_all(&self) -> bool {
        self.waiting_for.is_empty()
    }

    /// True when the group's committed offsets reach every target.
    pub fn written_all(&self, committed: &BTreeMap<i32, i64>) -> bool {
        self.targets.iter().all(|(p, target)| *target <= 0 || committed.get(p).is_some_and(|c| c >= target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::market::Interval;
    use crate::messages::Delivered;

    #[test]
    fn complete_only_when_every_symbol_reported_and_every_offset_committed() {
        let mut c = Completion::default();
        let comi = Symbol::parse("COMI").unwrap();
        c.expect(comi.clone());
        assert!(!c.fetched_all());
        let event = FetchCompleted {
            symbol: comi,
            interval: Interval::Daily,
            fetched: 3,
            delivered: vec![Delivered { partition: 1, offset: 7 }, Delivered { partition: 1, offset: 9 }],
            error: None,
        };
        assert!(c.record(&event));
        assert!(!c.record(&event), "a second report of the same symbol is not counted");
        assert!(c.fetched_all());
        assert_eq!((c.fetched, c.published), (3, 2));
        assert!(!c.written_all(&BTreeMap::from([(1, 9)])));
        assert!(c.written_all(&BTreeMap::from([(1, 10)])));
    }
}
