//! The actor layer on its own: batching, passivation, admission, recovery after an unknown
//! commit outcome, and checkout holds across products. Each test runs the real shop over
//! an in-memory SQLite database on tokio's paused clock, and decides the store calls by
//! hand through the simulation's switchboard (`sim/`), so "while this commit is in
//! flight" is a state the test holds the shop in, not a race it hopes to win.

mod sim;

use std::time::Duration;

use actors::{
    BuyNowError, BuyNowReply, BuyNowRequest, CartCheckout, CheckoutReply, PrepareRefused, Refusal,
    Shop, ShopSettings, Unavailable,
};
use engine::{IdempotencyKey, Money, ProductDraft, ProductId, UserId};
use persistence::GroupCommitSettings;
use sim::faulty_store::Fate;
use sim::rng::Rng;
use sim::world::{Faults, World};
use tokio::task::JoinHandle;

fn settings() -> ShopSettings {
    ShopSettings {
        shard_count: 4,
        in_flight_per_product_max: 16,
        stock_feed_rate_per_second: 10,
        preload_on_start: false,
        reservation_ttl: Duration::from_secs(60),
        request_timeout: Duration::from_secs(2),
        passivate_after: Duration::from_secs(3_600),
        passivation_sweep_every: Duration::from_millis(300),
        idempotency_retention: Duration::from_secs(3_600),
        recovery_retry: Duration::from_millis(50),
        quantity_per_order_max: 5,
        wishlist_items_max: 3,
        commission: actors::CommissionRates::default(),
        group_commit: GroupCommitSettings {
            batch_size_max: 256,
            batch_delay: Duration::ZERO,
            queue_capacity: 64,
            commit_timeout: Duration::from_millis(500),
            abandon_after: Duration::from_millis(1_500),
        },
    }
}

async fn world_with(settings: ShopSettings) -> World {
    World::start_with(1, Rng::new(1), settings, Faults::none()).await
}

async fn create_product(world: &mut World, id: u64, stock: u64) {
    let shop = world.shop();
    let draft = ProductDraft {
        title: format!("Phone {id}"),
        brand: "Test".into(),
        category: "mobiles".into(),
        description: String::new(),
        price: Money(10_000),
        rating: 4.0,
        popularity: 0,
        seller_id: None,
    };
    world
        .drive(async move { shop.create_product(Some(ProductId(id)), draft, stock).await })
        .await
        .expect("the product is created");
}

fn spawn_buy(
    shop: &Shop,
    product: u64,
    user: u64,
    quantity: u32,
    key: &str,
) -> JoinHandle<Result<BuyNowReply, BuyNowError>> {
    let shop = shop.clone();
    let request = BuyNowRequest {
        product_id: ProductId(product),
        user_id: UserId(user),
        quantity,
        idempotency_key: IdempotencyKey::parse(key).expect("a valid key"),
    };
    tokio::spawn(async move { shop.buy_now(request).await })
}

async fn answers<T: Send + 'static>(world: &mut World, tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    world
        .drive(async move {
            let mut answers = Vec::with_capacity(tasks.len());
            for task in tasks {
                answers.push(task.await.expect("the task ends"));
            }
            answers
        })
        .await
}

fn placed_order(answer: &Result<BuyNowReply, BuyNowError>) -> engine::OrderId {
    match answer {
        Ok(BuyNowReply::Placed(placement)) => placement.order_id,
        other => panic!("expected a placed order, got {other:?}"),
    }
}

async fn inspect(world: &mut World, product: u64) -> actors::ProductInspection {
    let shop = world.shop();
    world
        .drive(async move { shop.inspect(ProductId(product)).await })
        .await
        .expect("the product answers")
}

fn is_commit(label: &str) -> bool {
    label.starts_with("commit")
}

