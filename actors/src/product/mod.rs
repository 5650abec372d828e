//! The product actor: single writer of one product's stock.
//!
//! Buy Now, end to end inside the actor:
//! 1. `BuyNow`: the engine decides at once. A reservation moves the counters and its
//!    order joins the open batch; refusals and known duplicates are answered right away.
//!    The first decision of a batch also sends `Flush` to the actor itself.
//! 2. `Flush` arrives after everything that was already waiting in the mailbox, so the
//!    batch holds every decision made meanwhile; it goes to the group committer as one
//!    submission.
//! 3. The committer commits many actors' batches in one transaction and answers each
//!    buyer directly (201 only once durable), then tells the actor with `BatchDone`.
//! 4. `BatchDone`: on success, new orders get their order actors (expiry timers) and
//!    pending confirms/releases take effect. If nothing was written, reservations are
//!    undone. If the outcome is unknown, the actor rebuilds itself from the store
//!    (after a barrier, so no write in flight is missed) before deciding anything else.

mod admin;
mod held_lines;
mod recovery;

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;

use engine::order::{Order, OrderItem, OrderStatus, StockEffect};
use engine::stock::{Line, LineState, ProductStock, ReserveOutcome, ReserveRequest};
use engine::{OrderId, Product, ProductId};
use persistence::{CommitOutcome, LedgerKind, ProductState, StatusChange, StockMove, WriteOp};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::context::Context;
use crate::ownership::Fence;
use crate::protocol::{
    BuyNow, BuyNowReply, Dormant, Placement, ProductInspection, ProductMsg, Transition,
    TransitionError, Unavailable, Waiter,
};
use crate::stock_feed::StockView;

/// The scope of Buy Now idempotency keys: per user and per product.
pub fn idempotency_scope(product_id: ProductId) -> String {
    format!("product:{product_id}")
}

pub(crate) struct ProductActor;

pub(crate) struct ProductArgs {
    pub ctx: Arc<Context>,
    pub product_id: ProductId,
    /// The state a passivated incarnation left behind; without it, the actor loads from
    /// the store.
    pub dormant: Option<Box<Dormant>>,
}

pub(crate) struct ProductActorState {
    ctx: Arc<Context>,
    product: Product,
    stock: ProductStock,
    recovering: bool,
    /// Decisions not yet handed to the committer.
    open: Batch,
    flush_scheduled: bool,
    /// Batches handed to the committer and not yet done.
    committing: HashMap<u64, Committing>,
    /// New orders whose batch has not committed yet, by batch id. A duplicate of one of
    /// them must wait for that batch: answering 201 before it is durable would be a lie.
    uncommitted: HashMap<OrderId, u64>,
    next_batch_id: u64,
    drain_waiters: Vec<RpcReplyPort<()>>,
    last_forget_ms: u64,
    /// The sale whose stock-out was announced, so it is announced once. A release that
    /// refills the pool and a second emptying are not announced again.
    stock_out_announced: Option<engine::SaleId>,
    /// Lines of multi-product orders prepared here and waiting for their transaction.
    held: HashMap<OrderId, PrepareKind>,
    /// A rebuild waits for every held line to settle: a line whose transaction commits
    /// after the reload had read the store would be missing from the rebuilt stock.
    reload_deferred: bool,
    /// A reload was started and has not answered yet.
    reload_in_flight: bool,
}

/// What a held line did, so its settlement can finish or undo it.
#[derive(Clone, Copy, Debug)]
enum PrepareKind {
    Reserve,
    Move(StockEffect),
}

#[derive(Default)]
struct Batch {
    id: u64,
    ops: Vec<WriteOp>,
    /// New orders and their buyers: answered by the committer callback.
    placed: Vec<(Waiter, Placement)>,
    followers: Followers,
}

/// What the actor itself must do when a batch is done.
#[derive(Default)]
struct Followers {
    /// New orders: (id, reservation deadline).
    reserved: Vec<(OrderId, u64)>,
    transitions: Vec<PendingTransition>,
    /// Retries of orders in this batch, answered like the original.
    duplicates: Vec<(Waiter, Placement)>,
}

type Committing = Followers;

struct PendingTransition {
    order_id: OrderId,
    effect: StockEffect,
    reply: RpcReplyPort<Result<(), TransitionError>>,
}

