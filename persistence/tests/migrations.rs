//! The two migration folders stay in step: from 0005 on (see `migrations/README.md` for
//! why not before), every migration has the same number and name in both dialects.

use std::collections::BTreeSet;
use std::path::Path;

/// The first migration written under the rule.
const PAIRED_FROM: u32 = 5;

fn names(dialect: &str) -> BTreeSet<String> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .into_string()
                .expect("a UTF-8 file name")
        })
        .filter(|name| {
            let number: u32 = name
                .split('_')
                .next()
                .and_then(|number| number.parse().ok())
                .unwrap_or_else(|| panic!("{dialect}/{name} starts with its number"));
            number >= PAIRED_FROM
        })
        .collect()
}

#[test]
fn every_migration_has_the_same_number_and_name_in_both_dialects() {
    let sqlite = names("sqlite");
    let postgres = names("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite.symmetric_difference(&postgres).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "a migration is missing its twin in the other dialect"
    );
}

/// A SQLite database file in `dir`, without the migrations: a test applies them up to a
/// point, leaves rows the way that schema stored them, then opens the store on it.
async fn bare_sqlite(dir: &Path) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}?mode=rwc", dir.join("flashcart.db").display());
    sqlx::SqlitePool::connect(&url).await.expect("open")
}

/// The store on the PostgreSQL database at `url`; connecting applies the migrations left.
async fn migrated_postgres(url: &str) -> persistence::Database {
    let settings = persistence::PostgresSettings {
        url: url.to_owned(),
        max_connections: 2,
        timeout: std::time::Duration::from_secs(5),
        connection_lifetime: persistence::PostgresSettings::CONNECTION_LIFETIME,
    };
    persistence::Database::connect(&settings)
        .await
        .expect("connect and migrate")
}

/// Events waiting in the outbox when 0011 (one row per pack of events) is applied are
/// relayed afterwards, in their order, each as it was written.
mod outbox_in_packs {
    use persistence::test_support::TestDatabase;
    use persistence::{Database, Outbox};
    use sqlx::migrate::Migrator;

