//! Checkout: a cart becomes one order, every line reserved or none; retries answer the
//! first order; the order is paid and cancelled as a whole; bad requests are named; and 500
//! shoppers racing for 3 scarce products never oversell and never get half an order.

use std::collections::{HashMap, HashSet};

use gateway::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, WEBHOOK_SECRET, error_code, spawn_app, spawn_app_with, use_services,
};

async fn add_to_cart(app: &TestApp, user: u64, product_id: u64, quantity: u32) {
    let response = app.add_to_cart(user, product_id, quantity).await;
    assert_eq!(response.status(), StatusCode::CREATED, "add to cart");
}

async fn check_out(app: &TestApp, user: u64, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(app.token(user, Role::Customer))
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("request sent")
}

/// (productId, quantity) of each line of an order body, in order.
fn items_of(order: &Value) -> Vec<(u64, u64)> {
    order["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            (
                item["productId"].as_u64().expect("productId"),
                item["quantity"].as_u64().expect("quantity"),
            )
        })
        .collect()
}

fn shipping() -> Value {
    json!({"addressId": "home-1", "paymentMethod": "UPI"})
}

async fn cart_of(app: &TestApp, user: u64) -> Value {
    app.get_as("/api/v1/cart/items", &app.token(user, Role::Customer))
        .await
        .json()
        .await
        .expect("json")
}

/// (sold, reserved, left) of a product.
async fn counts(app: &TestApp, product_id: u64) -> (u64, u64, u64) {
    let inventory = app.inventory(product_id).await;
    (
        inventory["sold"].as_u64().expect("sold"),
        inventory["reserved"].as_u64().expect("reserved"),
        inventory["left"].as_u64().expect("left"),
    )
}