impl Actor for ProductActor {
    type Msg = ProductMsg;
    type State = ProductActorState;
    type Arguments = ProductArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let ProductArgs {
            ctx,
            product_id,
            dormant,
        } = args;
        // A dormant state is exactly what the previous incarnation left when it had nothing
        // in flight, so it needs no barrier and no read.
        let (product, stock) = match dormant {
            Some(dormant) => (dormant.product, dormant.stock),
            None => load(&ctx, product_id).await?,
        };
        ctx.note_sale(&stock);
        let now = ctx.now_ms();
        Ok(ProductActorState {
            ctx,
            product,
            stock,
            recovering: false,
            open: Batch::default(),
            flush_scheduled: false,
            committing: HashMap::new(),
            uncommitted: HashMap::new(),
            next_batch_id: 1,
            drain_waiters: Vec::new(),
            last_forget_ms: now,
            stock_out_announced: None,
            held: HashMap::new(),
            reload_deferred: false,
            reload_in_flight: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProductMsg::BuyNow(buy) => state.buy_now(&myself, *buy),
            ProductMsg::Flush => state.flush(&myself),
            ProductMsg::BatchDone { batch_id, outcome } => {
                state.batch_done(&myself, batch_id, outcome)
            }
            ProductMsg::Transition(transition) => state.transition(&myself, *transition),
            ProductMsg::Prepare(prepare) => state.prepare(*prepare),
            ProductMsg::Settle(settle) => {
                let (order_id, outcome) = *settle;
                state.settle(&myself, order_id, outcome);
            }
            ProductMsg::Inventory(reply) => {
                let _ = reply.send(state.stock.inventory(state.ctx.now_ms()));
            }
            ProductMsg::Watch(reply) => {
                let _ = reply.send(state.ctx.stock_feed().subscribe(state.view()));
            }
            ProductMsg::Inspect(reply) => {
                let _ = reply.send(state.inspect());
            }
            ProductMsg::Update(update, reply) => {
                let result = state.update(&myself, *update).await;
                let _ = reply.send(result);
            }
            ProductMsg::ScheduleSale(sale, reply) => {
                let result = state.schedule_sale(&myself, *sale).await;
                let _ = reply.send(result);
            }
            ProductMsg::ChangeSale(change, reply) => {
                let result = state.change_sale(&myself, *change).await;
                let _ = reply.send(result);
            }
            ProductMsg::Passivate(reply) => {
                if !state.is_idle() {
                    let _ = reply.send(None);
                    return Ok(());
                }
                // Hand the state over and stop; placeholders stay behind for the stop.
                let product = state.product.clone();
                let stock = std::mem::replace(
                    &mut state.stock,
                    ProductStock::new(product.id, product.price, 0),
                );
                let _ = reply.send(Some(Box::new(Dormant { product, stock })));
                myself.stop(Some("passivated".into()));
            }
            ProductMsg::Drain(reply) => {
                state.flush(&myself);
                state.drain_waiters.push(reply);
                state.answer_drain_waiters();
            }
            ProductMsg::Recover => state.start_recovery(&myself),
            ProductMsg::Reloaded(result) => state.reloaded(&myself, *result),
        }
        Ok(())
    }
}

/// Reads the product back from the store, after every write still in flight for it (from
/// an earlier incarnation of this actor, say) has finished.
async fn load(
    ctx: &Context,
    product_id: ProductId,
) -> Result<(Product, ProductStock), ActorProcessingErr> {
    ctx.committer().barrier().await?;
    let state = ctx
        .ledger()
        .load_product(product_id, ctx.idempotency_horizon_ms())
        .await?
        .ok_or_else(|| format!("product {product_id} is not in the store"))?;
    restore(state, ctx.now_ms())
}

fn restore(
    state: ProductState,
    now_ms: u64,
) -> Result<(Product, ProductStock), ActorProcessingErr> {
    let ProductState { product, stock } = state;
    let stock = ProductStock::restore(product.id, product.price, stock, now_ms)?;
    Ok((product, stock))
}

