//! The SQL database behind every concern: the embedded SQLite file (the default) or
//! PostgreSQL (when a database URL is configured).
//!
//! Each concern (`ledger/`, `catalog.rs`, `orders.rs`, `outbox.rs`, ...) implements its
//! narrow trait once, for [`Database`], with [`dialects!`]: the body is compiled once per
//! driver, so binding parameters, running the statement and decoding rows (`row.rs`) are
//! written once. What truly differs between the two is written twice, side by side, where
//! the query is: the SQL text ([`Sql`]) and how an order id is bound
//! ([`Dialect::order_id`]: a `uuid` in PostgreSQL, its text in SQLite). A statement that
//! is the same in both is written once with `$1`-style parameters, which SQLite reads as
//! numbered ones.
//!
//! Why not sqlx's `Any` driver: it erases types (no uuid, no arrays), and the PostgreSQL
//! batch of the hot path lives on arrays (`UNNEST`).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use engine::OrderId;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

use crate::error::StoreError;
use crate::ledger::{BatchConnection, PlanRefresh};
use crate::wal::Wal;

/// One of the two databases, holding whatever each needs (a pool, a transaction...).
#[derive(Clone, Copy)]
pub(crate) enum Backend<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// A transaction on either database.
pub(crate) type Transaction<'c> =
    Backend<sqlx::Transaction<'c, sqlx::Sqlite>, sqlx::Transaction<'c, sqlx::Postgres>>;

/// Runs `$body` against whichever database `$backend` holds: `$inner` is the arm's pool
/// (or transaction), `$dialect` a type implementing [`Dialect`] for it.
macro_rules! dialects {
    ($backend:expr, |$inner:ident, $dialect:ident| $body:expr) => {
        match $backend {
            $crate::database::Backend::Sqlite($inner) => {
                #[allow(unused_imports)]
                use $crate::database::Dialect as _;
                #[allow(dead_code)]
                type $dialect = $crate::database::SqliteDialect;
                $body
            }
            $crate::database::Backend::Postgres($inner) => {
                #[allow(unused_imports)]
                use $crate::database::Dialect as _;
                #[allow(dead_code)]
                type $dialect = $crate::database::PostgresDialect;
                $body
            }
        }
    };
}
pub(crate) use dialects;

/// What differs between the two databases beyond the SQL text.
pub(crate) trait Dialect {
    /// How an order id is bound.
    type OrderId;
    fn order_id(id: OrderId) -> Self::OrderId;
    /// The text of `statement` for this database.
    fn sql(statement: &Sql) -> &'static str;
}

pub(crate) struct SqliteDialect;
pub(crate) struct PostgresDialect;

impl Dialect for SqliteDialect {
    /// SQLite keeps order ids as text (the schema predates sqlx's 16-byte BLOB encoding).
    type OrderId = String;

    fn order_id(id: OrderId) -> String {
        id.0.to_string()
    }

    fn sql(statement: &Sql) -> &'static str {
        statement.sqlite
    }
}

impl Dialect for PostgresDialect {
    type OrderId = Uuid;

    fn order_id(id: OrderId) -> Uuid {
        id.0
    }

    fn sql(statement: &Sql) -> &'static str {
        statement.postgres
    }
}

/// One statement in both dialects.
pub(crate) struct Sql {
    sqlite: &'static str,
    postgres: &'static str,
}

impl Sql {
    /// The same text for both: portable SQL with `$1`-style parameters.
    pub(crate) const fn both(text: &'static str) -> Self {
        Self {
            sqlite: text,
            postgres: text,
        }
    }

    /// A text for each, where the dialects differ (timestamps, casts, arrays).
    pub(crate) const fn each(sqlite: &'static str, postgres: &'static str) -> Self {
        Self { sqlite, postgres }
    }
}

/// Runs one statement of integer parameters in a transaction; the rows it changed.
pub(crate) async fn execute(
    tx: &mut Transaction<'_>,
    sql: &Sql,
    params: &[i64],
) -> Result<u64, StoreError> {
    Ok(dialects!(tx, |tx, D| {
        let mut query = sqlx::query(D::sql(sql));
        for param in params {
            query = query.bind(*param);
        }
        query.execute(&mut **tx).await?.rows_affected()
    }))
}