async fn checkout_flow(app: &TestApp) {
    app.create_product(1, 1_000, 5).await;
    app.create_product(2, 250, 100).await;
    app.create_product(3, 500, 1).await;

    add_to_cart(app, 7, 1, 2).await;
    add_to_cart(app, 7, 2, 4).await;
    let placed = check_out(app, 7, Some("co-1"), shipping()).await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    assert!(placed.headers().get("idempotent-replayed").is_none());
    let order: Value = placed.json().await.unwrap();
    assert_eq!(order["status"], "PENDING_PAYMENT");
    assert_eq!(order["total"], 2 * 1_000 + 4 * 250);
    assert_eq!(order["addressId"], "home-1");
    assert_eq!(order["paymentMethod"], "UPI");
    let items = items_of(&order);
    assert_eq!(items, [(1, 2), (2, 4)]);
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    assert_eq!(counts(app, 1).await, (0, 2, 3));
    assert_eq!(counts(app, 2).await, (0, 4, 96));
    // One order, both lines, stored together; the cart is empty.
    for product in [1, 2] {
        let stored = app.stored_orders(product).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0, order_id);
    }
    assert_eq!(cart_of(app, 7).await["items"].as_array().unwrap().len(), 0);

    // A retry with the same key is the same order, even with the cart now empty.
    let replay = check_out(app, 7, Some("co-1"), shipping()).await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["orderId"], order_id.as_str());
    assert_eq!(counts(app, 1).await, (0, 2, 3));

    // Paying sells every line at once.
    let verdict = json!({"orderId": order_id, "status": "SUCCESS", "transactionId": "co-txn-1"});
    let paid = app.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(paid.json::<Value>().await.unwrap()["status"], "PAID");
    assert_eq!(counts(app, 1).await, (2, 0, 3));
    assert_eq!(counts(app, 2).await, (4, 0, 96));
    assert_stored_counts(app, 1, (2, 0, 3)).await;
    assert_stored_counts(app, 2, (4, 0, 96)).await;

    // All or nothing: product 3 sells out between adding it and checking out.
    add_to_cart(app, 8, 1, 1).await;
    add_to_cart(app, 8, 3, 1).await;
    assert_eq!(
        app.buy(9, 3, 1, "takes-the-last").await.status(),
        StatusCode::CREATED
    );
    let refused = check_out(app, 8, Some("co-2"), shipping()).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "lines_refused");
    let lines = body["error"]["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{body}");
    assert_eq!(lines[0]["productId"], 3);
    assert_eq!(lines[0]["code"], "sold_out");
    // Product 1's line was held and given back; the cart is untouched.
    assert_eq!(counts(app, 1).await, (2, 0, 3));
    assert_eq!(app.stored_orders(1).await.len(), 1);
    assert_eq!(cart_of(app, 8).await["items"].as_array().unwrap().len(), 2);

    // Cancelling a checkout order gives every line back.
    add_to_cart(app, 10, 1, 1).await;
    add_to_cart(app, 10, 2, 3).await;
    let placed: Value = check_out(app, 10, Some("co-3"), shipping())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(counts(app, 1).await, (2, 1, 2));
    let cancel_path = format!(
        "/api/v1/orders/{}/cancel",
        placed["orderId"].as_str().unwrap()
    );
    let cancelled = app
        .post(&cancel_path, &app.token(10, Role::Customer), json!({}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(
        cancelled.json::<Value>().await.unwrap()["status"],
        "CANCELLED"
    );
    assert_eq!(counts(app, 1).await, (2, 0, 3));
    assert_eq!(counts(app, 2).await, (4, 0, 96));
    assert_stored_counts(app, 1, (2, 0, 3)).await;
    assert_stored_counts(app, 2, (4, 0, 96)).await;
}

/// On PostgreSQL, the inventory table agrees with the actors: every line's move was
/// written with its order's status change.
async fn assert_stored_counts(app: &TestApp, product_id: u64, expected: (u64, u64, u64)) {
    let Some(url) = &app.database_url else {
        return;
    };
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let (sold, reserved, left): (i64, i64, i64) =
        sqlx::query_as(r#"SELECT sold, reserved, "left" FROM inventory WHERE product_id = $1"#)
            .bind(i64::try_from(product_id).expect("small"))
            .fetch_one(&pool)
            .await
            .expect("inventory row");
    pool.close().await;
    let stored = (sold as u64, reserved as u64, left as u64);
    assert_eq!(stored, expected, "stored inventory of product {product_id}");
}

#[tokio::test]
async fn a_cart_checks_out_as_one_order_all_lines_or_none() {
    checkout_flow(&spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_checks_out_as_one_order_on_postgres_with_the_cart_in_redis() {
    let database = persistence::test_support::TestDatabase::create().await;
    let redis = persistence::test_support::redis_url();
    let app = spawn_app_with(|settings| use_services(settings, &database.url, &redis)).await;
    add_to_cart_lands_in_redis(&app).await;
    checkout_flow(&app).await;
    app.stop().await;
    database.drop_database().await;
}

/// With Redis configured the cart is a Redis hash, not a table row.
async fn add_to_cart_lands_in_redis(app: &TestApp) {
    app.create_product(50, 100, 10).await;
    add_to_cart(app, 70, 50, 2).await;
    let prefix = app.redis_prefix.as_ref().expect("Redis configured");
    let client = redis::Client::open(persistence::test_support::redis_url()).expect("url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let line: Option<String> = redis::cmd("HGET")
        .arg(format!("{prefix}cart:70"))
        .arg(50)
        .query_async(&mut redis)
        .await
        .expect("HGET");
    assert!(line.is_some_and(|line| line.starts_with("2:")));
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}cart:70"))
        .query_async(&mut redis)
        .await
        .expect("PTTL");
    assert!(
        ttl_ms > 29 * 24 * 3_600 * 1_000,
        "a cart lives 30 days: {ttl_ms}"
    );
}

#[tokio::test]
async fn bad_checkouts_are_named() {
    let app = spawn_app().await;
    app.create_product(1, 1_000, 5).await;
    // Nothing in the cart yet.
    let (status, code) = error_code(check_out(&app, 7, Some("k"), shipping()).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    add_to_cart(&app, 7, 1, 1).await;
    let cases = [
        (None, shipping(), "Idempotency-Key"),
        (Some("k 1"), shipping(), "Idempotency-Key"),
        (
            Some("k"),
            json!({"addressId": "", "paymentMethod": "UPI"}),
            "addressId",
        ),
        (
            Some("k"),
            json!({"addressId": "a".repeat(65), "paymentMethod": "UPI"}),
            "addressId",
        ),
        (
            Some("k"),
            json!({"addressId": "home", "paymentMethod": "BITCOIN"}),
            "paymentMethod",
        ),
    ];
    for (key, body, field) in cases {
        let response = check_out(&app, 7, key, body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["field"], field, "{body}");
    }
    for body in [
        json!({"addressId": "home"}),
        json!({"addressId": "home", "paymentMethod": "UPI", "coupon": "x"}),
        json!([1, 2]),
    ] {
        let response = check_out(&app, 7, Some("k"), body.clone()).await;
        assert!(response.status().is_client_error(), "{body}");
    }
    let anonymous = app
        .client
        .post(app.url("/api/v1/orders"))
        .header("Idempotency-Key", "k")
        .json(&shipping())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // Nothing above reserved anything.
    assert_eq!(counts(&app, 1).await, (0, 0, 5));
}

/// 500 shoppers check out at once, with carts that overlap on 3 scarce products.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_checkouts_never_oversell_and_never_half_reserve() {
    const SHOPPERS: u64 = 500;
    const SCARCE: [(u64, u64); 3] = [(1, 40), (2, 25), (3, 10)];
    let database = persistence::test_support::TestDatabase::create().await;
    let redis = persistence::test_support::redis_url();
    let app = spawn_app_with(|settings| use_services(settings, &database.url, &redis)).await;
    for (product, stock) in SCARCE {
        app.create_product(product, 1_000 * product, stock).await;
    }
    app.create_product(4, 100, 100_000).await;

    // Every cart holds one to three scarce products (1 or 2 units each) and maybe a
    // plentiful one: a deterministic spread, so a failure replays the same way.
    let mut carts: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for user in 1..=SHOPPERS {
        let mut lines = Vec::new();
        for (index, (product, _)) in SCARCE.iter().enumerate() {
            if !(user + index as u64).is_multiple_of(3) || index == (user % 3) as usize {
                lines.push((*product, 1 + (user + *product) % 2));
            }
        }
        if user.is_multiple_of(4) {
            lines.push((4, 3));
        }
        carts.insert(user + 100, lines);
    }
    for chunk in carts.iter().collect::<Vec<_>>().chunks(50) {
        let adds = chunk.iter().flat_map(|(user, lines)| {
            lines
                .iter()
                .map(|(product, quantity)| add_to_cart(&app, **user, *product, *quantity as u32))
        });
        futures_util::future::join_all(adds).await;
    }

    let attempts = carts.keys().map(|user| {
        let app = &app;
        async move {
            let response = check_out(app, *user, Some(&format!("race-{user}")), shipping()).await;
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            (*user, status, body)
        }
    });
    let results = futures_util::future::join_all(attempts).await;

    let mut placed: HashMap<String, u64> = HashMap::new();
    let mut refused_users = HashSet::new();
    for (user, status, body) in &results {
        match *status {
            StatusCode::CREATED => {
                // Fully reserved: the order holds exactly the cart's lines.
                let mut items = items_of(body);
                items.sort_unstable();
                let mut cart = carts[user].clone();
                cart.sort_unstable();
                assert_eq!(items, cart, "user {user}");
                placed.insert(body["orderId"].as_str().unwrap().to_owned(), *user);
            }
            StatusCode::CONFLICT => {
                assert_eq!(body["error"]["code"], "lines_refused", "{body}");
                refused_users.insert(*user);
            }
            other => panic!("user {user}: unexpected {other}: {body}"),
        }
    }
    assert!(
        !placed.is_empty() && !refused_users.is_empty(),
        "a real race"
    );

    for (product, stock) in SCARCE {
        let (sold, reserved, left) = counts(&app, product).await;
        assert_eq!(sold + reserved + left, stock);
        assert_stored_counts(&app, product, (sold, reserved, left)).await;
        let stored = app.stored_orders(product).await;
        let units: u64 = stored.iter().map(|order| u64::from(order.2)).sum();
        assert_eq!(
            units, reserved,
            "product {product}: stored units == reserved"
        );
        assert!(
            units <= stock,
            "product {product} oversold: {units} of {stock}"
        );
        for (order_id, user, _, _) in &stored {
            // Every stored order is one the client was told about, never a refused one.
            assert_eq!(placed.get(order_id), Some(user));
            assert!(!refused_users.contains(user));
        }
    }
    // No refused shopper left anything behind on the plentiful product either.
    let plentiful = app.stored_orders(4).await;
    assert!(
        plentiful
            .iter()
            .all(|(order_id, _, _, _)| placed.contains_key(order_id))
    );
    let (_, reserved, _) = counts(&app, 4).await;
    assert_eq!(reserved, 3 * plentiful.len() as u64);
    app.stop().await;
    database.drop_database().await;
}

/// A checkout order and a Buy Now order that share a client key are two orders, and both
/// survive a restart: inventory, keys and the multi-line payment all come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_orders_survive_a_restart_beside_buy_now_orders_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let app = crate::helpers::spawn_app_in(dir.path(), |_| {}).await;
    app.create_product(1, 1_000, 10).await;
    app.create_product(2, 300, 10).await;
    add_to_cart(&app, 7, 1, 2).await;
    add_to_cart(&app, 7, 2, 1).await;
    let checkout: Value = check_out(&app, 7, Some("shared-key"), shipping())
        .await
        .json()
        .await
        .unwrap();
    let bought = app.buy(7, 1, 1, "shared-key").await;
    assert_eq!(bought.status(), StatusCode::CREATED);
    assert!(bought.headers().get("idempotent-replayed").is_none());
    let bought: Value = bought.json().await.unwrap();
    assert_ne!(bought["orderId"], checkout["orderId"]);
    assert_eq!(counts(&app, 1).await, (0, 3, 7));
    let before = (app.inventory(1).await, app.inventory(2).await);
    app.stop().await;

    let app = crate::helpers::spawn_app_in(dir.path(), |_| {}).await;
    assert_eq!((app.inventory(1).await, app.inventory(2).await), before);
    let replay = check_out(&app, 7, Some("shared-key"), shipping()).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.json::<Value>().await.unwrap()["orderId"],
        checkout["orderId"]
    );
    let replay = app.buy(7, 1, 1, "shared-key").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.json::<Value>().await.unwrap()["orderId"],
        bought["orderId"]
    );
    let verdict = json!({"orderId": checkout["orderId"], "status": "SUCCESS", "transactionId": "restart-txn"});
    let paid = app.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
    assert_eq!(paid.status(), StatusCode::OK);
    assert_eq!(counts(&app, 1).await, (2, 1, 7));
    assert_eq!(counts(&app, 2).await, (1, 0, 9));
    app.stop().await;
}
