//! Which node owns each virtual shard: the cluster's fencing (issue 15).
//!
//! Taking a shard bumps its epoch. A clustered node puts the lease of every shard its
//! writes belong to into the batch ([`WriteOp::Fence`](crate::WriteOp::Fence)), and the
//! batch statement checks them in the same transaction (`ledger/batch_statements.rs`): if
//! one is no longer current, nothing of the batch is written and the commit fails with
//! [`StoreError::Fenced`]. The check locks the lease rows it read (`FOR SHARE`), so a take
//! that races a batch waits for it: the new owner then loads the shard's state with that
//! batch in it, or the batch fails. Leases live in PostgreSQL only; a cluster needs it.

use async_trait::async_trait;

use crate::database::{Backend, Database, ms_to_ts, ts_to_ms};
use crate::error::StoreError;
use crate::row::{StoredRow, int};

/// A node's claim on a shard, valid while `epoch` is the shard's current one.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ShardLease {
    pub shard: u32,
    pub owner_node: String,
    pub epoch: u64,
}

#[async_trait]
pub trait ShardLeases: Send + Sync + 'static {
    /// Makes `node` the shard's owner under a new epoch (the first take is epoch 1), and
    /// returns its lease. Waits for batches still committing under the previous lease.
    async fn take_shard(
        &self,
        shard: u32,
        node: &str,
        at_ms: u64,
    ) -> Result<ShardLease, StoreError>;

    /// Every shard's current lease, by shard.
    async fn shard_leases(&self) -> Result<Vec<ShardLease>, StoreError>;

    /// Every shard's current lease with when it was taken, by shard (for operators).
    async fn lease_records(&self) -> Result<Vec<LeaseRecord>, StoreError>;

    /// Writes (or refreshes) a node's entry in the directory: where the others reach it.
    async fn register_node(
        &self,
        node: &str,
        internal_address: &str,
        at_ms: u64,
    ) -> Result<(), StoreError>;

    /// Every node of the directory, by id.
    async fn cluster_nodes(&self) -> Result<Vec<ClusterNodeEntry>, StoreError>;

    /// Places a shard on a node, whatever the group assigns (an operator's move). The
    /// placement starts unreleased: its current holder has to let it go first.
    async fn place_shard(&self, shard: u32, node: &str, at_ms: u64) -> Result<(), StoreError>;

    /// The holder of a shard placed on `node` let it go: `node` may take it now.
    async fn release_placement(&self, shard: u32, node: &str) -> Result<(), StoreError>;

    /// Forgets the placements on `node` (a draining node's shards follow the group again).
    async fn clear_placements(&self, node: &str) -> Result<(), StoreError>;

    /// Every placement, by shard.
    async fn placements(&self) -> Result<Vec<ShardPlacement>, StoreError>;

    /// Whether a hold on lines of these shards has ended for good: PostgreSQL's clock has
    /// passed `until_ms`, read while their lease rows are locked. Then no batch carrying
    /// that deadline ([`WriteOp::HoldUntil`](crate::WriteOp::HoldUntil)) can commit any
    /// more, and every one that did is visible: what the store holds is the final word on
    /// the held lines.
    async fn hold_expired(&self, shards: &[u32], until_ms: u64) -> Result<bool, StoreError>;
}

/// A shard an operator placed on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlacement {
    pub shard: u32,
    pub node_id: String,
    /// Its previous holder let it go.
    pub released: bool,
}

/// A lease and when it was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    pub lease: ShardLease,
    pub taken_at_ms: u64,
}

/// A node as the directory has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNodeEntry {
    pub node_id: String,
    pub internal_address: String,
    pub started_at_ms: u64,
    pub seen_at_ms: u64,
}

