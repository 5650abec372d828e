//! Sellers paid on delivery: a delivered order pays each seller of its lines their price
//! less the commission of the line's category, once, in the delivery's transaction;
//! replayed deliveries and a restart pay nothing twice; cancelled and expired orders pay
//! nothing; a seller sees only their own orders and payouts, and is told of each payout.
//! On the embedded store, and on PostgreSQL with the events on Kafka and the notices over
//! RabbitMQ.

use std::path::Path;
use std::time::Duration;

use gateway::auth::Role;
use gateway::settings::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use workflow::test_support::read_topic;

use crate::helpers::{
    TestApp, WEBHOOK_SECRET, error_code, eventually, real_services, spawn_app_in, spawn_app_with,
    use_kafka, use_rabbitmq, use_services,
};

const SELLER_A: u64 = 501;
const SELLER_B: u64 = 502;
/// A seller with products but no delivered order.
const SELLER_C: u64 = 503;
const WAIT: Duration = Duration::from_secs(30);

/// 10% by default, 5% on books.
fn commissions(settings: &mut Settings) {
    settings.payouts.commission_bps = 1_000;
    settings.payouts.categories = [("books".to_owned(), 500)].into_iter().collect();
}

async fn product(app: &TestApp, id: u64, category: &str, price: u64, seller: Option<u64>) {
    let mut body = json!({
        "id": id, "title": format!("Product {id}"), "brand": "B", "category": category,
        "price": price, "stock": 100,
    });
    if let Some(seller) = seller {
        body["sellerId"] = json!(seller);
    }
    let created = app.post("/api/v1/products", &app.admin(), body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let shown: Value = created.json().await.expect("json");
    assert_eq!(
        shown["sellerId"],
        seller.map_or(Value::Null, |seller| json!(seller))
    );
}

async fn catalog(app: &TestApp) {
    product(app, 11, "mobiles", 10_000, Some(SELLER_A)).await;
    product(app, 12, "books", 3_000, Some(SELLER_B)).await;
    product(app, 13, "books", 2_001, Some(SELLER_A)).await;
    // The shop's own stock: no one is paid for it.
    product(app, 14, "mobiles", 700, None).await;
    product(app, 15, "mobiles", 900, Some(SELLER_C)).await;
}

async fn pay(app: &TestApp, order_id: &str) {
    let verdict = json!({"orderId": order_id, "status": "SUCCESS", "transactionId": format!("txn-{order_id}")});
    let paid = app.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
    assert_eq!(paid.status(), StatusCode::OK);
}

async fn ship(app: &TestApp, order_id: &str) {
    let shipped = app
        .post(
            &format!("/api/v1/orders/{order_id}/ship"),
            &app.token(50, Role::Logistics),
            json!({"trackingId": "TRK-1", "estimatedDelivery": "2030-01-02T10:00:00Z"}),
        )
        .await;
    assert_eq!(shipped.status(), StatusCode::OK);
}

async fn deliver(app: &TestApp, order_id: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/deliveries/{order_id}/complete"),
        &app.token(60, Role::Delivery),
        json!({"signature": "R. Kumar", "photoUrl": "https://photos.example/p/1.jpg"}),
    )
    .await
}

async fn bought(app: &TestApp, user: u64, product: u64, quantity: i64, key: &str) -> String {
    let order = app.buy(user, product, quantity, key).await;
    assert_eq!(order.status(), StatusCode::CREATED);
    let order: Value = order.json().await.expect("json");
    order["orderId"].as_str().expect("orderId").to_owned()
}

async fn checked_out(app: &TestApp, user: u64, lines: &[(u64, u32)]) -> String {
    for (product, quantity) in lines {
        let added = app.add_to_cart(user, *product, *quantity).await;
        assert_eq!(added.status(), StatusCode::CREATED);
    }
    let placed = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(app.token(user, Role::Customer))
        .header("Idempotency-Key", format!("checkout-{user}"))
        .json(&json!({"addressId": "home-1", "paymentMethod": "UPI"}))
        .send()
        .await
        .expect("request sent");
    assert_eq!(placed.status(), StatusCode::CREATED);
    let order: Value = placed.json().await.expect("json");
    order["orderId"].as_str().expect("orderId").to_owned()
}

async fn payouts_of(app: &TestApp, seller: u64) -> Value {
    let answer = app
        .get_as("/api/v1/seller/payouts", &app.token(seller, Role::Seller))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    answer.json().await.expect("json")
}