impl ProductActorState {
    fn buy_now(&mut self, myself: &ActorRef<ProductMsg>, buy: BuyNow) {
        // The turn is traced under the buyer's request; without a collector the DEBUG span
        // is never created, and the request's own span still tags what is logged here.
        let turn = tracing::debug_span!(parent: &buy.waiter.span, "actor.turn", product = self.product.id.0);
        let _turn = if turn.is_disabled() {
            buy.waiter.span.clone()
        } else {
            turn
        }
        .entered();
        if self.recovering {
            buy.waiter
                .answer(BuyNowReply::Unavailable(Unavailable::Recovering));
            return;
        }
        let now = self.ctx.now_ms();
        let ttl_ms = self.ctx.settings().reservation_ttl.as_millis() as u64;
        let outcome = self.stock.reserve(ReserveRequest {
            order_id: self.ctx.new_order_id(now),
            user_id: buy.user_id,
            quantity: buy.quantity,
            idempotency_key: buy.idempotency_key,
            now_ms: now,
            expires_at_ms: now + ttl_ms,
        });
        match outcome {
            ReserveOutcome::Reserved(line) => {
                let order = order_of(self.product.id, &line);
                self.open
                    .ops
                    .push(WriteOp::Emit(crate::events::order_placed(&order)));
                self.open
                    .followers
                    .reserved
                    .push((order.id, order.expires_at_ms));
                self.open.ops.push(WriteOp::PlaceOrder {
                    order,
                    idempotency_scope: idempotency_scope(self.product.id),
                });
                if line.sale_id.is_some() {
                    self.note_stock_out(now);
                }
                self.open.placed.push((buy.waiter, placement(&line, false)));
                self.uncommitted.insert(line.order_id, self.open.id);
                self.schedule_flush(myself);
            }
            ReserveOutcome::Duplicate(line) => self.answer_duplicate(buy.waiter, &line),
            ReserveOutcome::Refused(refusal) => buy.waiter.answer(BuyNowReply::Refused(refusal)),
        }
    }

    /// A retry of an earlier order: answered now if that order is durable, else with it.
    fn answer_duplicate(&mut self, waiter: Waiter, line: &Line) {
        let placement = placement(line, true);
        match self.uncommitted.get(&line.order_id) {
            None => waiter.answer(BuyNowReply::Placed(placement)),
            Some(&batch_id) if batch_id == self.open.id => {
                self.open.followers.duplicates.push((waiter, placement));
            }
            Some(batch_id) => match self.committing.get_mut(batch_id) {
                Some(committing) => committing.duplicates.push((waiter, placement)),
                // Unreachable by construction (uncommitted entries leave with their batch),
                // but a wrong answer here would be a lie to the buyer: refuse to guess.
                None => waiter.answer(BuyNowReply::Unavailable(Unavailable::Recovering)),
            },
        }
    }

