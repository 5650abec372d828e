//! The order actor: one per live order. It holds the order's status and its reservation
//! timer, and it is the one place where the order's lifecycle moves, so a payment and an
//! expiry arriving together are decided one after the other, never both.
//!
//! Stock moves (paid: confirm; cancelled, expired: release) are made durable by the product
//! actor that holds the units, in the same transaction as the status change; the order
//! actor waits for that answer before it takes the new status. An order that no longer
//! needs a timer (paid, cancelled, expired) stops its actor; it is read from the store, and
//! an actor is spawned again if it has to change later.

use std::sync::Arc;
use std::time::Duration;

use engine::order::{Order, OrderEvent, OrderStatus, StockEffect};
use engine::stock::LineError;
use persistence::{CommitOutcome, StatusChange, WriteOp};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::clock::now_ms;
use crate::context::Context;
use crate::error::OrderError;
use crate::product::{ProductMsg, Transition};

pub enum OrderMsg {
    Get(RpcReplyPort<Order>),
    Apply {
        event: OrderEvent,
        reply: RpcReplyPort<Result<Order, OrderError>>,
    },
    /// The reservation timer fired.
    Expire,
}

/// Why a product actor could not move an order's stock.
#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Stock(#[from] LineError),
    #[error("{0}")]
    Unavailable(String),
    #[error("this transition moves no stock")]
    NoStockEffect,
}

/// Pause before an expiry that could not be made durable is tried again.
const EXPIRY_RETRY: Duration = Duration::from_secs(1);

pub struct OrderActor;

pub struct OrderArgs {
    pub ctx: Arc<Context>,
    pub order: Order,
}

pub struct OrderActorState {
    ctx: Arc<Context>,
    order: Order,
    timer: Option<JoinHandle<Result<(), ractor::MessagingErr<OrderMsg>>>>,
}

impl Actor for OrderActor {
    type Msg = OrderMsg;
    type State = OrderActorState;
    type Arguments = OrderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = OrderActorState {
            ctx: args.ctx,
            order: args.order,
            timer: None,
        };
        if state.order.status.holds_reservation() {
            let remaining_ms = state.order.expires_at_ms.saturating_sub(now_ms());
            state.arm_timer(&myself, Duration::from_millis(remaining_ms));
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            OrderMsg::Get(reply) => {
                let _ = reply.send(state.order.clone());
            }
            OrderMsg::Apply { event, reply } => {
                let result = state.apply(event).await;
                let _ = reply.send(result);
            }
            OrderMsg::Expire => {
                if !state.order.status.holds_reservation() {
                    return Ok(());
                }
                let now = now_ms();
                if now < state.order.expires_at_ms {
                    // Timers may fire early after a clock step; wait for the real deadline.
                    state.arm_timer(
                        &myself,
                        Duration::from_millis(state.order.expires_at_ms - now),
                    );
                    return Ok(());
                }
                if let Err(error) = state.apply(OrderEvent::Expire).await {
                    tracing::warn!(order_id = %state.order.id, %error, "expiry not durable; retrying");
                    state.arm_timer(&myself, EXPIRY_RETRY);
                    return Ok(());
                }
            }
        }
        if state.order.status != OrderStatus::PendingPayment {
            // Nothing is timed any more: free the memory; the store has the order.
            myself.stop(Some("settled".into()));
        }
        Ok(())
    }
}

impl OrderActorState {
    fn arm_timer(&mut self, myself: &ActorRef<OrderMsg>, after: Duration) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
        self.timer = Some(myself.send_after(after, || OrderMsg::Expire));
    }

    async fn apply(&mut self, event: OrderEvent) -> Result<Order, OrderError> {
        let from = self.order.status;
        let to = from.apply(event)?;
        let at_ms = now_ms();
        match from.stock_effect(to) {
            StockEffect::None => self.write_status(from, to, at_ms).await?,
            StockEffect::Confirm | StockEffect::Release => self.move_stock(from, to, at_ms).await?,
        }
        self.order.status = to;
        self.order.updated_at_ms = at_ms;
        if !to.holds_reservation()
            && let Some(timer) = self.timer.take()
        {
            timer.abort();
        }
        Ok(self.order.clone())
    }

    /// A status change that moves no stock, written by the order itself.
    async fn write_status(
        &self,
        from: OrderStatus,
        to: OrderStatus,
        at_ms: u64,
    ) -> Result<(), OrderError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let change = StatusChange {
            order_id: self.order.id,
            from,
            to,
            at_ms,
            ledger: None,
        };
        self.ctx
            .committer
            .submit(vec![WriteOp::SetOrderStatus(change)], move |outcome| {
                let _ = done.send(outcome);
            });
        match outcome.await {
            Ok(CommitOutcome::Committed) => Ok(()),
            Ok(other) => Err(OrderError::Unavailable(format!("{other:?}"))),
            Err(_) => Err(OrderError::Unavailable("the committer stopped".into())),
        }
    }

    /// Asks the product actor holding the units to move them and record the new status.
    async fn move_stock(
        &self,
        from: OrderStatus,
        to: OrderStatus,
        at_ms: u64,
    ) -> Result<(), OrderError> {
        // Buy Now orders have one line; the product actor writes the status with the stock
        // move, in one transaction.
        let [item] = self.order.items.as_slice() else {
            return Err(OrderError::Unavailable(
                "multi-line orders move stock line by line".into(),
            ));
        };
        let handle = self
            .ctx
            .product_handle(item.product_id)
            .await
            .map_err(|error| OrderError::Unavailable(error.to_string()))?;
        let order_id = self.order.id;
        let answer = handle
            .actor
            .call(
                |reply| {
                    ProductMsg::Transition(Transition {
                        order_id,
                        from,
                        to,
                        at_ms,
                        reply,
                    })
                },
                Some(self.ctx.settings.request_timeout),
            )
            .await;
        match answer {
            Ok(ractor::rpc::CallResult::Success(Ok(()))) => Ok(()),
            Ok(ractor::rpc::CallResult::Success(Err(error))) => {
                Err(OrderError::Unavailable(error.to_string()))
            }
            Ok(_) | Err(_) => Err(OrderError::Unavailable("the product did not answer".into())),
        }
    }
}
