//! One supervisor per virtual shard: spawns its products' actors on demand, restarts a
//! failed one from the store, passivates idle ones, and serializes product creation (two
//! admins creating the same id cannot both win).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use engine::{Product, ProductId};
use persistence::{CommitOutcome, WriteOp};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::context::Context;
use crate::error::AdminError;
use crate::ownership::Fence;
use crate::product::{ProductActor, ProductArgs};
use crate::protocol::{Dormant, HandleError, ProductHandle, ProductMsg, ShardMsg};
use crate::shard::ShardId;

pub(crate) struct ShardSupervisor;

pub(crate) struct ShardArgs {
    pub ctx: Arc<Context>,
    pub shard_id: ShardId,
}

pub(crate) struct ShardState {
    ctx: Arc<Context>,
    shard_id: ShardId,
    /// Live product actors of this shard, by product id (ordered, so sweeps visit them in
    /// a repeatable order).
    members: BTreeMap<ProductId, ProductHandle>,
    products_by_actor: HashMap<ActorId, ProductId>,
    /// Products resident in memory without an actor (passivated or preloaded).
    dormant: HashMap<ProductId, Box<Dormant>>,
}

impl Actor for ShardSupervisor {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(args.ctx.settings().passivation_sweep_every, || {
            ShardMsg::Sweep
        });
        Ok(ShardState {
            ctx: args.ctx,
            shard_id: args.shard_id,
            members: BTreeMap::new(),
            products_by_actor: HashMap::new(),
            dormant: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ShardMsg::Spawn { product_id, reply } => {
                let result = state.spawn(&myself, product_id).await;
                let _ = reply.send(result);
            }
            ShardMsg::Create {
                product,
                stock,
                reply,
            } => {
                let _ = reply.send(state.create(product, stock).await);
            }
            ShardMsg::Preload(product_ids, reply) => {
                state.preload_some(&myself, product_ids, 0, reply).await;
            }
            ShardMsg::PreloadRest {
                rest,
                loaded,
                reply,
            } => state.preload_some(&myself, rest, loaded, reply).await,
            ShardMsg::Sweep => state.sweep().await,
            ShardMsg::Release(reply) => {
                let _ = reply.send(state.release().await);
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
        let cell = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => cell,
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::error!(%error, "product actor failed");
                state.ctx.note_actor_failure();
                cell
            }
            _ => return Ok(()),
        };
        let Some(product_id) = state.products_by_actor.remove(&cell.get_id()) else {
            return Ok(());
        };
        let still_member = state
            .members
            .get(&product_id)
            .is_some_and(|handle| handle.actor.get_id() == cell.get_id());
        if !still_member {
            // Passivated: already removed on purpose.
            return Ok(());
        }
        // Stopped without being asked (failure or kill): restart it from the store. Its
        // pre_start waits for the old actor's writes still in flight before reading.
        state.members.remove(&product_id);
        state.ctx.forget_product(product_id, cell.get_id());
        tracing::warn!(shard = state.shard_id.0, %product_id, "restarting product actor from the store");
        if let Err(error) = state.spawn(&myself, product_id).await {
            tracing::warn!(%product_id, %error, "restart failed; the next request will retry");
        }
        Ok(())
    }
}

impl ShardState {
    async fn spawn(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        product_id: ProductId,
    ) -> Result<ProductHandle, HandleError> {
        if let Some(handle) = self.members.get(&product_id) {
            return Ok(handle.clone());
        }
        // Asked before the shard left and answered after: the new owner has it now.
        if !self.ctx.ownership().admits(self.shard_id.0) {
            return Err(HandleError::Elsewhere(self.shard_id.0));
        }
        if !self.ctx.catalog().contains(product_id) {
            return Err(HandleError::UnknownProduct(product_id));
        }
        let args = ProductArgs {
            ctx: Arc::clone(&self.ctx),
            product_id,
            dormant: self.dormant.remove(&product_id),
        };
        let (actor, _) = Actor::spawn_linked(None, ProductActor, args, myself.get_cell())
            .await
            .map_err(|error| {
                HandleError::Unavailable(format!("could not start product {product_id}: {error}"))
            })?;
        let handle = ProductHandle::new(actor, self.ctx.now_ms());
        self.products_by_actor
            .insert(handle.actor.get_id(), product_id);
        self.members.insert(product_id, handle.clone());
        self.ctx.register_product(product_id, handle.clone());
        Ok(handle)
    }

    /// Loads the first few of `product_ids`, then queues the rest behind whatever arrived
    /// meanwhile (a startup preload of a large catalog took seconds per shard, and a Buy
    /// Now's spawn behind it timed out).
    async fn preload_some(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        mut product_ids: Vec<ProductId>,
        loaded: usize,
        reply: ractor::RpcReplyPort<usize>,
    ) {
        const PER_MESSAGE: usize = 8;
        let rest = product_ids.split_off(PER_MESSAGE.min(product_ids.len()));
        let loaded = loaded + self.preload(product_ids).await;
        if rest.is_empty() {
            let _ = reply.send(loaded);
            return;
        }
        let message = ShardMsg::PreloadRest {
            rest,
            loaded,
            reply,
        };
        if let Err(error) = myself.cast(message) {
            tracing::debug!(%error, "preload stopped with its shard");
        }
    }

