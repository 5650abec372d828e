//! Where each shard is served: the lease table joined with the node directory, read from
//! PostgreSQL into memory and refreshed in the background, so routing a request costs a
//! map lookup. A stale entry is harmless: the node it names answers "moved" for a shard it
//! no longer serves, and the caller refreshes and tries again.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use persistence::ShardLeases;

use crate::ClusterError;

/// The node serving a shard, as the store last said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub node_id: String,
    /// Where its node channel listens (`host:port`).
    pub address: String,
    pub epoch: u64,
}

pub struct ShardRoutes {
    store: Arc<dyn ShardLeases>,
    routes: RwLock<HashMap<u32, Route>>,
    /// One refresh at a time; callers that ask meanwhile wait for it instead of adding
    /// their own reads.
    refreshing: tokio::sync::Mutex<()>,
}

impl ShardRoutes {
    /// Reads the routes once, then refreshes them every `every` for as long as the routes
    /// are in use.
    pub async fn start(
        store: Arc<dyn ShardLeases>,
        every: Duration,
    ) -> Result<Arc<Self>, ClusterError> {
        let routes = Arc::new(Self {
            store,
            routes: RwLock::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
        });
        routes.refresh().await?;
        let weak: Weak<Self> = Arc::downgrade(&routes);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(routes) = weak.upgrade() else {
                    return;
                };
                if let Err(error) = routes.refresh().await {
                    tracing::debug!(%error, "shard routes not refreshed");
                }
            }
        });
        Ok(routes)
    }

    /// The node serving `shard`, if any node holds its lease.
    pub fn route(&self, shard: u32) -> Option<Route> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        routes.get(&shard).cloned()
    }

    /// Every shard's route, by shard.
    pub fn all(&self) -> Vec<(u32, Route)> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(u32, Route)> = routes
            .iter()
            .map(|(shard, route)| (*shard, route.clone()))
            .collect();
        all.sort_by_key(|(shard, _)| *shard);
        all
    }

    /// Reads the leases and the directory again.
    pub async fn refresh(&self) -> Result<(), ClusterError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let leases = self.store.shard_leases().await.map_err(store_failed)?;
        let nodes = self.store.cluster_nodes().await.map_err(store_failed)?;
        let addresses: HashMap<String, String> = nodes
            .into_iter()
            .map(|node| (node.node_id, node.internal_address))
            .collect();
        let fresh: HashMap<u32, Route> = leases
            .into_iter()
            .filter_map(|lease| {
                let address = addresses.get(&lease.owner_node)?.clone();
                Some((
                    lease.shard,
                    Route {
                        node_id: lease.owner_node,
                        address,
                        epoch: lease.epoch,
                    },
                ))
            })
            .collect();
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }
}

fn store_failed(error: persistence::StoreError) -> ClusterError {
    ClusterError::Failed(format!("reading shard routes: {error}"))
}
