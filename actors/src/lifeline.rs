//! How a supervisor learns that a child actor is gone, whether it stopped or panicked.
//!
//! actix drops an actor whose handler panicked without calling `stopped()`, and its own
//! `Supervisor` only restarts actors that stop. Each supervised actor therefore holds a
//! [`Lifeline`]: its `Drop` tells the supervisor the child is gone, and whether it had
//! stopped cleanly (the actor calls [`Lifeline::stopped_cleanly`] from `stopped()`).

use actix::prelude::*;

/// Identifies a supervised child.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChildId {
    /// The Kafka producer actor.
    Publisher(u64),
    /// A Fetcher, by symbol name and generation.
    Fetcher(String, u64),
    /// The KafkaReader of the given generation.
    Reader(u64),
    /// The S3Writer of the given generation.
    Writer(u64),
}

/// A supervised child went away.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChildExited {
    /// Which child.
    pub id: ChildId,
    /// True when it did not pass through `stopped()`: a panic.
    pub crashed: bool,
}

/// Held by a supervised actor; reports its end to the supervisor when dropped.
pub struct Lifeline {
    id: ChildId,
    to: Recipient<ChildExited>,
    clean: bool,
}

impl Lifeline {
    /// A lifeline reporting to `to` as `id`.
    pub fn new(id: ChildId, to: Recipient<ChildExited>) -> Self {
        Self {
            id,
            to,
            clean: false,
        }
    }

    /// Marks the stop as orderly; call from `Actor::stopped`.
    pub fn stopped_cleanly(&mut self) {
        self.clean = true;
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        self.to.do_send(ChildExited {
            id: self.id.clone(),
            crashed: !self.clean,
        });
    }
}

impl std::fmt::Debug for Lifeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifeline").field("id", &self.id).finish()
    }
}
