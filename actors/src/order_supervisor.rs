//! Spawns and supervises order actors, on demand: when an order is paid, cancelled or
//! expires, from the order as the store holds it. Unpaid orders wait as a deadline in the
//! context and on the reservation clock, not as actors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use engine::OrderId;
use engine::order::Order;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::context::Context;
use crate::order::{OrderActor, OrderArgs};
use crate::protocol::{OrderMsg, OrderSupervisorMsg};

/// Pause before orders that could not be read are read again (to track or to expire).
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
            OrderSupervisorMsg::Expire(order_ids) => state.expire(&myself, order_ids).await,
            OrderSupervisorMsg::Ensure(order_ids) => {
                let mut found = Vec::new();
                let mut unread = Vec::new();
                for order_id in order_ids {
                    if state.ctx.is_pending(order_id) {
                        continue;
                    }
                    match state.ctx.stores().orders.order(order_id).await {
                        Ok(Some(order)) if order.status.holds_reservation() => {
                            found.push((order.id, order.expires_at_ms))
                        }
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

    /// Their reservation time is up: the actor of each order still pending is told to
    /// expire it. Orders without a live actor are read from the store a chunk at a time
    /// (the clock sends chunks), so an expiry storm costs one read per chunk.
    async fn expire(&mut self, myself: &ActorRef<OrderSupervisorMsg>, order_ids: Vec<OrderId>) {
        let mut unread = Vec::new();
        for order_id in order_ids {
            if let Some(actor) = self.ctx.live_order(order_id) {
                let _ = actor.cast(OrderMsg::Expire);
            } else if self.ctx.is_pending(order_id) {
                unread.push(order_id);
            }
            // Neither: it was paid or cancelled meanwhile, nothing to expire.
        }
        if unread.is_empty() {
            return;
        }
        let orders = match self.ctx.stores().orders.orders(&unread).await {
            Ok(orders) => orders,
            Err(error) => {
                tracing::warn!(%error, orders = unread.len(), "could not read orders to expire; will retry");
                myself.send_after(ENSURE_RETRY, move || OrderSupervisorMsg::Expire(unread));
                return;
            }
        };
        for order in orders {
            if !order.status.holds_reservation() {
                self.ctx.settle_pending(order.id, order.expires_at_ms);
                continue;
            }
            if let Some(actor) = self.spawn(myself, order) {
                let _ = actor.cast(OrderMsg::Expire);
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
