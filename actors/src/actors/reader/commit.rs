//! The one path every offset commit of a reader takes. Commits are made in two places —
//! periodically on the blocking pool, and synchronously on revoke and shutdown — and
//! without a single path a periodic commit computed earlier could reach the broker after
//! the revoke's commit and move the group's offset backwards (the next owner would then
//! re-read records already written). Here commits run one at a time, and an offset not
//! above one the broker already confirmed for its partition is never sent.

use std::collections::BTreeMap;
use std::sync::Mutex;

use actix::prelude::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{Offset, TopicPartitionList};
use slog::{debug, warn};

use super::{KafkaReader, ReaderContext};

/// Serializes a reader's commits and keeps each partition's committed offset monotonic.
#[derive(Debug, Default)]
pub(super) struct Committer {
    /// Per partition: the highest offset the broker confirmed. Holding the lock while a
    /// commit is in flight is what orders commits.
    confirmed: Mutex<BTreeMap<i32, i64>>,
}

impl Committer {
    /// Sends `due` (partition, offset) with `send`, a synchronous commit, leaving out
    /// offsets the broker already has or has passed; returns what the broker confirmed.
    pub(super) fn commit(
        &self,
        due: &[(i32, i64)],
        send: impl FnOnce(&[(i32, i64)]) -> KafkaResult<()>,
    ) -> Result<Vec<(i32, i64)>, KafkaError> {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh: Vec<(i32, i64)> =
            due.iter().copied().filter(|(p, o)| confirmed.get(p).is_none_or(|c| o > c)).collect();
        if fresh.is_empty() {
            return Ok(fresh);
        }
        send(&fresh)?;
        for &(p, o) in &fresh {
            confirmed.insert(p, o);
        }
        Ok(fresh)
    }
}

impl KafkaReader {
    /// The watermarks of the given partitions (all when `None`) not committed yet.
    fn due(&self, only: Option<&[i32]>) -> Vec<(i32, i64)> {
        self.ledgers
            .iter()
            .filter(|(p, _)| only.is_none_or(|o| o.contains(p)))
            .filter_map(|(p, l)| l.to_commit().map(|o| (*p, o)))
            .collect()
    }

    /// Commits the watermark of the given partitions (all when `None`) and waits for the
    /// broker's answer: on revoke and shutdown, where nothing may happen before it.
    pub(super) fn commit_now(&mut self, only: Option<&[i32]>) {
        let due = self.due(only);
        let Some(consumer) = self.consumer.clone().filter(|_| !due.is_empty()) else { return };
        let topic = self.spec.kafka.topic.clone();
        match self.committer.commit(&due, |offsets| commit_sync(&consumer, &topic, offsets)) {
            Ok(confirmed) => self.committed(&confirmed),
            Err(e) => warn!(self.spec.log, "Commit failed; it is retried with the next one."; "error" => %e),
        }
    }

    /// The periodic commit: the same synchronous commit, on the blocking pool so the
    /// actor keeps serving acks, one at a time. Offsets count as committed only once the
    /// broker confirmed them (an asynchronous commit's `Ok` means only "queued", and
    /// rust-rdkafka does not deliver its result: fede1024/rust-rdkafka#856); a refused
    /// commit is simply made again on the next tick. Should it run after a revoke's or
    /// the shutdown's commit, the committer leaves out the offsets those passed.
    pub(super) fn commit_in_background(&mut self, ctx: &mut Context<Self>) {
        if self.committing {
            return;
        }
        let due = self.due(None);
        let Some(consumer) = self.consumer.clone().filter(|_| !due.is_empty()) else { return };
        let (committer, topic) = (self.committer.clone(), self.spec.kafka.topic.clone());
        self.committing = true;
        let commit = tokio::task::spawn_blocking(move || {
            committer.commit(&due, |offsets| commit_sync(&consumer, &topic, offsets))
        });
        ctx.spawn(commit.into_actor(self).map(move |result, act, _| {
            act.committing = false;
            match result {
                Ok(Ok(confirmed)) => act.committed(&confirmed),
                Ok(Err(e)) => {
                    warn!(act.spec.log, "Commit failed; it is retried with the next one."; "error" => %e)
                }
                Err(e) => warn!(act.spec.log, "Commit task failed; it is retried."; "error" => %e),
            }
        }));
    }

    /// Records offsets the broker stored (of partitions this member still owns).
    fn committed(&mut self, stored: &[(i32, i64)]) {
        for &(p, o) in stored {
            let Some(l) = self.ledgers.get_mut(&p) else { continue };
            if l.last_committed().is_some_and(|c| c >= o) {
                continue;
            }
            l.committed(o);
            self.progress.committed.insert(p, o);
            self.spec.metrics.committed_offset.with_label_values(&[&p.to_string()]).set(o);
            debug!(self.spec.log, "Committed."; "partition" => p, "offset" => o);
        }
    }
}

/// A synchronous commit of `offsets` (partition, offset) of `topic`.
fn commit_sync(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    offsets: &[(i32, i64)],
) -> rdkafka::error::KafkaResult<()> {
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in offsets {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
    }
    consumer.commit(&tpl, CommitMode::Sync)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    /// A broker that records the commits it receives.
    #[derive(Default)]
    struct Broker(Mutex<Vec<(i32, i64)>>);

    impl Broker {
        fn receive(&self, offsets: &[(i32, i64)]) -> KafkaResult<()> {
            self.0.lock().unwrap().extend_from_slice(offsets);
            Ok(())
        }
        fn received(&self) -> Vec<(i32, i64)> {
            self.0.lock().unwrap().clone()
        }
    }

    #[test]
    fn a_commit_computed_earlier_never_lands_after_a_later_one() {
        let (committer, broker) = (Committer::default(), Broker::default());
        // The revoke's commit goes first; the periodic one computed before it comes late.
        assert_eq!(committer.commit(&[(0, 10), (1, 7)], |o| broker.receive(o)).unwrap(), [(0, 10), (1, 7)]);
        assert_eq!(committer.commit(&[(0, 5), (1, 9)], |o| broker.receive(o)).unwrap(), [(1, 9)]);
        assert_eq!(broker.received(), [(0, 10), (1, 7), (1, 9)]);
    }

    #[test]
    fn a_refused_commit_is_not_believed_and_may_be_made_again() {
        let (committer, broker) = (Committer::default(), Broker::default());
        let refused = committer.commit(&[(0, 10)], |_| Err(KafkaError::Canceled));
        assert!(refused.is_err());
        assert_eq!(committer.commit(&[(0, 10)], |o| broker.receive(o)).unwrap(), [(0, 10)]);
    }

    #[test]
    fn concurrent_commits_run_one_at_a_time_and_offsets_never_go_back() {
        let (committer, broker) = (Arc::new(Committer::default()), Arc::new(Broker::default()));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (committer, broker, start) = (committer.clone(), broker.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..200 {
                        // Each thread commits its own rising sequence, interleaved with the others.
                        let offset = i * 8 + t;
                        committer.commit(&[(0, offset)], |o| broker.receive(o)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let offsets: Vec<i64> = broker.received().iter().map(|(_, o)| *o).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "the broker saw the offset go back: {offsets:?}");
        assert_eq!(offsets.last(), Some(&(199 * 8 + 7)));
    }
}