const TAKE: &str = concat!(
    "INSERT INTO shard_leases (shard, owner_node, epoch, taken_at) VALUES ($1, $2, 1, ",
    ms_to_ts!("$3"),
    ") ON CONFLICT (shard) DO UPDATE SET owner_node = excluded.owner_node, ",
    "epoch = shard_leases.epoch + 1, taken_at = excluded.taken_at ",
    "RETURNING shard, owner_node, epoch"
);

const ALL: &str = "SELECT shard, owner_node, epoch FROM shard_leases ORDER BY shard";

const RECORDS: &str = concat!(
    "SELECT shard, owner_node, epoch, ",
    ts_to_ms!("taken_at"),
    " AS taken_at_ms FROM shard_leases ORDER BY shard"
);

const PLACE: &str = concat!(
    "INSERT INTO shard_placements (shard, node_id, released, placed_at) VALUES ($1, $2, false, ",
    ms_to_ts!("$3"),
    ") ON CONFLICT (shard) DO UPDATE SET node_id = excluded.node_id, released = false, ",
    "placed_at = excluded.placed_at"
);

const RELEASE_PLACEMENT: &str =
    "UPDATE shard_placements SET released = true WHERE shard = $1 AND node_id = $2";

const CLEAR_PLACEMENTS: &str = "DELETE FROM shard_placements WHERE node_id = $1";

/// Locks the lease rows first (waiting for the batches that hold them `FOR SHARE`), then
/// reads the clock: a CASE tries its branches in order.
const HOLD_EXPIRED: &str = concat!(
    "WITH locked AS (SELECT 1 FROM shard_leases WHERE shard = ANY($1::int4[]) FOR UPDATE) ",
    "SELECT CASE WHEN (SELECT count(*) FROM locked) < 0 THEN false ",
    "ELSE clock_timestamp() >= to_timestamp($2::int8 / 1000.0) END AS expired"
);

const PLACEMENTS: &str = "SELECT shard, node_id, released FROM shard_placements ORDER BY shard";

const REGISTER: &str = concat!(
    "INSERT INTO cluster_nodes (node_id, internal_address, started_at, seen_at) VALUES ($1, $2, ",
    ms_to_ts!("$3"),
    ", ",
    ms_to_ts!("$3"),
    ") ON CONFLICT (node_id) DO UPDATE SET seen_at = excluded.seen_at, ",
    // A node that starts again (new address, new start) replaces its old entry.
    "started_at = CASE WHEN cluster_nodes.internal_address = excluded.internal_address ",
    "THEN cluster_nodes.started_at ELSE excluded.started_at END, ",
    "internal_address = excluded.internal_address"
);

const NODES: &str = concat!(
    "SELECT node_id, internal_address, ",
    ts_to_ms!("started_at"),
    " AS started_at_ms, ",
    ts_to_ms!("seen_at"),
    " AS seen_at_ms FROM cluster_nodes ORDER BY node_id"
);

#[async_trait]
impl ShardLeases for Database {
    async fn take_shard(
        &self,
        shard: u32,
        node: &str,
        at_ms: u64,
    ) -> Result<ShardLease, StoreError> {
        if node.is_empty() {
            return Err(StoreError::Conflict("a lease needs a node id".into()));
        }
        let pool = postgres(self)?;
        let row = sqlx::query(TAKE)
            .bind(shard_number(shard)?)
            .bind(node)
            .bind(int(at_ms)?)
            .fetch_one(pool)
            .await?;
        lease(&row)
    }

    async fn shard_leases(&self) -> Result<Vec<ShardLease>, StoreError> {
        let pool = postgres(self)?;
        sqlx::query(ALL)
            .fetch_all(pool)
            .await?
            .iter()
            .map(lease)
            .collect()
    }

