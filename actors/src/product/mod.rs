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

mod messages;

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use engine::order::{Order, OrderItem, OrderStatus, StockEffect};
use engine::stock::{Line, LineState, ProductStock, ReserveOutcome, ReserveRequest};
use engine::{FlashSale, OrderId, Product, ProductId};
use persistence::{CommitOutcome, LedgerKind, ProductState, StatusChange, StockMove, WriteOp};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use uuid::Uuid;

pub use messages::{
    BuyNow, BuyNowReply, Placement, Prepare, PrepareRefused, PrepareStep, ProductMsg,
    ProductUpdate, Refusal, Transition, Unavailable, Waiter,
};

use crate::admission::InFlight;
use crate::clock::now_ms;
use crate::context::Context;
use crate::error::AdminError;
use crate::order::TransitionError;
use crate::stock_feed::StockView;

/// How callers reach a product actor. Cloned out of the shard map on every request.
#[derive(Clone)]
pub struct ProductHandle {
    pub actor: ActorRef<ProductMsg>,
    pub in_flight: Arc<InFlight>,
    pub last_active_ms: Arc<AtomicU64>,
}

impl ProductHandle {
    pub fn touch(&self, now_ms: u64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
    }
}

/// The scope of Buy Now idempotency keys: per user and per product.
pub fn idempotency_scope(product_id: ProductId) -> String {
    format!("product:{product_id}")
}

pub struct ProductActor;

pub struct ProductArgs {
    pub ctx: Arc<Context>,
    pub product_id: ProductId,
    /// The state a passivated incarnation left behind; without it, the actor loads from
    /// the store.
    pub dormant: Option<Box<Dormant>>,
}

/// A product's state while no actor runs for it: what keeps a product resident in memory
/// for a few hundred bytes instead of a live actor's ~8 KB (ractor's channels and task).
pub struct Dormant {
    pub product: Product,
    pub stock: ProductStock,
}

pub struct ProductActorState {
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
    reserved: Vec<Order>,
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
            last_forget_ms: now_ms(),
            stock_out_announced: None,
            held: HashMap::new(),
            reload_deferred: false,
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
                let _ = reply.send(state.stock.inventory(now_ms()));
            }
            ProductMsg::Watch(reply) => {
                let _ = reply.send(state.ctx.stock_feed.subscribe(state.view()));
            }
            ProductMsg::Update(update, reply) => {
                let result = state.update(&myself, *update).await;
                let _ = reply.send(result);
            }
            ProductMsg::ScheduleSale(sale, reply) => {
                let result = state.schedule_sale(&myself, *sale).await;
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
    ctx.committer.barrier().await?;
    let since_ms = now_ms().saturating_sub(ctx.settings.idempotency_retention.as_millis() as u64);
    let state = ctx
        .store
        .load_product(product_id, since_ms)
        .await?
        .ok_or_else(|| format!("product {product_id} is not in the store"))?;
    restore(state)
}

fn restore(state: ProductState) -> Result<(Product, ProductStock), ActorProcessingErr> {
    let ProductState { product, stock } = state;
    let stock = ProductStock::restore(product.id, product.price, stock, now_ms())?;
    Ok((product, stock))
}

impl ProductActorState {
    fn buy_now(&mut self, myself: &ActorRef<ProductMsg>, buy: BuyNow) {
        if self.recovering {
            buy.waiter
                .answer(BuyNowReply::Unavailable(Unavailable::Recovering));
            return;
        }
        let now = now_ms();
        let ttl_ms = self.ctx.settings.reservation_ttl.as_millis() as u64;
        let outcome = self.stock.reserve(ReserveRequest {
            order_id: OrderId(Uuid::now_v7()),
            user_id: buy.user_id,
            quantity: buy.quantity,
            idempotency_key: buy.idempotency_key,
            now_ms: now,
            expires_at_ms: now + ttl_ms,
        });
        let refusal = match outcome {
            ReserveOutcome::Reserved(line) => {
                let order = order_of(self.product.id, &line);
                self.open
                    .ops
                    .push(WriteOp::Emit(crate::events::order_placed(&order)));
                self.open.ops.push(WriteOp::PlaceOrder {
                    order: order.clone(),
                    idempotency_scope: idempotency_scope(self.product.id),
                });
                if line.sale_id.is_some() {
                    self.note_stock_out(now);
                }
                self.open.placed.push((buy.waiter, placement(&line, false)));
                self.open.followers.reserved.push(order);
                self.uncommitted.insert(line.order_id, self.open.id);
                self.schedule_flush(myself);
                return;
            }
            ReserveOutcome::Duplicate(line) => {
                self.answer_duplicate(buy.waiter, &line);
                return;
            }
            refused => refusal_of(refused),
        };
        buy.waiter.answer(BuyNowReply::Refused(refusal));
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
        let actor = myself.clone();
        self.ctx.committer.submit(batch.ops, move |outcome| {
            // Buyers are answered here, on the committer's task, without a hop through
            // the actor: the answer only depends on the outcome.
            for (waiter, placement) in placed {
                waiter.answer(reply_for(&outcome, placement));
            }
            let _ = actor.cast(ProductMsg::BatchDone { batch_id, outcome });
        });
        self.forget_old_lines();
    }

