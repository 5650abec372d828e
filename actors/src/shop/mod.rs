//! The shop: the one entry point the gateway uses. It routes each call to the right actor
//! and turns actor plumbing (stopped actors, timeouts) into plain answers.
//!
//! Its methods are split by what callers do with them:
//! - `buying.rs`: Buy Now (checkout is `checkout.rs`, the cart `cart.rs`);
//! - `orders.rs`: an order's life after it is placed: payment, cancellation, shipping,
//!   delivery, tracking, the customer's notifications;
//! - `catalog.rs`: products, sales, stock and its live feed (reviews are `reviews.rs`);
//! - `operations.rs`: readiness, counts, inspection, preloading, shutdown.

mod buying;
mod catalog;
mod followed_catalog;
mod operations;
mod orders;
mod shards;

use std::sync::Arc;

use persistence::{CommitOutcome, GroupCommitter, RedisMirror, StoreError, WriteOp};
use ractor::Actor;
use ractor::rpc::CallResult;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use buying::BuyNowRequest;

use crate::catalog::Catalog;
use crate::clock::{Clock, OrderIds};
use crate::context::{Actors, Context, ContextParts};
use crate::error::AdminError;
use crate::expiry::ReservationClock;
use crate::order_supervisor::OrderSupervisor;
use crate::ownership::Ownership;
use crate::protocol::{HandleError, ProductMsg};
use crate::settings::ShopSettings;
use crate::shard::ShardId;
use crate::shard_supervisor::{ShardArgs, ShardSupervisor};
use crate::stores::ShopStores;

/// What a shop is made of. [`ShopParts::new`] gives the production defaults: the system
/// clock, random order ids, no mirror.
pub struct ShopParts {
    pub settings: ShopSettings,
    pub stores: ShopStores,
    /// Where committed stock is mirrored (Redis), if anywhere.
    pub mirror: Option<RedisMirror>,
    pub clock: Clock,
    pub order_ids: OrderIds,
    /// One node of a cluster: it sells from no shard until it takes one
    /// ([`Shop::take_shards`]), and fences every batch with the shard's lease.
    pub clustered: bool,
}

impl ShopParts {
    pub fn new(settings: ShopSettings, stores: ShopStores) -> Self {
        Self {
            settings,
            stores,
            mirror: None,
            clock: Clock::System,
            order_ids: OrderIds::random(),
            clustered: false,
        }
    }

    pub fn clustered(self) -> Self {
        Self {
            clustered: true,
            ..self
        }
    }

    pub fn with_mirror(self, mirror: Option<RedisMirror>) -> Self {
        Self { mirror, ..self }
    }

    pub fn with_clock(self, clock: Clock, order_ids: OrderIds) -> Self {
        Self {
            clock,
            order_ids,
            ..self
        }
    }
}

