//! Spawns and supervises order actors, on demand: when an order is paid, cancelled or
//! expires. Unpaid orders wait in memory (`Context::pending_order`) and on the reservation
//! clock, not as actors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::OrderId;
use engine::order::Order;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::context::Context;
use crate::order::{OrderActor, OrderArgs};
use crate::protocol::{OrderMsg, OrderSupervisorMsg};

/// Pause before orders that could not be read are read again.
const ENSURE_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct OrderSupervisor;

pub(crate) struct OrderSupervisorState {
    ctx: Arc<Context>,
    orders_by_actor: HashMap<ActorId, OrderId>,
}

impl Actor for OrderSupervisor {
    type Msg = OrderSupervisorMsg;
    type State = OrderSupervisorState;
    type Arguments = Arc<Context>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(OrderSupervisorState {
            ctx,
            orders_by_actor: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            OrderSupervisorMsg::Expire(order_ids) => {
                for order_id in order_ids {
                    // Only unpaid orders are pending; a settled one has nothing to expire.
                    let pending = state.ctx.pending_order(order_id);
                    let actor = match (state.ctx.live_order(order_id), pending) {
                        (Some(actor), _) => Some(actor),
                        (None, Some(order)) => state.spawn(&myself, order),
                        (None, None) => None,
                    };
                    if let Some(actor) = actor {
                        let _ = actor.cast(OrderMsg::Expire);
                    }
                }
            }
            OrderSupervisorMsg::Ensure(order_ids) => {
                let mut found = Vec::new();
                let mut unread = Vec::new();
                for order_id in order_ids {
                    if state.ctx.is_pending(order_id) {
                        continue;
                    }
                    match state.ctx.stores().orders.order(order_id).await {
                        Ok(Some(order)) if order.status.holds_reservation() => found.push(order),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%order_id, %error, "could not load an order; will retry");
                            unread.push(order_id);
                        }
                    }
                }
                state.ctx.track_new_orders(found);
                // An order that holds stock and is not tracked would never expire: its
                // units would stay reserved until a restart. Ask again until it is read.
                if !unread.is_empty() {
                    myself.send_after(ENSURE_RETRY, move || OrderSupervisorMsg::Ensure(unread));
                }
            }
            OrderSupervisorMsg::Get { order_id, reply } => {
                let actor = state.get_or_spawn(&myself, order_id).await;
                let _ = reply.send(actor);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let cell = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => cell,
            SupervisionEvent::ActorFailed(cell, error) => {
                // Its order is still pending (or in the store): the next event respawns it.
                tracing::error!(%error, "order actor failed");
                state.ctx.note_actor_failure();
                cell
            }
            _ => return Ok(()),
        };
        if let Some(order_id) = state.orders_by_actor.remove(&cell.get_id()) {
            state.ctx.forget_order(order_id, cell.get_id());
        }
        Ok(())
    }
}

impl OrderSupervisorState {
    fn spawn(
        &mut self,
        myself: &ActorRef<OrderSupervisorMsg>,
        order: Order,
    ) -> Option<ActorRef<OrderMsg>> {
        if let Some(actor) = self.ctx.live_order(order.id) {
            return Some(actor);
        }
        let order_id = order.id;
        let args = OrderArgs {
            ctx: Arc::clone(&self.ctx),
            order,
        };
        // Instant spawn: pre_start does no I/O, and an expiry storm must not wait on it.
        match ractor::ActorRuntime::spawn_linked_instant(None, OrderActor, args, myself.get_cell())
        {
            Ok((actor, _)) => {
                self.orders_by_actor.insert(actor.get_id(), order_id);
                self.ctx.register_order(order_id, actor.clone());
                Some(actor)
            }
            Err(error) => {
                tracing::error!(%order_id, %error, "could not spawn an order actor");
                None
            }
        }
    }

    async fn get_or_spawn(
        &mut self,
        myself: &ActorRef<OrderSupervisorMsg>,
        order_id: OrderId,
    ) -> Option<ActorRef<OrderMsg>> {
        if let Some(actor) = self.ctx.live_order(order_id) {
            return Some(actor);
        }
        if let Some(order) = self.ctx.pending_order(order_id) {
            return self.spawn(myself, order);
        }
        match self.ctx.stores().orders.order(order_id).await {
            Ok(Some(order)) if !order.status.is_terminal() => self.spawn(myself, order),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%order_id, %error, "could not load an order");
                None
            }
        }
    }
}
