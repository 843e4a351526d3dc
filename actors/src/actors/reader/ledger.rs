//! Per-partition bookkeeping of the KafkaReader: which offsets are with the writer,
//! which wait their turn, and the commit watermark.
//!
//! W (the watermark) is the lowest offset not yet durably written: the smallest offset
//! still in flight, or one past the last dispatched offset when nothing is in flight.
//! Only W is ever committed, so a failed or slow write holds the partition's commit
//! back however many later offsets succeed.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

/// A record taken from Kafka, owned so it can wait in a backlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message payload.
    pub payload: Option<Vec<u8>>,
}

/// State of one assigned partition.
#[derive(Debug)]
pub struct PartitionLedger {
    /// Assignment epoch: acks carrying another epoch are stale and dropped.
    pub epoch: u64,
    /// Offsets with the writer, and when each was handed over.
    in_flight: BTreeMap<i64, Instant>,
    next: Option<i64>,
    seen: Option<i64>,
    committed: Option<i64>,
    backlog: VecDeque<OwnedRecord>,
    /// True while the partition is paused at the consumer.
    pub paused: bool,
    /// True once a revoke started: nothing more is dispatched.
    pub revoking: bool,
    /// Cancelled when this assignment ends: every write dispatched under it stops.
    assignment: CancellationToken,
}

impl PartitionLedger {
    /// A fresh ledger for an assignment.
    pub fn new(epoch: u64) -> Self {
        Self {
            epoch,
            in_flight: BTreeMap::new(),
            next: None,
            seen: None,
            committed: None,
            backlog: VecDeque::new(),
            paused: false,
            revoking: false,
            assignment: CancellationToken::new(),
        }
    }

    /// The token writes of this assignment carry.
    pub fn assignment(&self) -> CancellationToken {
        self.assignment.clone()
    }

    /// Ends the assignment: writes still in flight (and their retries) stop unconfirmed.
    pub fn end(&self) {
        self.assignment.cancel();
    }

    /// Lowest offset not yet durably written, if anything was dispatched.
    pub fn watermark(&self) -> Option<i64> {
        self.in_flight.first_key_value().map(|(o, _)| *o).or(self.next)
    }

    /// Records in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Records waiting for a free slot.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Notes a record received from the consumer; false when this offset (or a later
    /// one) was already received in this assignment — a re-delivery that must not be
    /// dispatched or counted twice.
    pub fn accept(&mut self, offset: i64) -> bool {
        if self.seen.is_some_and(|s| offset <= s) {
            return false;
        }
        self.seen = Some(offset);
        true
    }

    /// When the oldest record still with the writer was handed over (records are handed
    /// over in offset order, so it is the watermark's): how long the commit has waited.
    pub fn oldest_dispatch(&self) -> Option<Instant> {
        self.in_flight.values().min().copied()
    }

