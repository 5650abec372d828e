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