// Milliseconds since the epoch <-> timestamptz, done in SQL so the engine stays on integers
// (SQLite stores the milliseconds themselves).
macro_rules! ms_to_ts {
    ($param:literal) => {
        concat!("to_timestamp(", $param, "::float8 / 1000.0)")
    };
}
macro_rules! ts_to_ms {
    ($column:literal) => {
        concat!("(extract(epoch from ", $column, ") * 1000)::int8")
    };
}
pub(crate) use {ms_to_ts, ts_to_ms};

/// How to reach PostgreSQL and how long to wait for it.
#[derive(Clone, Debug)]
pub struct PostgresSettings {
    pub url: String,
    /// Connections in the pool: the committer's (kept out of the pool for its batches when
    /// there are two or more), plus recovery reads and lookups.
    pub max_connections: u32,
    /// Longest wait for a connection, and the server-side statement timeout. Matches the
    /// commit timeout: past it, Buy Now answers 503 rather than hang.
    pub timeout: Duration,
    /// A connection is replaced after this long ([`PostgresSettings::CONNECTION_LIFETIME`]).
    pub connection_lifetime: Duration,
}

impl PostgresSettings {
    /// Why connections do not live forever: each keeps the batch statement's generic plan
    /// (`force_generic_plan`, below), and PostgreSQL plans it only once, with the table
    /// sizes of that moment. A plan made while `orders` was nearly empty joins status
    /// changes to it by a hash over a full scan; PostgreSQL re-plans only after an ANALYZE,
    /// and without autovacuum (off on this project's CI machine) none ever comes. Measured
    /// (issue 14): after 200K orders, each batch of expiries took 300-550 ms, scanning every
    /// order. A fresh connection plans again with the sizes of now (an index lookup per
    /// change); reconnecting costs a few milliseconds every half minute. A store that
    /// started on a nearly empty `orders` also has it analyzed once it wrote 20,000 orders,
    /// which ends that window sooner on the kept connection (`ledger/plan_refresh.rs`).
    pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
}

/// The database: implements every concern's trait (`OrderLedger`, `CatalogStore`,
/// `OrderLookup`, `Outbox`, `CartStore`, `ReviewStore`, `NotificationStore`, `Deliveries`).
#[derive(Clone)]
pub struct Database {
    pool: Backend<SqlitePool, PgPool>,
    /// SQLite's one writer: a connection of its own, never lent to a reader. Why: in WAL
    /// mode a connection drops its whole page cache when it finds the WAL changed by
    /// another connection. Taking the next idle connection of a shared pool for each
    /// commit therefore started every commit on a cold cache, reading the indexes it
    /// touches back from the WAL (issue 14). On PostgreSQL, and for the shared in-memory
    /// database, the pool itself.
    sqlite_writer: Option<SqlitePool>,
    /// The embedded file's WAL: its background checkpoints and the committer's restarts.
    wal: Option<Arc<Wal>>,
    /// The embedded data directory's lock: held until the store is closed (or every clone
    /// of it is dropped, or the process ends).
    data_dir_lock: Option<Arc<std::fs::File>>,
    /// PostgreSQL: the group committer's batches go through one kept connection, not the
    /// pool (`ledger/batch_connection.rs`).
    batch_connection: Option<Arc<BatchConnection>>,
    /// PostgreSQL: the ANALYZE owed to a nearly empty `orders` once it has grown
    /// (`ledger/plan_refresh.rs`).
    plan_refresh: Option<Arc<PlanRefresh>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self.pool {
            Backend::Sqlite(_) => "Database(SQLite)",
            Backend::Postgres(_) => "Database(PostgreSQL)",
        })
    }
}

