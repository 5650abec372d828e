//! The reservation clock: one timer wheel for every unpaid order.
//!
//! Why not a timer per order actor: measured on the embedded store, a live ractor actor
//! with its own timer task cost about 10 KB per unpaid order; a 60 s peak of 10K orders/s
//! holds 600K reservations, which is 6 GB for timers alone. Here a reservation costs one
//! ordered-set entry (~40 bytes), and the order's actor is spawned only when something
//! happens to the order (payment, cancel, expiry) and stops right after.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use engine::OrderId;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;
use crate::protocol::{ClockMsg, OrderSupervisorMsg};

/// How often due reservations are looked for. Reservations last minutes; a quarter second
/// late is invisible to a buyer and keeps the wheel from waking for every order.
const TICK: Duration = Duration::from_millis(250);
/// Orders handed to the order supervisor per message, so an expiry storm (a sale's
/// reservations all ending together) is spread into bounded chunks.
const EXPIRE_CHUNK: usize = 1_024;

pub(crate) struct ReservationClock;

pub(crate) struct ClockState {
    ctx: Arc<Context>,
    deadlines: BTreeSet<(u64, OrderId)>,
}

impl Actor for ReservationClock {
    type Msg = ClockMsg;
    type State = ClockState;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        ctx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(TICK, || ClockMsg::Tick);
        Ok(ClockState {
            ctx,
            deadlines: BTreeSet::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ClockMsg::Track(orders) => {
                state.deadlines.extend(
                    orders
                        .into_iter()
                        .map(|(order_id, at_ms)| (at_ms, order_id)),
                );
            }
            ClockMsg::Forget(order_id, at_ms) => {
                state.deadlines.remove(&(at_ms, order_id));
            }
            ClockMsg::Tick => {
                let now = state.ctx.now_ms();
                state.expire_due(now)
            }
        }
        Ok(())
    }
}

impl ClockState {
    fn expire_due(&mut self, now_ms: u64) {
        // Everything at or before now: split at the first key after it.
        let later = self
            .deadlines
            .split_off(&(now_ms + 1, OrderId(uuid::Uuid::nil())));
        let due = std::mem::replace(&mut self.deadlines, later);
        if due.is_empty() {
            return;
        }
        let Some(supervisor) = self.ctx.order_supervisor() else {
            return;
        };
        let due: Vec<OrderId> = due.into_iter().map(|(_, order_id)| order_id).collect();
        for chunk in due.chunks(EXPIRE_CHUNK) {
            let _ = supervisor.cast(OrderSupervisorMsg::Expire(chunk.to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_takes_exactly_the_due_deadlines() {
        let id = |n| OrderId(uuid::Uuid::from_u128(n));
        let mut deadlines: BTreeSet<(u64, OrderId)> =
            [(10, id(1)), (20, id(2)), (20, id(3)), (30, id(4))].into();
        let later = deadlines.split_off(&(20 + 1, OrderId(uuid::Uuid::nil())));
        assert_eq!(deadlines.len(), 3);
        assert_eq!(later.into_iter().collect::<Vec<_>>(), [(30, id(4))]);
    }
}
