//! A node of the cluster: the membership's ownership changes, applied to the shop. An
//! assignment becomes a take of each shard's lease in the store (bumping its epoch) and
//! then a load of the shard; a revocation becomes a hand-off (no new requests, the actors
//! commit what they decided) that the rebalance waits for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::Shop;
use persistence::ShardLeases;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::placement::{NodeCommand, Reconciler};
use crate::{
    ClusterError, Membership, MembershipSettings, Rejoin, ShardRoutes, ensure_shard_topic,
};

/// How often a node refreshes its entry in the directory (its `seen_at`).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How often the shard routes are read again. A request that meets a moved shard refreshes
/// them at once; this bounds how long a route to a node that left can stay.
const ROUTES_EVERY: Duration = Duration::from_millis(500);
/// How often the other nodes' catalog changes are read: a product created or a sale
/// scheduled on any node shows on every node within about this long.
const CATALOG_EVERY: Duration = Duration::from_millis(500);

pub struct ClusterNode {
    view: ClusterView,
    membership: Membership,
    tasks: Vec<JoinHandle<()>>,
}

/// What the rest of a node (routes, forwarding, operators) reads of the cluster.
#[derive(Clone)]
pub struct ClusterView {
    settings: MembershipSettings,
    routes: Arc<ShardRoutes>,
    store: Arc<dyn ShardLeases>,
    commands: mpsc::UnboundedSender<NodeCommand>,
}

impl ClusterView {
    pub fn node_id(&self) -> &str {
        &self.settings.node_id
    }

    /// The oldest heartbeat of a node still alive now ([`alive_since_ms`]).
    pub fn alive_since_ms(&self) -> u64 {
        alive_since_ms(self.settings.session_timeout, actors::clock::now_ms())
    }

    /// Which node serves each shard.
    pub fn routes(&self) -> &Arc<ShardRoutes> {
        &self.routes
    }

    /// Every node that ever joined, with its last heartbeat.
    pub async fn directory(&self) -> Result<Vec<persistence::ClusterNodeEntry>, ClusterError> {
        self.store
            .cluster_nodes()
            .await
            .map_err(|error| ClusterError::Failed(format!("reading the directory: {error}")))
    }

    /// Every shard's lease with when it was taken.
    pub async fn lease_records(&self) -> Result<Vec<persistence::LeaseRecord>, ClusterError> {
        self.store
            .lease_records()
            .await
            .map_err(|error| ClusterError::Failed(format!("reading the leases: {error}")))
    }

    /// Hands every shard of this node to the others and leaves the group; the node keeps
    /// answering (by forwarding). Returns once it serves no shard.
    pub async fn drain(&self) -> Result<(), ClusterError> {
        let (done, drained) = tokio::sync::oneshot::channel();
        self.commands
            .send(NodeCommand::Drain(done))
            .map_err(|_| ClusterError::Failed("the node is stopping".into()))?;
        drained
            .await
            .map_err(|_| ClusterError::Failed("the node stopped while draining".into()))
    }

    /// Places `shard` on `node` (an operator's move): its holder hands it off, then `node`
    /// takes it.
    pub async fn place(&self, shard: u32, node: &str) -> Result<(), ClusterError> {
        self.store
            .place_shard(shard, node, actors::clock::now_ms())
            .await
            .map_err(|error| ClusterError::Failed(format!("placing shard {shard}: {error}")))
    }

    /// The shards group as the broker sees it.
    pub async fn group_state(&self) -> Result<crate::ops::GroupState, ClusterError> {
        let (brokers, group) = (self.settings.brokers.clone(), self.settings.group());
        tokio::task::spawn_blocking(move || crate::ops::group_state(&brokers, &group))
            .await
            .map_err(|error| ClusterError::Failed(format!("asking the broker: {error}")))?
    }
}

impl ClusterNode {
    /// Writes this node into the directory (reachable at `advertise`), joins the shards
    /// group, and serves whatever the group assigns this node.
    pub async fn join(
        shop: Shop,
        leases: Arc<dyn ShardLeases>,
        settings: MembershipSettings,
        advertise: String,
    ) -> Result<Self, ClusterError> {
        if !shop.is_clustered() {
            return Err(ClusterError::Failed(
                "a cluster node needs a shop started in cluster mode".into(),
            ));
        }
        leases
            .register_node(&settings.node_id, &advertise, actors::clock::now_ms())
            .await
            .map_err(|error| ClusterError::Failed(format!("registering the node: {error}")))?;
        ensure_shard_topic(&settings).await?;
        let routes = ShardRoutes::start(Arc::clone(&leases), ROUTES_EVERY).await?;
        let (membership, changes) = Membership::join(&settings)?;
        let (commands, received_commands) = mpsc::unbounded_channel();
        let view = ClusterView {
            settings: settings.clone(),
            routes,
            store: Arc::clone(&leases),
            commands,
        };
        let heartbeat = tokio::spawn(heartbeat(
            Arc::clone(&leases),
            Directory {
                node_id: settings.node_id.clone(),
                advertise,
                session_timeout: settings.session_timeout,
            },
            membership.rejoin(),
        ));
        let catalog = tokio::spawn(follow_catalog(shop.clone()));
        let reconciler = Reconciler::new(shop, leases, settings, membership.leave_group());
        let applier = tokio::spawn(reconciler.run(changes, received_commands));
        Ok(Self {
            view,
            membership,
            tasks: vec![heartbeat, applier, catalog],
        })
    }

