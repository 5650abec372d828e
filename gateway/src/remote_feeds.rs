//! Live stock of products served by other nodes, for this node's screens. One relay per
//! product: a WebSocket to the owner's node channel, whose values (already coalesced by
//! the owner's feed) go into a local channel that every screen of this node shares. So a
//! thousand screens of a remote product cost the owner one connection, not a thousand.
//!
//! The relay follows the product: when its connection ends (the owner stopped or handed
//! the shard off), it reads the routes again and reconnects to the new owner, or to this
//! node's own feed if the shard came here. It ends when the last screen is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actors::{Shop, StockUpdate};
use cluster::ShardRoutes;
use engine::ProductId;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::feed_client::StockFeedClient;

/// Pause before a relay tries again to reach a product's owner.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);
/// Attempts to reach the owner before the relay gives up (its screens are then closed and
/// reconnect, as they would after a restart).
const RECONNECT_ATTEMPTS: usize = 50;

pub struct RemoteFeeds {
    node_id: String,
    shop: Shop,
    routes: Arc<ShardRoutes>,
    relays: Mutex<HashMap<ProductId, watch::Sender<StockUpdate>>>,
}

impl RemoteFeeds {
    pub fn new(node_id: String, shop: Shop, routes: Arc<ShardRoutes>) -> Arc<Self> {
        Arc::new(Self {
            node_id,
            shop,
            routes,
            relays: Mutex::new(HashMap::new()),
        })
    }

    /// The live stock of a product served by another node.
    pub async fn watch(
        self: &Arc<Self>,
        product: ProductId,
    ) -> Result<watch::Receiver<StockUpdate>, ApiError> {
        if let Some(receiver) = self.existing(product) {
            return Ok(receiver);
        }
        let mut source = self.connect(product).await?;
        let first = source.next().await?;
        let mut relays = self.relays.lock().unwrap_or_else(PoisonError::into_inner);
        // Another screen may have started a relay meanwhile: join it, drop this one.
        if let Some(sender) = relays.get(&product)
            && !sender.is_closed()
        {
            return Ok(sender.subscribe());
        }
        let (sender, receiver) = watch::channel(first);
        relays.insert(product, sender.clone());
        drop(relays);
        tokio::spawn(Arc::clone(self).relay(product, source, sender));
        Ok(receiver)
    }

    fn existing(&self, product: ProductId) -> Option<watch::Receiver<StockUpdate>> {
        let relays = self.relays.lock().unwrap_or_else(PoisonError::into_inner);
        relays
            .get(&product)
            .filter(|sender| !sender.is_closed())
            .map(watch::Sender::subscribe)
    }

    /// A source of the product's values: the owner's feed, or this node's own once the
    /// shard is here.
    async fn connect(&self, product: ProductId) -> Result<Source, ApiError> {
        let shard = self.shop.shard_of(product);
        let mut problem = String::from("no node serves it");
        for attempt in 0..RECONNECT_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                let _ = self.routes.refresh().await;
            }
            if self.shop.serves(product) {
                let mut local = self.shop.watch_stock(product).await?;
                // Its current value is the first one relayed.
                local.mark_changed();
                return Ok(Source::Local(local));
            }
            let Some(route) = self.routes.route(shard) else {
                continue;
            };
            if route.node_id == self.node_id {
                continue;
            }
            let base = format!("http://{}", route.address);
            match StockFeedClient::connect_from_node(&base, product, &self.node_id).await {
                Ok(client) => return Ok(Source::Remote(Box::new(client))),
                Err(error) => problem = format!("node {}: {error}", route.node_id),
            }
        }
        Err(ApiError::Unavailable(format!(
            "the stock of product {product} could not be followed: {problem}"
        )))
    }

    /// Copies the source's values into the shared channel until no screen is left.
    async fn relay(
        self: Arc<Self>,
        product: ProductId,
        mut source: Source,
        sender: watch::Sender<StockUpdate>,
    ) {
        loop {
            tokio::select! {
                () = sender.closed() => break,
                next = source.next() => match next {
                    Ok(update) => {
                        sender.send_replace(update);
                    }
                    Err(error) => {
                        tracing::debug!(%product, %error, "stock relay lost its source; reconnecting");
                        match self.connect(product).await {
                            Ok(reconnected) => source = reconnected,
                            Err(error) => {
                                tracing::warn!(%product, %error, "stock relay gave up");
                                break;
                            }
                        }
                    }
                },
            }
        }
        let mut relays = self.relays.lock().unwrap_or_else(PoisonError::into_inner);
        if relays
            .get(&product)
            .is_some_and(|current| current.same_channel(&sender))
        {
            relays.remove(&product);
        }
    }
}

enum Source {
    Remote(Box<StockFeedClient>),
    Local(watch::Receiver<StockUpdate>),
}

impl Source {
    async fn next(&mut self) -> Result<StockUpdate, ApiError> {
        match self {
            Source::Remote(client) => client
                .next()
                .await
                .map(StockUpdate::of)
                .map_err(|error| ApiError::Unavailable(error.to_string())),
            Source::Local(receiver) => match receiver.changed().await {
                Ok(()) => Ok(receiver.borrow_and_update().clone()),
                Err(_) => Err(ApiError::Unavailable("the product's feed ended".into())),
            },
        }
    }
}