    /// Marks an offset as handed to the writer at `at`.
    pub fn dispatched(&mut self, offset: i64, at: Instant) {
        self.in_flight.entry(offset).or_insert(at);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// Marks an offset as durably written; false if it was not in flight.
    pub fn written(&mut self, offset: i64) -> bool {
        self.in_flight.remove(&offset).is_some()
    }

    /// Notes that the consumer's position passed `offset` with every record below it
    /// received: offsets it skipped were never meant for the application (transaction
    /// markers, aborted records), so the watermark may move past them. Ignored while
    /// records wait in the backlog (they are below the position and not yet dispatched).
    pub fn position_reached(&mut self, offset: i64) {
        if self.backlog.is_empty() && self.next.is_none_or(|n| n < offset) {
            self.next = Some(offset);
            self.seen = Some(self.seen.map_or(offset - 1, |s| s.max(offset - 1)));
        }
    }

    /// Queues a record until a slot frees up.
    pub fn defer(&mut self, record: OwnedRecord) {
        self.backlog.push_back(record);
    }

    /// Takes the next deferred record if a slot is free under `limit`.
    pub fn next_ready(&mut self, limit: usize) -> Option<OwnedRecord> {
        if self.in_flight.len() < limit {
            self.backlog.pop_front()
        } else {
            None
        }
    }

    /// Drops deferred records (they were never written, so they will be re-consumed).
    pub fn clear_backlog(&mut self) {
        self.backlog.clear();
    }

    /// The offset to commit, if the watermark moved past the last commit.
    pub fn to_commit(&self) -> Option<i64> {
        let w = self.watermark()?;
        (self.committed.is_none_or(|c| w > c)).then_some(w)
    }

    /// Notes a successful commit.
    pub fn committed(&mut self, offset: i64) {
        self.committed = Some(offset);
    }

    /// The last committed offset.
    pub fn last_committed(&self) -> Option<i64> {
        self.committed
    }
}

/// The ledger an ack of `partition` written under assignment `epoch` belongs to: the
/// partition's, while it is still owned under that same assignment. An ack of an
/// assignment that ended (the partition was revoked, perhaps assigned again since) finds
/// none and is dropped: it must not move the new assignment's watermark (DESIGN.md rule 5).
pub fn owning(
    ledgers: &mut std::collections::BTreeMap<i32, PartitionLedger>,
    partition: i32,
    epoch: u64,
) -> Option<&mut PartitionLedger> {
    ledgers.get_mut(&partition).filter(|l| l.epoch == epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_holds_the_watermark_however_many_later_ones_succeed() {
        let mut l = PartitionLedger::new(1);
        for o in 10..20 {
            l.dispatched(o, Instant::now());
        }
        for o in 11..20 {
            assert!(l.written(o));
        }
        assert_eq!(l.watermark(), Some(10));
        assert_eq!(l.to_commit(), Some(10));
        l.committed(10);
        assert_eq!(l.to_commit(), None);
        assert!(l.written(10));
        assert_eq!(l.watermark(), Some(20));
        assert_eq!(l.to_commit(), Some(20));
    }

    #[test]
    fn gaps_in_offsets_do_not_stall_the_watermark() {
        let mut l = PartitionLedger::new(1);
        l.dispatched(5, Instant::now());
        l.dispatched(9, Instant::now()); // 6..8 were compacted away or are transaction markers
        l.written(9);
        assert_eq!(l.watermark(), Some(5));
        l.written(5);
        assert_eq!(l.watermark(), Some(10));
        assert!(!l.written(5), "a second ack of the same offset is ignored");
    }

    #[test]
    fn backlog_releases_only_into_free_slots() {
        let mut l = PartitionLedger::new(1);
        let rec = |o| OwnedRecord { partition: 0, offset: o, key: None, payload: None };
        l.dispatched(0, Instant::now());
        l.defer(rec(1));
        assert_eq!(l.next_ready(1), None);
        l.written(0);
        assert_eq!(l.next_ready(1), Some(rec(1)));
        assert_eq!(l.watermark(), Some(1), "deferred records are not past the watermark");
    }

    #[test]
    fn re_deliveries_are_recognised() {
        let mut l = PartitionLedger::new(1);
        assert!(l.accept(4));
        assert!(l.accept(5));
        assert!(!l.accept(5), "the same offset twice");
        assert!(!l.accept(3), "an earlier offset");
        assert!(l.accept(9));
    }

    #[test]
    fn ending_an_assignment_cancels_what_its_writes_carry() {
        let l = PartitionLedger::new(1);
        let carried = l.assignment();
        assert!(!carried.is_cancelled());
        l.end();
        assert!(carried.is_cancelled());
        assert!(!PartitionLedger::new(2).assignment().is_cancelled(), "a new assignment starts afresh");
    }

    #[test]
    fn the_position_moves_the_watermark_past_records_never_delivered_but_not_past_waiting_ones() {
        let mut l = PartitionLedger::new(1);
        // Only an aborted transaction and its marker: offsets 0..4, nothing delivered.
        l.position_reached(4);
        assert_eq!(l.to_commit(), Some(4));
        // Records in flight still hold the watermark.
        let mut l = PartitionLedger::new(1);
        l.dispatched(0, Instant::now());
        l.position_reached(3);
        assert_eq!(l.watermark(), Some(0));
        l.written(0);
        assert_eq!(l.watermark(), Some(3));
        // A record waiting in the backlog is below the position: nothing moves.
        let mut l = PartitionLedger::new(1);
        l.dispatched(0, Instant::now());
        l.defer(OwnedRecord { partition: 0, offset: 1, key: None, payload: None });
        l.position_reached(2);
        l.written(0);
        assert_eq!(l.watermark(), Some(1));
        // A position behind what was dispatched changes nothing.
        l.position_reached(1);
        assert_eq!(l.watermark(), Some(1));
    }

    #[test]
    fn the_oldest_dispatch_is_how_long_the_commit_has_waited() {
        let mut l = PartitionLedger::new(1);
        assert_eq!(l.oldest_dispatch(), None);
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_secs(5);
        l.dispatched(7, t0);
        l.dispatched(8, t1);
        assert_eq!(l.oldest_dispatch(), Some(t0));
        l.written(7);
        assert_eq!(l.oldest_dispatch(), Some(t1));
        l.written(8);
        assert_eq!(l.oldest_dispatch(), None);
    }

    #[test]
    fn acks_of_an_assignment_that_ended_are_dropped() {
        let mut ledgers = std::collections::BTreeMap::new();
        let first = PartitionLedger::new(1);
        ledgers.insert(0, first);
        ledgers.get_mut(&0).unwrap().dispatched(5, Instant::now());
        // Revoked, then assigned again: offset 5 is read and dispatched anew.
        ledgers.remove(&0);
        ledgers.insert(0, PartitionLedger::new(2));
        ledgers.get_mut(&0).unwrap().dispatched(5, Instant::now());
        assert!(owning(&mut ledgers, 0, 1).is_none(), "the first assignment's ack is dropped");
        assert_eq!(ledgers[&0].watermark(), Some(5), "and does not move the watermark");
        assert!(owning(&mut ledgers, 1, 2).is_none(), "nor does an ack of a partition not owned");
        assert!(owning(&mut ledgers, 0, 2).is_some_and(|l| l.written(5)));
        assert_eq!(ledgers[&0].watermark(), Some(6));
    }

    #[test]
    fn nothing_dispatched_means_nothing_to_commit() {
        assert_eq!(PartitionLedger::new(1).to_commit(), None);
    }
}
