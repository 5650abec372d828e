//! The store contract against a real PostgreSQL (a fresh database per test), plus what
//! only PostgreSQL enforces: its schema refuses to oversell a product or a sale's pool even
//! if the engine asked it to. And the Redis mirror against a real Redis.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{order, place, put_product};
use engine::order::OrderStatus;
use engine::{FlashSale, Money, ProductId, SaleId};
use persistence::test_support::{TestDatabase, redis_prefix, redis_url};
use persistence::{
    Database, LedgerKind, MirrorEntry, OrderLedger, PostgresSettings, RedisMirror, RedisSettings,
    StatusChange, StockMove, WriteOp,
};
use sqlx::Connection;

async fn open() -> (TestDatabase, Arc<Database>) {
    let database = TestDatabase::create().await;
    let settings = PostgresSettings {
        url: database.url.clone(),
        max_connections: 4,
        timeout: Duration::from_secs(5),
        connection_lifetime: PostgresSettings::CONNECTION_LIFETIME,
    };
    let store = Database::connect(&settings)
        .await
        .expect("connect and migrate");
    (database, Arc::new(store))
}

/// Each contract of `common`, on a fresh database.
macro_rules! on_postgres {
    ($($contract:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $contract() {
            let (database, store) = open().await;
            common::$contract(store).await;
            database.drop_database().await;
        }
    )*};
}

contracts!(on_postgres);

#[tokio::test]
async fn the_schema_refuses_to_oversell_a_product_or_a_sale_pool() {
    let (database, store) = open().await;
    // Ten units on the shelf, three of them in the sale's pool.
    let sale = FlashSale {
        id: SaleId(1),
        product_id: ProductId(1),
        sale_price: Money(5_000),
        original_price: Money(10_000),
        start_ms: 0,
        end_ms: None,
        stock: 3,
        per_user_limit: 2,
    };
    store
        .commit(&[put_product(1, 10), WriteOp::PutSale { sale, at_ms: 1 }])
        .await
        .expect("product");
    // Eleven units of a ten-unit product: the inventory check refuses the whole batch.
    let oversell = store
        .commit(&[
            place(order(1, 1, 1, 6, None)),
            place(order(2, 2, 1, 5, None)),
        ])
        .await;
    assert!(
        oversell.is_err(),
        "the database refuses to promise more than it has"
    );
    assert!(store.pending_orders().await.expect("pending").is_empty());
    // Four sale units of a three-unit pool, in two orders of one batch, while the shelf
    // has plenty: the sale's check refuses the whole batch.
    let pool_breach = store
        .commit(&[
            place(order(3, 7, 1, 2, Some(SaleId(1)))),
            place(order(4, 8, 1, 2, Some(SaleId(1)))),
        ])
        .await;
    assert!(
        pool_breach.is_err(),
        "the database refuses to sell more than the sale's pool"
    );
    assert!(store.pending_orders().await.expect("pending").is_empty());
    // Within the pool, it goes through, and the mirror's levels count it.
    store
        .commit(&[
            place(order(5, 7, 1, 2, Some(SaleId(1)))),
            place(order(6, 8, 1, 1, Some(SaleId(1)))),
        ])
        .await
        .expect("within the pool");
    let held = |levels: Vec<persistence::InventoryLevel>| {
        levels
            .into_iter()
            .find(|level| level.product_id == ProductId(1))
            .and_then(|level| level.sale)
            .map(|sale| sale.held)
    };
    assert_eq!(
        held(store.inventory_levels().await.expect("levels")),
        Some(3)
    );
    // Releasing user 7's units gives them back to the pool, so two more fit again.
    let release = persistence::StatusChange {
        order_id: engine::OrderId(uuid::Uuid::from_u128(5)),
        from: engine::order::OrderStatus::PendingPayment,
        to: engine::order::OrderStatus::Expired,
        at_ms: 10,
        ledger: vec![persistence::StockMove {
            product_id: ProductId(1),
            kind: persistence::LedgerKind::Release,
            units: 2,
            sale: Some(SaleId(1)),
        }],
        payment: None,
    };
    store
        .commit(&[WriteOp::SetOrderStatus(release)])
        .await
        .expect("release");
    assert_eq!(
        held(store.inventory_levels().await.expect("levels")),
        Some(1)
    );
    store
        .commit(&[place(order(7, 7, 1, 2, Some(SaleId(1))))])
        .await
        .expect("the units came back to the pool");
    // A stale change (the order is no longer pending) fails the whole batch.
    let stale = persistence::StatusChange {
        order_id: engine::OrderId(uuid::Uuid::from_u128(5)),
        from: engine::order::OrderStatus::PendingPayment,
        to: engine::order::OrderStatus::Paid,
        at_ms: 11,
        ledger: vec![persistence::StockMove {
            product_id: ProductId(1),
            kind: persistence::LedgerKind::Confirm,
            units: 2,
            sale: None,
        }],
        payment: None,
    };
    let result = store.commit(&[WriteOp::SetOrderStatus(stale)]).await;
    assert!(
        matches!(result, Err(persistence::StoreError::Conflict(_))),
        "{result:?}"
    );
    database.drop_database().await;
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers (is it running? see deploy/services.sh)")
}

