//! Several nodes selling from one catalog (issue 15).
//!
//! - [`membership`]: which node owns which product shard. Every node joins one Kafka
//!   consumer group on a topic with a partition per shard; the partitions the group
//!   coordinator assigns to a node are the shards it owns, and a node that stops
//!   heartbeating loses them to the others after the session timeout.
//! - [`node`]: a node of the cluster: its directory entry and heartbeat, its routes.
//! - [`placement`]: which shards this node serves (the group's assignment, overridden by
//!   an operator's placements) and the hand-offs that get it there (take a shard's lease,
//!   then load it; hand a leaving shard off first); drain and move.
//! - [`ops`]: what operators ask beyond one node (the group's state, an event tail).
//! - [`routes`]: which node serves each shard (leases joined with the node directory),
//!   cached, for forwarding a request to its product's owner.
//! - Fencing lives with the data it guards: `persistence`'s shard leases (a take bumps a
//!   shard's epoch, and every batch of a clustered node commits only under current
//!   leases).

mod error;
pub mod membership;
pub mod node;
pub mod ops;
pub mod placement;
pub mod routes;

pub use error::ClusterError;
pub use membership::{
    LeaveGroup, Membership, MembershipSettings, OwnershipChange, Rejoin, ensure_shard_topic,
};
pub use node::{ClusterNode, ClusterView};
pub use routes::{Route, ShardRoutes};