#[derive(Clone)]
pub struct Shop {
    pub(crate) ctx: Arc<Context>,
    committer_task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl Shop {
    /// Loads the catalog and the live orders from the store and starts the actors.
    pub async fn start(parts: ShopParts) -> Result<Self, StoreError> {
        let ShopParts {
            settings,
            stores,
            mirror,
            clock,
            order_ids,
            clustered,
        } = parts;
        assert!(settings.shard_count > 0);
        assert!(settings.in_flight_per_product_max > 0);
        let (lost_leases, fenced) = tokio::sync::mpsc::unbounded_channel();
        let (committer, committer_task) = GroupCommitter::start_fenced(
            Arc::clone(&stores.ledger),
            settings.group_commit.clone(),
            clustered.then_some(lost_leases),
        );
        let ownership = if clustered {
            Ownership::clustered(settings.shard_count)
        } else {
            Ownership::alone()
        };
        let catalog = Catalog::from_products(stores.catalog.load_catalog().await?);
        let high_water = stores.ledger.id_high_water().await?;
        // A clustered node tracks the unpaid orders of the shards it takes, when it takes
        // them (`shards.rs`).
        let pending = if clustered {
            Vec::new()
        } else {
            stores.ledger.pending_orders().await?
        };
        let ctx = Arc::new(Context::new(ContextParts {
            settings,
            stores,
            committer,
            catalog,
            mirror,
            clock,
            order_ids,
            high_water,
            ownership,
        }));
        if clustered {
            shards::drop_fenced_shards(Arc::clone(&ctx), fenced);
        }
        let actors = start_actors(&ctx).await?;
        ctx.set_actors(actors);

        let pending_count = pending.len();
        ctx.track_new_orders(
            pending
                .iter()
                .map(|order| (order.id, order.expires_at_ms))
                .collect(),
        );
        let shop = Self {
            ctx,
            committer_task: Arc::new(std::sync::Mutex::new(Some(committer_task))),
        };
        shop.start_stock_feed_flusher();
        // A clustered node preloads the shards it takes, when it takes them.
        if shop.ctx.settings().preload_on_start && !clustered {
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
            products = shop.ctx.catalog().len(),
            pending_orders = pending_count,
            "shop started"
        );
        Ok(shop)
    }

    /// Held-back stock values go out when their gap has passed. A weak reference: the
    /// task ends with the shop.
    fn start_stock_feed_flusher(&self) {
        let feed_ctx = Arc::downgrade(&self.ctx);
        let flush_every = self.ctx.stock_feed().min_gap() / 2;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(flush_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticks.tick().await;
                let Some(ctx) = feed_ctx.upgrade() else {
                    return;
                };
                ctx.stock_feed().flush();
            }
        });
    }

    pub fn settings(&self) -> &ShopSettings {
        self.ctx.settings()
    }

    /// The group committer, for writers beside the shop (the workflow's), so that the
    /// database has one writer.
    pub fn committer(&self) -> GroupCommitter {
        self.ctx.committer().clone()
    }

    /// Writes events to the outbox and returns once they are durable (they reach Kafka
    /// and the workflow from there). Err names why they were not written.
    pub async fn emit(&self, events: Vec<persistence::Event>) -> Result<(), String> {
        let (done, outcome) = oneshot::channel();
        let ops = events.into_iter().map(WriteOp::Emit).collect();
        self.ctx.committer().submit(ops, move |outcome| {
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
            .committer()
            .submit(vec![WriteOp::Emit(event)], |outcome| {
                if !matches!(outcome, CommitOutcome::Committed) {
                    tracing::debug!(?outcome, "an analytics event was not written");
                }
            });
    }

    /// Asks a product's actor and waits for the answer.
    async fn call_product<T: Send + 'static>(
        &self,
        id: engine::ProductId,
        message: impl FnOnce(ractor::RpcReplyPort<T>) -> ProductMsg,
    ) -> Result<T, AdminError> {
        let handle = self
            .ctx
            .product_handle(id)
            .await
            .map_err(|error| match error {
                HandleError::UnknownProduct(id) => AdminError::UnknownProduct(id),
                HandleError::Unavailable(reason) => AdminError::Unavailable(reason),
                HandleError::Elsewhere(shard) => AdminError::Moved(shard),
            })?;
        handle.touch(self.ctx.now_ms());
        match handle
            .actor
            .call(message, Some(self.ctx.settings().request_timeout))
            .await
        {
            Ok(CallResult::Success(value)) => Ok(value),
            Ok(_) | Err(_) => {
                self.ctx.forget_product(id, handle.actor.get_id());
                Err(AdminError::Unavailable(format!(
                    "product {id} did not answer"
                )))
            }
        }
    }
}

/// The order supervisor, the reservation clock and one supervisor per shard.
async fn start_actors(ctx: &Arc<Context>) -> Result<Actors, StoreError> {
    let failed = |what: &str, error: ractor::SpawnErr| {
        StoreError::Conflict(format!("could not start the {what}: {error}"))
    };
    let (order_supervisor, _) = Actor::spawn(None, OrderSupervisor, Arc::clone(ctx))
        .await
        .map_err(|error| failed("order supervisor", error))?;
    let (reservation_clock, _) = Actor::spawn(None, ReservationClock, Arc::clone(ctx))
        .await
        .map_err(|error| failed("reservation clock", error))?;
    let mut shards = Vec::with_capacity(ctx.settings().shard_count as usize);
    for shard in 0..ctx.settings().shard_count {
        let args = ShardArgs {
            ctx: Arc::clone(ctx),
            shard_id: ShardId(shard),
        };
        let (actor, _) = Actor::spawn(None, ShardSupervisor, args)
            .await
            .map_err(|error| failed("shard supervisor", error))?;
        shards.push(actor);
    }
    Ok(Actors {
        shards,
        order_supervisor,
        reservation_clock,
    })
}