    async fn lease_records(&self) -> Result<Vec<LeaseRecord>, StoreError> {
        let pool = postgres(self)?;
        sqlx::query(RECORDS)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(LeaseRecord {
                    lease: lease(row)?,
                    taken_at_ms: row.uint("taken_at_ms")?,
                })
            })
            .collect()
    }

    async fn register_node(
        &self,
        node: &str,
        internal_address: &str,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        if node.is_empty() || internal_address.is_empty() {
            return Err(StoreError::Conflict(
                "a node needs an id and an address".into(),
            ));
        }
        let pool = postgres(self)?;
        sqlx::query(REGISTER)
            .bind(node)
            .bind(internal_address)
            .bind(int(at_ms)?)
            .execute(pool)
            .await?;
        Ok(())
    }

    async fn place_shard(&self, shard: u32, node: &str, at_ms: u64) -> Result<(), StoreError> {
        if node.is_empty() {
            return Err(StoreError::Conflict("a placement needs a node id".into()));
        }
        sqlx::query(PLACE)
            .bind(shard_number(shard)?)
            .bind(node)
            .bind(int(at_ms)?)
            .execute(postgres(self)?)
            .await?;
        Ok(())
    }

    async fn release_placement(&self, shard: u32, node: &str) -> Result<(), StoreError> {
        sqlx::query(RELEASE_PLACEMENT)
            .bind(shard_number(shard)?)
            .bind(node)
            .execute(postgres(self)?)
            .await?;
        Ok(())
    }

    async fn clear_placements(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query(CLEAR_PLACEMENTS)
            .bind(node)
            .execute(postgres(self)?)
            .await?;
        Ok(())
    }

    async fn placements(&self) -> Result<Vec<ShardPlacement>, StoreError> {
        sqlx::query(PLACEMENTS)
            .fetch_all(postgres(self)?)
            .await?
            .iter()
            .map(|row| {
                Ok(ShardPlacement {
                    shard: u32::try_from(row.int("shard")?)
                        .map_err(|_| StoreError::Decode("a negative shard".into()))?,
                    node_id: row.text("node_id")?,
                    released: sqlx::Row::try_get::<bool, _>(row, "released")?,
                })
            })
            .collect()
    }

    async fn hold_expired(&self, shards: &[u32], until_ms: u64) -> Result<bool, StoreError> {
        let shards = shards
            .iter()
            .map(|shard| shard_number(*shard))
            .collect::<Result<Vec<_>, _>>()?;
        let row = sqlx::query(HOLD_EXPIRED)
            .bind(&shards)
            .bind(int(until_ms)?)
            .fetch_one(postgres(self)?)
            .await?;
        Ok(sqlx::Row::try_get::<bool, _>(&row, "expired")?)
    }

    async fn cluster_nodes(&self) -> Result<Vec<ClusterNodeEntry>, StoreError> {
        let pool = postgres(self)?;
        sqlx::query(NODES)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(ClusterNodeEntry {
                    node_id: row.text("node_id")?,
                    internal_address: row.text("internal_address")?,
                    started_at_ms: row.uint("started_at_ms")?,
                    seen_at_ms: row.uint("seen_at_ms")?,
                })
            })
            .collect()
    }
}

fn postgres(store: &Database) -> Result<&sqlx::PgPool, StoreError> {
    match store.pool() {
        Backend::Postgres(pool) => Ok(pool),
        Backend::Sqlite(_) => Err(leases_need_postgres()),
    }
}

/// What the embedded store answers to anything about leases: a cluster runs on PostgreSQL.
pub(crate) fn leases_need_postgres() -> StoreError {
    StoreError::Unavailable("shard leases need PostgreSQL (a cluster runs on it)".into())
}

pub(crate) fn shard_number(shard: u32) -> Result<i32, StoreError> {
    i32::try_from(shard).map_err(|_| StoreError::Conflict(format!("shard {shard} is out of range")))
}

fn lease(row: &sqlx::postgres::PgRow) -> Result<ShardLease, StoreError> {
    Ok(ShardLease {
        shard: u32::try_from(row.int("shard")?)
            .map_err(|_| StoreError::Decode("a negative shard".into()))?,
        owner_node: row.text("owner_node")?,
        epoch: row.uint("epoch")?,
    })
}