    fn batch_done(&mut self, myself: &ActorRef<ProductMsg>, batch_id: u64, outcome: CommitOutcome) {
        let Some(done) = self.committing.remove(&batch_id) else {
            tracing::error!(batch_id, "unknown batch done");
            return;
        };
        for order in &done.reserved {
            let removed = self.uncommitted.remove(&order.id);
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
                self.ctx.track_new_orders(done.reserved);
                if !self.recovering {
                    self.mirror();
                }
            }
            CommitOutcome::NotWritten(reason) => {
                if !self.recovering {
                    for order in done.reserved.iter().rev() {
                        self.stock.abort_reserve(order.id);
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
            StockEffect::Release => self.stock.finish_release(order_id, now_ms()),
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
        let (quantity, sale_holder) = match locked {
            Ok(line) => (
                line.quantity,
                line.sale_id.map(|sale_id| (sale_id, line.user_id)),
            ),
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
                sale_holder,
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

    /// Commits `ops` through the committer and waits, blocking this actor meanwhile: admin
    /// changes are rare, and nothing else may change the stock between the check that
    /// allowed them and their application.
    async fn commit_now(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        ops: Vec<WriteOp>,
    ) -> Result<(), AdminError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.ctx.committer.submit(ops, move |outcome| {
            let _ = done.send(outcome);
        });
        let outcome = outcome
            .await
            .unwrap_or_else(|_| CommitOutcome::Unknown("the committer stopped".into()));
        match outcome {
            CommitOutcome::Committed => Ok(()),
            CommitOutcome::NotWritten(reason) => Err(AdminError::Unavailable(reason.to_string())),
            CommitOutcome::Unknown(reason) => {
                self.start_recovery(myself);
                Err(AdminError::Unavailable(reason.to_string()))
            }
        }
    }

    async fn update(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        update: ProductUpdate,
    ) -> Result<Product, AdminError> {
        if self.recovering {
            return Err(AdminError::Unavailable("the product is recovering".into()));
        }
        let now = now_ms();
        let product = update.draft.validate(self.product.id)?;
        let plan = match update.stock {
            Some(left) => {
                engine::product::check_stock("stock", left)?;
                Some((left, self.stock.plan_set_left(left, now)?))
            }
            None => None,
        };
        let counters = self.stock.counters();
        self.commit_now(
            myself,
            vec![WriteOp::PutProduct {
                product: product.clone(),
                stock_initial: plan.map_or(counters.initial, |(_, plan)| plan.initial),
                shelf_change: plan.map_or(0, |(_, plan)| plan.shelf_change),
                at_ms: now,
            }],
        )
        .await?;
        if let Some((left, _)) = plan {
            self.stock
                .set_left(left, now_ms())
                .expect("planned while this actor was blocked");
        }
        self.stock.set_price(product.price);
        self.product = product.clone();
        self.ctx.catalog.put(product.clone());
        self.mirror();
        Ok(product)
    }

    async fn schedule_sale(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        sale: FlashSale,
    ) -> Result<FlashSale, AdminError> {
        if self.recovering {
            return Err(AdminError::Unavailable("the product is recovering".into()));
        }
        let now = now_ms();
        self.stock.check_schedule_sale(&sale, now)?;
        self.commit_now(
            myself,
            vec![
                WriteOp::PutSale {
                    sale: sale.clone(),
                    at_ms: now,
                },
                WriteOp::Emit(crate::events::flash_sale_scheduled(&sale, now)),
            ],
        )
        .await?;
        self.stock_out_announced = None;
        self.stock
            .schedule_sale(sale.clone(), now_ms())
            .expect("checked while this actor was blocked");
        self.ctx.note_sale(&self.stock);
        self.mirror();
        Ok(sale)
    }

    /// The sale pool just ran dry: say so once, with the reservation that emptied it.
    /// A line of a multi-product order: decided now like a Buy Now (or a confirm/release),
    /// held until [`Self::settle`] brings the outcome of the order's one transaction.
    fn prepare(&mut self, prepare: Prepare) {
        let Prepare {
            order_id,
            step,
            reply,
        } = prepare;
        if self.recovering {
            let _ = reply.send(Err(PrepareRefused::Unavailable(
                "the product is recovering".into(),
            )));
            return;
        }
        if self.held.contains_key(&order_id) || self.uncommitted.contains_key(&order_id) {
            let _ = reply.send(Err(PrepareRefused::Unavailable(
                "the order is not settled yet".into(),
            )));
            return;
        }
        let result = match step {
            PrepareStep::Reserve {
                user_id,
                quantity,
                idempotency_key,
                now_ms,
                expires_at_ms,
            } => {
                let outcome = self.stock.reserve(ReserveRequest {
                    order_id,
                    user_id,
                    quantity,
                    idempotency_key,
                    now_ms,
                    expires_at_ms,
                });
                match outcome {
                    ReserveOutcome::Reserved(line) => {
                        self.held.insert(order_id, PrepareKind::Reserve);
                        Ok(line)
                    }
                    // The shop lets one checkout per user run at a time and looks its key
                    // up first, so this is an earlier attempt still settling.
                    ReserveOutcome::Duplicate(_) => Err(PrepareRefused::Unavailable(
                        "an earlier attempt with this key is still settling".into(),
                    )),
                    other => Err(PrepareRefused::Refused(refusal_of(other))),
                }
            }
            PrepareStep::Move(effect) => {
                let locked = match effect {
                    StockEffect::Confirm => self.stock.begin_confirm(order_id),
                    StockEffect::Release => self.stock.begin_release(order_id),
                    StockEffect::None => {
                        let _ = reply.send(Err(PrepareRefused::Unavailable(
                            "this transition moves no stock".into(),
                        )));
                        return;
                    }
                };
                match locked {
                    Ok(line) => {
                        let line = line.clone();
                        self.held.insert(order_id, PrepareKind::Move(effect));
                        Ok(line)
                    }
                    Err(error) => Err(PrepareRefused::Stock(error)),
                }
            }
        };
        if reply.send(result).is_err() && self.held.contains_key(&order_id) {
            // The coordinator is gone; it settles what it contacted (as not written) on
            // its way out, and that settlement is already queued behind this message.
            tracing::debug!(%order_id, "prepared a line nobody waits for");
        }
    }

    /// The outcome of a held line's transaction: finish it, undo it, or rebuild.
    fn settle(&mut self, myself: &ActorRef<ProductMsg>, order_id: OrderId, outcome: CommitOutcome) {
        let Some(kind) = self.held.remove(&order_id) else {
            // Settlements of lines that were refused, or never reached us, change nothing.
            return;
        };
        if self.recovering {
            // The rebuild reads whatever the transaction did; start it once nothing is held.
            if self.reload_deferred && self.held.is_empty() {
                self.reload_deferred = false;
                self.spawn_reload(myself);
            }
            return;
        }
        match (&outcome, kind) {
            (CommitOutcome::Committed, PrepareKind::Reserve) => {
                let now = now_ms();
                let from_sale = self
                    .stock
                    .line(order_id)
                    .is_some_and(|line| line.sale_id.is_some());
                if from_sale {
                    self.note_stock_out(now);
                    if !self.open.ops.is_empty() {
                        self.schedule_flush(myself);
                    }
                }
                self.mirror();
            }
            (CommitOutcome::Committed, PrepareKind::Move(effect)) => {
                self.finish_transition_of(order_id, effect);
                self.mirror();
            }
            (CommitOutcome::NotWritten(_), PrepareKind::Reserve) => {
                self.stock.abort_reserve(order_id);
            }
            (CommitOutcome::NotWritten(_), PrepareKind::Move(effect)) => match effect {
                StockEffect::Confirm => self.stock.abort_confirm(order_id),
                StockEffect::Release => self.stock.abort_release(order_id),
                StockEffect::None => unreachable!("only stock moves are held"),
            },
            (CommitOutcome::Unknown(reason), _) => {
                tracing::warn!(product_id = %self.product.id, %order_id, %reason, "held line's commit outcome unknown; rebuilding from the store");
                self.start_recovery(myself);
            }
        }
        self.answer_drain_waiters();
    }

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
        let now = now_ms();
        let inventory = self.stock.inventory(now);
        self.ctx
            .stock_feed
            .publish(StockView::of(&inventory, self.product.price, now));
        self.ctx.mirror_inventory(&inventory);
    }

    fn view(&self) -> StockView {
        let now = now_ms();
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
        let now = now_ms();
        if now.saturating_sub(self.last_forget_ms) < FORGET_EVERY_MS {
            return;
        }
        self.last_forget_ms = now;
        let retention_ms = self.ctx.settings.idempotency_retention.as_millis() as u64;
        self.stock
            .forget_settled_before(now.saturating_sub(retention_ms));
    }

    /// Stops deciding and rebuilds from the store. Everything not yet submitted is failed
    /// (nothing of it was written); what is with the committer finishes first (barrier).
    fn start_recovery(&mut self, myself: &ActorRef<ProductMsg>) {
        if !self.recovering {
            self.recovering = true;
            let open = mem::take(&mut self.open);
            self.open.id = open.id;
            for (waiter, _) in open.placed {
                waiter.answer(BuyNowReply::Unavailable(Unavailable::Recovering));
            }
            for (waiter, _) in open.followers.duplicates {
                waiter.answer(BuyNowReply::Unavailable(Unavailable::Recovering));
            }
            for order in &open.followers.reserved {
                self.uncommitted.remove(&order.id);
            }
            for transition in open.followers.transitions {
                let _ = transition.reply.send(Err(TransitionError::Unavailable(
                    "the product is recovering".into(),
                )));
            }
        }
        if !self.held.is_empty() {
            self.reload_deferred = true;
            return;
        }
        self.spawn_reload(myself);
    }

    /// Reads the product back once every write submitted so far has finished.
    fn spawn_reload(&self, myself: &ActorRef<ProductMsg>) {
        let ctx = Arc::clone(&self.ctx);
        let product_id = self.product.id;
        let myself = myself.clone();
        tokio::spawn(async move {
            let reloaded = async {
                ctx.committer.barrier().await.map_err(|_| {
                    persistence::StoreError::Conflict("the committer stopped".into())
                })?;
                let since_ms =
                    now_ms().saturating_sub(ctx.settings.idempotency_retention.as_millis() as u64);
                ctx.store.load_product(product_id, since_ms).await
            }
            .await;
            let _ = myself.cast(ProductMsg::Reloaded(Box::new(reloaded)));
        });
    }

    fn reloaded(
        &mut self,
        myself: &ActorRef<ProductMsg>,
        result: Result<Option<ProductState>, persistence::StoreError>,
    ) {
        assert!(self.recovering);
        let restored = match result {
            Ok(Some(state)) => restore(state),
            Ok(None) => Err("the product disappeared from the store".into()),
            Err(error) => Err(error.into()),
        };
        match restored {
            Ok((product, stock)) => {
                // Every batch submitted before the barrier reported before the reload.
                assert!(self.committing.is_empty());
                assert!(self.uncommitted.is_empty());
                assert!(self.held.is_empty());
                self.product = product;
                self.stock = stock;
                self.recovering = false;
                self.ctx.note_sale(&self.stock);
                tracing::info!(product_id = %self.product.id, "rebuilt from the store");
                self.mirror();
                // Orders whose commit outcome was unknown may exist after all: make sure
                // each reservation has its order actor and expiry timer.
                let reserved: Vec<OrderId> = self
                    .stock
                    .reserved_lines()
                    .map(|line| line.order_id)
                    .collect();
                self.ctx.ensure_order_actors(reserved);
            }
            Err(error) => {
                tracing::warn!(product_id = %self.product.id, %error, "reload failed; retrying");
                myself.send_after(self.ctx.settings.recovery_retry, || ProductMsg::Recover);
            }
        }
    }
}

/// The buyer's view of a refusing outcome.
fn refusal_of(outcome: ReserveOutcome) -> Refusal {
    match outcome {
        ReserveOutcome::KeyReused => Refusal::KeyReused,
        ReserveOutcome::OutOfStock { left } => Refusal::OutOfStock { left },
        ReserveOutcome::SaleNotStarted { starts_at_ms } => Refusal::SaleNotStarted { starts_at_ms },
        ReserveOutcome::SaleEnded { ended_at_ms } => Refusal::SaleEnded { ended_at_ms },
        ReserveOutcome::LimitExceeded { limit, held } => Refusal::LimitExceeded { limit, held },
        ReserveOutcome::Reserved(_) | ReserveOutcome::Duplicate(_) => {
            unreachable!("only refusals are turned into refusals")
        }
    }
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