/// (orderId, gross, commission, net) of each of a seller's payouts, by order id.
async fn payout_rows(app: &TestApp, seller: u64) -> Vec<(String, u64, u64, u64)> {
    let statement = payouts_of(app, seller).await;
    let mut rows: Vec<(String, u64, u64, u64)> = statement["payouts"]
        .as_array()
        .expect("payouts")
        .iter()
        .map(|payout| {
            assert_eq!(payout["sellerId"], seller);
            assert_eq!(payout["status"], "RELEASED");
            assert!(payout["releasedAt"].is_string());
            (
                payout["orderId"].as_str().expect("orderId").to_owned(),
                payout["gross"].as_u64().expect("gross"),
                payout["commission"].as_u64().expect("commission"),
                payout["net"].as_u64().expect("net"),
            )
        })
        .collect();
    assert_eq!(statement["total"], rows.len());
    let net: u64 = rows.iter().map(|row| row.3).sum();
    assert_eq!(statement["totalNet"], net);
    rows.sort();
    rows
}

/// The orders a delivery paid, by the flow below.
struct Delivered {
    single: String,
    split: String,
    cancelled: String,
}

/// A single-seller Buy Now and a two-seller checkout delivered (each delivery replayed),
/// an order cancelled; checks what every seller was paid and sees.
async fn deliver_and_check(app: &TestApp) -> Delivered {
    catalog(app).await;
    // Two units of seller A's phone: 20,000 less 10%.
    let single = bought(app, 7, 11, 2, "single").await;
    // Seller A's phone and book, seller B's three books, the shop's own phone.
    let split = checked_out(app, 8, &[(11, 1), (12, 3), (13, 1), (14, 1)]).await;
    // Cancelled before payment: never pays.
    let cancelled = bought(app, 9, 15, 1, "cancelled").await;
    let cancel = app
        .post(
            &format!("/api/v1/orders/{cancelled}/cancel"),
            &app.token(9, Role::Customer),
            json!({}),
        )
        .await;
    assert_eq!(cancel.status(), StatusCode::OK);

    for order in [&single, &split] {
        pay(app, order).await;
        ship(app, order).await;
        // A seller paid before the delivery would be paid for a parcel that may never
        // arrive.
        assert!(
            payout_rows(app, SELLER_A)
                .await
                .iter()
                .all(|row| &row.0 != order)
        );
        let delivered = deliver(app, order).await;
        assert_eq!(delivered.status(), StatusCode::OK);
        let delivered: Value = delivered.json().await.expect("json");
        assert_eq!(delivered["status"], "DELIVERED");
        // The courier's app retries: the order is delivered already and nobody is paid
        // again.
        let (status, code) = error_code(deliver(app, order).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::CONFLICT, "illegal_transition")
        );
    }
    check_payouts(app, &single, &split).await;

    // Seller A sees both orders with only their lines; seller B only the checkout, with
    // their books; seller C the cancelled order (nothing paid).
    let orders: Value = app
        .get_as("/api/v1/seller/orders", &app.token(SELLER_A, Role::Seller))
        .await
        .json()
        .await
        .expect("json");
    let mut seen: Vec<(String, String, u64, Vec<u64>)> = orders["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|order| {
            (
                order["orderId"].as_str().expect("orderId").to_owned(),
                order["status"].as_str().expect("status").to_owned(),
                order["subtotal"].as_u64().expect("subtotal"),
                order["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|item| item["productId"].as_u64().expect("productId"))
                    .collect(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (single.clone(), "DELIVERED".to_owned(), 20_000, vec![11]),
        (split.clone(), "DELIVERED".to_owned(), 12_001, vec![11, 13]),
    ];
    expected.sort();
    assert_eq!(seen, expected);
    let orders_of_c: Value = app
        .get_as("/api/v1/seller/orders", &app.token(SELLER_C, Role::Seller))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(orders_of_c["orders"][0]["orderId"], cancelled.as_str());
    assert_eq!(orders_of_c["orders"][0]["status"], "CANCELLED");
    assert_eq!(orders_of_c["orders"].as_array().expect("orders").len(), 1);

    // Sellers only.
    for role in [Role::Customer, Role::Admin, Role::Delivery] {
        for path in ["/api/v1/seller/payouts", "/api/v1/seller/orders"] {
            let refused = app.get_as(path, &app.token(SELLER_A, role)).await;
            assert_eq!(error_code(refused).await.0, StatusCode::FORBIDDEN);
        }
    }
    let bad_page = app
        .get_as(
            "/api/v1/seller/payouts?page=0",
            &app.token(SELLER_A, Role::Seller),
        )
        .await;
    assert_eq!(
        error_code(bad_page).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Each payout is told to its seller once.
    for (seller, count) in [(SELLER_A, 2), (SELLER_B, 1)] {
        let notices = eventually(WAIT, || async {
            let notices: Vec<Value> = app
                .notifications(seller)
                .await
                .into_iter()
                .filter(|message| message["kind"] == "payout_released")
                .collect();
            (notices.len() >= count).then_some(notices)
        })
        .await;
        assert_eq!(notices.len(), count, "seller {seller}: one notice a payout");
    }
    Delivered {
        single,
        split,
        cancelled,
    }
}

async fn check_payouts(app: &TestApp, single: &str, split: &str) {
    let mut of_a = vec![
        (single.to_owned(), 20_000, 2_000, 18_000),
        // 10,000 at 10% and 2,001 at 5% (100.05, rounded to 100).
        (split.to_owned(), 12_001, 1_100, 10_901),
    ];
    of_a.sort();
    assert_eq!(payout_rows(app, SELLER_A).await, of_a);
    assert_eq!(
        payout_rows(app, SELLER_B).await,
        vec![(split.to_owned(), 9_000, 450, 8_550)]
    );
    assert!(payout_rows(app, SELLER_C).await.is_empty());
}

/// After a restart: the same payouts, and a delivery replayed again pays nothing.
async fn check_after_restart(app: &TestApp, delivered: &Delivered) {
    check_payouts(app, &delivered.single, &delivered.split).await;
    let (status, _) = error_code(deliver(app, &delivered.split).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = error_code(deliver(app, &delivered.cancelled).await).await;
    assert_eq!(status, StatusCode::CONFLICT);
    check_payouts(app, &delivered.single, &delivered.split).await;
}

async fn restart_embedded(app: TestApp, dir: &Path) -> TestApp {
    app.stop().await;
    spawn_app_in(dir, commissions).await
}

#[tokio::test]
async fn delivered_orders_pay_each_seller_once_and_sellers_see_only_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_in(dir.path(), commissions).await;
    let delivered = deliver_and_check(&app).await;
    let app = restart_embedded(app, dir.path()).await;
    check_after_restart(&app, &delivered).await;
    app.stop().await;
}

#[tokio::test]
async fn an_expired_order_never_pays() {
    let app = spawn_app_with(|settings| {
        commissions(settings);
        settings.shop.reservation_ttl_secs = 1;
    })
    .await;
    catalog(&app).await;
    let order = bought(&app, 7, 11, 1, "expires").await;
    eventually(WAIT, || async {
        let shown: Value = app
            .get_as(&format!("/api/v1/orders/{order}"), &app.admin())
            .await
            .json()
            .await
            .ok()?;
        (shown["status"] == "EXPIRED").then_some(())
    })
    .await;
    let verdict = json!({"orderId": order, "status": "SUCCESS", "transactionId": "late"});
    let _ = app.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
    let ship = app
        .post(
            &format!("/api/v1/orders/{order}/ship"),
            &app.token(50, Role::Logistics),
            json!({"trackingId": "TRK-2", "estimatedDelivery": "2030-01-02T10:00:00Z"}),
        )
        .await;
    assert_eq!(error_code(ship).await.0, StatusCode::CONFLICT);
    assert_eq!(
        error_code(deliver(&app, &order).await).await.0,
        StatusCode::CONFLICT
    );
    assert!(payout_rows(&app, SELLER_A).await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payouts_on_postgres_are_released_on_kafka_and_told_over_rabbitmq() {
    let (database, redis, prefix, brokers) = real_services().await;
    let configure = |settings: &mut Settings| {
        use_services(settings, &database.url, &redis);
        commissions(settings);
        use_kafka(settings, &brokers, &prefix);
        use_rabbitmq(settings, &prefix);
    };
    let app = spawn_app_with(configure).await;
    let delivered = deliver_and_check(&app).await;

    let topic = format!("{prefix}order-events");
    let released = |events: &[workflow::test_support::ReadEvent]| -> Vec<(String, u64, u64)> {
        let mut released: Vec<(String, u64, u64)> = events
            .iter()
            .filter(|event| event.event_type == "payout_released")
            .map(|event| {
                let data = &event.payload["data"];
                assert_eq!(data["orderId"].as_str(), Some(event.key.as_str()));
                (
                    event.key.clone(),
                    data["sellerId"].as_u64().expect("sellerId"),
                    data["net"].as_u64().expect("net"),
                )
            })
            .collect();
        released.sort();
        released
    };
    read_topic(&brokers, &topic, WAIT, |events| released(events).len() >= 3).await;
    let app = {
        app.stop().await;
        spawn_app_with(configure).await
    };
    check_after_restart(&app, &delivered).await;
    // Everything on the topic by now: a second release would be right behind the first.
    let events = read_topic(&brokers, &topic, Duration::from_secs(3), |_| false).await;
    let mut expected = vec![
        (delivered.single.clone(), SELLER_A, 18_000),
        (delivered.split.clone(), SELLER_A, 10_901),
        (delivered.split.clone(), SELLER_B, 8_550),
    ];
    expected.sort();
    assert_eq!(released(&events), expected);
    app.stop().await;
    database.drop_database().await;
}
