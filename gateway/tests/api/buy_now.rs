//! Buy Now under contention: the engine sells exactly the stock there is.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;

use persistence::test_support::{TestDatabase, redis_url};

use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with, use_services};

/// Fires one Buy Now per (user, quantity) at once and collects (user, quantity, status, code).
async fn burst(
    app: &TestApp,
    product_id: u64,
    buyers: Vec<(u64, i64)>,
) -> Vec<(u64, i64, StatusCode, Option<String>)> {
    let app_address = app.address.clone();
    let mut requests = JoinSet::new();
    for (n, (user, quantity)) in buyers.into_iter().enumerate() {
        let client = app.client.clone();
        let token = app.token(user, gateway::auth::Role::Customer);
        let url = format!("{app_address}/api/v1/buy-now");
        requests.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", format!("burst-{n}"))
                .json(&serde_json::json!({ "productId": product_id, "quantity": quantity }))
                .send()
                .await
                .expect("request sent");
            let status = response.status();
            let body: Value = response.json().await.expect("json body");
            let code = body["error"]["code"].as_str().map(str::to_owned);
            (user, quantity, status, code)
        });
    }
    let mut results = Vec::new();
    while let Some(result) = requests.join_next().await {
        results.push(result.expect("request task"));
    }
    results
}

/// An app on PostgreSQL (fresh database) mirroring to Redis (fresh prefix).
async fn spawn_app_on_services() -> (TestApp, TestDatabase) {
    let database = TestDatabase::create().await;
    let app = spawn_app_with(|settings| {
        use_services(settings, &database.url, &redis_url());
        admit_everyone(settings);
    })
    .await;
    (app, database)
}

