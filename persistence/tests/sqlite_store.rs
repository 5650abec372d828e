//! The store contract against the embedded SQLite store.

mod common;

use std::sync::Arc;

use persistence::{SqliteStore, Store};

async fn open() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).await.expect("open");
    (dir, Arc::new(store))
}

#[tokio::test]
async fn committed_orders_rebuild_the_same_stock() {
    let (_dir, store) = open().await;
    common::committed_orders_rebuild_the_same_stock(store).await;
}

#[tokio::test]
async fn a_failing_write_rolls_back_the_whole_batch() {
    let (_dir, store) = open().await;
    common::a_failing_write_rolls_back_the_whole_batch(store).await;
}

#[tokio::test]
async fn the_committer_batches_submissions_and_barriers_wait_for_them() {
    let (_dir, store) = open().await;
    common::the_committer_batches_submissions_and_barriers_wait_for_them(store).await;
}

#[tokio::test]
async fn inventory_levels_follow_the_orders() {
    let (_dir, store) = open().await;
    common::inventory_levels_follow_the_orders(store).await;
}
