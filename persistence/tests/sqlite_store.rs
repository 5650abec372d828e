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

on_sqlite!(
    committed_orders_rebuild_the_same_stock,
    a_failing_write_rolls_back_the_whole_batch,
    the_committer_batches_submissions_and_barriers_wait_for_them,
    inventory_levels_follow_the_orders,
    carts_keep_lines_until_they_go_stale,
    reviews_count_once_per_user,
    notifications_are_recorded_once,
    deliveries_keep_the_first_partner_and_the_shipment,
    the_outbox_hands_out_events_in_order,
    orders_are_found_by_key_and_delivery,
);