    pub fn view(&self) -> ClusterView {
        self.view.clone()
    }

    /// Leaves the group: this node's shards are handed off (their actors commit what they
    /// decided) and assigned to the other nodes at once.
    pub async fn leave(self) {
        self.membership.leave().await;
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The oldest heartbeat of a node still counted alive at `now_ms`: one session timeout, plus
/// one heartbeat of slack for a write in flight. The one rule every reader of the directory
/// applies (routing a move, asking for a rebalance, reporting status).
pub fn alive_since_ms(session_timeout: Duration, now_ms: u64) -> u64 {
    let slack = session_timeout + HEARTBEAT_EVERY;
    now_ms.saturating_sub(slack.as_millis() as u64)
}

/// This node's entry in the directory.
struct Directory {
    node_id: String,
    advertise: String,
    session_timeout: Duration,
}

/// Keeps this node's directory entry fresh (operators see when each node was last alive),
/// and asks the group for a rebalance when shards stay leased to a node whose entry went
/// stale: see [`crate::Rejoin`] for why the group alone is not enough on every broker.
/// Keeps this node's catalog and sale listings in step with the other nodes' writes.
async fn follow_catalog(shop: Shop) {
    let mut ticks = tokio::time::interval(CATALOG_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_ms = 0;
    loop {
        ticks.tick().await;
        match shop.follow_catalog_changes(since_ms).await {
            Ok(newest) => since_ms = newest,
            Err(error) => tracing::warn!(%error, "other nodes' catalog changes not read"),
        }
    }
}

async fn heartbeat(leases: Arc<dyn ShardLeases>, directory: Directory, rejoin: Rejoin) {
    let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
    let mut last_rejoin: Option<Instant> = None;
    loop {
        ticks.tick().await;
        let now_ms = actors::clock::now_ms();
        if let Err(error) = leases
            .register_node(&directory.node_id, &directory.advertise, now_ms)
            .await
        {
            // A node that cannot write its own heartbeat does not judge the others'.
            tracing::debug!(%error, "node heartbeat not written");
            continue;
        }
        let stale = match stale_lease_holders(&*leases, &directory, now_ms).await {
            Ok(stale) => stale,
            Err(error) => {
                tracing::debug!(%error, "could not read the directory");
                continue;
            }
        };
        let quiet_for = directory.session_timeout * 2;
        if !stale.is_empty() && last_rejoin.is_none_or(|at| at.elapsed() > quiet_for) {
            tracing::warn!(
                ?stale,
                "shards are leased to nodes that stopped heartbeating; asking the group to rebalance"
            );
            rejoin.request();
            last_rejoin = Some(Instant::now());
        }
    }
}

/// Nodes that hold shard leases and whose heartbeat is older than the session timeout
/// (plus a heartbeat's slack). Only the first live node (by id) answers: one node asks
/// for the rebalance, not all of them.
async fn stale_lease_holders(
    leases: &dyn ShardLeases,
    directory: &Directory,
    now_ms: u64,
) -> Result<Vec<String>, persistence::StoreError> {
    let nodes = leases.cluster_nodes().await?;
    let alive_since = alive_since_ms(directory.session_timeout, now_ms);
    let first_alive = nodes
        .iter()
        .find(|node| node.seen_at_ms >= alive_since)
        .map(|node| node.node_id.as_str());
    if first_alive != Some(directory.node_id.as_str()) {
        return Ok(Vec::new());
    }
    let mut stale: Vec<String> = leases
        .shard_leases()
        .await?
        .into_iter()
        .map(|lease| lease.owner_node)
        .filter(|owner| {
            owner != &directory.node_id
                && nodes
                    .iter()
                    .find(|node| &node.node_id == owner)
                    .is_none_or(|node| node.seen_at_ms < alive_since)
        })
        .collect();
    stale.sort();
    stale.dedup();
    Ok(stale)
}
