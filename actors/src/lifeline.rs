//! How a supervisor learns that a child actor is gone, whether it stopped or panicked.
//!
//! actix drops an actor whose handler panicked without calling `stopped()`, and its own
//! `Supervisor` only restarts actors that stop. Each supervised actor therefore holds a
//! [`Lifeline`]: its `Drop` tells the supervisor the child is gone, and whether it had been
//! asked to stop (the actor calls [`Lifeline::stop_requested`] when it accepts a stop
//! request). `stopped()` cannot tell: actix also runs it when it drops an actor whose
//! handler panicked.

use actix::prelude::*;

use crate::messages::{ChildExited, ChildId};
use crate::refusal::Refusal;

/// Held by a supervised actor; reports its end to the supervisor when dropped.
pub struct Lifeline {
    id: ChildId,
    to: Recipient<ChildExited>,
    requested: bool,
    refused: Option<Refusal>,
}

impl Lifeline {
    /// A lifeline reporting to `to` as `id`.
    pub fn new(id: ChildId, to: Recipient<ChildExited>) -> Self {
        Self { id, to, requested: false, refused: None }
    }

    /// Marks the coming stop as requested; call when accepting a stop request.
    pub fn stop_requested(&mut self) {
        self.requested = true;
    }

    /// Marks the coming stop as a refusal a restart cannot fix.
    pub fn refused(&mut self, refusal: Refusal) {
        self.refused = Some(refusal);
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        self.to.do_send(ChildExited {
            id: self.id.clone(),
            unexpected: !self.requested,
            refused: self.refused.take(),
        });
    }
}

impl std::fmt::Debug for Lifeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifeline").field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// Records the exits it hears about.
    struct Watcher(mpsc::UnboundedSender<ChildExited>);
    impl Actor for Watcher {
        type Context = Context<Self>;
    }
    impl Handler<ChildExited> for Watcher {
        type Result = ();
        fn handle(&mut self, msg: ChildExited, _: &mut Context<Self>) {
            let _ = self.0.send(msg);
        }
    }

    /// A child that panics or stops on request.
    struct Child(Lifeline);
    impl Actor for Child {
        type Context = Context<Self>;
    }
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Boom;
    impl Handler<Boom> for Child {
        type Result = ();
        fn handle(&mut self, _: Boom, _: &mut Context<Self>) {
            panic!("injected");
        }
    }
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Quit;
    impl Handler<Quit> for Child {
        type Result = ();
        fn handle(&mut self, _: Quit, ctx: &mut Context<Self>) {
            self.0.stop_requested();
            ctx.stop();
        }
    }

    #[actix_rt::test]
    async fn a_panicking_actor_is_reported_as_unexpected_and_a_requested_stop_is_not() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watcher = Watcher(tx).start().recipient();
        let child = Child(Lifeline::new(ChildId::Writer(1), watcher.clone())).start();
        child.do_send(Boom);
        let exit = rx.recv().await.expect("exit reported");
        assert_eq!(exit.id, ChildId::Writer(1));
        assert!(exit.unexpected, "a panic is unexpected");
        assert!(!child.connected(), "the panicked actor is gone");

        let child = Child(Lifeline::new(ChildId::Reader(2), watcher)).start();
        child.do_send(Quit);
        let exit = rx.recv().await.expect("exit reported");
        assert_eq!(exit.id, ChildId::Reader(2));
        assert!(!exit.unexpected, "a requested stop is expected");
    }
}