    /// The last migration before the outbox held packs.
    const BEFORE_PACKS: i64 = 10;
    const WAITING: [(&str, &str, &str, &str); 2] = [
        ("order-events", "order_placed", "o-1", r#"{"n":1}"#),
        ("product-events", "stock_out", "42", r#"{"n":2}"#),
    ];

    /// Migrates `pool` up to 0010 and leaves the events of `WAITING` in its outbox, the
    /// way 0010 stored them (a macro: the two pools are different types).
    macro_rules! events_wait_before_packs {
        ($pool:expr, $migrator:expr) => {{
            let migrator: Migrator = $migrator;
            migrator
                .run_to(BEFORE_PACKS, &$pool)
                .await
                .expect("migrate to 0010");
            for (topic, event_type, key, payload) in WAITING {
                sqlx::query(
                    "INSERT INTO outbox (topic, event_type, entity_key, payload) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(topic)
                .bind(event_type)
                .bind(key)
                .bind(payload)
                .execute(&$pool)
                .await
                .expect("an event waits");
            }
            $pool.close().await;
        }};
    }

    async fn relayed_after_the_upgrade(store: &Database) {
        let rows = store.oldest_events(10).await.expect("read");
        let found: Vec<_> = rows
            .iter()
            .map(|row| {
                (
                    row.topic.as_str(),
                    row.event_type.as_str(),
                    row.key.as_str(),
                    row.payload.as_str(),
                )
            })
            .collect();
        assert_eq!(found, WAITING);
        assert!(rows[0].seq < rows[1].seq, "two packs of one, in order");
    }

    #[tokio::test]
    async fn on_sqlite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = super::bare_sqlite(dir.path()).await;
        events_wait_before_packs!(pool, sqlx::migrate!("./migrations/sqlite"));
        let store = Database::open(dir.path()).await.expect("open and migrate");
        relayed_after_the_upgrade(&store).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let database = TestDatabase::create().await;
        let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
        events_wait_before_packs!(pool, sqlx::migrate!("./migrations/postgres"));
        let store = super::migrated_postgres(&database.url).await;
        relayed_after_the_upgrade(&store).await;
        drop(store);
        database.drop_database().await;
    }
}

/// Orders stored before 0012 (keys in a table of their own) are found by their key after
/// it, and the key stays unique.
mod idempotency_keys_in_orders {
    use engine::{IdempotencyKey, OrderId, UserId};
    use persistence::test_support::TestDatabase;
    use persistence::{Database, OrderLookup};
    use sqlx::migrate::Migrator;

    const BEFORE_KEYS_IN_ORDERS: i64 = 11;
    const KEYED: &str = "0190a000-0000-7000-8000-000000000001";
    const UNKEYED: &str = "0190a000-0000-7000-8000-000000000002";

    /// Migrates `pool` up to 0011 and stores, the way 0011 did, an order with its key row
    /// and one without (`$orders` and `$key` are the dialect's statements).
    macro_rules! orders_before_keys_in_orders {
        ($pool:expr, $migrator:expr, $orders:expr, $key:expr) => {{
            let migrator: Migrator = $migrator;
            migrator
                .run_to(BEFORE_KEYS_IN_ORDERS, &$pool)
                .await
                .expect("migrate to 0011");
            for id in [KEYED, UNKEYED] {
                sqlx::query($orders)
                    .bind(id)
                    .execute(&$pool)
                    .await
                    .expect("an order");
            }
            sqlx::query($key)
                .bind(KEYED)
                .execute(&$pool)
                .await
                .expect("its key");
            $pool.close().await;
        }};
    }

    async fn found_by_key_after_the_upgrade(store: &Database) {
        let key = IdempotencyKey::parse("k-1").expect("key");
        let keyed = OrderId(KEYED.parse().expect("uuid"));
        let found = store.order_for_key(UserId(7), "product:1", &key).await;
        assert_eq!(found.expect("read"), Some(keyed));
        let elsewhere = store.order_for_key(UserId(7), "product:2", &key).await;
        assert_eq!(elsewhere.expect("read"), None);
        let unkeyed = store
            .order_for_key(UserId(7), &format!("unscoped:{UNKEYED}"), &key)
            .await;
        assert_eq!(
            unkeyed.expect("read"),
            Some(OrderId(UNKEYED.parse().expect("uuid")))
        );
    }

    #[tokio::test]
    async fn on_sqlite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = super::bare_sqlite(dir.path()).await;
        orders_before_keys_in_orders!(
            pool,
            sqlx::migrate!("./migrations/sqlite"),
            "INSERT INTO orders (id, user_id, status, total_minor, idempotency_key, \
             created_at_ms, expires_at_ms, updated_at_ms) \
             VALUES ($1, 7, 'PENDING_PAYMENT', 100, 'k-1', 1, 2, 1)",
            "INSERT INTO idempotency_keys (user_id, scope, key, order_id, created_at_ms) \
             VALUES (7, 'product:1', 'k-1', $1, 1)"
        );
        let store = Database::open(dir.path()).await.expect("open and migrate");
        found_by_key_after_the_upgrade(&store).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        let database = TestDatabase::create().await;
        let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
        orders_before_keys_in_orders!(
            pool,
            sqlx::migrate!("./migrations/postgres"),
            "INSERT INTO orders (id, user_id, status, total_minor, idempotency_key, \
             created_at, expires_at, updated_at) \
             VALUES ($1::uuid, 7, 'PENDING_PAYMENT', 100, 'k-1', now(), now(), now())",
            "INSERT INTO idempotency_keys (user_id, scope, key, order_id, created_at) \
             VALUES (7, 'product:1', 'k-1', $1::uuid, now())"
        );
        let store = super::migrated_postgres(&database.url).await;
        found_by_key_after_the_upgrade(&store).await;
        drop(store);
        database.drop_database().await;
    }
}

/// Units held in a sale before 0014 (one `sale_purchases` row per buyer) become the sale's
/// `held` counter after it, which the mirror's levels read and the pool's check bounds.
/// PostgreSQL only: SQLite never kept the rows.
mod sale_pool_counted_per_batch {
    use engine::ProductId;
    use persistence::OrderLedger;
    use persistence::test_support::TestDatabase;

    const BEFORE_POOL_COUNTER: i64 = 13;

    #[tokio::test]
    async fn on_postgres() {
        let database = TestDatabase::create().await;
        let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
        sqlx::migrate!("./migrations/postgres")
            .run_to(BEFORE_POOL_COUNTER, &pool)
            .await
            .expect("migrate to 0013");
        for statement in [
            "INSERT INTO products VALUES (1, 't', 'b', 'c', 'd', 100, 0, 0, now(), now())",
            r#"INSERT INTO inventory (product_id, initial, reserved, sold, "left") VALUES (1, 10, 3, 2, 5)"#,
            "INSERT INTO flash_sales (id, product_id, sale_price_minor, original_price_minor, \
             start_at, end_at, stock, per_user_limit, created_at) \
             VALUES (1, 1, 50, 100, now(), NULL, 6, 2, now())",
            "INSERT INTO sale_purchases VALUES (1, 7, 2, 2), (1, 8, 1, 2), (1, 9, 2, 2)",
        ] {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .unwrap_or_else(|error| panic!("{statement}: {error}"));
        }
        pool.close().await;
        let store = super::migrated_postgres(&database.url).await;
        let levels = store.inventory_levels().await.expect("levels");
        let level = levels
            .iter()
            .find(|level| level.product_id == ProductId(1))
            .expect("the product's level");
        assert_eq!(level.sale.as_ref().map(|sale| sale.held), Some(5));
        let pool = sqlx::PgPool::connect(&database.url).await.expect("connect");
        let past_the_pool = sqlx::query("UPDATE flash_sales SET held = held + 2 WHERE id = 1")
            .execute(&pool)
            .await;
        assert!(past_the_pool.is_err(), "6 units in the pool, 7 held");
        pool.close().await;
        drop(store);
        database.drop_database().await;
    }
}

/// Orders and ledger rows stored before 0019 (checks as lists of values) are kept by its
/// table rebuilds; the checks still refuse an unknown status or kind; and a multi-row
/// insert, the shape of a group commit's, no longer builds a temporary b-tree for them.
/// SQLite only: PostgreSQL's 0019 changes nothing.
mod checks_without_value_lists {
    use engine::{OrderId, OrderStatus};
    use persistence::{Database, OrderLookup};
    use sqlx::Row;

