//! Which shards this node serves, and the hand-offs that get it there.
//!
//! Two sources decide: the shards group's assignment (Kafka), and the placements an
//! operator made (`flashcart cluster move`, stored in `shard_placements`), which override
//! it, as Akka's external shard allocation overrides its coordinator. This node serves
//! - the shards the group assigned it that are placed nowhere else, and
//! - the shards placed on it;
//! - nothing while it drains (it then leaves the group and only forwards).
//!
//! The reconciler compares that with what the node serves and hands off the difference:
//! a shard that must go is released first (no new requests, actors commit, lease kept
//! until then), and its placement is marked released; a shard placed here is taken only
//! once its holder released it (or is dead), so a move never fences a batch in flight.
//! Group changes keep the group's own ordering: a revocation is answered once the shards
//! are released, an assignment is taken at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::Shop;
use persistence::{ShardLease, ShardLeases, ShardPlacement};
use tokio::sync::{mpsc, oneshot};

use crate::{MembershipSettings, OwnershipChange};

/// How often placements are read again (a move waits at most this long to start).
const PLACEMENTS_EVERY: Duration = Duration::from_millis(250);
/// Pause between attempts to take a lease while the store does not answer.
const TAKE_RETRY: Duration = Duration::from_millis(250);

/// What an operator asks of this node.
pub enum NodeCommand {
    /// Hand every shard to the other nodes, leave the group, keep forwarding. Answered
    /// once this node serves no shard.
    Drain(oneshot::Sender<()>),
}

pub(crate) struct Reconciler {
    pub shop: Shop,
    pub store: Arc<dyn ShardLeases>,
    pub settings: MembershipSettings,
    /// Asks the membership to leave the group (a drain).
    pub leave_group: crate::membership::LeaveGroup,
    assigned: BTreeSet<u32>,
    owned: BTreeSet<u32>,
    placements: HashMap<u32, ShardPlacement>,
    draining: bool,
}

impl Reconciler {
    pub fn new(
        shop: Shop,
        store: Arc<dyn ShardLeases>,
        settings: MembershipSettings,
        leave_group: crate::membership::LeaveGroup,
    ) -> Self {
        Self {
            shop,
            store,
            settings,
            leave_group,
            assigned: BTreeSet::new(),
            owned: BTreeSet::new(),
            placements: HashMap::new(),
            draining: false,
        }
    }

