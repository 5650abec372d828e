//! The hot path of Buy Now, piece by piece, so a regression shows where it came from:
//!
//! - `engine/reserve`: the stock state machine alone (decide and undo one reservation).
//! - `actor/round_trip`: one message to a product actor and its answer (no I/O).
//! - `shop/buy_now_sqlite`: whole Buy Now through the shop, committed to the embedded
//!   store, 512 buyers at a time (what group commit is for).
//! - `group_commit/encode_512_orders`: a batch laid out as PostgreSQL columns.
//! - `json/*`: the Buy Now request parsed and its 201 body written.
//! - `auth/verify_token`: a shopper's bearer token checked (HS256), as every call is.
//!
//! Figures are throughput (elements/s); compare them within one run, not across machines.

use std::time::{Duration, Instant};

use actors::{BuyNowReply, BuyNowRequest, Shop, ShopSettings};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::stock::{ProductStock, ReserveOutcome, ReserveRequest};
use engine::{IdempotencyKey, Money, OrderId, ProductId, UserId};
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
    let settings = ShopSettings {
        in_flight_per_product_max: 100_000,
        ..ShopSettings::default()
    };
    flashcart_benches::shop_with_product(dir, settings, stock).await
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

fn order_write(n: u128) -> persistence::WriteOp {
    use engine::order::{Order, OrderItem, OrderStatus};
    persistence::WriteOp::PlaceOrder {
        order: Order {
            id: OrderId(Uuid::from_u128(n)),
            user_id: UserId(n as u64),
            status: OrderStatus::PendingPayment,
            items: vec![OrderItem {
                product_id: ProductId(1),
                sale_id: Some(engine::SaleId(1)),
                quantity: 1,
                unit_price: Money(49_900),
            }],
            total: Money(49_900),
            idempotency_key: IdempotencyKey::parse("bench-key-0001").expect("key"),
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: 1_700_000_600_000,
            updated_at_ms: 1_700_000_000_000,
        },
        idempotency_scope: "product:1".into(),
    }
}

/// Laying out a 512-order batch as PostgreSQL columns (the committer's CPU per batch).
fn group_commit_encode(c: &mut Criterion) {
    let ops: Vec<persistence::WriteOp> = (0..512).map(order_write).collect();
    let mut group = c.benchmark_group("group_commit");
    group.throughput(Throughput::Elements(ops.len() as u64));
    group.bench_function("encode_512_orders", |b| {
        b.iter(|| {
            let batch = persistence::Batch::encode(std::hint::black_box(&ops)).expect("encodes");
            assert_eq!(batch.order_count(), 512);
            batch
        });
    });
    group.finish();
}

/// The Buy Now request parsed and the 201 body written, with the gateway's own types.
fn buy_now_json(c: &mut Criterion) {
    use gateway::routes::buy_now::{BuyNowBody, PlacedBody};
    let request = br#"{"productId":123456,"quantity":2}"#;
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_buy_now", |b| {
        b.iter(|| {
            let body: BuyNowBody =
                serde_json::from_slice(std::hint::black_box(request)).expect("valid");
            body.quantity
        });
    });
    group.bench_function("encode_placed", |b| {
        b.iter(|| {
            let body = PlacedBody {
                order_id: "01a21448-98c5-72b3-ad14-996475285440".to_owned(),
                product_id: 123_456,
                quantity: 2,
                status: "PENDING_PAYMENT",
                unit_price: 49_900,
                total: 99_800,
                sale_id: Some(1),
                expires_at: "2026-11-25T20:07:11.749Z".to_owned(),
            };
            serde_json::to_vec(std::hint::black_box(&body)).expect("serializes")
        });
    });
    group.finish();
}

/// A shopper's token verified: what the `Caller` extractor costs every request.
fn verify_token(c: &mut Criterion) {
    use gateway::auth::{Claims, JwtKeys, Role};
    let keys = JwtKeys::new(secrecy::SecretString::from("bench-secret".to_owned()));
    let token = keys.encode(&Claims {
        sub: "1234567".into(),
        role: Role::Customer,
        exp: 4_102_444_800,
    });
    let mut group = c.benchmark_group("auth");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_token", |b| {
        b.iter(|| {
            keys.decode(std::hint::black_box(&token), 1_800_000_000)
                .expect("valid token")
        });
    });
    group.finish();
}

criterion_group!(encoding, group_commit_encode, buy_now_json, verify_token);
criterion_main!(hot_path, encoding);
