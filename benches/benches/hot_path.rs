//! The hot path of Buy Now, piece by piece, so a regression shows where it came from:
//!
//! - `engine/reserve`: the stock state machine alone (decide and undo one reservation).
//! - `actor/round_trip`: one message to a product actor and its answer (no I/O).
//! - `shop/buy_now_sqlite`: whole Buy Now through the shop, committed to the embedded
//!   store, 512 buyers at a time (what group commit is for).
//!
//! Figures are throughput (elements/s); compare them within one run, not across machines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::{BuyNowReply, BuyNowRequest, Shop, ShopSettings};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::stock::{ProductStock, ReserveOutcome, ReserveRequest};
use engine::{IdempotencyKey, Money, OrderId, ProductDraft, ProductId, UserId};
use persistence::{SqliteStore, Store};
use uuid::Uuid;

fn engine_reserve(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    let keys: Vec<IdempotencyKey> = (0..1_024)
        .map(|n| IdempotencyKey::parse(&format!("key-{n}")).expect("valid"))
        .collect();
    group.bench_function("reserve", |b| {
        let mut stock = ProductStock::new(ProductId(1), Money(1_000), 1_000_000);
        let mut n: u128 = 0;
        b.iter(|| {
            n += 1;
            let order_id = OrderId(Uuid::from_u128(n));
            let outcome = stock.reserve(ReserveRequest {
                order_id,
                user_id: UserId(n as u64),
                quantity: 1,
                idempotency_key: keys[(n % 1_024) as usize].clone(),
                now_ms: 1_000,
                expires_at_ms: 601_000,
            });
            assert!(matches!(outcome, ReserveOutcome::Reserved(_)));
            // Undo, so the state stays the same size however long criterion runs.
            stock.abort_reserve(order_id);
        });
    });
    group.finish();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn shop_with_product(dir: &std::path::Path, stock: u64) -> Shop {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir).await.expect("store"));
    let settings = ShopSettings {
        in_flight_per_product_max: 100_000,
        ..ShopSettings::default()
    };
    let shop = Shop::start(settings, store, None).await.expect("shop");
    let draft = ProductDraft {
        title: "Bench phone".into(),
        brand: "Bench".into(),
        category: "mobiles".into(),
        description: String::new(),
        price: Money(1_000),
        rating: 4.0,
        popularity: 0,
    };
    shop.create_product(Some(ProductId(1)), draft, stock)
        .await
        .expect("product");
    shop.warm(ProductId(1)).await.expect("warm");
    shop
}

fn actor_round_trip(c: &mut Criterion) {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = runtime.block_on(shop_with_product(dir.path(), 10));
    let mut group = c.benchmark_group("actor");
    group.throughput(Throughput::Elements(1));
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    shop.inventory(ProductId(1)).await.expect("inventory");
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

fn shop_buy_now(c: &mut Criterion) {
    const BUYERS: u64 = 512;
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let shop = runtime.block_on(shop_with_product(dir.path(), engine::product::STOCK_MAX));
    let mut group = c.benchmark_group("shop");
    group.throughput(Throughput::Elements(BUYERS));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    let mut round: u64 = 0;
    group.bench_function("buy_now_sqlite", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    round += 1;
                    let mut buyers = tokio::task::JoinSet::new();
                    for buyer in 0..BUYERS {
                        let shop = shop.clone();
                        let key =
                            IdempotencyKey::parse(&format!("r{round}-b{buyer}")).expect("key");
                        buyers.spawn(async move {
                            shop.buy_now(BuyNowRequest {
                                product_id: ProductId(1),
                                user_id: UserId(buyer),
                                quantity: 1,
                                idempotency_key: key,
                            })
                            .await
                        });
                    }
                    while let Some(reply) = buyers.join_next().await {
                        let reply = reply.expect("task").expect("known product");
                        assert!(matches!(reply, BuyNowReply::Placed(_)), "{reply:?}");
                    }
                }
                started.elapsed()
            })
        });
    });
    group.finish();
}

criterion_group!(hot_path, engine_reserve, actor_round_trip, shop_buy_now);
criterion_main!(hot_path);