    fn schedule_flush(&mut self, myself: &ActorRef<ProductMsg>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            // Casting to ourselves only fails if we are stopping; the batch then dies with
            // us and its buyers see their reply channel close, which the shop retries.
            let _ = myself.cast(ProductMsg::Flush);
        }
    }

    fn flush(&mut self, myself: &ActorRef<ProductMsg>) {
        self.flush_scheduled = false;
        if self.open.ops.is_empty() {
            assert!(self.open.placed.is_empty());
            return;
        }
        self.next_batch_id += 1;
        let next = Batch {
            id: self.next_batch_id,
            ..Batch::default()
        };
        let batch = mem::replace(&mut self.open, next);
        let batch_id = batch.id;
        self.committing.insert(batch_id, batch.followers);

        let placed = batch.placed;
        let commit = commit_span(self.product.id, &placed);
        let actor = myself.clone();
        let on_done = move |outcome: CommitOutcome| {
            let _commit = commit.entered();
            // Buyers are answered here, on the committer's task, without a hop through
            // the actor: the answer only depends on the outcome.
            for (waiter, placement) in placed {
                waiter.answer(reply_for(&outcome, placement));
            }
            let _ = actor.cast(ProductMsg::BatchDone { batch_id, outcome });
        };
        let mut ops = batch.ops;
        match self.ctx.fence_for(self.product.id) {
            Fence::Unneeded => {}
            Fence::Lease(lease) => ops.push(WriteOp::Fence(lease)),
            Fence::NotOwned => {
                // The shard left this node while the batch was open: it is not ours to
                // write. The buyers are told so (and retried by the shop elsewhere).
                on_done(CommitOutcome::NotWritten(
                    "the product's shard moved to another node".into(),
                ));
                return;
            }
        }
        self.ctx.committer().submit(ops, on_done);
        self.forget_old_lines();
    }

    fn batch_done(&mut self, myself: &ActorRef<ProductMsg>, batch_id: u64, outcome: CommitOutcome) {
        let Some(done) = self.committing.remove(&batch_id) else {
            tracing::error!(batch_id, "unknown batch done");
            return;
        };
        for (order_id, _) in &done.reserved {
            let removed = self.uncommitted.remove(order_id);
            assert_eq!(removed, Some(batch_id));
        }
        for (waiter, placement) in done.duplicates {
            waiter.answer(reply_for(&outcome, placement));
        }
        match &outcome {
            CommitOutcome::Committed => {
                for transition in done.transitions {
                    if !self.recovering {
                        self.finish_transition(&transition);
                    }
                    let _ = transition.reply.send(Ok(()));
                }
                self.ctx.count_placed(done.reserved.len());
                self.ctx.track_new_orders(done.reserved);
                if !self.recovering {
                    self.mirror();
                }
            }
            CommitOutcome::NotWritten(reason) => {
                if !self.recovering {
                    for (order_id, _) in done.reserved.iter().rev() {
                        self.stock.abort_reserve(*order_id);
                    }
                }
                for transition in done.transitions {
                    if !self.recovering {
                        match transition.effect {
                            StockEffect::Confirm => self.stock.abort_confirm(transition.order_id),
                            StockEffect::Release => self.stock.abort_release(transition.order_id),
                            StockEffect::None => unreachable!("only stock moves come here"),
                        }
                    }
                    let _ = transition
                        .reply
                        .send(Err(TransitionError::Unavailable(reason.to_string())));
                }
            }
            CommitOutcome::Unknown(reason) => {
                for transition in done.transitions {
                    let _ = transition
                        .reply
                        .send(Err(TransitionError::Unavailable(reason.to_string())));
                }
                tracing::warn!(product_id = %self.product.id, %reason, "commit outcome unknown; rebuilding from the store");
                self.start_recovery(myself);
            }
        }
        self.answer_drain_waiters();
    }

    fn finish_transition(&mut self, transition: &PendingTransition) {
        self.finish_transition_of(transition.order_id, transition.effect);
    }

    fn finish_transition_of(&mut self, order_id: OrderId, effect: StockEffect) {
        match effect {
            StockEffect::Confirm => self.stock.finish_confirm(order_id),
            StockEffect::Release => self.stock.finish_release(order_id, self.ctx.now_ms()),
            StockEffect::None => unreachable!("only stock moves come here"),
        }
    }

    fn transition(&mut self, myself: &ActorRef<ProductMsg>, transition: Transition) {
        let Transition {
            order_id,
            from,
            to,
            at_ms,
            payment,
            events,
            reply,
        } = transition;
        if self.recovering
            || self.uncommitted.contains_key(&order_id)
            || self.held.contains_key(&order_id)
        {
            let _ = reply.send(Err(TransitionError::Unavailable(
                "the order is not settled yet".into(),
            )));
            return;
        }
        let effect = from.stock_effect(to);
        let (locked, kind) = match effect {
            StockEffect::Confirm => (self.stock.begin_confirm(order_id), LedgerKind::Confirm),
            StockEffect::Release => (self.stock.begin_release(order_id), LedgerKind::Release),
            StockEffect::None => {
                let _ = reply.send(Err(TransitionError::NoStockEffect));
                return;
            }
        };
        let (quantity, sale) = match locked {
            Ok(line) => (line.quantity, line.sale_id),
            Err(error) => {
                let _ = reply.send(Err(TransitionError::Stock(error)));
                return;
            }
        };
        self.open.ops.push(WriteOp::SetOrderStatus(StatusChange {
            order_id,
            from,
            to,
            at_ms,
            ledger: vec![StockMove {
                product_id: self.product.id,
                kind,
                units: quantity,
                sale,
            }],
            payment,
        }));
        self.open.ops.extend(events.into_iter().map(WriteOp::Emit));
        self.open.followers.transitions.push(PendingTransition {
            order_id,
            effect,
            reply,
        });
        self.schedule_flush(myself);
    }

    /// The sale pool just ran dry: say so once, with the reservation that emptied it.
    fn note_stock_out(&mut self, now: u64) {
        let inventory = self.stock.inventory(now);
        let Some(sale) = inventory.sale else {
            return;
        };
        if sale.counters.left == 0 && self.stock_out_announced != Some(sale.sale.id) {
            self.stock_out_announced = Some(sale.sale.id);
            self.open
                .ops
                .push(WriteOp::Emit(crate::events::flash_sale_stock_out(
                    &sale.sale, now,
                )));
        }
    }

    /// Committed stock, as it stands now, to the Redis mirror and to watching screens.
    fn mirror(&self) {
        let now = self.ctx.now_ms();
        let inventory = self.stock.inventory(now);
        self.ctx
            .stock_feed()
            .publish(StockView::of(&inventory, self.product.price, now));
        self.ctx.mirror_inventory(&inventory);
    }

    fn view(&self) -> StockView {
        let now = self.ctx.now_ms();
        StockView::of(&self.stock.inventory(now), self.product.price, now)
    }

    /// Nothing decided is waiting for the store: the state is complete as it stands.
    fn is_idle(&self) -> bool {
        !self.recovering
            && self.open.ops.is_empty()
            && self.committing.is_empty()
            && self.held.is_empty()
            && self.drain_waiters.is_empty()
    }

    fn answer_drain_waiters(&mut self) {
        if self.open.ops.is_empty() && self.committing.is_empty() && self.held.is_empty() {
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn forget_old_lines(&mut self) {
        const FORGET_EVERY_MS: u64 = 60_000;
        let now = self.ctx.now_ms();
        if now.saturating_sub(self.last_forget_ms) < FORGET_EVERY_MS {
            return;
        }
        self.last_forget_ms = now;
        self.stock
            .forget_settled_before(self.ctx.idempotency_horizon_ms());
    }

    /// What an operator sees of this actor.
    fn inspect(&self) -> ProductInspection {
        let inventory = self.stock.inventory(self.ctx.now_ms());
        ProductInspection {
            counters: inventory.counters,
            sale: inventory.sale.map(|sale| (sale.sale, sale.counters)),
            recovering: self.recovering,
            open_writes: self.open.ops.len(),
            committing_batches: self.committing.len(),
            held_lines: self.held.len(),
        }
    }
}

/// The group commit of a batch, traced as a child of its first buyer's request and linked
/// to every other buyer's (OpenTelemetry's way of showing one piece of work done for many).
/// It lasts until the committer answers.
fn commit_span(product_id: ProductId, placed: &[(Waiter, Placement)]) -> tracing::Span {
    let first = placed.first().map(|(waiter, _)| waiter.span.id());
    let commit = tracing::debug_span!(
        parent: first.flatten(),
        "commit",
        product = product_id.0,
        orders = placed.len()
    );
    if !commit.is_disabled() {
        for (waiter, _) in placed.iter().skip(1) {
            commit.follows_from(&waiter.span);
        }
    }
    commit
}

fn reply_for(outcome: &CommitOutcome, placement: Placement) -> BuyNowReply {
    match outcome {
        CommitOutcome::Committed => BuyNowReply::Placed(placement),
        CommitOutcome::NotWritten(reason) => {
            BuyNowReply::Unavailable(Unavailable::NotWritten(Arc::clone(reason)))
        }
        CommitOutcome::Unknown(reason) => {
            BuyNowReply::Unavailable(Unavailable::Unknown(Arc::clone(reason)))
        }
    }
}

fn order_of(product_id: ProductId, line: &Line) -> Order {
    Order {
        id: line.order_id,
        user_id: line.user_id,
        status: OrderStatus::PendingPayment,
        items: vec![OrderItem {
            product_id,
            sale_id: line.sale_id,
            quantity: line.quantity,
            unit_price: line.unit_price,
        }],
        total: line
            .unit_price
            .times(line.quantity)
            .expect("price and quantity are bounded so that this fits"),
        idempotency_key: line.idempotency_key.clone(),
        created_at_ms: line.created_at_ms,
        expires_at_ms: line.expires_at_ms,
        updated_at_ms: line.created_at_ms,
    }
}

fn placement(line: &Line, duplicate: bool) -> Placement {
    let status = match line.state {
        LineState::Reserved | LineState::Confirming | LineState::Releasing => {
            OrderStatus::PendingPayment
        }
        LineState::Sold => OrderStatus::Paid,
        // The line does not know why; the shop reads the order for duplicates.
        LineState::Released => OrderStatus::Cancelled,
    };
    Placement {
        order_id: line.order_id,
        quantity: line.quantity,
        unit_price: line.unit_price,
        total: line.unit_price.times(line.quantity).expect("bounded"),
        sale_id: line.sale_id,
        expires_at_ms: line.expires_at_ms,
        status,
        duplicate,
    }
}

#[cfg(test)]
mod tests {
    /// Every live actor's mailbox allocates blocks of 32 messages; keep messages small.
    #[test]
    fn messages_stay_small() {
        assert!(
            std::mem::size_of::<super::ProductMsg>() <= 40,
            "{}",
            std::mem::size_of::<super::ProductMsg>()
        );
    }
}