/// A commit that places an order (not one that only records an event).
fn places_an_order(label: &str) -> bool {
    is_commit(label) && label.contains("place ")
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn decisions_made_while_a_batch_commits_leave_together_in_arrival_order() {
    let mut world = world_with(settings()).await;
    create_product(&mut world, 1, 100).await;
    let shop = world.shop();

    // Five presses at once reach the actor before its Flush does: one batch.
    let first: Vec<_> = (1..=5)
        .map(|user| spawn_buy(&shop, 1, user, 1, &format!("first-{user}")))
        .collect();
    let label = world.run_until_parked(is_commit).await;
    assert_eq!(label.matches("place ").count(), 5, "{label}");

    // Seven more while it commits: they are decided at once, wait behind that commit
    // (at the committer, not at the store), and leave together, in the order they came.
    let second: Vec<_> = (6..=12)
        .map(|user| spawn_buy(&shop, 1, user, 1, &format!("second-{user}")))
        .collect();
    world.hold(20).await;
    assert_eq!(world.board.parked_labels().len(), 1, "one commit at a time");
    assert_eq!(inspect(&mut world, 1).await.counters.reserved, 12);
    world.decide_next(Fate::Run).await;
    for answer in answers(&mut world, first).await {
        placed_order(&answer);
    }
    let label = world.run_until_parked(is_commit).await;
    world.decide_next(Fate::Run).await;
    let second = answers(&mut world, second).await;
    let mut positions = Vec::new();
    for answer in &second {
        let order_id = placed_order(answer).to_string();
        positions.push(label.find(&order_id).expect("the order is in the batch"));
    }
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "the batch keeps the order of arrival: {label}"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_idle_product_is_passivated_and_comes_back_with_its_stock_without_a_store_read() {
    let mut world = world_with(ShopSettings {
        passivate_after: Duration::from_millis(1_000),
        ..settings()
    })
    .await;
    create_product(&mut world, 1, 10).await;
    let shop = world.shop();
    let bought = spawn_buy(&shop, 1, 1, 3, "before");
    placed_order(&answers(&mut world, vec![bought]).await[0]);
    assert_eq!(shop.live_product_count(), 1);

    world.run_for(2_000).await;
    assert_eq!(shop.live_product_count(), 0, "idle for 2 s: passivated");

    let reads_before = loads_of_product(&world, 1);
    let bought = spawn_buy(&shop, 1, 2, 2, "after");
    placed_order(&answers(&mut world, vec![bought]).await[0]);
    assert_eq!(shop.live_product_count(), 1, "active again");
    assert_eq!(
        loads_of_product(&world, 1),
        reads_before,
        "the dormant state came back without reading the store"
    );
    assert_eq!(inspect(&mut world, 1).await.counters.reserved, 5);

    // A killed actor (not passivated) comes back from the store, with the same stock.
    shop.product_actor(ProductId(1)).expect("live").kill();
    world.settle().await;
    assert_eq!(loads_of_product(&world, 1), reads_before + 1);
    let seen = inspect(&mut world, 1).await;
    assert_eq!((seen.counters.reserved, seen.counters.left), (5, 5));
    assert_eq!(shop.actor_failures(), 0, "a kill is not a panic");
}

fn loads_of_product(world: &World, product: u64) -> usize {
    let label = format!("load product {product}");
    world
        .trace
        .iter()
        .filter(|line| line.ends_with(&label))
        .count()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn past_the_in_flight_bound_buyers_are_refused_at_once_and_admitted_ones_keep_going() {
    let mut world = world_with(ShopSettings {
        in_flight_per_product_max: 4,
        ..settings()
    })
    .await;
    create_product(&mut world, 1, 100).await;
    let shop = world.shop();
    let presses: Vec<_> = (1..=10)
        .map(|user| spawn_buy(&shop, 1, user, 1, &format!("press-{user}")))
        .collect();
    world.run_until_parked(is_commit).await;
    assert_eq!(
        shop.in_flight(ProductId(1)),
        Some(4),
        "four admitted, waiting"
    );
    world.decide_next(Fate::Run).await;
    let answers = answers(&mut world, presses).await;
    let placed = answers
        .iter()
        .filter(|answer| matches!(answer, Ok(BuyNowReply::Placed(_))))
        .count();
    let shed = answers
        .iter()
        .filter(|answer| matches!(answer, Err(BuyNowError::Overloaded(_))))
        .count();
    assert_eq!((placed, shed), (4, 6), "{answers:?}");
    assert_eq!(
        shop.in_flight(ProductId(1)),
        Some(0),
        "every slot given back"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn after_a_commit_that_wrote_but_failed_the_actor_rebuilds_and_keeps_the_orders() {
    let mut world = world_with(settings()).await;
    create_product(&mut world, 1, 10).await;
    let shop = world.shop();
    let presses: Vec<_> = (1..=3)
        .map(|user| spawn_buy(&shop, 1, user, 1, &format!("k-{user}")))
        .collect();
    world.run_until_parked(is_commit).await;
    world.decide_next(Fate::FailAfterWriting).await;
    for answer in answers(&mut world, presses).await {
        assert!(
            matches!(
                answer,
                Ok(BuyNowReply::Unavailable(Unavailable::Unknown(_)))
            ),
            "the outcome is unknown to the buyer: {answer:?}"
        );
    }
    // Rebuilding: it reads the store (after every write in flight) and decides nothing
    // until then.
    world
        .run_until_parked(|label| label == "load product 1")
        .await;
    assert!(inspect(&mut world, 1).await.recovering);
    let meanwhile = spawn_buy(&shop, 1, 4, 1, "k-4");
    let meanwhile = answers(&mut world, vec![meanwhile]).await;
    assert!(
        matches!(
            meanwhile[0],
            Ok(BuyNowReply::Unavailable(Unavailable::Recovering))
        ),
        "{meanwhile:?}"
    );
    world.settle().await;
    let seen = inspect(&mut world, 1).await;
    assert!(!seen.recovering);
    assert_eq!(
        seen.counters.reserved, 3,
        "the orders were written after all"
    );
    assert_eq!(
        shop.pending_order_count(),
        3,
        "and wait for payment, with expiry"
    );
    // A retry finds its order instead of buying again.
    let retry = spawn_buy(&shop, 1, 1, 1, "k-1");
    match &answers(&mut world, vec![retry]).await[0] {
        Ok(BuyNowReply::Placed(placement)) => assert!(placement.duplicate),
        other => panic!("{other:?}"),
    }
    assert_eq!(inspect(&mut world, 1).await.counters.reserved, 3);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn after_a_commit_that_failed_before_writing_the_units_go_back() {
    let mut world = world_with(settings()).await;
    create_product(&mut world, 1, 10).await;
    let shop = world.shop();
    let press = spawn_buy(&shop, 1, 1, 2, "k-1");
    world.run_until_parked(is_commit).await;
    world.decide_next(Fate::FailBeforeWriting).await;
    let answer = answers(&mut world, vec![press]).await;
    assert!(matches!(
        answer[0],
        Ok(BuyNowReply::Unavailable(Unavailable::Unknown(_)))
    ));
    world.settle().await;
    let seen = inspect(&mut world, 1).await;
    assert_eq!((seen.counters.reserved, seen.counters.left), (0, 10));
    let retry = spawn_buy(&shop, 1, 1, 2, "k-1");
    match &answers(&mut world, vec![retry]).await[0] {
        Ok(BuyNowReply::Placed(placement)) => {
            assert!(!placement.duplicate, "nothing was written: a new order")
        }
        other => panic!("{other:?}"),
    }
}

async fn fill_cart(world: &mut World, user: u64, lines: &[(u64, u32)]) {
    for &(product, quantity) in lines {
        let shop = world.shop();
        world
            .drive(async move {
                shop.add_to_cart(UserId(user), ProductId(product), quantity)
                    .await
            })
            .await
            .expect("the line is added");
    }
}

fn spawn_checkout(shop: &Shop, user: u64, key: &str) -> JoinHandle<CheckoutReply> {
    let shop = shop.clone();
    let checkout = CartCheckout {
        user_id: UserId(user),
        idempotency_key: IdempotencyKey::parse(key).expect("a valid key"),
        address_id: "home".into(),
        payment_method: "UPI".into(),
    };
    tokio::spawn(async move {
        shop.checkout_cart(checkout)
            .await
            .expect("a valid checkout")
    })
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_checkout_holds_a_line_in_each_product_until_its_one_transaction_ends() {
    let mut world = world_with(settings()).await;
    create_product(&mut world, 1, 5).await;
    create_product(&mut world, 2, 1).await;
    create_product(&mut world, 3, 1).await;
    let shop = world.shop();
    fill_cart(&mut world, 7, &[(1, 1), (2, 1)]).await;

    let checkout = spawn_checkout(&shop, 7, "cart-1");
    let label = world.run_until_parked(places_an_order).await;
    assert_eq!(label.matches("place ").count(), 1, "one order: {label}");
    for product in [1, 2] {
        let seen = inspect(&mut world, product).await;
        assert_eq!((seen.held_lines, seen.counters.reserved), (1, 1));
    }
    // A held unit is out of everyone else's reach.
    let rival = spawn_buy(&shop, 2, 8, 1, "rival");
    let rival = answers(&mut world, vec![rival]).await;
    assert_eq!(
        rival[0].as_ref().ok(),
        Some(&BuyNowReply::Refused(Refusal::OutOfStock { left: 0 }))
    );
    world.decide_next(Fate::Run).await;
    let placed = answers(&mut world, vec![checkout]).await;
    assert!(
        matches!(placed[0], CheckoutReply::Placed { .. }),
        "{placed:?}"
    );
    world.settle().await;
    for product in [1, 2] {
        let seen = inspect(&mut world, product).await;
        assert_eq!((seen.held_lines, seen.counters.reserved), (0, 1));
    }
    let cart = world
        .drive({
            let shop = shop.clone();
            async move { shop.cart(UserId(7)).await }
        })
        .await
        .expect("the cart reads");
    assert!(cart.items.is_empty(), "the cart was emptied");

    // All or nothing: product 3 sells out between adding it and checking out, so the
    // line of product 1 that was held is given back.
    fill_cart(&mut world, 9, &[(1, 2), (3, 1)]).await;
    let rival = spawn_buy(&shop, 3, 10, 1, "last-unit");
    placed_order(&answers(&mut world, vec![rival]).await[0]);
    let checkout = spawn_checkout(&shop, 9, "cart-2");
    let refused = answers(&mut world, vec![checkout]).await;
    let CheckoutReply::Refused(lines) = &refused[0] else {
        panic!("{refused:?}");
    };
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].product_id, ProductId(3));
    assert_eq!(
        lines[0].reason,
        PrepareRefused::Refused(Refusal::OutOfStock { left: 0 })
    );
    world.settle().await;
    let seen = inspect(&mut world, 1).await;
    assert_eq!(
        (seen.held_lines, seen.counters.reserved),
        (0, 1),
        "product 1's line was given back"
    );
}
