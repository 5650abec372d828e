//! Orders committed per second through the group committer into this machine's
//! PostgreSQL, for batch sizes 1, 16, 128 and 1024 (a fresh database per run).
//!
//! `cargo bench -p flashcart-benches --bench group_commit`
//!
//! Every order is one submission, as a product actor would make it; the committer's batch
//! bound is what varies. Batch size 1 is the classic "one transaction per order".

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::order::{Order, OrderItem, OrderStatus};
use engine::{IdempotencyKey, Money, OrderId, Product, ProductId, UserId};
use persistence::test_support::TestDatabase;
use persistence::{
    CommitOutcome, Database, GroupCommitSettings, GroupCommitter, OrderLedger, PostgresSettings,
    WriteOp,
};
use uuid::Uuid;

const BATCH_SIZES: [usize; 4] = [1, 16, 128, 1024];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let database = TestDatabase::create().await;
    let settings = PostgresSettings {
        url: database.url.clone(),
        max_connections: 4,
        timeout: Duration::from_secs(30),
        connection_lifetime: PostgresSettings::CONNECTION_LIFETIME,
    };
    let store: Arc<dyn OrderLedger> =
        Arc::new(Database::connect(&settings).await.expect("connect"));
    let product = Product {
        id: ProductId(1),
        title: "Bench".into(),
        brand: "Bench".into(),
        category: "bench".into(),
        description: String::new(),
        price: Money(1_000),
        rating: 0.0,
        popularity: 0,
        seller_id: None,
    };
    store
        .commit(&[WriteOp::PutProduct {
            product,
            stock_initial: engine::product::STOCK_MAX,
            shelf_change: 0,
            at_ms: 1,
        }])
        .await
        .expect("product");

    println!("group commit into PostgreSQL (one order per submission)");
    println!(
        "{:>10} {:>10} {:>12} {:>14} {:>8}",
        "batch max", "orders", "seconds", "orders/s", "ratio"
    );
    let mut baseline = None;
    let mut next_user = 0u64;
    for batch_size in BATCH_SIZES {
        let orders = (batch_size * 200).clamp(2_000, 50_000);
        let rate = measure(&store, batch_size, orders, &mut next_user).await;
        let baseline = *baseline.get_or_insert(rate);
        println!(
            "{batch_size:>10} {orders:>10} {:>12.2} {rate:>14.0} {:>7.1}x",
            orders as f64 / rate,
            rate / baseline
        );
    }
    database.drop_database().await;
}

async fn measure(
    store: &Arc<dyn OrderLedger>,
    batch_size: usize,
    orders: usize,
    next_user: &mut u64,
) -> f64 {
    let settings = GroupCommitSettings {
        batch_size_max: batch_size,
        batch_delay: Duration::ZERO,
        queue_capacity: orders,
        commit_timeout: Duration::from_secs(60),
        abandon_after: Duration::from_secs(60),
    };
    let (committer, task) = GroupCommitter::start(Arc::clone(store), settings);
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    for _ in 0..orders {
        *next_user += 1;
        let done = done.clone();
        committer.submit(vec![order(*next_user)], move |outcome| {
            let _ = done.send(outcome);
        });
    }
    for _ in 0..orders {
        let outcome = finished.recv().await.expect("answered");
        assert_eq!(outcome, CommitOutcome::Committed);
    }
    let elapsed = started.elapsed();
    drop(committer);
    let _ = task.await;
    orders as f64 / elapsed.as_secs_f64()
}

fn order(user: u64) -> WriteOp {
    let now_ms = 1_700_000_000_000;
    WriteOp::PlaceOrder {
        order: Order {
            id: OrderId(Uuid::now_v7()),
            user_id: UserId(user),
            status: OrderStatus::PendingPayment,
            items: vec![OrderItem {
                product_id: ProductId(1),
                sale_id: None,
                quantity: 1,
                unit_price: Money(1_000),
            }],
            total: Money(1_000),
            idempotency_key: IdempotencyKey::parse("bench").expect("key"),
            created_at_ms: now_ms,
            expires_at_ms: now_ms + 600_000,
            updated_at_ms: now_ms,
        },
        idempotency_scope: "product:1".into(),
    }
}
