//! The order actor: the one place an order's lifecycle moves, so a payment and an expiry
//! arriving together are decided one after the other, never both.
//!
//! It lives only while something happens to its order: the order supervisor spawns it for
//! a payment, a cancellation or an expiry, and it stops once its mailbox is done. Unpaid
//! orders wait among the context's pending orders, their deadlines on the reservation clock
//! (`expiry.rs` says why not a timer per actor).
//!
//! Stock moves (paid: confirm; cancelled, expired: release) are made durable in the same
//! transaction as the status change: by the product actor that holds the units for a Buy
//! Now order, or, for an order spanning products, by holding a line in each (`hold.rs`).
//! The order actor waits for that answer before it takes the new status.

use std::sync::Arc;
use std::time::Duration;

use engine::order::{Order, OrderEvent, OrderStatus, StockEffect};
use persistence::{CommitOutcome, LedgerKind, PaymentRecord, StatusChange, StockMove, WriteOp};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::context::Context;
use crate::error::OrderError;
use crate::protocol::{HandleError, OrderMsg, PrepareStep, ProductMsg, Transition};

/// Pause before an expiry that could not be made durable is tried again.
const EXPIRY_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct OrderActor;

pub(crate) struct OrderArgs {
    pub ctx: Arc<Context>,
    pub order: Order,
}

pub(crate) struct OrderActorState {
    ctx: Arc<Context>,
    order: Order,
    stop_scheduled: bool,
}

impl Actor for OrderActor {
    type Msg = OrderMsg;
    type State = OrderActorState;
    type Arguments = OrderArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(OrderActorState {
            ctx: args.ctx,
            order: args.order,
            stop_scheduled: false,
        })
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
            OrderMsg::Apply {
                event,
                payment,
                attach,
                reply,
            } => {
                let result = state.apply(event, payment, attach).await;
                let _ = reply.send(result);
            }
            OrderMsg::Expire => state.expire().await,
            OrderMsg::Stop => {
                myself.stop(Some("done".into()));
                return Ok(());
            }
        }
        if !state.stop_scheduled {
            state.stop_scheduled = true;
            let _ = myself.cast(OrderMsg::Stop);
        }
        Ok(())
    }
}

impl OrderActorState {
    async fn apply(
        &mut self,
        event: OrderEvent,
        payment: Option<PaymentRecord>,
        attach: Vec<WriteOp>,
    ) -> Result<Order, OrderError> {
        let from = self.order.status;
        let to = from.apply(event)?;
        let at_ms = self.ctx.now_ms();
        let moved = Order {
            status: to,
            updated_at_ms: at_ms,
            ..self.order.clone()
        };
        let events = crate::events::order_moved(&moved, from, event, at_ms);
        match from.stock_effect(to) {
            StockEffect::None => self.write_status(from, to, at_ms, attach, events).await?,
            StockEffect::Confirm | StockEffect::Release => {
                self.move_stock(from, to, at_ms, payment, events).await?
            }
        }
        self.order.status = to;
        self.order.updated_at_ms = at_ms;
        if from.holds_reservation() && !to.holds_reservation() {
            self.ctx
                .settle_pending(self.order.id, self.order.expires_at_ms);
        }
        Ok(self.order.clone())
    }

    async fn expire(&mut self) {
        if !self.order.status.holds_reservation() {
            return;
        }
        let now = self.ctx.now_ms();
        if let Some(item) = self.order.items.first()
            && !self.ctx.admits(item.product_id)
        {
            // Its shard left this node: the new owner loaded this order with the shard and
            // runs its clock. Forget it here.
            self.ctx
                .settle_pending(self.order.id, self.order.expires_at_ms);
            return;
        }
        if now < self.order.expires_at_ms {
            // Clocks can step; wait for the real deadline.
            self.ctx
                .track_expiry(self.order.id, self.order.expires_at_ms);
            return;
        }
        if let Err(error) = self.apply(OrderEvent::Expire, None, Vec::new()).await {
            tracing::warn!(order_id = %self.order.id, %error, "expiry not durable; retrying");
            self.ctx
                .track_expiry(self.order.id, now + EXPIRY_RETRY.as_millis() as u64);
        }
    }

    /// A status change that moves no stock, written by the order itself.
    async fn write_status(
        &self,
        from: OrderStatus,
        to: OrderStatus,
        at_ms: u64,
        attach: Vec<WriteOp>,
        events: Vec<persistence::Event>,
    ) -> Result<(), OrderError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let change = StatusChange {
            order_id: self.order.id,
            from,
            to,
            at_ms,
            ledger: Vec::new(),
            payment: None,
        };
        let mut ops = vec![WriteOp::SetOrderStatus(change)];
        ops.extend(attach);
        ops.extend(events.into_iter().map(WriteOp::Emit));
        self.ctx.committer().submit(ops, move |outcome| {
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
        payment: Option<PaymentRecord>,
        events: Vec<persistence::Event>,
    ) -> Result<(), OrderError> {
        // Buy Now orders have one line; the product actor writes the status with the stock
        // move, in one transaction (and in its own batches). Checkout orders hold a line in
        // each of their products first.
        let [item] = self.order.items.as_slice() else {
            return self.move_lines(from, to, at_ms, payment, events).await;
        };
        let handle =
            self.ctx
                .product_handle(item.product_id)
                .await
                .map_err(|error| match error {
                    HandleError::Elsewhere(shard) => OrderError::Moved(shard),
                    other => OrderError::Unavailable(other.to_string()),
                })?;
        let order_id = self.order.id;
        let answer = handle
            .actor
            .call(
                |reply| {
                    ProductMsg::Transition(Box::new(Transition {
                        order_id,
                        from,
                        to,
                        at_ms,
                        payment,
                        events,
                        reply,
                    }))
                },
                Some(self.ctx.settings().request_timeout),
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

    /// Moves the stock of an order spanning several products: every product holds its
    /// line (`hold.rs`), then the status change records every move in one transaction.
    async fn move_lines(
        &self,
        from: OrderStatus,
        to: OrderStatus,
        at_ms: u64,
        payment: Option<PaymentRecord>,
        events: Vec<persistence::Event>,
    ) -> Result<(), OrderError> {
        let effect = from.stock_effect(to);
        let kind = match effect {
            StockEffect::Confirm => LedgerKind::Confirm,
            StockEffect::Release => LedgerKind::Release,
            StockEffect::None => {
                return Err(OrderError::Unavailable(
                    "this transition moves no stock".into(),
                ));
            }
        };
        let steps = self
            .order
            .items
            .iter()
            .map(|item| (item.product_id, PrepareStep::Move(effect)))
            .collect();
        let held = crate::hold::prepare(&self.ctx, self.order.id, steps)
            .await
            .map_err(|failures| {
                let reasons: Vec<String> = failures
                    .iter()
                    .map(|(product_id, reason)| format!("product {product_id}: {reason}"))
                    .collect();
                OrderError::Unavailable(reasons.join("; "))
            })?;
        let ledger = held
            .lines
            .iter()
            .map(|(product_id, line)| StockMove {
                product_id: *product_id,
                kind,
                units: line.quantity,
                sale: line.sale_id,
            })
            .collect();
        let change = StatusChange {
            order_id: self.order.id,
            from,
            to,
            at_ms,
            ledger,
            payment,
        };
        let mut ops = vec![WriteOp::SetOrderStatus(change)];
        ops.extend(events.into_iter().map(WriteOp::Emit));
        match held.commit(&self.ctx, ops).await {
            CommitOutcome::Committed => Ok(()),
            other => Err(OrderError::Unavailable(format!("{other:?}"))),
        }
    }
}