/// 2,000 buyers at once is a burst far above one product's in-flight bound (a real sale
/// sheds most of it with 503); these tests admit them all to check the decisions.
fn admit_everyone(settings: &mut gateway::settings::Settings) {
    settings.shop.in_flight_per_product_max = 4_096;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_buyers_for_a_hundred_units_get_exactly_a_hundred_orders() {
    sells_exactly_the_sale_stock(&spawn_app_with(admit_everyone).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_buyers_for_a_hundred_units_on_postgres_and_redis() {
    let (app, database) = spawn_app_on_services().await;
    sells_exactly_the_sale_stock(&app).await;
    app.mirror_converges(10).await;
    assert_eq!(app.mirrored(10).await, (Some(0), Some(0)));
    app.stop().await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantities_and_a_per_user_limit_never_oversell() {
    limits_hold_under_contention(&spawn_app_with(admit_everyone).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantities_and_a_per_user_limit_never_oversell_on_postgres_and_redis() {
    let (app, database) = spawn_app_on_services().await;
    limits_hold_under_contention(&app).await;
    app.mirror_converges(20).await;
    app.stop().await;
    database.drop_database().await;
}

async fn sells_exactly_the_sale_stock(app: &TestApp) {
    app.create_product(10, 99_900, 100).await;
    app.start_sale(10, 100, 1).await;

    let results = burst(app, 10, (1..=2_000).map(|user| (user, 1)).collect()).await;

    let created = results
        .iter()
        .filter(|r| r.2 == StatusCode::CREATED)
        .count();
    let sold_out = results
        .iter()
        .filter(|r| r.2 == StatusCode::CONFLICT && r.3.as_deref() == Some("sold_out"))
        .count();
    assert_eq!(created, 100, "exactly the sale stock is sold");
    assert_eq!(sold_out, 1_900, "everyone else hears sold out");

    let inventory = app.inventory(10).await;
    assert_eq!(
        inventory["reserved"].as_u64().unwrap() + inventory["sold"].as_u64().unwrap(),
        100
    );
    assert_eq!(inventory["left"], 0);
    assert_eq!(inventory["sale"]["left"], 0);

    let stored = app.stored_orders(10).await;
    assert_eq!(
        stored.len(),
        100,
        "the store holds exactly the answered orders"
    );
    let winners: Vec<u64> = results
        .iter()
        .filter(|r| r.2 == StatusCode::CREATED)
        .map(|r| r.0)
        .collect();
    let mut stored_users: Vec<u64> = stored.iter().map(|order| order.1).collect();
    let mut winners_sorted = winners.clone();
    stored_users.sort_unstable();
    winners_sorted.sort_unstable();
    assert_eq!(
        stored_users, winners_sorted,
        "every 201 is a stored order and nothing else is"
    );
}

async fn limits_hold_under_contention(app: &TestApp) {
    app.create_product(20, 99_900, 100).await;
    app.start_sale(20, 100, 3).await;

    // 600 users each try twice (1 to 3 units): second tries push some past the limit.
    let buyers: Vec<(u64, i64)> = (0..1_200u64)
        .map(|n| (n % 600 + 1, (n % 3 + 1) as i64))
        .collect();
    let results = burst(app, 20, buyers).await;

    let mut held: HashMap<u64, i64> = HashMap::new();
    let mut units_sold = 0;
    for (user, quantity, status, code) in &results {
        match status.as_u16() {
            201 => {
                *held.entry(*user).or_default() += quantity;
                units_sold += quantity;
            }
            409 => assert!(
                matches!(code.as_deref(), Some("sold_out" | "limit_reached")),
                "{code:?}"
            ),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        held.values().all(|&units| units <= 3),
        "nobody holds more than the limit"
    );
    assert!(units_sold <= 100);
    assert!(
        results
            .iter()
            .any(|r| r.3.as_deref() == Some("limit_reached")),
        "the limit was exercised"
    );

    let inventory = app.inventory(20).await;
    let promised = inventory["reserved"].as_u64().unwrap() + inventory["sold"].as_u64().unwrap();
    assert_eq!(promised as i64, units_sold);
    assert_eq!(inventory["left"].as_u64().unwrap() as i64, 100 - units_sold);
    let stored = app.stored_orders(20).await;
    assert_eq!(
        stored.iter().map(|order| i64::from(order.2)).sum::<i64>(),
        units_sold
    );
}

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_same_order() {
    let app = spawn_app().await;
    app.create_product(30, 99_900, 10).await;

    let first = app.buy(5, 30, 2, "retry-me").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    for _ in 0..3 {
        let again = app.buy(5, 30, 2, "retry-me").await;
        assert_eq!(again.status(), StatusCode::CREATED);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["orderId"], first["orderId"]);
        assert_eq!(again["total"], first["total"]);
    }
    // Regular price outside a sale, in minor units.
    assert_eq!(first["unitPrice"], 99_900);
    assert_eq!(first["total"], 199_800);

    // The same key with another quantity is a client bug, not a purchase.
    let (status, code) = error_code(app.buy(5, 30, 1, "retry-me").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    // Another user's identical key is their own.
    assert_eq!(
        app.buy(6, 30, 2, "retry-me").await.status(),
        StatusCode::CREATED
    );

    assert_eq!(app.stored_orders(30).await.len(), 2);
    assert_eq!(app.inventory(30).await["reserved"], 4);
}

#[tokio::test]
async fn sale_windows_are_enforced() {
    let app = spawn_app().await;
    app.create_product(40, 99_900, 5).await;
    let now_ms = actors::clock::now_ms();
    let response = app
        .post(
            "/api/v1/flash-sales",
            &app.admin(),
            serde_json::json!({
                "productId": 40, "salePrice": 10_000, "originalPrice": 99_900,
                "startTime": crate::helpers::rfc3339(now_ms + 3_600_000), "stock": 5, "perUserLimit": 1
            }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // All five units are in the sale pool: nothing to sell before it starts.
    let (status, code) = error_code(app.buy(1, 40, 1, "early").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "sale_not_started")
    );
    // A second sale cannot be scheduled over the first.
    let response = app
        .post(
            "/api/v1/flash-sales",
            &app.admin(),
            serde_json::json!({
                "productId": 40, "salePrice": 10_000, "originalPrice": 99_900,
                "startTime": crate::helpers::rfc3339(now_ms), "stock": 1, "perUserLimit": 1
            }),
        )
        .await;
    let (status, code) = error_code(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "sale_refused")
    );
}

/// Past a product's in-flight bound, buyers hear 503 `overloaded` with Retry-After at once
/// instead of queueing; admitted ones are decided as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_bound_buyers_are_shed_with_503() {
    let app = spawn_app_with(|settings| settings.shop.in_flight_per_product_max = 8).await;
    app.create_product(60, 99_900, 1_000).await;
    app.inventory(60).await; // warm the actor so the burst meets a live one
    let mut requests = JoinSet::new();
    for user in 1..=400u64 {
        let client = app.client.clone();
        let url = app.url("/api/v1/buy-now");
        let token = app.token(user, gateway::auth::Role::Customer);
        requests.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "shed")
                .json(&serde_json::json!({"productId": 60, "quantity": 1}))
                .send()
                .await
                .expect("sent");
            let retry_after = response.headers().get("retry-after").cloned();
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            (
                status,
                retry_after,
                body["error"]["code"].as_str().map(str::to_owned),
            )
        });
    }
    let (mut created, mut shed) = (0, 0);
    while let Some(result) = requests.join_next().await {
        let (status, retry_after, code) = result.expect("task");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(code.as_deref(), Some("overloaded"));
                assert!(retry_after.is_some());
                shed += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(shed > 0, "the bound shed some of the burst");
    assert!(created > 0, "and admitted the rest");
    assert_eq!(app.inventory(60).await["reserved"], created);
    assert_eq!(app.stored_orders(60).await.len(), created as usize);
}
