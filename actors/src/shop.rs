//! The shop: the one entry point the gateway uses. It routes each call to the right actor
//! and turns actor plumbing (stopped actors, timeouts) into plain answers.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use engine::order::{Order, OrderEvent, OrderStatus};
use engine::stock::Inventory;
use engine::{
    FlashSale, FlashSaleDraft, IdempotencyKey, OrderId, Product, ProductDraft, ProductId, UserId,
};
use persistence::{
    CommitOutcome, Delivery, GroupCommitter, PaymentRecord, RedisMirror, Shipment, Store,
    StoreError, TrackingEntry, WriteOp,
};
use tokio::sync::watch;

use crate::tracking::{DeliveryStatus, Location, TrackingView};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::catalog::{Catalog, ListQuery, Page};
use crate::clock::now_ms;
use crate::context::{Context, HandleError};
use crate::error::{AdminError, BuyNowError, OrderError};
use crate::expiry::ReservationClock;
use crate::order::OrderMsg;
use crate::order_supervisor::{OrderSupervisor, OrderSupervisorMsg};
use crate::product::{BuyNow, BuyNowReply, ProductMsg, ProductUpdate, Unavailable, Waiter};
use crate::settings::ShopSettings;
use crate::shard::ShardId;
use crate::shard_supervisor::{ShardArgs, ShardMsg, ShardSupervisor};

fn tracking_view(order: &Order, shipment: Option<&Shipment>) -> TrackingView {
    TrackingView {
        order_id: order.id,
        status: order.status,
        tracking_id: shipment.map(|shipment| shipment.tracking_id.clone()),
        estimated_delivery_ms: shipment.map(|shipment| shipment.estimated_delivery_ms),
        location: None,
        sequence: 0,
    }
}

/// A Buy Now as the shop receives it: already authenticated and validated by the gateway.
#[derive(Clone, Debug)]
pub struct BuyNowRequest {
    pub product_id: ProductId,
    pub user_id: UserId,
    pub quantity: u32,
    pub idempotency_key: IdempotencyKey,
}

