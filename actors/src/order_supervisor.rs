//! Spawns and supervises the order actors, and keeps the directory of live ones.

use std::collections::HashMap;
use std::sync::Arc;

use engine::OrderId;
use engine::order::Order;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::context::Context;
use crate::order::{OrderActor, OrderArgs, OrderMsg};

pub enum OrderSupervisorMsg {
    /// Newly committed orders: give each an actor and a timer.
    Track(Vec<Order>),
    /// Orders that may lack an actor (after an uncertain commit): load and spawn if needed.
    Ensure(Vec<OrderId>),
    /// The live actor of an order, spawned from the store if the order can still change.
    Get {
        order_id: OrderId,
        reply: RpcReplyPort<Option<ActorRef<OrderMsg>>>,
    },
}

pub struct OrderSupervisor;

pub struct OrderSupervisorState {
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
            OrderSupervisorMsg::Track(orders) => {
                for order in orders {
                    state.spawn(&myself, order);
                }
            }
            OrderSupervisorMsg::Ensure(order_ids) => {
                for order_id in order_ids {
                    state.get_or_spawn(&myself, order_id).await;
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
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failed) = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, false),
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::error!(%error, "order actor failed; restarting it from the store");
                (cell, true)
            }
            _ => return Ok(()),
        };
        let Some(order_id) = state.orders_by_actor.remove(&cell.get_id()) else {
            return Ok(());
        };
        state
            .ctx
            .orders
            .remove_if(&order_id, |_, actor| actor.get_id() == cell.get_id());
        if failed {
            state.get_or_spawn(&myself, order_id).await;
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
        if let Some(actor) = self.ctx.orders.get(&order.id) {
            return Some(actor.clone());
        }
        let order_id = order.id;
        let args = OrderArgs {
            ctx: Arc::clone(&self.ctx),
            order,
        };
        // Instant spawn: pre_start only arms a timer, and the supervisor must not wait on
        // thousands of them during a sale.
        match ractor::ActorRuntime::spawn_linked_instant(None, OrderActor, args, myself.get_cell())
        {
            Ok((actor, _)) => {
                self.orders_by_actor.insert(actor.get_id(), order_id);
                self.ctx.orders.insert(order_id, actor.clone());
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
        if let Some(actor) = self.ctx.orders.get(&order_id) {
            return Some(actor.clone());
        }
        match self.ctx.store.load_order(order_id).await {
            Ok(Some(order)) if !order.status.is_terminal() => self.spawn(myself, order),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%order_id, %error, "could not load an order");
                None
            }
        }
    }
}
