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

/// Under commits that never pause, the WAL still starts over: the background checkpoints
/// (a RESTART among them once a second) let it be written from its start again and cut
/// back to the size limit, so the file shrinks now and then instead of growing with
/// everything written. Before, a PASSIVE checkpoint never caught the last frame under such
/// a stream, and the file only grew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_a_stream_of_commits() {
    use persistence::OrderLedger;
    let (dir, store) = open().await;
    store
        .commit(&[common::put_product(1, u64::MAX / 4)])
        .await
        .expect("product");
    let wal = dir.path().join("flashcart.db-wal");
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let started = std::time::Instant::now();
    let (mut n, mut last, mut largest, mut shrank) = (0u128, 0u64, 0u64, 0u32);
    // Thirty RESTART attempts at most; each needs a moment with the writer between commits
    // and no reader in the WAL. Alone this test sees one within 2-6 s; beside the other
    // tests of this file (their readers and writers on the same cores), 10 s was not
    // always enough.
    while shrank == 0 && started.elapsed() < std::time::Duration::from_secs(30) {
        let batch: Vec<_> = (0..200)
            .map(|_| {
                n += 1;
                common::place(common::order(n, n as u64, 1, 1, None))
            })
            .collect();
        store.commit(&batch).await.expect("commit");
        let size = wal_size();
        if size < last {
            shrank += 1;
        }
        (last, largest) = (size, largest.max(size));
    }
    eprintln!("{n} orders; the WAL shrank {shrank} times, at most {largest} B, now {last} B");
    assert!(
        shrank > 0,
        "the WAL never started over under {n} orders: {largest} B at most, {last} B now"
    );
}