    async fn preload(&mut self, product_ids: Vec<ProductId>) -> usize {
        if !self.ctx.ownership().admits(self.shard_id.0) {
            return 0;
        }
        let since_ms = self.ctx.idempotency_horizon_ms();
        let mut loaded = 0;
        for product_id in product_ids {
            if self.members.contains_key(&product_id) || self.dormant.contains_key(&product_id) {
                continue;
            }
            let state = match self.ctx.ledger().load_product(product_id, since_ms).await {
                Ok(Some(state)) => state,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%product_id, %error, "preload failed");
                    continue;
                }
            };
            let product = state.product;
            match engine::stock::ProductStock::restore(
                product.id,
                product.price,
                state.stock,
                self.ctx.now_ms(),
            ) {
                Ok(stock) => {
                    self.ctx.note_sale(&stock);
                    self.dormant
                        .insert(product_id, Box::new(Dormant { product, stock }));
                    loaded += 1;
                }
                Err(error) => {
                    tracing::error!(%product_id, %error, "preload found inconsistent stock")
                }
            }
        }
        loaded
    }

    async fn create(&mut self, product: Product, stock: u64) -> Result<Product, AdminError> {
        if self.ctx.catalog().contains(product.id) {
            return Err(AdminError::ProductExists(product.id));
        }
        let (done, outcome) = tokio::sync::oneshot::channel();
        let mut ops = vec![WriteOp::PutProduct {
            product: product.clone(),
            stock_initial: stock,
            shelf_change: i64::try_from(stock)
                .map_err(|_| AdminError::Unavailable("stock overflows".into()))?,
            at_ms: self.ctx.now_ms(),
        }];
        match self.ctx.ownership().fence(self.shard_id.0) {
            Fence::Unneeded => {}
            Fence::Lease(lease) if self.ctx.ownership().admits(self.shard_id.0) => {
                ops.push(WriteOp::Fence(lease))
            }
            Fence::Lease(_) | Fence::NotOwned => {
                return Err(AdminError::Unavailable(format!(
                    "shard {} is served by another node",
                    self.shard_id.0
                )));
            }
        }
        self.ctx.committer().submit(ops, move |outcome| {
            let _ = done.send(outcome);
        });
        match outcome.await {
            Ok(CommitOutcome::Committed) => {
                self.ctx.catalog().put(product.clone());
                // A new product's state is known without reading it back: resident at once,
                // so its first Buy Now needs no store read.
                let stock = engine::stock::ProductStock::new(product.id, product.price, stock);
                self.dormant.insert(
                    product.id,
                    Box::new(Dormant {
                        product: product.clone(),
                        stock,
                    }),
                );
                Ok(product)
            }
            Ok(other) => Err(AdminError::Unavailable(format!("{other:?}"))),
            Err(_) => Err(AdminError::Unavailable("the committer stopped".into())),
        }
    }

    /// The shard leaves this node. Its ownership is already `Leaving` (no new requests):
    /// every actor finishes what it decided (its batches commit under the lease, or are
    /// fenced), then stops; the dormant products go. The next owner loads from the store.
    async fn release(&mut self) -> usize {
        let members = std::mem::take(&mut self.members);
        self.dormant.clear();
        let timeout = self.ctx.settings().request_timeout;
        let mut drains = tokio::task::JoinSet::new();
        for (product_id, handle) in members {
            drains.spawn(async move {
                let drained = handle.actor.call(ProductMsg::Drain, Some(timeout)).await;
                if !matches!(drained, Ok(CallResult::Success(()))) {
                    // Its batches still carry the lease: they commit, or the store fences
                    // them once the next owner takes the shard. Nothing lands after that.
                    tracing::warn!(%product_id, "a product did not drain before its shard left");
                }
                (product_id, handle)
            });
        }
        let mut stopped = 0;
        while let Some(drained) = drains.join_next().await {
            let Ok((product_id, handle)) = drained else {
                continue;
            };
            self.ctx.forget_product(product_id, handle.actor.get_id());
            handle.actor.stop(Some("shard released".into()));
            stopped += 1;
        }
        stopped
    }

    async fn sweep(&mut self) {
        let idle_before_ms = self
            .ctx
            .now_ms()
            .saturating_sub(self.ctx.settings().passivate_after.as_millis() as u64);
        let idle: Vec<ProductId> = self
            .members
            .iter()
            .filter(|(_, handle)| {
                handle.in_flight.current() == 0 && handle.last_active_ms() < idle_before_ms
            })
            .map(|(product_id, _)| *product_id)
            .collect();
        for product_id in idle {
            let Some(handle) = self.members.get(&product_id).cloned() else {
                continue;
            };
            let answer = handle
                .actor
                .call(
                    ProductMsg::Passivate,
                    Some(self.ctx.settings().request_timeout),
                )
                .await;
            if let Ok(CallResult::Success(Some(dormant))) = answer {
                self.members.remove(&product_id);
                self.ctx.forget_product(product_id, handle.actor.get_id());
                self.dormant.insert(product_id, dormant);
            }
        }
    }
}
