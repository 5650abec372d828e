//! A clustered node's shards: taken under a lease when the membership assigns them, handed
//! back when it revokes them, dropped at once when the store refuses a lease (another node
//! took the shard while this one was paused or cut off). A node alone owns every shard and
//! none of this applies.

use std::collections::HashSet;
use std::sync::Arc;

use engine::ProductId;
use persistence::{ShardLease, StoreError};
use ractor::rpc::CallResult;
use tokio::sync::mpsc;

use super::Shop;
use crate::context::Context;
use crate::protocol::ShardMsg;

impl Shop {
    /// Runs as one node of a cluster: sells only from the shards it took.
    pub fn is_clustered(&self) -> bool {
        self.ctx.ownership().is_clustered()
    }

    /// The virtual shard of a product.
    pub fn shard_of(&self, product_id: ProductId) -> u32 {
        self.ctx.shard_of(product_id)
    }

    /// New requests for this product are served on this node.
    pub fn serves(&self, product_id: ProductId) -> bool {
        self.ctx.admits(product_id)
    }

    /// New requests for this shard are served on this node.
    pub fn serves_shard(&self, shard: u32) -> bool {
        self.ctx.ownership().admits(shard)
    }

    /// The shards this node owns now, with their leases (none for a node alone).
    pub fn shard_leases(&self) -> Vec<ShardLease> {
        self.ctx.ownership().leases()
    }

    /// This node took these leases in the store (the membership assigned their shards):
    /// it serves them from now on. Their unpaid orders go on this node's reservation clock,
    /// read after the take, so every batch of the previous owner is in them.
    pub async fn take_shards(&self, leases: Vec<ShardLease>) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let shards: HashSet<u32> = leases.iter().map(|lease| lease.shard).collect();
        // Ids other nodes handed out since this one started: allocate past them.
        self.ctx
            .observe_high_water(self.ctx.ledger().id_high_water().await?);
        // Products created by other nodes since this one read the catalog may be among them.
        for product in self.ctx.stores().catalog.load_catalog().await? {
            if !self.ctx.catalog().contains(product.id) {
                self.ctx.observe_product_id(product.id);
                self.ctx.catalog().put(product);
            }
        }
        let pending = self.ctx.ledger().pending_orders().await?;
        for lease in leases {
            self.ctx.ownership().grant(lease);
        }
        let deadlines = pending
            .iter()
            .filter(|order| {
                order
                    .items
                    .first()
                    .is_some_and(|item| shards.contains(&self.ctx.shard_of(item.product_id)))
            })
            .map(|order| (order.id, order.expires_at_ms))
            .collect::<Vec<_>>();
        tracing::info!(
            shards = shards.len(),
            pending_orders = deadlines.len(),
            "shards taken"
        );
        self.ctx.track_new_orders(deadlines);
        if self.ctx.settings().preload_on_start {
            let products: Vec<ProductId> = self
                .product_ids()
                .into_iter()
                .filter(|product_id| shards.contains(&self.ctx.shard_of(*product_id)))
                .collect();
            self.preload(products).await;
        }
        Ok(())
    }

    /// The membership revokes these shards: no new requests for them, every product actor
    /// commits what it decided, then the shards are gone from this node. Returns once the
    /// committer has finished every write for them, so the next owner reads them whole.
    pub async fn release_shards(&self, shards: &[u32]) {
        for shard in shards {
            self.ctx.ownership().begin_leaving(*shard);
        }
        let stopped = release_actors(&self.ctx, shards).await;
        let _ = self.ctx.committer().barrier().await;
        for shard in shards {
            self.ctx.ownership().revoke(*shard);
        }
        tracing::info!(shards = shards.len(), actors = stopped, "shards released");
    }
}

/// Stops the product actors of these shards once they have finished what they decided.
async fn release_actors(ctx: &Context, shards: &[u32]) -> usize {
    let Some(actors) = ctx.actors() else {
        return 0;
    };
    let mut stopped = 0;
    for shard in shards {
        let Some(supervisor) = actors.shards.get(*shard as usize) else {
            continue;
        };
        // No timeout: each actor's drain is bounded by the request timeout already.
        if let Ok(CallResult::Success(count)) = supervisor.call(ShardMsg::Release, None).await {
            stopped += count;
        }
    }
    stopped
}

/// Drops every shard whose lease the store refused, as the committer reports them. The
/// membership gives it back (to this node or another) with a new lease.
pub(super) fn drop_fenced_shards(ctx: Arc<Context>, mut lost: mpsc::UnboundedReceiver<ShardLease>) {
    let ctx = Arc::downgrade(&ctx);
    tokio::spawn(async move {
        while let Some(lease) = lost.recv().await {
            let Some(ctx) = ctx.upgrade() else {
                return;
            };
            if ctx.ownership().lose(&lease) {
                tracing::warn!(
                    shard = lease.shard,
                    epoch = lease.epoch,
                    "another node took this shard: dropping it"
                );
                release_actors(&ctx, &[lease.shard]).await;
            }
        }
    });
}
