//! What the consumer group does to the reader: partitions assigned and revoked (drained
//! and committed before they go), the consumer's position passing records the
//! application never sees, and a consumer the brokers refuse or fence for good.

use actix::prelude::*;
use slog::{error, info, warn};

use super::context::{
    ConsumerFailed, ConsumerRefused, PartitionsAssigned, PartitionsRevoked, PositionReached,
};
use super::{KafkaReader, PartitionLedger};
use crate::refusal::{Refusal, RefusalKind};

impl Handler<ConsumerFailed> for KafkaReader {
    type Result = ();

    /// Stops, telling the supervisor that a new consumer would not help: a fenced static
    /// member restarted under the same `group.instance.id` would fence the other process
    /// in turn, and the two would take the partitions from each other for ever.
    fn handle(&mut self, msg: ConsumerFailed, ctx: &mut Self::Context) {
        let kafka = &self.spec.kafka;
        let refusal = if msg.code == rdkafka::types::RDKafkaErrorCode::FencedInstanceId {
            Refusal::kafka(
                RefusalKind::Fenced,
                format!(
                    "another process joined group {:?} with the same kafka.group_instance_id ({:?}); give each consume process its own ({})",
                    kafka.consumer_group, kafka.group_instance_id, msg.reason
                ),
            )
        } else {
            Refusal::kafka(
                RefusalKind::Fenced,
                format!("the consumer failed for good: {} ({:?})", msg.reason, msg.code),
            )
        };
        error!(self.spec.log, "Fatal Kafka consumer error; stopping."; "reason" => %refusal);
        if let Some(l) = self.lifeline.as_mut() {
            l.refused(refusal);
        }
        ctx.stop();
    }
}

impl Handler<ConsumerRefused> for KafkaReader {
    type Result = ();

    /// Stops the pipeline: the consumer may not read the topic or use the group, which no
    /// retry changes.
    fn handle(&mut self, ConsumerRefused(refusal): ConsumerRefused, ctx: &mut Self::Context) {
        error!(self.spec.log, "Kafka refuses the consumer; stopping."; "reason" => %refusal);
        if let Some(l) = self.lifeline.as_mut() {
            l.refused(refusal);
        }
        ctx.stop();
    }
}

impl Handler<PositionReached> for KafkaReader {
    type Result = ();

    /// Lets the watermark pass offsets the application never receives.
    fn handle(&mut self, msg: PositionReached, _ctx: &mut Self::Context) {
        let draining = self.draining;
        if let Some(ledger) = self.ledgers.get_mut(&msg.partition).filter(|l| !l.revoking && !draining) {
            ledger.position_reached(msg.offset);
        }
    }
}

impl Handler<PartitionsAssigned> for KafkaReader {
    type Result = ();

    /// Opens a ledger with a new epoch for each partition.
    fn handle(&mut self, PartitionsAssigned(partitions): PartitionsAssigned, _ctx: &mut Self::Context) {
        for p in &partitions {
            if let Some(old) = self.ledgers.insert(*p, PartitionLedger::new(self.next_epoch)) {
                old.end();
            }
            self.next_epoch += 1;
        }
        self.spec.metrics.assigned_partitions.set(self.ledgers.len() as i64);
        info!(self.spec.log, "Partitions assigned."; "partitions" => ?partitions);
    }
}

impl Handler<PartitionsRevoked> for KafkaReader {
    type Result = ResponseActFuture<Self, ()>;

    /// Stops dispatching the partitions, waits for their writes, commits, forgets them.
    fn handle(
        &mut self,
        PartitionsRevoked(partitions): PartitionsRevoked,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        for p in &partitions {
            if let Some(l) = self.ledgers.get_mut(p) {
                l.revoking = true;
                l.clear_backlog();
            }
        }
        let wait = self.wait_idle(partitions.clone());
        Box::pin(wait.into_actor(self).map(move |drained, act, _| {
            if !drained {
                warn!(act.spec.log, "Revoke drain timed out; committing what is written."; "partitions" => ?partitions);
            }
            act.commit_now(Some(&partitions));
            for p in &partitions {
                // Writes still in flight belong to an assignment that ends here: they stop,
                // so none lands after the next owner's (DESIGN.md rule 10).
                if let Some(l) = act.ledgers.remove(p) {
                    l.end();
                }
                act.spec.metrics.forget_partition(*p);
            }
            act.spec.metrics.assigned_partitions.set(act.ledgers.len() as i64);
        }))
    }
}
