//! The group committer against a database slower than its commit timeout: writers are
//! told the outcome is unknown at the timeout, but a barrier gathered into the same batch
//! passes only once the transaction is over, so a reader behind it sees what it wrote.

// Only its order helpers are used here; its contracts run in the backends' test files.
#[allow(dead_code, unused_imports)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{order, place, put_product};
use engine::order::Order;
use engine::{OrderId, ProductId};
use persistence::{
    CommitOutcome, Database, GroupCommitSettings, GroupCommitter, IdHighWater, InventoryLevel,
    OrderLedger, OrderLookup, ProductState, StoreError, WriteOp,
};
use uuid::Uuid;

/// A ledger whose commits take `delay` longer than the database's own.
struct SlowLedger {
    inner: Arc<Database>,
    delay: Duration,
}

#[async_trait]
impl OrderLedger for SlowLedger {
    async fn commit(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.commit(ops).await
    }

    async fn load_product(
        &self,
        id: ProductId,
        lines_since_ms: u64,
    ) -> Result<Option<ProductState>, StoreError> {
        self.inner.load_product(id, lines_since_ms).await
    }

    async fn pending_orders(&self) -> Result<Vec<Order>, StoreError> {
        self.inner.pending_orders().await
    }

    async fn inventory_levels(&self) -> Result<Vec<InventoryLevel>, StoreError> {
        self.inner.inventory_levels().await
    }

    async fn id_high_water(&self) -> Result<IdHighWater, StoreError> {
        self.inner.id_high_water().await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        OrderLedger::ping(&*self.inner).await
    }
}

#[tokio::test]
async fn a_barrier_waits_for_a_transaction_whose_writers_were_told_unknown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = Arc::new(Database::open(dir.path()).await.expect("open"));
    database
        .commit(&[put_product(1, 10)])
        .await
        .expect("product");
    let slow = Arc::new(SlowLedger {
        inner: Arc::clone(&database),
        delay: Duration::from_millis(400),
    });
    let settings = GroupCommitSettings {
        batch_size_max: 64,
        // Long enough for the barrier to join the write's batch.
        batch_delay: Duration::from_millis(20),
        queue_capacity: 64,
        commit_timeout: Duration::from_millis(100),
        abandon_after: Duration::from_secs(10),
    };
    let (committer, _task) = GroupCommitter::start(slow, settings);
    let (told, outcome) = tokio::sync::oneshot::channel();
    committer.submit(vec![place(order(1, 1, 1, 1, None))], move |outcome| {
        let _ = told.send(outcome);
    });
    let barrier = committer.barrier();
    let (outcome, passed) = tokio::join!(outcome, barrier);
    assert!(
        matches!(outcome, Ok(CommitOutcome::Unknown(_))),
        "the writer could not wait: {outcome:?}"
    );
    passed.expect("the barrier passes");
    // Behind the barrier, the slow transaction is over: its order is there.
    let stored = database
        .order(OrderId(Uuid::from_u128(1)))
        .await
        .expect("read");
    assert!(
        stored.is_some(),
        "a reader behind the barrier sees the write"
    );
}
