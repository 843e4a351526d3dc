//! The one path every offset commit of a reader takes. Commits are made in two places —
//! periodically on the blocking pool, and synchronously on revoke and shutdown — and
//! without a single path a periodic commit computed earlier could reach the broker after
//! the revoke's commit and move the group's offset backwards (the next owner would then
//! re-read records already written). Here commits run one at a time, and an offset not
//! above one the broker already confirmed for its partition is never sent.

use std::collections::BTreeMap;
use std::sync::Mutex;

use rdkafka::error::{KafkaError, KafkaResult};

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
