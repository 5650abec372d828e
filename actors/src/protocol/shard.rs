//! Messages to a shard supervisor, and the handle callers reach a product actor by.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use engine::{Product, ProductId};
use ractor::{ActorRef, RpcReplyPort};

use super::product::ProductMsg;
use crate::admission::InFlight;
use crate::error::AdminError;

pub enum ShardMsg {
    Spawn {
        product_id: ProductId,
        reply: RpcReplyPort<Result<ProductHandle, HandleError>>,
    },
    Create {
        product: Product,
        stock: u64,
        reply: RpcReplyPort<Result<Product, AdminError>>,
    },
    /// Load these products' state into memory without starting actors; answers how many
    /// were loaded.
    Preload(Vec<ProductId>, RpcReplyPort<usize>),
    /// The rest of a preload, `loaded` so far: a preload goes a few products per message,
    /// so a Buy Now's `Spawn` waits for a few store reads, not for the whole shard.
    PreloadRest {
        rest: Vec<ProductId>,
        loaded: usize,
        reply: RpcReplyPort<usize>,
    },
    /// Look for idle product actors and stop them.
    Sweep,
    /// The shard leaves this node: let every product actor finish what it decided, stop
    /// them and drop the products kept in memory. Answers how many actors were stopped.
    Release(RpcReplyPort<usize>),
}

/// How callers reach a product actor. Cloned out of the directory on every request.
#[derive(Clone)]
pub struct ProductHandle {
    pub actor: ActorRef<ProductMsg>,
    pub in_flight: Arc<InFlight>,
    pub last_active_ms: Arc<AtomicU64>,
}

impl ProductHandle {
    pub fn new(actor: ActorRef<ProductMsg>, now_ms: u64) -> Self {
        Self {
            actor,
            in_flight: Arc::new(InFlight::default()),
            last_active_ms: Arc::new(AtomicU64::new(now_ms)),
        }
    }

    pub fn touch(&self, now_ms: u64) {
        self.last_active_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn last_active_ms(&self) -> u64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HandleError {
    #[error("no product {0}")]
    UnknownProduct(ProductId),
    #[error("{0}")]
    Unavailable(String),
    /// The product's shard is owned by another node (or is moving to one).
    #[error("shard {0} is served by another node")]
    Elsewhere(u32),
}
