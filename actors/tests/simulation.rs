//! A deterministic simulation of the hot path, in the spirit of TigerBeetle's VOPR.
//!
//! From a seed: a few products (one maybe with a flash sale), a dozen shoppers, and a run
//! of steps that interleave Buy Now bursts, retries with the same key, cart checkouts,
//! payments (accepted and refused), cancellations and the passing of time (reservations
//! expire). Underneath, the real product actors, group committer and SQLite ledger run
//! on tokio's paused clock, and every store call goes through a switchboard that fails
//! commits before they write, fails them after they wrote (the outcome is unknown to the
//! shop), stalls them past the commit timeout, fails reads, and crashes the process
//! (every actor dropped, a commit in flight written or not) to start it again from the
//! database (`sim/world.rs` says how a seed replays exactly).
//!
//! After every step, with the shop settled, the auditor (`sim/auditor.rs`) reads the
//! database on its own and the checks say:
//! - no product has more units sold or reserved than its stock; no sale more than its
//!   pool; no shopper more than the sale's limit;
//! - every order the shop acknowledged is in the database, with its lines, and every
//!   payment or cancellation it acknowledged stands;
//! - a key answers with one order, always the same, across crashes;
//! - every product actor agrees with the database (`sold + reserved + left == initial`
//!   in both, and the same numbers), and no actor panicked.
//!
//! At the end, with faults off and time run past every reservation, no unpaid order is
//! left holding stock.
//!
//! A failure names its seed; `SIM_SEED=<seed>` replays it exactly. `SIM_SEEDS=<n>` runs
//! n seeds (from `SIM_SEED_START`, default 1); the suite runs a few hundred:
//!
//! ```sh
//! SIM_SEEDS=10000 cargo test --release -p flashcart-actors --test simulation -- --nocapture
//! ```

mod sim;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actors::{
    BuyNowReply, BuyNowRequest, CartCheckout, CheckoutReply, OrderError, ProductInspection, Shop,
    idempotency_scope,
};
use engine::order::{OrderEvent, OrderStatus};
use engine::{FlashSaleDraft, IdempotencyKey, Money, OrderId, ProductDraft, ProductId, UserId};
use sim::auditor::{Auditor, Snapshot};
use sim::world::World;

/// Seeds the suite runs: enough to cover every fault mix many times over, in well under
/// a minute of a debug build.
const SEEDS_IN_SUITE: u64 = 300;
const USERS: u64 = 12;

#[test]
fn simulated_sales_keep_every_rule_under_faults() {
    let (first, count) = seeds();
    let started = Instant::now();
    let mut crashes = 0;
    for seed in first..first + count {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run(seed)));
        match outcome {
            Ok(report) => crashes += report.crashes,
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                    .unwrap_or_default();
                panic!(
                    "the simulation failed at seed {seed}: {reason}\n\
                     replay it with: SIM_SEED={seed} cargo test -p flashcart-actors --test simulation -- --nocapture"
                );
            }
        }
    }
    println!(
        "simulated {count} seeds from {first} ({crashes} crashes) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [7, 1_001, 31_337] {
        let first = run(seed).trace;
        let again = run(seed).trace;
        assert!(first.len() > 100, "seed {seed} did something");
        if first != again {
            let step = first
                .iter()
                .zip(&again)
                .position(|(a, b)| a != b)
                .unwrap_or(first.len().min(again.len()));
            panic!(
                "seed {seed} ran differently the second time, from line {step}:\n  {:?}\n  {:?}",
                first.get(step),
                again.get(step)
            );
        }
    }
}

/// The seeds to run: `SIM_SEED` alone, or `SIM_SEEDS` of them from `SIM_SEED_START`.
fn seeds() -> (u64, u64) {
    let number = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|value| value.parse::<u64>().expect("a number"))
    };
    match number("SIM_SEED") {
        Some(seed) => (seed, 1),
        None => (
            number("SIM_SEED_START").unwrap_or(1),
            number("SIM_SEEDS").unwrap_or(SEEDS_IN_SUITE),
        ),
    }
}

struct Report {
    trace: Vec<String>,
    crashes: u32,
}

