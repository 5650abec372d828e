//! Running the shop: readiness, what is alive, inspection of one product, preloading,
//! and stopping (gracefully, or as a crash would in tests).

use engine::ProductId;
use ractor::ActorRef;
use ractor::rpc::CallResult;

use super::Shop;
use crate::error::AdminError;
use crate::protocol::{HandleError, ProductInspection, ProductMsg, ShardMsg};

impl Shop {
    /// The store answers: the shop can take writes.
    pub async fn ready(&self) -> bool {
        self.ctx.ledger().ping().await.is_ok()
    }

    /// Product actors alive right now (for metrics, tests and the memory benchmark).
    pub fn live_product_count(&self) -> usize {
        self.ctx.live_product_count()
    }

    /// Live order actors right now.
    pub fn live_order_count(&self) -> usize {
        self.ctx.live_order_count()
    }

    /// Unpaid orders holding stock right now.
    pub fn pending_order_count(&self) -> usize {
        self.ctx.pending_order_count()
    }

    /// Buy Now orders made durable since the start.
    pub fn orders_placed(&self) -> u64 {
        self.ctx.orders_placed()
    }

    /// Checkout orders made durable since the start.
    pub fn checkouts_placed(&self) -> u64 {
        self.ctx.checkouts_placed()
    }

    /// Requests admitted and not yet answered, over every live product actor, and the most
    /// waiting on one of them (its mailbox and its batch being committed).
    pub fn in_flight_totals(&self) -> (u64, u32) {
        self.ctx
            .live_products()
            .iter()
            .map(|(_, handle)| handle.in_flight.current())
            .fold((0, 0), |(total, deepest), here| {
                (total + u64::from(here), deepest.max(here))
            })
    }

    /// Actors that panicked since the start (each was restarted from the store). Anything
    /// but zero is a bug worth a look: an assertion of the engine or an actor fired.
    pub fn actor_failures(&self) -> u64 {
        self.ctx.actor_failures()
    }

    /// The actor of a product, if live (tests use it to kill one).
    pub fn product_actor(&self, id: ProductId) -> Option<ActorRef<ProductMsg>> {
        self.ctx.live_product(id).map(|handle| handle.actor)
    }

    /// Requests admitted and not yet answered for a product, if its actor is live.
    pub fn in_flight(&self, id: ProductId) -> Option<u32> {
        self.ctx
            .live_product(id)
            .map(|handle| handle.in_flight.current())
    }

    /// A product actor's state as it is now (its actor is started if needed).
    pub async fn inspect(&self, id: ProductId) -> Result<ProductInspection, AdminError> {
        self.call_product(id, ProductMsg::Inspect).await
    }

    /// Loads products into memory (without actors) ahead of demand: their first request
    /// then needs no store read. Answers how many were loaded.
    pub async fn preload(&self, product_ids: impl IntoIterator<Item = ProductId>) -> usize {
        let Some(actors) = self.ctx.actors() else {
            return 0;
        };
        let shards = &actors.shards;
        let mut by_shard: Vec<Vec<ProductId>> = vec![Vec::new(); shards.len()];
        for product_id in product_ids {
            let shard = crate::shard::shard_of(product_id, self.ctx.settings().shard_count);
            by_shard[shard.0 as usize].push(product_id);
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

    /// Ensures a product's actor is live (pre-warming before a sale, or in tests).
    pub async fn warm(&self, id: ProductId) -> Result<(), AdminError> {
        match self.ctx.product_handle(id).await {
            Ok(_) => Ok(()),
            Err(HandleError::UnknownProduct(id)) => Err(AdminError::UnknownProduct(id)),
            Err(HandleError::Unavailable(reason)) => Err(AdminError::Unavailable(reason)),
            Err(HandleError::Elsewhere(shard)) => Err(AdminError::Moved(shard)),
        }
    }

    /// Graceful stop: every product actor commits what it decided, then the actors stop and
    /// the committer finishes every write it holds.
    pub async fn shutdown(&self) {
        let live = self.ctx.live_products();
        let timeout = Some(self.ctx.settings().request_timeout);
        for (_, handle) in &live {
            let _ = handle.actor.call(ProductMsg::Drain, timeout).await;
        }
        if let Some(actors) = self.ctx.actors() {
            for shard in &actors.shards {
                shard.get_cell().stop_children_and_wait(None, timeout).await;
                let _ = shard.stop_and_wait(None, timeout).await;
            }
            let supervisor = &actors.order_supervisor;
            supervisor
                .get_cell()
                .stop_children_and_wait(None, timeout)
                .await;
            let _ = supervisor.stop_and_wait(None, timeout).await;
            let _ = actors.reservation_clock.stop_and_wait(None, timeout).await;
        }
        let _ = self.ctx.committer().barrier().await;
        let task = self
            .committer_task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        tracing::info!(
            products = live.len(),
            "shop stopped; every decided write is committed"
        );
        drop(task);
    }

    /// Stops everything at once, as a killed process would: no actor drains, the committer
    /// stops between two batches, nothing decided and not yet committed is written. For
    /// tests of what a restart rebuilds.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn crash(&self) {
        let task = self
            .committer_task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
        if let Some(actors) = self.ctx.actors() {
            for shard in &actors.shards {
                let _ = shard.kill_and_wait(None).await;
            }
            let _ = actors.order_supervisor.kill_and_wait(None).await;
            let _ = actors.reservation_clock.kill_and_wait(None).await;
        }
    }
}
