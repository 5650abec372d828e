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
    ShardLeases, StatusChange, StockMove, WriteOp,
};
use sqlx::Connection;

async fn open() -> (TestDatabase, Arc<Database>) {
    let (database, settings) = fresh(4, PostgresSettings::CONNECTION_LIFETIME).await;
    let store = Database::connect(&settings)
        .await
        .expect("connect and migrate");
    (database, Arc::new(store))
}

/// A fresh database, and settings for a store on it.
async fn fresh(
    max_connections: u32,
    connection_lifetime: Duration,
) -> (TestDatabase, PostgresSettings) {
    let database = TestDatabase::create().await;
    let settings = PostgresSettings {
        url: database.url.clone(),
        max_connections,
        timeout: Duration::from_secs(5),
        connection_lifetime,
    };
    (database, settings)
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
        cancelled_at_ms: None,
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
        cancelled_at_ms: None,
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
    let (database, settings) = fresh(1, Duration::from_secs(1)).await;
    let store = Database::connect(&settings).await.expect("connect");
    store
        .commit(&[put_product(1, 1_000_000), place(order(1, 1, 1, 1, None))])
        .await
        .expect("first order: the statement is planned on an empty table");
    place_20_000_more_orders(&store).await;
    tokio::time::sleep(settings.connection_lifetime + Duration::from_millis(500)).await;
    // The next use replaces the connection that outlived its time; the old one leaves.
    store.ping().await.expect("ping");
    let before = orders_scanned_once_connections_left(&database, 1).await;

    cancel_the_first_order(&store).await;
    store.close().await;
    let after = orders_scanned_once_connections_left(&database, 0).await;
    assert_eq!(
        after, before,
        "a status change scanned every order instead of looking its order up"
    );
    database.drop_database().await;
}

/// The same plan on the one connection the committer keeps (its lifetime far away): once
/// the store has written 20,000 orders into a table that was empty at start, it has the
/// table analyzed, PostgreSQL makes the batch statement's plan again, and a status change
/// reads its order by index, not every order. Counted in PostgreSQL's own statistics, once
/// the store's connections have left.
#[tokio::test]
async fn a_store_that_started_on_empty_orders_has_them_analyzed_once_they_grew() {
    let (database, settings) = fresh(4, Duration::from_secs(600)).await;
    let store = Database::connect(&settings).await.expect("connect");
    store
        .commit(&[put_product(1, 1_000_000)])
        .await
        .expect("product");
    store
        .commit(&[place(order(1, 1, 1, 1, None))])
        .await
        .expect("first order: the statement is planned on an empty table");
    place_20_000_more_orders(&store).await;
    let mut connection = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    let mut analyzed = 0.0_f32;
    for _ in 0..100 {
        analyzed =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'orders'::regclass")
                .fetch_one(&mut connection)
                .await
                .expect("estimate");
        if analyzed >= 20_000.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        analyzed >= 20_000.0,
        "orders not analyzed: {analyzed} rows estimated"
    );
    connection.close().await.expect("close");

    cancel_the_first_order(&store).await;
    store.close().await;
    let read = orders_read_by_scans_once_connections_left(&database).await;
    assert!(
        read < 20_000,
        "a status change read every order ({read} rows by sequential scans) instead of one"
    );
    database.drop_database().await;
}

/// Orders 2 to 20,001 of product 1, in batches of 1,000.
async fn place_20_000_more_orders(store: &Database) {
    for chunk in 0..20u128 {
        let orders: Vec<WriteOp> = (0..1_000u128)
            .map(|n| place(order(2 + chunk * 1_000 + n, 2, 1, 1, None)))
            .collect();
        store.commit(&orders).await.expect("more orders");
    }
}

/// Order 1 (one unit of product 1) is cancelled: a batch with a status change.
async fn cancel_the_first_order(store: &Database) {
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
}

/// Rows of `orders` read by sequential scans, once the store's connections have left.
async fn orders_read_by_scans_once_connections_left(database: &TestDatabase) -> i64 {
    orders_scanned_once_connections_left(database, 0).await;
    let mut connection = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::query_scalar("SELECT seq_tup_read FROM pg_stat_user_tables WHERE relname = 'orders'")
        .fetch_one(&mut connection)
        .await
        .expect("statistics")
}

/// The backends of the store's database whose last statement was the orders' batch.
async fn batch_writers(database: &TestDatabase) -> Vec<i32> {
    let mut admin = sqlx::PgConnection::connect(&persistence::test_support::admin_database_url())
        .await
        .expect("admin connection");
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'WITH fences%' ORDER BY pid",
    )
    .bind(&database.name)
    .fetch_all(&mut admin)
    .await
    .expect("activity")
}

/// The group committer's batches go through one connection kept between them, not a pool
/// connection per batch (which sqlx pings on its way back, and hands out in turn with the
/// others); it is replaced once it has served `connection_lifetime`, and closing the store
/// gives it back (a pool closes only when every connection is back).
#[tokio::test]
async fn batches_go_through_one_kept_connection_replaced_after_its_lifetime() {
    let (database, settings) = fresh(4, Duration::from_secs(2)).await;
    let store = Database::connect(&settings).await.expect("connect");
    store
        .commit(&[put_product(1, 1_000)])
        .await
        .expect("product");
    for n in 1..=30u128 {
        store
            .commit(&[place(order(n, 1, 1, 1, None))])
            .await
            .expect("an order");
    }
    let first = batch_writers(&database).await;
    assert_eq!(first.len(), 1, "batches went through {first:?}");

    tokio::time::sleep(settings.connection_lifetime + Duration::from_millis(300)).await;
    store
        .commit(&[place(order(31, 1, 1, 1, None))])
        .await
        .expect("an order on a fresh connection");
    // The old one closes on its way back to the pool: give it a moment to leave.
    let mut now = batch_writers(&database).await;
    for _ in 0..30 {
        if now.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = batch_writers(&database).await;
    }
    assert_eq!(now.len(), 1, "batches went through {now:?}");
    assert_ne!(now, first, "the connection outlived its lifetime");

    tokio::time::timeout(Duration::from_secs(10), store.close())
        .await
        .expect("closing the store gives the kept connection back");
    database.drop_database().await;
}

