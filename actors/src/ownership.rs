//! Which virtual shards this node may sell from, and the lease each batch is fenced with.
//!
//! A node alone owns every shard and fences nothing. A clustered node owns the shards the
//! membership gave it, each under the lease it took in the store (`shard_leases`): every
//! batch that moves a shard's stock carries that lease, and the store writes the batch only
//! if the lease is still the shard's current one. So the table here is this node's belief;
//! the store has the last word, and a node that was paused past its session cannot sell
//! from a shard someone else took meanwhile, whatever it still believes.

use std::sync::{PoisonError, RwLock};

use persistence::ShardLease;

pub(crate) struct Ownership {
    /// `None`: one node, every shard, no fencing.
    shards: Option<RwLock<Vec<Slot>>>,
}

#[derive(Clone, Debug, Default)]
enum Slot {
    #[default]
    NotOwned,
    /// Taking requests, writing under this lease.
    Owned(ShardLease),
    /// Being handed off: no new requests, but what was decided still commits under the
    /// lease (the rebalance waits for it).
    Leaving(ShardLease),
}

/// What a batch for a shard must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fence {
    /// One node: nothing to check.
    Unneeded,
    /// This lease, checked in the batch's transaction.
    Lease(ShardLease),
    /// This node does not own the shard (any more): nothing may be written for it.
    NotOwned,
}

impl Ownership {
    pub fn alone() -> Self {
        Self { shards: None }
    }

    pub fn clustered(shard_count: u32) -> Self {
        Self {
            shards: Some(RwLock::new(vec![Slot::NotOwned; shard_count as usize])),
        }
    }

    pub fn is_clustered(&self) -> bool {
        self.shards.is_some()
    }

    fn slot(&self, shard: u32) -> Option<Slot> {
        let shards = self.shards.as_ref()?;
        let shards = shards.read().unwrap_or_else(PoisonError::into_inner);
        Some(shards.get(shard as usize).cloned().unwrap_or_default())
    }

    fn change<T>(&self, shard: u32, change: impl FnOnce(&mut Slot) -> T) -> Option<T> {
        let shards = self.shards.as_ref()?;
        let mut shards = shards.write().unwrap_or_else(PoisonError::into_inner);
        shards.get_mut(shard as usize).map(change)
    }

    /// The lease a batch of this shard's writes carries.
    pub fn fence(&self, shard: u32) -> Fence {
        match self.slot(shard) {
            None => Fence::Unneeded,
            Some(Slot::Owned(lease) | Slot::Leaving(lease)) => Fence::Lease(lease),
            Some(Slot::NotOwned) => Fence::NotOwned,
        }
    }

    /// New requests for this shard are taken here.
    pub fn admits(&self, shard: u32) -> bool {
        matches!(self.slot(shard), None | Some(Slot::Owned(_)))
    }

    /// This node took `lease`: its shard is ours under that epoch.
    pub fn grant(&self, lease: ShardLease) {
        self.change(lease.shard, |slot| *slot = Slot::Owned(lease.clone()));
    }

    /// The shard is being handed off: refuse new requests, keep the lease for what is in
    /// flight.
    pub fn begin_leaving(&self, shard: u32) {
        self.change(shard, |slot| {
            if let Slot::Owned(lease) = slot {
                *slot = Slot::Leaving(lease.clone());
            }
        });
    }

    /// The shard is gone: nothing more is written for it.
    pub fn revoke(&self, shard: u32) {
        self.change(shard, |slot| *slot = Slot::NotOwned);
    }

    /// The store refused `lost` (someone took its shard since): drop the shard, unless it
    /// was taken again here under a newer epoch. True if the shard was dropped.
    pub fn lose(&self, lost: &ShardLease) -> bool {
        self.change(lost.shard, |slot| match slot {
            Slot::Owned(lease) | Slot::Leaving(lease) if lease == lost => {
                *slot = Slot::NotOwned;
                true
            }
            _ => false,
        })
        .unwrap_or(false)
    }

    /// The shards owned now (leaving ones included), with their leases.
    pub fn leases(&self) -> Vec<ShardLease> {
        let Some(shards) = &self.shards else {
            return Vec::new();
        };
        let shards = shards.read().unwrap_or_else(PoisonError::into_inner);
        shards
            .iter()
            .filter_map(|slot| match slot {
                Slot::Owned(lease) | Slot::Leaving(lease) => Some(lease.clone()),
                Slot::NotOwned => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(shard: u32, epoch: u64) -> ShardLease {
        ShardLease {
            shard,
            owner_node: "n1".into(),
            epoch,
        }
    }

    #[test]
    fn a_node_alone_owns_every_shard_unfenced() {
        let alone = Ownership::alone();
        assert_eq!(alone.fence(7), Fence::Unneeded);
        assert!(alone.admits(255));
        assert!(alone.leases().is_empty());
    }

    #[test]
    fn a_clustered_node_owns_what_it_was_granted_until_revoked_or_fenced() {
        let clustered = Ownership::clustered(4);
        assert_eq!(clustered.fence(1), Fence::NotOwned);
        assert!(!clustered.admits(1));
        clustered.grant(lease(1, 3));
        clustered.grant(lease(2, 1));
        assert!(clustered.admits(1));
        assert_eq!(clustered.fence(1), Fence::Lease(lease(1, 3)));
        // Leaving: no new requests, but what is in flight still commits under the lease.
        clustered.begin_leaving(1);
        assert!(!clustered.admits(1));
        assert_eq!(clustered.fence(1), Fence::Lease(lease(1, 3)));
        assert_eq!(clustered.leases(), vec![lease(1, 3), lease(2, 1)]);
        clustered.revoke(1);
        assert_eq!(clustered.fence(1), Fence::NotOwned);
        // A refusal of an older epoch does not drop a newer lease of the same shard.
        clustered.grant(lease(2, 5));
        assert!(!clustered.lose(&lease(2, 1)));
        assert!(clustered.admits(2));
        assert!(clustered.lose(&lease(2, 5)));
        assert!(!clustered.admits(2));
        // Out of range: never owned, never panics.
        clustered.grant(lease(9, 1));
        assert_eq!(clustered.fence(9), Fence::NotOwned);
        assert!(!clustered.lose(&lease(9, 1)));
    }
}