#[tokio::test]
async fn the_mirror_resyncs_from_the_store_and_then_follows_published_state() {
    let (database, store) = open().await;
    let sale = FlashSale {
        id: SaleId(1),
        product_id: ProductId(2),
        sale_price: Money(5_000),
        original_price: Money(10_000),
        start_ms: 0,
        // 2100-01-01: far enough to stay live for the test.
        end_ms: Some(4_102_444_800_000),
        stock: 6,
        per_user_limit: 2,
    };
    store
        .commit(&[
            put_product(1, 5),
            put_product(2, 10),
            WriteOp::PutSale {
                sale: sale.clone(),
                at_ms: 1,
            },
        ])
        .await
        .expect("products");
    store
        .commit(&[place(order(1, 1, 2, 2, Some(SaleId(1))))])
        .await
        .expect("order");
    let prefix = redis_prefix();
    let settings = RedisSettings {
        url: redis_url(),
        key_prefix: prefix.clone(),
        timeout: Duration::from_secs(2),
    };
    let (mirror, _writer) = RedisMirror::start(settings, store.clone()).expect("mirror");
    let mut redis = redis_connection().await;
    let reader = redis.clone();
    let read = |key: String| {
        let mut redis = reader.clone();
        async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<u64>>(&mut redis)
                .await
                .expect("GET")
        }
    };
    // At start: every product from the store.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while read(format!("{prefix}inventory:2")).await != Some(8) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mirror resyncs at start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(read(format!("{prefix}inventory:1")).await, Some(5));
    assert_eq!(read(format!("{prefix}flash_sale:stock:2")).await, Some(4));
    let hash: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{prefix}flash_sale:2"))
        .query_async(&mut redis)
        .await
        .expect("HGETALL");
    assert_eq!(hash["price"], "5000");
    assert_eq!(hash["perUserLimit"], "2");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}flash_sale:2"))
        .query_async(&mut redis)
        .await
        .expect("PTTL");
    assert!(ttl > 0, "the sale keys expire with the sale");

    // Then: whatever actors publish.
    mirror.publish(
        ProductId(1),
        MirrorEntry {
            left: 1,
            sale: None,
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while read(format!("{prefix}inventory:1")).await != Some(1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "published state reaches Redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    database.drop_database().await;
}

/// Sequential scans of `orders` so far, once at most `staying` connections of the engine to
/// `database` are left (a backend hands its statistics over when it exits).
async fn orders_scanned_once_connections_left(database: &TestDatabase, staying: i64) -> i64 {
    let mut admin = sqlx::PgConnection::connect(&persistence::test_support::admin_database_url())
        .await
        .expect("admin connection");
    let mut left = i64::MAX;
    for _ in 0..100 {
        left = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'flashcart'",
        )
        .bind(&database.name)
        .fetch_one(&mut admin)
        .await
        .expect("activity");
        if left <= staying {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        left <= staying,
        "{left} connections of the store stayed; counting now would miss their scans"
    );
    // A leaving backend drops out of pg_stat_activity just before it hands its counts over.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut connection = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::query_scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'orders'")
        .fetch_one(&mut connection)
        .await
        .expect("statistics")
}

/// The batch statement's plan is made once per connection, with the table sizes of that
/// moment: made while `orders` was empty, it joins status changes to every order by a full
/// scan, and without an ANALYZE (no autovacuum) PostgreSQL never makes it again. Connections
/// are replaced after `connection_lifetime`, and a new one's plan looks the order up by its
/// key. Counted in PostgreSQL's own statistics: no sequential scan of `orders` for a status
/// change once the table has grown.
#[tokio::test]
async fn a_status_change_finds_its_order_by_index_once_the_table_has_grown() {
    let database = TestDatabase::create().await;
    let settings = PostgresSettings {
        url: database.url.clone(),
        max_connections: 1,
        timeout: Duration::from_secs(5),
        connection_lifetime: Duration::from_secs(1),
    };
    let store = Database::connect(&settings).await.expect("connect");
    store
        .commit(&[put_product(1, 1_000_000), place(order(1, 1, 1, 1, None))])
        .await
        .expect("first order: the statement is planned on an empty table");
    for chunk in 0..20u128 {
        let orders: Vec<WriteOp> = (0..1_000u128)
            .map(|n| place(order(2 + chunk * 1_000 + n, 2, 1, 1, None)))
            .collect();
        store.commit(&orders).await.expect("more orders");
    }
    tokio::time::sleep(settings.connection_lifetime + Duration::from_millis(500)).await;
    // The next use replaces the connection that outlived its time; the old one leaves.
    store.ping().await.expect("ping");
    let before = orders_scanned_once_connections_left(&database, 1).await;

    let cancel = StatusChange {
        order_id: order(1, 1, 1, 1, None).id,
        from: OrderStatus::PendingPayment,
        to: OrderStatus::Cancelled,
        at_ms: 200,
        ledger: vec![StockMove {
            product_id: ProductId(1),
            kind: LedgerKind::Release,
            units: 1,
            sale: None,
        }],
        payment: None,
    };
    store
        .commit(&[WriteOp::SetOrderStatus(cancel)])
        .await
        .expect("cancel");
    store.close().await;
    let after = orders_scanned_once_connections_left(&database, 0).await;
    assert_eq!(
        after, before,
        "a status change scanned every order instead of looking its order up"
    );
    database.drop_database().await;
}