    pub async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<OwnershipChange>,
        mut commands: mpsc::UnboundedReceiver<NodeCommand>,
    ) {
        let mut ticks = tokio::time::interval(PLACEMENTS_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Some(OwnershipChange::Assigned(shards)) => {
                        self.assigned = shards.into_iter().collect();
                        self.reconcile().await;
                    }
                    Some(OwnershipChange::Revoked { shards, released }) => {
                        for shard in &shards {
                            self.assigned.remove(shard);
                        }
                        self.reconcile().await;
                        let _ = released.send(());
                    }
                    None => return,
                },
                command = commands.recv() => match command {
                    Some(NodeCommand::Drain(done)) => {
                        self.draining = true;
                        self.reconcile().await;
                        if let Err(error) = self.store.clear_placements(&self.settings.node_id).await {
                            tracing::warn!(%error, "placements on the drained node not cleared");
                        }
                        self.leave_group.request();
                        let _ = done.send(());
                    }
                    None => return,
                },
                _ = ticks.tick() => {
                    match self.store.placements().await {
                        Ok(placements) => {
                            self.placements = placements
                                .into_iter()
                                .map(|placement| (placement.shard, placement))
                                .collect();
                            self.reconcile().await;
                        }
                        Err(error) => tracing::debug!(%error, "placements not read"),
                    }
                }
            }
        }
    }

    fn me(&self) -> &str {
        &self.settings.node_id
    }

    /// The shards this node should serve now.
    fn desired(&self) -> BTreeSet<u32> {
        if self.draining {
            return BTreeSet::new();
        }
        let me = self.me();
        let placed_elsewhere = |shard: &u32| {
            self.placements
                .get(shard)
                .is_some_and(|placed| placed.node_id != me)
        };
        let mut desired: BTreeSet<u32> = self
            .assigned
            .iter()
            .filter(|shard| !placed_elsewhere(shard))
            .copied()
            .collect();
        desired.extend(
            self.placements
                .values()
                .filter(|placed| placed.node_id == me)
                .map(|placed| placed.shard),
        );
        desired
    }

    async fn reconcile(&mut self) {
        let desired = self.desired();
        let leaving: Vec<u32> = self.owned.difference(&desired).copied().collect();
        if !leaving.is_empty() {
            self.shop.release_shards(&leaving).await;
            for shard in &leaving {
                self.owned.remove(shard);
                // A shard placed on another node: tell it the shard is free to take.
                if let Some(placed) = self.placements.get(shard)
                    && placed.node_id != self.me()
                    && let Err(error) = self.store.release_placement(*shard, &placed.node_id).await
                {
                    tracing::warn!(shard, %error, "the move's release not recorded; its target waits for our heartbeat to stop");
                }
            }
        }
        let coming: Vec<u32> = desired.difference(&self.owned).copied().collect();
        if coming.is_empty() {
            return;
        }
        let ready = self.ready_to_take(&coming).await;
        if ready.is_empty() {
            return;
        }
        let taken = take_leases(&*self.store, &self.settings, &ready).await;
        self.owned.extend(taken.iter().map(|lease| lease.shard));
        if let Err(error) = self.shop.take_shards(taken).await {
            // Owned but without their unpaid orders on the clock: the next take loads them.
            tracing::error!(%error, "shards taken but their pending orders not loaded");
        }
    }

    /// Of the shards coming here, those that may be taken now: assigned by the group (the
    /// group revoked them from their holder first), or placed here and released by their
    /// holder, or held by nobody, by this node, or by a node whose heartbeat stopped.
    async fn ready_to_take(&self, coming: &[u32]) -> Vec<u32> {
        let waiting: Vec<u32> = coming
            .iter()
            .copied()
            .filter(|shard| {
                self.placements
                    .get(shard)
                    .is_some_and(|placed| placed.node_id == self.me() && !placed.released)
                    && !self.assigned.contains(shard)
            })
            .collect();
        if waiting.is_empty() {
            return coming.to_vec();
        }
        let (leases, nodes) = match (
            self.store.shard_leases().await,
            self.store.cluster_nodes().await,
        ) {
            (Ok(leases), Ok(nodes)) => (leases, nodes),
            _ => {
                return coming
                    .iter()
                    .copied()
                    .filter(|shard| !waiting.contains(shard))
                    .collect();
            }
        };
        let alive_since =
            crate::node::alive_since_ms(self.settings.session_timeout, actors::clock::now_ms());
        let holder_alive = |shard: u32| {
            let Some(lease) = leases.iter().find(|lease| lease.shard == shard) else {
                return false;
            };
            lease.owner_node != self.me()
                && nodes
                    .iter()
                    .any(|node| node.node_id == lease.owner_node && node.seen_at_ms >= alive_since)
        };
        coming
            .iter()
            .copied()
            .filter(|shard| !waiting.contains(shard) || !holder_alive(*shard))
            .collect()
    }
}

/// Takes each shard's lease, retrying while the store does not answer, for at most a
/// session timeout: past that the group has likely moved on, and a late take would steal
/// the shard from its next owner. A shard not taken is not served here.
pub(crate) async fn take_leases(
    leases: &dyn ShardLeases,
    settings: &MembershipSettings,
    shards: &[u32],
) -> Vec<ShardLease> {
    let give_up_at = Instant::now() + settings.session_timeout;
    let mut taken = Vec::with_capacity(shards.len());
    for shard in shards {
        loop {
            match leases
                .take_shard(*shard, &settings.node_id, actors::clock::now_ms())
                .await
            {
                Ok(lease) => {
                    taken.push(lease);
                    break;
                }
                Err(error) if Instant::now() < give_up_at => {
                    tracing::warn!(shard, %error, "could not take a shard lease; retrying");
                    tokio::time::sleep(TAKE_RETRY).await;
                }
                Err(error) => {
                    tracing::error!(shard, %error, "giving up on a shard lease");
                    break;
                }
            }
        }
    }
    taken
}
