//! The store contracts against the embedded SQLite database.

mod common;

use std::sync::Arc;

use persistence::Database;

async fn open() -> (tempfile::TempDir, Arc<Database>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Database::open(dir.path()).await.expect("open");
    (dir, Arc::new(store))
}

/// Each contract of `common`, on a fresh database file.
macro_rules! on_sqlite {
    ($($contract:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $contract() {
            let (_dir, store) = open().await;
            common::$contract(store).await;
        }
    )*};
}

contracts!(on_sqlite);

/// Under commits that never pause, the WAL stays bounded: the group committer, between two
/// batches, runs a RESTART checkpoint once the background checkpoints caught up with a WAL
/// past 32 MiB (or, failing that, every 2 s), after which SQLite writes the WAL from its
/// start again (and cuts a file grown past the size limit back to it). Before, PASSIVE
/// checkpoints never caught the last frame under such a stream and the file grew with
/// everything written (261 MB after 4 s here); a RESTART from the background task raced
/// the writer and often lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_a_stream_of_commits() {
    use persistence::{CommitOutcome, GroupCommitSettings, GroupCommitter, OrderLedger};
    /// Orders written: several times the limit's worth of WAL (about 1 KB each).
    const ORDERS: u128 = 200_000;
    /// The database's `journal_size_limit`.
    const LIMIT: u64 = 64 * 1024 * 1024;
    let (dir, store) = open().await;
    store
        .commit(&[common::put_product(1, u64::MAX / 4)])
        .await
        .expect("product");
    let (committer, _task) = GroupCommitter::start(store, GroupCommitSettings::default());
    let wal = dir.path().join("flashcart.db-wal");
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let (mut n, mut largest) = (0u128, 0u64);
    while n < ORDERS {
        let batch: Vec<_> = (0..200)
            .map(|_| {
                n += 1;
                common::place(common::order(n, n as u64, 1, 1, None))
            })
            .collect();
        let (done, outcome) = tokio::sync::oneshot::channel();
        committer.submit(batch, move |outcome| {
            let _ = done.send(outcome);
        });
        assert_eq!(outcome.await.expect("answered"), CommitOutcome::Committed);
        largest = largest.max(wal_size());
    }
    eprintln!("{n} orders; the WAL was {largest} B at most");
    assert!(
        largest <= LIMIT,
        "the WAL grew to {largest} B under {n} orders (limit {LIMIT} B)"
    );
}

/// Batches of orders go through statements padded to a few sizes (`batch_statements.rs`):
/// every size lands whole, padding rows never do, including a batch past one statement's
/// parameter cap (3,640 orders of 9 columns), which takes two.
#[tokio::test]
async fn every_batch_size_stores_exactly_its_orders() {
    use common::{order, place, put_product};
    use engine::ProductId;
    use persistence::OrderLedger;

    let (_dir, store) = open().await;
    store
        .commit(&[put_product(1, 10_000)])
        .await
        .expect("product");
    let mut next = 1u128;
    let mut placed = 0;
    for size in (1..=9).chain([31, 33, 3_641]) {
        let batch: Vec<_> = (next..next + size)
            .map(|n| place(order(n, n as u64, 1, 1, None)))
            .collect();
        store.commit(&batch).await.expect("batch");
        next += size;
        placed += size as usize;
        let state = store
            .load_product(ProductId(1), 0)
            .await
            .expect("load")
            .expect("product 1");
        assert_eq!(state.stock.lines.len(), placed, "after a batch of {size}");
    }
}

/// One engine per data directory: a second store opened on a directory in use is refused
/// with an error that says so (two engines would each answer the same products, and each
/// make an order of the same idempotency key). Once the first is gone, it opens again.
#[tokio::test]
async fn a_data_directory_opens_for_one_engine_at_a_time() {
    let (dir, store) = open().await;
    match Database::open(dir.path()).await {
        Err(persistence::StoreError::InUse(message)) => {
            assert!(
                message.contains("in use by another flashcart engine"),
                "{message}"
            );
        }
        other => panic!("a second engine on one directory: {other:?}"),
    }
    store.close().await;
    drop(store);
    Database::open(dir.path())
        .await
        .expect("the directory opens once the first engine is gone");
}

/// SQLite keeps no index on Buy Now's idempotency keys (migration 0026): the product's
/// actor is their check, and rebuilding it from the store refuses two orders that share a
/// key, so a product whose rows broke that promise does not start.
#[tokio::test]
async fn two_buy_now_orders_with_one_key_stop_their_product() {
    use engine::stock::ProductStock;
    use engine::{IdempotencyKey, Money, ProductId};
    use persistence::OrderLedger;

    let (_dir, store) = open().await;
    let key = IdempotencyKey::parse("k-twice").expect("key");
    let with_the_key = |n: u128| {
        let mut order = common::order(n, 9, 1, 1, None);
        order.idempotency_key = key.clone();
        common::place(order)
    };
    store
        .commit(&[common::put_product(1, 5), with_the_key(1), with_the_key(2)])
        .await
        .expect("the store takes both");
    let state = store
        .load_product(ProductId(1), 0)
        .await
        .expect("load")
        .expect("exists");
    let refused = ProductStock::restore(ProductId(1), Money(5_000), state.stock, 300)
        .expect_err("two orders share a key");
    assert!(
        refused.to_string().contains("share an idempotency key"),
        "{refused}"
    );
}