impl Database {
    /// The embedded default: opens (creating if needed) `flashcart.db` in `data_dir`, in
    /// WAL mode, and applies the migrations.
    ///
    /// - WAL lets readers (recovery, order lookups, the relay) run while the group
    ///   committer writes. The committer is the one writer: the workflow's writes ride on
    ///   its batches (`write.rs`).
    /// - `synchronous = FULL` fsyncs every commit, so an answered order survives a power
    ///   cut, not only a `kill -9`. Group commit pays that fsync once per batch. Taking it
    ///   out of the writer's turn was measured and not kept (issue 14): the writer at
    ///   `NORMAL`, a second stage of the committer fsyncing the WAL and only then
    ///   answering, the next batch written meanwhile. Commits took 0.7 ms instead of 1.2
    ///   at 64 connections, but batches shrank by a third and the extra stage cost CPU:
    ///   +2-5% orders/s at 64 connections (one run's p99 201 ms), -4-6% at 256 with a
    ///   worse p99 (`cost.sh embedded 10 <connections>`, alternating builds), and readers
    ///   would have seen batches before they were durable.
    /// - No automatic checkpoint inside a commit: by default the commit that fills the WAL
    ///   to 1,000 pages copies it into the database file itself, a stall of the whole hot
    ///   path. A background task checkpoints instead, beside the writer (WAL allows it),
    ///   and the committer starts the WAL over between batches (`wal.rs`).
    /// - Memory-mapped reads, so the pages every order reads from the database file cost
    ///   no `pread`, and an 8 MiB page cache per connection (the pages read from the WAL
    ///   and the ones being written). Not larger: SQLite's commit scans its whole cache's
    ///   hash table whenever a page split parked a page at the reserved 1 GiB page
    ///   number, as most group commits do on a database under 1 GiB. With a 64 MiB cache
    ///   that scan (`pcache1TruncateUnsafe`) was 6.9% of the engine's CPU under Buy Now,
    ///   2.1% with 8 MiB (`loadtests/profile.sh embedded 16 64`).
    /// - Foreign keys are not enforced, as on PostgreSQL's hot tables (its migration 0002):
    ///   an order line exists only for a product whose actor reserved it, so the checks
    ///   guard against nothing the engine can do, and cost index lookups on every order.
    ///   Buy Now's idempotency keys are checked by their product's actor (migration
    ///   0026), checkout's by a unique index.
    /// - One engine per data directory: an exclusive lock on `flashcart.lock` in it, held
    ///   by the store and released by the kernel when the process ends, however it ends.
    ///   Two engines on one file would each run an actor per product, and each answer
    ///   the same idempotency key with an order of its own.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|error| {
            StoreError::Decode(format!("cannot create {}: {error}", data_dir.display()))
        })?;
        let data_dir_lock = lock_data_dir(data_dir)?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("flashcart.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(false)
            .pragma("wal_autocheckpoint", "0")
            // When the WAL starts over, a file that grew past this is cut back to it.
            .pragma("journal_size_limit", "67108864")
            .pragma("cache_size", "-8192")
            .pragma("mmap_size", "268435456")
            .pragma("temp_store", "memory")
            // One writer, but a reader may briefly hold the WAL.
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        // Readers for recovery, lookups, the relay and the checkpoints, and the occasional
        // write outside the group commit (carts, reviews).
        let pool = SqlitePoolOptions::new()
            .max_connections(3)
            // No ping before each use: every commit would pay a round trip to SQLite's
            // thread for it (a third of an empty commit, measured). A connection that
            // broke fails its statement instead, which the committer reports as unknown.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let database = Self::migrated(Backend::Sqlite(pool.clone())).await?;
        // The writer opens after the migrations, so its cache starts on the final schema.
        // It is kept for the life of the pool: a new connection would start cold.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Self {
            sqlite_writer: Some(writer),
            wal: Some(Wal::start(pool)),
            data_dir_lock: Some(Arc::new(data_dir_lock)),
            ..database
        })
    }

    /// A SQLite database in memory, named so that other pools of this process can open
    /// the same one ([`Database::open_in_memory`] again with the same name). For tests and
    /// the simulation: the real schema and statements, without a disk.
    pub async fn open_in_memory(name: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite:file:{name}?mode=memory&cache=shared"
        ))?
        .foreign_keys(true);
        // One connection, kept for the life of the pool: a shared in-memory database lives
        // while a connection holds it, and shared-cache connections lock whole tables.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(Backend::Sqlite(pool)).await
    }

    /// Connects to PostgreSQL and applies the migrations.
    ///
    /// Every connection carries a `statement_timeout` and
    /// `idle_in_transaction_session_timeout`, so a transaction abandoned by a client that
    /// lost the network cannot linger on the server and commit long after the engine has
    /// moved on.
    pub async fn connect(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let timeout_ms = settings.timeout.as_millis().to_string();
        let options = PgConnectOptions::from_str(&settings.url)?
            .application_name("flashcart")
            .options([
                ("statement_timeout", timeout_ms.as_str()),
                ("idle_in_transaction_session_timeout", timeout_ms.as_str()),
                // The batch statement's shape never changes, only its arrays; planning it
                // again for each batch (a custom plan) cost more than running a small one.
                // Measured again (issue 14, `cost.sh postgres 6 <connections>`, two pairs
                // each): planning costs ~0.8 ms a batch; at 4 connections 1.5K against
                // 2.9-4.1K orders/s, at 64 16.2-16.9K against 18.9-19.2K. (Set here, this
                // overrides an `ALTER DATABASE ... SET plan_cache_mode`.)
                ("plan_cache_mode", "force_generic_plan"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.timeout)
            .max_lifetime(settings.connection_lifetime)
            // No ping before each use: a round trip per batch. A broken connection fails
            // its statement instead, which the committer reports as unknown.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let batch_connection = BatchConnection::new(
            &pool,
            settings.max_connections,
            settings.connection_lifetime,
        );
        let migrated = Self::migrated(Backend::Postgres(pool.clone())).await?;
        Ok(Self {
            batch_connection: batch_connection.map(Arc::new),
            plan_refresh: PlanRefresh::if_needed(&pool).await?.map(Arc::new),
            ..migrated
        })
    }

    async fn migrated(pool: Backend<SqlitePool, PgPool>) -> Result<Self, StoreError> {
        match &pool {
            Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(Self {
            pool,
            sqlite_writer: None,
            data_dir_lock: None,
            wal: None,
            batch_connection: None,
            plan_refresh: None,
        })
    }

    /// Closes every connection, after those in use are given back, and releases the data
    /// directory: for an orderly stop.
    pub async fn close(&self) {
        if let Some(connection) = &self.batch_connection {
            connection.give_back().await;
        }
        match &self.pool {
            Backend::Sqlite(pool) => pool.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
        if let Some(writer) = &self.sqlite_writer {
            writer.close().await;
        }
        // No clone of this store can write any more: another engine may take the directory.
        if let Some(lock) = &self.data_dir_lock
            && let Err(error) = lock.unlock()
        {
            tracing::warn!(%error, "could not release the data directory's lock");
        }
    }

    pub(crate) fn pool(&self) -> &Backend<SqlitePool, PgPool> {
        &self.pool
    }

    /// Where a batch written as its own transaction goes: PostgreSQL's pool, or SQLite's
    /// one writer (the shared pool for a database in memory, which has none).
    pub(crate) fn batch_pool(&self) -> crate::ledger::AlonePool<'_> {
        match &self.pool {
            Backend::Sqlite(pool) => Backend::Sqlite(self.sqlite_writer.as_ref().unwrap_or(pool)),
            Backend::Postgres(pool) => Backend::Postgres(pool),
        }
    }

    /// Counts orders a commit wrote, for the ANALYZE a nearly empty `orders` is owed.
    pub(crate) fn orders_committed(&self, orders: usize) {
        if let Some(refresh) = &self.plan_refresh {
            refresh.committed(orders);
        }
    }

    /// PostgreSQL's kept connection for batches written alone, unless the pool has only one.
    pub(crate) fn batch_connection(&self) -> Option<&BatchConnection> {
        self.batch_connection.as_deref()
    }

    /// A write transaction: on SQLite, on the one writer's connection.
    pub(crate) async fn begin(&self) -> Result<Transaction<'static>, StoreError> {
        Ok(match self.batch_pool() {
            Backend::Sqlite(writer) => Backend::Sqlite(writer.begin().await?),
            Backend::Postgres(pool) => Backend::Postgres(pool.begin().await?),
        })
    }

    /// Cheap round trip for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dialects!(&self.pool, |pool, D| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }
}

/// Takes `data_dir`'s lock file for this store, or says which directory another engine
/// holds. The lock is advisory (`flock`): every engine takes it, nothing else needs to.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = data_dir.join("flashcart.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| StoreError::Decode(format!("cannot open {}: {error}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(format!(
            "{} is in use by another flashcart engine (it holds {}); one engine per data \
             directory",
            data_dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => Err(StoreError::Decode(format!(
            "cannot lock {}: {error}",
            path.display()
        ))),
    }
}

/// How long a SQLite statement waits for a lock another connection holds.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Database {
    /// Between two batches of the group commit: on SQLite, the WAL is started over when
    /// that is cheap (`wal.rs`).
    pub(crate) async fn restart_wal_when_due(&self) {
        if let (Some(wal), Some(writer)) = (&self.wal, &self.sqlite_writer) {
            wal.restart_when_due(writer).await;
        }
    }
}

impl Transaction<'_> {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        dialects!(self, |tx, D| tx.commit().await?);
        Ok(())
    }

    /// Undoes the transaction now (dropping it would too, but later, on the connection's
    /// next use; SQLite's one writer should not carry an open transaction until then).
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        dialects!(self, |tx, D| tx.rollback().await?);
        Ok(())
    }
}