fn run(seed: u64) -> Report {
    if std::env::var("SIM_SEED").is_ok() {
        // Replaying one seed: the shop's own log lines go with the trace.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_test_writer()
            .try_init();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(simulate(seed))
}

/// What the shoppers were told, which the database must agree with.
#[derive(Default)]
struct Model {
    products: Vec<ProductId>,
    /// Every Buy Now attempted: (user, product, quantity, key).
    attempts: Vec<(u64, u64, u32, String)>,
    /// Acknowledged Buy Now orders: (user, product, key) -> (order, quantity).
    buy_now_acks: BTreeMap<(u64, u64, String), (OrderId, u32)>,
    /// Acknowledged checkouts: (user, key) -> order.
    checkout_acks: BTreeMap<(u64, String), OrderId>,
    /// Every acknowledged order: its user and lines (product, units).
    acked: BTreeMap<OrderId, (u64, Vec<(u64, u64)>)>,
    /// Status changes the shop acknowledged.
    settled: BTreeMap<OrderId, OrderStatus>,
    next_key: u64,
}

impl Model {
    fn fresh_key(&mut self) -> String {
        self.next_key += 1;
        format!("sim-{}", self.next_key)
    }

    /// Orders acknowledged and not known to be settled: what a shopper would pay or cancel.
    fn open_orders(&self) -> Vec<OrderId> {
        self.acked
            .keys()
            .filter(|order| !self.settled.contains_key(order))
            .copied()
            .collect()
    }
}

/// One shopper's action and what they were told.
enum Outcome {
    BuyNow {
        user: u64,
        product: u64,
        quantity: u32,
        key: String,
        reply: Result<BuyNowReply, actors::BuyNowError>,
    },
    Checkout {
        user: u64,
        key: String,
        reply: Result<CheckoutReply, actors::CheckoutError>,
    },
    Settled {
        order: OrderId,
        result: Result<engine::order::Order, OrderError>,
    },
}

async fn simulate(seed: u64) -> Report {
    let mut world = World::start(seed).await;
    let auditor = Auditor::open(&world.database_name);
    let mut model = Model::default();
    set_up(&mut world, &mut model).await;
    check(&mut world, &auditor, &model).await;
    world.faults_on = true;
    let steps = world.rng.between(15, 40);
    for step in 0..steps {
        world.note(format!("step {step}"));
        run_step(&mut world, &mut model).await;
        check(&mut world, &auditor, &model).await;
    }
    // Liveness: with the faults gone and every reservation past its time, nothing unpaid
    // holds stock any more, and every acknowledged key still answers with its order.
    world.faults_on = false;
    let ttl_ms = world.settings.reservation_ttl.as_millis() as u64;
    world.run_for(ttl_ms + 1_000).await;
    check(&mut world, &auditor, &model).await;
    let snapshot = auditor.snapshot();
    let now = world.now_ms();
    for (order_id, order) in &snapshot.orders {
        assert!(
            !(order.status == "PENDING_PAYMENT" && order.expires_at_ms + 1_000 < now),
            "seed {seed}: order {order_id} is still unpaid {} ms after it expired",
            now - order.expires_at_ms
        );
    }
    retries_answer_the_same_orders(&mut world, &model).await;
    Report {
        trace: world.trace,
        crashes: world.crashes,
    }
}

async fn set_up(world: &mut World, model: &mut Model) {
    let shop = world.shop();
    let product_count = world.rng.between(1, 3);
    for n in 1..=product_count {
        let stock = world.rng.between(3, 30);
        let draft = ProductDraft {
            title: format!("Phone {n}"),
            brand: "Sim".into(),
            category: "mobiles".into(),
            description: String::new(),
            price: Money(10_000 * n),
            rating: 4.0,
            popularity: 0,
            seller_id: None,
        };
        let shop = shop.clone();
        let product = world
            .drive(async move { shop.create_product(Some(ProductId(n)), draft, stock).await })
            .await
            .expect("the product is created");
        model.products.push(product.id);
    }
    if world.rng.chance(700) {
        let product = model.products[0];
        let start_ms = world.now_ms() + world.rng.between(0, 3_000);
        let end_ms = world
            .rng
            .chance(500)
            .then(|| start_ms + world.rng.between(2_000, 20_000));
        let stock = world.rng.between(1, 3);
        let draft = FlashSaleDraft {
            product_id: product,
            sale_price: Money(5_000),
            original_price: Money(10_000),
            start_ms,
            end_ms,
            stock,
            per_user_limit: world.rng.between(1, 3) as u32,
        };
        let shop = shop.clone();
        world
            .drive(async move { shop.schedule_sale(draft).await })
            .await
            .expect("the sale is scheduled");
    }
    world.note(format!("set up {} products", model.products.len()));
}

/// Up to three shoppers' actions at once, maybe a crash while they run, maybe time
/// passing after.
async fn run_step(world: &mut World, model: &mut Model) {
    let shop = world.shop();
    let mut running = Vec::new();
    for _ in 0..world.rng.between(1, 3) {
        match world.rng.between(0, 99) {
            0..=54 => {
                for _ in 0..world.rng.between(1, 10) {
                    running.push(spawn_buy_now(world, model, &shop));
                }
            }
            55..=69 => running.push(spawn_checkout(world, model, &shop)),
            70..=84 => {
                if let Some(order) = world.rng.pick(&model.open_orders()).copied() {
                    let succeeded = world.rng.chance(850);
                    let transaction = format!("tx-{}", world.rng.next_u64());
                    let shop = shop.clone();
                    running.push(tokio::spawn(async move {
                        let result = shop.settle_payment(order, transaction, succeeded).await;
                        Outcome::Settled { order, result }
                    }));
                }
            }
            _ => {
                if let Some(order) = world.rng.pick(&model.open_orders()).copied() {
                    let shop = shop.clone();
                    running.push(tokio::spawn(async move {
                        let result = shop.apply_to_order(order, OrderEvent::Cancel).await;
                        Outcome::Settled { order, result }
                    }));
                }
            }
        }
    }
    if world.rng.chance(world.faults.crash * 3) {
        let before = world.rng.between(0, 40);
        world.run_for(before).await;
        world.crash_and_restart().await;
    }
    let outcomes = world
        .drive(async move {
            let mut outcomes = Vec::with_capacity(running.len());
            for task in running {
                outcomes.push(task.await.expect("a shopper's task does not panic"));
            }
            outcomes
        })
        .await;
    for outcome in outcomes {
        learn(world, model, outcome);
    }
    if world.rng.chance(250) {
        let passing = world.rng.between(100, 2_500);
        world.note(format!("time passes {passing} ms"));
        world.run_for(passing).await;
    }
}

fn spawn_buy_now(
    world: &mut World,
    model: &mut Model,
    shop: &Shop,
) -> tokio::task::JoinHandle<Outcome> {
    // A fifth of the presses repeat an earlier one: a retry, with its key and quantity.
    let (user, product, quantity, key) = match world.rng.chance(200) {
        true if !model.attempts.is_empty() => world
            .rng
            .pick(&model.attempts)
            .cloned()
            .expect("attempts exist"),
        _ => {
            let attempt = (
                world.rng.between(1, USERS),
                world.rng.pick(&model.products).expect("products").0,
                world.rng.between(1, 3) as u32,
                model.fresh_key(),
            );
            model.attempts.push(attempt.clone());
            attempt
        }
    };
    let request = BuyNowRequest {
        product_id: ProductId(product),
        user_id: UserId(user),
        quantity,
        idempotency_key: IdempotencyKey::parse(&key).expect("a valid key"),
    };
    let shop = shop.clone();
    tokio::spawn(async move {
        let reply = shop.buy_now(request).await;
        Outcome::BuyNow {
            user,
            product,
            quantity,
            key,
            reply,
        }
    })
}

fn spawn_checkout(
    world: &mut World,
    model: &mut Model,
    shop: &Shop,
) -> tokio::task::JoinHandle<Outcome> {
    let user = world.rng.between(1, USERS);
    let mut lines = Vec::new();
    for _ in 0..world.rng.between(1, 2) {
        let product = *world.rng.pick(&model.products).expect("products");
        if !lines.iter().any(|(p, _)| *p == product) {
            lines.push((product, world.rng.between(1, 2) as u32));
        }
    }
    let key = model.fresh_key();
    let shop = shop.clone();
    tokio::spawn(async move {
        for (product, quantity) in lines {
            // Out of stock or too many: the shopper simply does not add it.
            let _ = shop.add_to_cart(UserId(user), product, quantity).await;
        }
        let checkout = CartCheckout {
            user_id: UserId(user),
            idempotency_key: IdempotencyKey::parse(&key).expect("a valid key"),
            address_id: "home".into(),
            payment_method: "UPI".into(),
        };
        let reply = shop.checkout_cart(checkout).await;
        Outcome::Checkout { user, key, reply }
    })
}

/// Folds what a shopper was told into the model, checking what can be checked at once.
fn learn(world: &mut World, model: &mut Model, outcome: Outcome) {
    let seed = world.seed;
    match outcome {
        Outcome::BuyNow {
            user,
            product,
            quantity,
            key,
            reply,
        } => {
            world.note(format!(
                "buy now user {user} product {product} x{quantity} {key}: {reply:?}"
            ));
            let Ok(BuyNowReply::Placed(placement)) = reply else {
                return;
            };
            assert_eq!(placement.quantity, quantity, "seed {seed}");
            let earlier = model
                .buy_now_acks
                .get(&(user, product, key.clone()))
                .copied();
            match earlier {
                Some((order, _)) => assert_eq!(
                    placement.order_id, order,
                    "seed {seed}: key {key} of user {user} answered two different orders"
                ),
                None => {
                    model
                        .buy_now_acks
                        .insert((user, product, key), (placement.order_id, quantity));
                    model.acked.insert(
                        placement.order_id,
                        (user, vec![(product, u64::from(quantity))]),
                    );
                }
            }
        }
        Outcome::Checkout { user, key, reply } => {
            world.note(format!("checkout user {user} {key}: {reply:?}"));
            let Ok(CheckoutReply::Placed { order, .. }) = reply else {
                return;
            };
            if let Some(earlier) = model.checkout_acks.get(&(user, key.clone())) {
                assert_eq!(
                    order.id, *earlier,
                    "seed {seed}: a checkout key made two orders"
                );
            }
            model.checkout_acks.insert((user, key), order.id);
            let lines = order
                .items
                .iter()
                .map(|item| (item.product_id.0, u64::from(item.quantity)))
                .collect();
            model.acked.insert(order.id, (user, lines));
        }
        Outcome::Settled { order, result } => {
            world.note(format!("settle {order}: {result:?}"));
            if let Ok(order) = result {
                model.settled.insert(order.id, order.status);
            }
        }
    }
}

/// Tries to catch the shop at rest this many times before calling it a liveness bug.
const QUIET_MOMENT_ATTEMPTS: u32 = 50;

/// Settles the shop (no faults), then checks the database against the rules, against what
/// the shoppers were told, and against every product actor.
///
/// The actors are compared with the database only at a quiet moment: time keeps moving
/// (a reservation may expire while the check runs), so the database is read before and
/// after the actors are asked, and only a moment when it did not change and no actor had
/// work in flight counts.
async fn check(world: &mut World, auditor: &Auditor, model: &Model) {
    let faults_on = std::mem::replace(&mut world.faults_on, false);
    let seed = world.seed;
    for _ in 0..QUIET_MOMENT_ATTEMPTS {
        world.settle().await;
        let before = auditor.snapshot();
        check_stock_rules(seed, &before);
        check_acknowledgements(seed, &before, model);
        let seen = inspect_products(world, &before).await;
        let after = auditor.snapshot();
        let idle = seen.iter().all(|(_, seen)| {
            !seen.recovering
                && seen.open_writes == 0
                && seen.committing_batches == 0
                && seen.held_lines == 0
        });
        if before == after && idle {
            check_actors(seed, &before, &seen);
            assert_eq!(
                world.shop().actor_failures(),
                0,
                "seed {seed}: an actor panicked"
            );
            world.faults_on = faults_on;
            return;
        }
        world.note("the shop moved while it was checked; again");
    }
    panic!("seed {seed}: the shop never came to rest");
}

fn check_stock_rules(seed: u64, snapshot: &Snapshot) {
    for (product, stock) in &snapshot.stock {
        assert!(
            stock.reserved + stock.sold <= stock.initial,
            "seed {seed}: product {product} promised {} + {} of {} units",
            stock.reserved,
            stock.sold,
            stock.initial
        );
    }
    for (sale_id, sale) in &snapshot.sales {
        assert!(
            sale.held <= sale.stock,
            "seed {seed}: sale {sale_id} holds {} of its {} units",
            sale.held,
            sale.stock
        );
        for (user, held) in &sale.held_by_user {
            assert!(
                *held <= sale.per_user_limit,
                "seed {seed}: user {user} holds {held} of sale {sale_id}, over its limit"
            );
        }
    }
}

fn check_acknowledgements(seed: u64, snapshot: &Snapshot, model: &Model) {
    for (order_id, (user, lines)) in &model.acked {
        let stored = snapshot.orders.get(order_id).unwrap_or_else(|| {
            panic!("seed {seed}: acknowledged order {order_id} is not in the database")
        });
        assert_eq!(stored.user_id, *user, "seed {seed}: order {order_id}");
        assert_eq!(&stored.lines, lines, "seed {seed}: order {order_id}");
    }
    for (order_id, status) in &model.settled {
        let stored = &snapshot.orders[order_id];
        assert_eq!(
            stored.status,
            status.as_str(),
            "seed {seed}: order {order_id} was acknowledged {status}"
        );
    }
    for ((user, product, key), (order_id, _)) in &model.buy_now_acks {
        let scope = idempotency_scope(ProductId(*product));
        assert_eq!(
            snapshot.keys.get(&(*user, scope, key.clone())),
            Some(order_id),
            "seed {seed}: key {key} of user {user}"
        );
    }
}

/// What every product's actor holds right now.
async fn inspect_products(world: &mut World, snapshot: &Snapshot) -> Vec<(u64, ProductInspection)> {
    let seed = world.seed;
    let mut seen = Vec::with_capacity(snapshot.stock.len());
    for product in snapshot.stock.keys() {
        let shop = world.shop();
        let id = ProductId(*product);
        let inspection = world
            .drive(async move { shop.inspect(id).await })
            .await
            .unwrap_or_else(|error| panic!("seed {seed}: product {product}: {error}"));
        seen.push((*product, inspection));
    }
    seen
}

/// Every product actor holds what the database holds.
fn check_actors(seed: u64, snapshot: &Snapshot, seen: &[(u64, ProductInspection)]) {
    for (product, seen) in seen {
        let stored = &snapshot.stock[product];
        let counters = seen.counters;
        assert_eq!(
            counters.sold + counters.reserved + counters.left,
            counters.initial,
            "seed {seed}: product {product}"
        );
        assert_eq!(
            (counters.initial, counters.reserved, counters.sold),
            (stored.initial, stored.reserved, stored.sold),
            "seed {seed}: product {product}: the actor (left) and the database (right) disagree"
        );
        if let Some((sale, sale_counters)) = &seen.sale {
            let stored_sale = &snapshot.sales[&sale.id.0];
            assert_eq!(
                (sale_counters.reserved, sale_counters.sold),
                (stored_sale.reserved, stored_sale.sold),
                "seed {seed}: sale {} of product {product}",
                sale.id
            );
        }
    }
}

/// A shopper retrying an acknowledged Buy Now gets the same order back, whatever
/// happened to the process in between.
async fn retries_answer_the_same_orders(world: &mut World, model: &Model) {
    let seed = world.seed;
    for ((user, product, key), (order_id, quantity)) in model.buy_now_acks.iter().take(10) {
        let request = BuyNowRequest {
            product_id: ProductId(*product),
            user_id: UserId(*user),
            quantity: *quantity,
            idempotency_key: IdempotencyKey::parse(key).expect("a valid key"),
        };
        let shop = world.shop();
        let reply = world
            .drive(async move { shop.buy_now(request).await })
            .await;
        match reply {
            Ok(BuyNowReply::Placed(placement)) => {
                assert!(placement.duplicate, "seed {seed}: a retry bought again");
                assert_eq!(placement.order_id, *order_id, "seed {seed}: key {key}");
            }
            other => panic!("seed {seed}: retry of {key} answered {other:?}"),
        }
    }
}