    const BEFORE_COMPARISONS: i64 = 18;
    const ORDER: &str = "0190a000-0000-7000-8000-000000000001";
    const TWO_ORDERS: &str = "INSERT INTO orders (id, user_id, status, total_minor, \
        idempotency_scope, idempotency_key, created_at_ms, expires_at_ms, updated_at_ms) \
        VALUES (?, 1, 'PAID', 1, 's', ?, 1, 2, 1), (?, 1, 'PAID', 1, 's', ?, 1, 2, 1)";
    const TWO_LEDGER_ROWS: &str = "INSERT INTO stock_ledger \
        (product_id, order_count, kind, quantity, at_ms) \
        VALUES (1, 1, 'reserve', 1, 1), (1, 1, 'confirm', 1, 1)";

    /// The operations SQLite's plan for `statement` runs.
    async fn plan(pool: &sqlx::SqlitePool, statement: &str) -> Vec<String> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")))
            .fetch_all(pool)
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get::<String, _>("opcode"))
            .collect()
    }

    #[tokio::test]
    async fn on_sqlite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pool = super::bare_sqlite(dir.path()).await;
        sqlx::migrate!("./migrations/sqlite")
            .run_to(BEFORE_COMPARISONS, &pool)
            .await
            .expect("migrate to 0018");
        let before = plan(&pool, TWO_ORDERS).await;
        assert!(
            before.iter().any(|op| op == "OpenEphemeral"),
            "the list check built a b-tree: {before:?}"
        );
        for statement in [
            "INSERT INTO products VALUES (1, 't', 'b', 'c', 'd', 100, 0, 0, 10, 1, 1)",
            "INSERT INTO orders (id, user_id, status, total_minor, idempotency_scope, \
             idempotency_key, created_at_ms, expires_at_ms, updated_at_ms) \
             VALUES ('0190a000-0000-7000-8000-000000000001', 7, 'PAID', 100, 'product:1', \
             'k-1', 1, 2, 3)",
            "INSERT INTO stock_ledger (product_id, order_count, kind, quantity, at_ms) \
             VALUES (1, 2, 'reserve', 3, 4), (1, 1, 'release', 1, 5)",
        ] {
            sqlx::query(statement).execute(&pool).await.expect("a row");
        }
        pool.close().await;

        let store = Database::open(dir.path()).await.expect("open and migrate");
        let order = store
            .order(OrderId(ORDER.parse().expect("uuid")))
            .await
            .expect("read")
            .expect("the order is kept");
        assert_eq!((order.status, order.user_id.0), (OrderStatus::Paid, 7));

        let pool = super::bare_sqlite(dir.path()).await;
        let ledger: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT seq, kind, quantity FROM stock_ledger ORDER BY seq")
                .fetch_all(&pool)
                .await
                .expect("ledger");
        assert_eq!(ledger, [(1, "reserve".into(), 3), (2, "release".into(), 1)]);
        // AUTOINCREMENT carries on after the rows kept, never reusing a number.
        sqlx::query(TWO_LEDGER_ROWS)
            .execute(&pool)
            .await
            .expect("more rows");
        let last: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM stock_ledger")
            .fetch_one(&pool)
            .await
            .expect("max");
        assert_eq!(last, 4);

        for refused in [
            "UPDATE orders SET status = 'LOST'",
            "INSERT INTO stock_ledger (product_id, order_count, kind, quantity, at_ms) \
             VALUES (1, 1, 'stolen', 1, 1)",
        ] {
            let error = sqlx::query(refused)
                .execute(&pool)
                .await
                .expect_err("the check refuses it");
            assert!(error.to_string().contains("CHECK"), "{error}");
        }
        for statement in [TWO_ORDERS, TWO_LEDGER_ROWS] {
            let after = plan(&pool, statement).await;
            assert!(
                !after.iter().any(|op| op == "OpenEphemeral"),
                "{statement}: {after:?}"
            );
        }
    }
}
