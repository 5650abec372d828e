//! Several nodes selling from one catalog (issue 15).
//!
//! - [`membership`]: which node owns which product shard. Every node joins one Kafka
//!   consumer group on a topic with a partition per shard; the partitions the group
//!   coordinator assigns to a node are the shards it owns, and a node that stops
//!   heartbeating loses them to the others after the session timeout.
//! - Fencing lives with the data it guards: `persistence`'s shard leases (a take bumps a
//!   shard's epoch, and every batch of a clustered node commits only under current
//!   leases).

mod error;
pub mod membership;

pub use error::ClusterError;
pub use membership::{Membership, MembershipSettings, OwnershipChange, ensure_shard_topic};
