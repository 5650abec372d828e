//! What a cluster node asks of the others, whatever carries it (the gateway's internal
//! HTTP listener; a direct call in the two-node tests). Each request names a shard and
//! goes to the node serving it: the lines of an order that node holds
//! (`remote_hold.rs`), the price and units of a product it sells (`cart.rs`).

use std::sync::Arc;

use engine::ProductId;

use crate::cart::Offer;
use crate::remote_hold::{HoldRequest, HoldSettlement, PeerAnswer};
use crate::shop::Shop;

#[async_trait::async_trait]
pub trait NodeChannel: Send + Sync + 'static {
    /// Asks the node serving `request.shard` to hold the request's lines.
    async fn hold(&self, request: HoldRequest) -> PeerAnswer;
    /// Tells `peer` (as [`PeerAnswer::Held`] named it) how the order's transaction ended.
    async fn settle(&self, peer: &str, settlement: &HoldSettlement) -> Result<(), String>;
    /// The offer of a product of `shard` as its node has it now; `None`: no such product.
    async fn offer(&self, shard: u32, product_id: ProductId) -> Result<Option<Offer>, String>;
}

/// A request for a shard this node no longer serves: the caller asks again, elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardMoved(pub u32);

impl Shop {
    /// Connects this node to the others (a cluster node does it at start).
    pub fn connect_node_channel(&self, channel: Arc<dyn NodeChannel>) {
        self.ctx.set_node_channel(channel);
    }
}