#[derive(Clone)]
pub struct Shop {
    pub(crate) ctx: Arc<Context>,
    committer_task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Shop {
    /// Loads the catalog and the live orders from the store and starts the actors. With a
    /// mirror, committed stock is also written there.
    pub async fn start(
        settings: ShopSettings,
        store: Arc<dyn Store>,
        mirror: Option<RedisMirror>,
    ) -> Result<Self, StoreError> {
        assert!(settings.shard_count > 0);
        assert!(settings.in_flight_per_product_max > 0);
        let (committer, committer_task) =
            GroupCommitter::start(Arc::clone(&store), settings.group_commit.clone());
        let settings_feed_rate = settings.stock_feed_rate_per_second;
        let catalog = Catalog::from_products(store.load_catalog().await?);
        let high_water = store.id_high_water().await?;
        let pending = store.pending_orders().await?;
        let ctx = Arc::new(Context {
            settings,
            store,
            committer,
            catalog: Arc::new(catalog),
            mirror,
            stock_feed: crate::stock_feed::StockFeed::new(settings_feed_rate),
            tracking: crate::tracking::TrackingBoard::default(),
            sales: DashMap::new(),
            products: DashMap::new(),
            orders: DashMap::new(),
            pending_orders: DashMap::new(),
            checkouts: DashMap::new(),
            clock: OnceLock::new(),
            shards: OnceLock::new(),
            order_supervisor: OnceLock::new(),
            next_product_id: AtomicU64::new(high_water.product_id),
            next_sale_id: AtomicU64::new(high_water.sale_id),
        });

        let (order_supervisor, _) = Actor::spawn(None, OrderSupervisor, Arc::clone(&ctx))
            .await
            .map_err(|error| StoreError::Conflict(format!("order supervisor: {error}")))?;
        let _ = ctx.order_supervisor.set(order_supervisor);
        let (clock, _) = Actor::spawn(None, ReservationClock, Arc::clone(&ctx))
            .await
            .map_err(|error| StoreError::Conflict(format!("reservation clock: {error}")))?;
        let _ = ctx.clock.set(clock);
        let mut shards = Vec::with_capacity(ctx.settings.shard_count as usize);
        for shard in 0..ctx.settings.shard_count {
            let args = ShardArgs {
                ctx: Arc::clone(&ctx),
                shard_id: ShardId(shard),
            };
            let (actor, _) = Actor::spawn(None, ShardSupervisor, args)
                .await
                .map_err(|error| StoreError::Conflict(format!("shard supervisor: {error}")))?;
            shards.push(actor);
        }
        let _ = ctx.shards.set(shards);

        let pending_count = pending.len();
        ctx.track_new_orders(pending);
        let shop = Self {
            ctx,
            committer_task: Arc::new(std::sync::Mutex::new(Some(committer_task))),
        };
        // Held-back stock values go out when their gap has passed. A weak reference: the
        // task ends with the shop.
        let feed_ctx = Arc::downgrade(&shop.ctx);
        let flush_every = shop.ctx.stock_feed.min_gap() / 2;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(flush_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                let Some(ctx) = feed_ctx.upgrade() else {
                    return;
                };
                ctx.stock_feed.flush();
            }
        });
        if shop.ctx.settings.preload_on_start {
            let preloading = shop.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let loaded = preloading.preload(preloading.product_ids()).await;
                tracing::info!(
                    products = loaded,
                    seconds = started.elapsed().as_secs(),
                    "catalog resident in memory"
                );
            });
        }
        tracing::info!(
            products = shop.ctx.catalog.len(),
            pending_orders = pending_count,
            "shop started"
        );
        Ok(shop)
    }

    pub fn settings(&self) -> &ShopSettings {
        &self.ctx.settings
    }

    /// Buy Now: reserve, make durable, answer. Business outcomes (placed, sold out, limit)
    /// are `Ok`; `Err` only for an unknown product or an overloaded one.
    pub async fn buy_now(&self, request: BuyNowRequest) -> Result<BuyNowReply, BuyNowError> {
        // A second attempt only happens when the first reached an actor that was stopping
        // (passivated or restarted): then nothing of the request was written.
        const ATTEMPTS: usize = 2;
        for _ in 0..ATTEMPTS {
            let handle = match self.ctx.product_handle(request.product_id).await {
                Ok(handle) => handle,
                Err(HandleError::UnknownProduct(id)) => {
                    return Err(BuyNowError::UnknownProduct(id));
                }
                Err(HandleError::Unavailable(reason)) => {
                    return Ok(BuyNowReply::Unavailable(Unavailable::NotWritten(
                        reason.into(),
                    )));
                }
            };
            handle.touch(now_ms());
            let permit = handle
                .in_flight
                .admit(self.ctx.settings.in_flight_per_product_max)
                .ok_or(BuyNowError::Overloaded(request.product_id))?;
            let (reply, answer) = oneshot::channel();
            let message = ProductMsg::BuyNow(Box::new(BuyNow {
                user_id: request.user_id,
                quantity: request.quantity,
                idempotency_key: request.idempotency_key.clone(),
                waiter: Waiter::new(reply, permit),
            }));
            if handle.actor.cast(message).is_err() {
                self.ctx.forget_handle(request.product_id, &handle);
                continue;
            }
            match tokio::time::timeout(self.ctx.settings.request_timeout, answer).await {
                Ok(Ok(reply)) => return Ok(self.with_current_status(reply).await),
                // The actor stopped before making the decision durable: nothing written.
                Ok(Err(_)) => {
                    self.ctx.forget_handle(request.product_id, &handle);
                    continue;
                }
                Err(_) => return Ok(BuyNowReply::Unavailable(Unavailable::TimedOut)),
            }
        }
        Ok(BuyNowReply::Unavailable(Unavailable::Recovering))
    }

    /// A retry of a settled order reports the order's real status, which the stock state
    /// machine only knows roughly (released, not why).
    async fn with_current_status(&self, reply: BuyNowReply) -> BuyNowReply {
        match reply {
            BuyNowReply::Placed(mut placement)
                if placement.duplicate && placement.status != OrderStatus::PendingPayment =>
            {
                if let Ok(Some(order)) = self.order(placement.order_id).await {
                    placement.status = order.status;
                }
                BuyNowReply::Placed(placement)
            }
            other => other,
        }
    }

    pub async fn create_product(
        &self,
        id: Option<ProductId>,
        draft: ProductDraft,
        stock: u64,
    ) -> Result<Product, AdminError> {
        engine::product::check_stock("stock", stock)?;
        let id = match id {
            Some(id) => {
                if id.0 == 0 {
                    return Err(engine::product::Invalid::new("id", "must be at least 1").into());
                }
                self.ctx.observe_product_id(id);
                id
            }
            None => self.ctx.allocate_product_id(),
        };
        let product = draft.validate(id)?;
        let answer = self
            .ctx
            .shard(id)
            .call(
                |reply| ShardMsg::Create {
                    product,
                    stock,
                    reply,
                },
                Some(self.ctx.settings.request_timeout),
            )
            .await;
        match answer {
            Ok(CallResult::Success(result)) => result,
            Ok(_) | Err(_) => Err(AdminError::Unavailable("the shard did not answer".into())),
        }
    }

    pub async fn update_product(
        &self,
        id: ProductId,
        draft: ProductDraft,
        stock: Option<u64>,
    ) -> Result<Product, AdminError> {
        let update = ProductUpdate { draft, stock };
        self.call_product(id, |reply| ProductMsg::Update(Box::new(update), reply))
            .await?
    }

    pub fn product(&self, id: ProductId) -> Option<Arc<Product>> {
        self.ctx.catalog.get(id)
    }

    pub fn list_products(&self, query: &ListQuery) -> Page {
        self.ctx.catalog.list(query)
    }

    /// The catalog generation a cached listing of `category` is valid for (see
    /// [`Catalog::generation`]).
    pub fn catalog_generation(&self, category: Option<&str>) -> u64 {
        self.ctx.catalog.generation(category)
    }

    pub async fn schedule_sale(&self, draft: FlashSaleDraft) -> Result<FlashSale, AdminError> {
        let product_id = draft.product_id;
        if !self.ctx.catalog.contains(product_id) {
            return Err(AdminError::UnknownProduct(product_id));
        }
        let sale = draft.validate(self.ctx.allocate_sale_id(), now_ms())?;
        self.call_product(product_id, |reply| {
            ProductMsg::ScheduleSale(Box::new(sale), reply)
        })
        .await?
    }

    /// Sales that are scheduled or live, soonest first, with their products. Products not
    /// yet in memory are not listed until they are (the preload at start loads them all).
    pub fn current_sales(&self) -> Vec<(FlashSale, Arc<Product>)> {
        let now = now_ms();
        let mut sales: Vec<(FlashSale, Arc<Product>)> = self
            .ctx
            .sales
            .iter()
            .filter(|sale| sale.phase(now) != engine::SalePhase::Ended)
            .filter_map(|sale| Some((sale.clone(), self.ctx.catalog.get(sale.product_id)?)))
            .collect();
        sales.sort_by_key(|(sale, _)| (sale.start_ms, sale.id));
        sales
    }

    pub async fn inventory(&self, id: ProductId) -> Result<Inventory, AdminError> {
        self.call_product(id, ProductMsg::Inventory).await
    }

    /// Live stock of a product: the current value at once, then each committed change.
    pub async fn watch_stock(
        &self,
        id: ProductId,
    ) -> Result<tokio::sync::watch::Receiver<crate::StockView>, AdminError> {
        self.call_product(id, ProductMsg::Watch).await
    }

    /// An order as it is now: from its live actor if it has one, else from the store.
    pub async fn order(&self, id: OrderId) -> Result<Option<Order>, OrderError> {
        let live = self.ctx.orders.get(&id).map(|actor| actor.clone());
        if let Some(actor) = live
            && let Ok(CallResult::Success(order)) = actor
                .call(OrderMsg::Get, Some(self.ctx.settings.request_timeout))
                .await
        {
            return Ok(Some(order));
        }
        self.ctx
            .store
            .load_order(id)
            .await
            .map_err(|error| OrderError::Unavailable(error.to_string()))
    }

    /// Moves an order through its lifecycle (cancel, ship...).
    pub async fn apply_to_order(
        &self,
        id: OrderId,
        event: OrderEvent,
    ) -> Result<Order, OrderError> {
        self.apply_with(id, event, None, None).await
    }

    /// A payment provider's verdict: paid (the units become sold) or failed (they go back),
    /// recorded with the change. A replay of a verdict already applied changes nothing and
    /// answers the order as it is.
    pub async fn settle_payment(
        &self,
        id: OrderId,
        transaction_id: String,
        succeeded: bool,
    ) -> Result<Order, OrderError> {
        let event = if succeeded {
            OrderEvent::PaymentSucceeded
        } else {
            OrderEvent::PaymentFailed
        };
        let amount = match self.order(id).await? {
            Some(order) => order.total,
            None => return Err(OrderError::NotFound(id)),
        };
        let payment = PaymentRecord {
            transaction_id,
            succeeded,
            amount,
        };
        match self.apply_with(id, event, Some(payment), None).await {
            Err(OrderError::Illegal(illegal)) => {
                let already = if succeeded {
                    illegal.from.is_sold()
                } else {
                    illegal.from == OrderStatus::Cancelled
                };
                if already {
                    return self.order(id).await?.ok_or(OrderError::NotFound(id));
                }
                Err(OrderError::Illegal(illegal))
            }
            other => other,
        }
    }

    async fn apply_with(
        &self,
        id: OrderId,
        event: OrderEvent,
        payment: Option<PaymentRecord>,
        attach: Option<persistence::WriteOp>,
    ) -> Result<Order, OrderError> {
        // Order actors stop when idle; one that stopped between lookup and message is
        // simply looked up again (the message was never handled).
        const ATTEMPTS: usize = 2;
        for _ in 0..ATTEMPTS {
            let Some(actor) = self.order_actor(id).await? else {
                // No actor: either unknown or final, which refuses every event.
                return match self.order(id).await? {
                    None => Err(OrderError::NotFound(id)),
                    Some(order) => match order.status.apply(event) {
                        Err(illegal) => Err(OrderError::Illegal(illegal)),
                        Ok(_) => Err(OrderError::Unavailable(
                            "the order could not be loaded".into(),
                        )),
                    },
                };
            };
            let timeout = Some(self.ctx.settings.request_timeout);
            let payment = payment.clone();
            let attach = attach.clone().map(Box::new);
            match actor
                .call(
                    |reply| OrderMsg::Apply {
                        event,
                        payment,
                        attach,
                        reply,
                    },
                    timeout,
                )
                .await
            {
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => {
                    return Err(OrderError::Unavailable("the order did not answer".into()));
                }
                Ok(CallResult::SenderError) | Err(_) => continue,
            }
        }
        Err(OrderError::Unavailable("the order did not answer".into()))
    }

    async fn order_actor(&self, id: OrderId) -> Result<Option<ActorRef<OrderMsg>>, OrderError> {
        let supervisor = self
            .ctx
            .order_supervisor
            .get()
            .ok_or_else(|| OrderError::Unavailable("not started".into()))?;
        let timeout = Some(self.ctx.settings.request_timeout);
        match supervisor
            .call(
                |reply| OrderSupervisorMsg::Get {
                    order_id: id,
                    reply,
                },
                timeout,
            )
            .await
        {
            Ok(CallResult::Success(actor)) => Ok(actor),
            Ok(_) | Err(_) => Err(OrderError::Unavailable(
                "the order supervisor did not answer".into(),
            )),
        }
    }

    /// Logistics hands the order to a carrier: PAID -> SHIPPED, with the shipment.
    pub async fn ship(
        &self,
        id: OrderId,
        tracking_id: String,
        estimated_delivery_ms: u64,
    ) -> Result<Order, OrderError> {
        let shipment = Shipment {
            order_id: id,
            tracking_id: tracking_id.clone(),
            estimated_delivery_ms,
            shipped_at_ms: now_ms(),
            delivered: None,
        };
        let order = self
            .apply_with(
                id,
                OrderEvent::Ship,
                None,
                Some(WriteOp::PutShipment(shipment)),
            )
            .await?;
        self.ctx.tracking.update(
            id,
            || tracking_view(&order, None),
            |view| {
                view.status = order.status;
                view.tracking_id = Some(tracking_id);
                view.estimated_delivery_ms = Some(estimated_delivery_ms);
            },
        );
        Ok(order)
    }

    /// The courier reports where the parcel is. Only for orders on their way.
    pub async fn record_location(
        &self,
        id: OrderId,
        lat: f64,
        lng: f64,
        status: DeliveryStatus,
    ) -> Result<TrackingView, OrderError> {
        let order = self.order(id).await?.ok_or(OrderError::NotFound(id))?;
        if order.status != OrderStatus::Shipped {
            return Err(OrderError::NotInTransit(order.status));
        }
        let shipment = self.shipment(id).await?;
        let at_ms = now_ms();
        let view = self.ctx.tracking.update(
            id,
            || tracking_view(&order, shipment.as_ref()),
            |view| {
                view.location = Some(Location {
                    lat,
                    lng,
                    status,
                    at_ms,
                })
            },
        );
        self.emit(vec![crate::events::delivery_location_updated(&view, at_ms)])
            .await
            .map_err(OrderError::Unavailable)?;
        if let Some(mirror) = &self.ctx.mirror {
            let status = serde_json::to_value(status)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default();
            mirror.publish_tracking(
                id,
                TrackingEntry {
                    lat,
                    lng,
                    status,
                    at_ms,
                },
            );
        }
        Ok(view)
    }

    /// Writes events to the outbox and returns once they are durable (they reach Kafka
    /// and the workflow from there). Err names why they were not written.
    pub async fn emit(&self, events: Vec<persistence::Event>) -> Result<(), String> {
        let (done, outcome) = oneshot::channel();
        let ops = events.into_iter().map(WriteOp::Emit).collect();
        self.ctx.committer.submit(ops, move |outcome| {
            let _ = done.send(outcome);
        });
        match outcome.await {
            Ok(CommitOutcome::Committed) => Ok(()),
            Ok(other) => Err(format!("{other:?}")),
            Err(_) => Err("the committer stopped".into()),
        }
    }

    /// Writes an event the caller need not wait for (a page view): it joins the next
    /// batch; if that batch fails, the event is lost and the log says so.
    pub fn emit_later(&self, event: persistence::Event) {
        self.ctx
            .committer
            .submit(vec![WriteOp::Emit(event)], |outcome| {
                if !matches!(outcome, CommitOutcome::Committed) {
                    tracing::debug!(?outcome, "an analytics event was not written");
                }
            });
    }

    /// The parcel reached its buyer: SHIPPED -> DELIVERED, with the proof.
    pub async fn complete_delivery(
        &self,
        id: OrderId,
        signature: String,
        photo_url: String,
    ) -> Result<Order, OrderError> {
        let Some(mut shipment) = self.shipment(id).await? else {
            let status = self
                .order(id)
                .await?
                .ok_or(OrderError::NotFound(id))?
                .status;
            return Err(OrderError::NotInTransit(status));
        };
        shipment.delivered = Some(Delivery {
            at_ms: now_ms(),
            signature,
            photo_url,
        });
        let order = self
            .apply_with(
                id,
                OrderEvent::Deliver,
                None,
                Some(WriteOp::PutShipment(shipment.clone())),
            )
            .await?;
        self.ctx.tracking.update(
            id,
            || tracking_view(&order, Some(&shipment)),
            |view| view.status = order.status,
        );
        self.ctx.tracking.close(id);
        Ok(order)
    }

    /// Live tracking of an order: the order (for the caller's ownership check) and its
    /// latest status and position, then every change.
    pub async fn watch_order(
        &self,
        id: OrderId,
    ) -> Result<(Order, watch::Receiver<TrackingView>), OrderError> {
        let order = self.order(id).await?.ok_or(OrderError::NotFound(id))?;
        let shipment = match self.ctx.tracking.current(id) {
            Some(_) => None,
            None => self.shipment(id).await?,
        };
        let receiver = self
            .ctx
            .tracking
            .subscribe(|| tracking_view(&order, shipment.as_ref()));
        Ok((order, receiver))
    }

    async fn shipment(&self, id: OrderId) -> Result<Option<Shipment>, OrderError> {
        self.ctx
            .store
            .load_shipment(id)
            .await
            .map_err(|error| OrderError::Unavailable(error.to_string()))
    }

    /// The store answers: the shop can take writes.
    pub async fn ready(&self) -> bool {
        self.ctx.store.ping().await.is_ok()
    }

    /// Product actors alive right now (for metrics, tests and the memory benchmark).
    pub fn live_product_count(&self) -> usize {
        self.ctx.products.len()
    }

    /// Live order actors right now.
    pub fn live_order_count(&self) -> usize {
        self.ctx.orders.len()
    }

    /// Unpaid orders holding stock right now.
    pub fn pending_order_count(&self) -> usize {
        self.ctx.pending_orders.len()
    }

    /// The actor of a product, if live (tests use it to kill one).
    pub fn product_actor(&self, id: ProductId) -> Option<ActorRef<ProductMsg>> {
        self.ctx
            .products
            .get(&id)
            .map(|handle| handle.actor.clone())
    }

    /// Loads products into memory (without actors) ahead of demand: their first request
    /// then needs no store read. Answers how many were loaded.
    pub async fn preload(&self, product_ids: impl IntoIterator<Item = ProductId>) -> usize {
        let Some(shards) = self.ctx.shards.get() else {
            return 0;
        };
        let mut by_shard: Vec<Vec<ProductId>> = vec![Vec::new(); shards.len()];
        for product_id in product_ids {
            by_shard[crate::shard::shard_of(product_id, self.ctx.settings.shard_count).0 as usize]
                .push(product_id);
        }
        let mut loads = tokio::task::JoinSet::new();
        for (shard, product_ids) in shards.iter().zip(by_shard) {
            if product_ids.is_empty() {
                continue;
            }
            let shard = shard.clone();
            loads.spawn(async move {
                match shard
                    .call(|reply| ShardMsg::Preload(product_ids, reply), None)
                    .await
                {
                    Ok(CallResult::Success(loaded)) => loaded,
                    _ => 0,
                }
            });
        }
        let mut loaded = 0;
        while let Some(result) = loads.join_next().await {
            loaded += result.unwrap_or(0);
        }
        loaded
    }

    /// Waits for catalog changes (the search index follows them); each changed product once.
    pub async fn next_catalog_changes(&self) -> Vec<ProductId> {
        self.ctx.catalog.next_changes().await
    }

    /// Every product id of the catalog.
    pub fn product_ids(&self) -> Vec<ProductId> {
        self.ctx.catalog.ids()
    }

    /// Ensures a product's actor is live (pre-warming before a sale, or in tests).
    pub async fn warm(&self, id: ProductId) -> Result<(), AdminError> {
        match self.ctx.product_handle(id).await {
            Ok(_) => Ok(()),
            Err(HandleError::UnknownProduct(id)) => Err(AdminError::UnknownProduct(id)),
            Err(HandleError::Unavailable(reason)) => Err(AdminError::Unavailable(reason)),
        }
    }

    /// Graceful stop: every product actor commits what it decided, then the actors stop and
    /// the committer finishes every write it holds.
    pub async fn shutdown(&self) {
        let handles: Vec<_> = self
            .ctx
            .products
            .iter()
            .map(|entry| entry.value().clone())
            .collect();
        let timeout = Some(self.ctx.settings.request_timeout);
        for handle in &handles {
            let _ = handle.actor.call(ProductMsg::Drain, timeout).await;
        }
        if let Some(shards) = self.ctx.shards.get() {
            for shard in shards {
                shard.get_cell().stop_children_and_wait(None, timeout).await;
                let _ = shard.stop_and_wait(None, timeout).await;
            }
        }
        if let Some(supervisor) = self.ctx.order_supervisor.get() {
            supervisor
                .get_cell()
                .stop_children_and_wait(None, timeout)
                .await;
            let _ = supervisor.stop_and_wait(None, timeout).await;
        }
        let _ = self.ctx.committer.barrier().await;
        let task = self
            .committer_task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        tracing::info!(
            products = handles.len(),
            "shop stopped; every decided write is committed"
        );
        drop(task);
    }

    async fn call_product<T: Send + 'static>(
        &self,
        id: ProductId,
        message: impl FnOnce(ractor::RpcReplyPort<T>) -> ProductMsg,
    ) -> Result<T, AdminError> {
        let handle = self
            .ctx
            .product_handle(id)
            .await
            .map_err(|error| match error {
                HandleError::UnknownProduct(id) => AdminError::UnknownProduct(id),
                HandleError::Unavailable(reason) => AdminError::Unavailable(reason),
            })?;
        handle.touch(now_ms());
        match handle
            .actor
            .call(message, Some(self.ctx.settings.request_timeout))
            .await
        {
            Ok(CallResult::Success(value)) => Ok(value),
            Ok(_) | Err(_) => {
                self.ctx.forget_handle(id, &handle);
                Err(AdminError::Unavailable(format!(
                    "product {id} did not answer"
                )))
            }
        }
    }
}