/// Fencing (issue 15): a batch carrying a lease another node has since taken over writes
/// nothing, and fails as `Fenced`; the new owner's batches go through.
#[tokio::test]
async fn a_node_that_lost_its_shard_commits_nothing_for_it() {
    let (database, store) = open().await;
    store.commit(&[put_product(1, 10)]).await.expect("product");
    let first = store
        .take_shard(3, "n1", 1)
        .await
        .expect("n1 takes shard 3");
    assert_eq!((first.owner_node.as_str(), first.epoch), ("n1", 1));
    store
        .commit(&[
            WriteOp::Fence(first.clone()),
            place(order(1, 7, 1, 1, None)),
        ])
        .await
        .expect("the owner commits");

    let second = store
        .take_shard(3, "n2", 2)
        .await
        .expect("n2 takes it over");
    assert_eq!((second.owner_node.as_str(), second.epoch), ("n2", 2));
    // n1 wakes up still believing it owns shard 3: its batch, with a product write too
    // (the transactional path), is refused whole.
    for stale_batch in [
        vec![
            WriteOp::Fence(first.clone()),
            place(order(2, 8, 1, 1, None)),
        ],
        vec![
            WriteOp::Fence(first.clone()),
            put_product(2, 5),
            place(order(3, 9, 1, 1, None)),
        ],
    ] {
        let stale = store.commit(&stale_batch).await;
        assert!(
            matches!(stale, Err(persistence::StoreError::Fenced(_))),
            "{stale:?}"
        );
    }
    let pending: Vec<_> = store
        .pending_orders()
        .await
        .expect("pending")
        .into_iter()
        .map(|order| order.id)
        .collect();
    assert_eq!(pending, [engine::OrderId(uuid::Uuid::from_u128(1))]);
    let levels = store.inventory_levels().await.expect("levels");
    assert!(
        levels.iter().all(|level| level.product_id != ProductId(2)),
        "the stale batch's product write went with it"
    );

    store
        .commit(&[
            WriteOp::Fence(second.clone()),
            place(order(4, 8, 1, 1, None)),
        ])
        .await
        .expect("the new owner commits");
    assert_eq!(store.shard_leases().await.expect("leases"), [second]);
    database.drop_database().await;
}

/// A take that races a batch committing under the old lease never lets that batch land
/// after it: either the batch commits first (the take waits for it, so the new owner,
/// loading after its take, sees the batch's orders), or the batch is refused.
#[tokio::test]
async fn a_take_racing_a_batch_under_the_old_lease_never_lets_it_land_after() {
    let (database, store) = open().await;
    store.commit(&[put_product(1, 10)]).await.expect("product");
    let lease = store
        .take_shard(0, "n1", 1)
        .await
        .expect("n1 takes shard 0");
    // Another transaction holds the product's inventory row, so n1's batch stops in the
    // middle of its statement, after it has checked its lease.
    let mut blocker = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::query("BEGIN")
        .execute(&mut blocker)
        .await
        .expect("begin");
    sqlx::query("SELECT 1 FROM inventory WHERE product_id = 1 FOR UPDATE")
        .fetch_one(&mut blocker)
        .await
        .expect("lock the row");
    let batch = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let outcome = store
                .commit(&[WriteOp::Fence(lease), place(order(1, 7, 1, 1, None))])
                .await;
            (outcome, std::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let taker = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let taken = store.take_shard(0, "n2", 2).await;
            (taken, std::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !batch.is_finished(),
        "the batch waits for the inventory row"
    );
    sqlx::query("COMMIT")
        .execute(&mut blocker)
        .await
        .expect("commit");
    let (outcome, batch_ended) = batch.await.expect("the batch task");
    let (taken, take_ended) = tokio::time::timeout(Duration::from_secs(5), taker)
        .await
        .expect("the take ends")
        .expect("the take task");
    let taken = taken.expect("taken");
    assert_eq!((taken.owner_node.as_str(), taken.epoch), ("n2", 2));
    let pending = store.pending_orders().await.expect("pending");
    match outcome {
        Ok(()) => {
            assert!(batch_ended <= take_ended, "the take waited for the batch");
            assert_eq!(pending.len(), 1);
        }
        Err(persistence::StoreError::Fenced(_)) => assert!(pending.is_empty()),
        Err(other) => panic!("{other}"),
    }
    blocker.close().await.expect("close");
    database.drop_database().await;
}

/// The abandoned-cart index kept in Redis (the sorted set beside the cart hashes) keeps the
/// contract the database's table keeps.
#[tokio::test]
async fn abandoned_carts_in_redis_are_claimed_once_per_change() {
    let prefix = redis_prefix();
    let settings = RedisSettings {
        url: redis_url(),
        key_prefix: prefix.clone(),
        timeout: Duration::from_secs(2),
    };
    let carts = persistence::Carts::in_redis(&settings, Duration::from_secs(3_600)).expect("carts");
    assert!(carts.is_in_redis());
    common::untouched_carts_are_claimed_once_per_change(carts).await;
    let mut redis = redis_connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut redis)
        .await
        .expect("KEYS");
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut redis)
        .await
        .expect("DEL");
}
