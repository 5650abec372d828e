//! The whole order flow over the real brokers: Buy Now -> webhook -> PAID -> confirmed ->
//! shipped -> delivered, with its events on Kafka in order per order, the saga's jobs over
//! RabbitMQ recorded as notifications, failures and expiry returning stock, analytics from
//! the `analytics` consumer group, and no event lost while Kafka is down.

use std::collections::HashSet;
use std::time::Duration;

use gateway::auth::Role;
use gateway::settings::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use workflow::test_support::{
    PrivateKafka, ReadEvent, first_arrivals, kafka_brokers, rabbit_url, read_topic, unique_prefix,
};

use crate::helpers::{
    TestApp, WEBHOOK_SECRET, eventually, real_services, spawn_app_with, use_kafka, use_rabbitmq,
    use_services,
};

const WAIT: Duration = Duration::from_secs(30);

fn use_brokers(settings: &mut Settings, brokers: &str, prefix: &str, rabbit: bool) {
    use_kafka(settings, brokers, prefix);
    if rabbit {
        use_rabbitmq(settings, prefix);
    }
    settings.workflow.review_delay_secs = 1;
}

async fn place(app: &TestApp, user: u64) -> String {
    let response = app.buy(user, 1, 2, &format!("flow-{user}")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    order["orderId"].as_str().expect("order id").to_owned()
}

async fn verdict(app: &TestApp, order_id: &str, status: &str) {
    let body =
        json!({"orderId": order_id, "status": status, "transactionId": format!("txn-{order_id}")});
    let response = app.payment_webhook(&body, Some(WEBHOOK_SECRET)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// (kind, channel) of a user's notifications, oldest first.
async fn notifications(app: &TestApp, user: u64) -> Vec<(String, String, Value)> {
    let response = app
        .get_as("/api/v1/notifications", &app.token(user, Role::Customer))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let mut list: Vec<(String, String, Value)> = body["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["channel"].as_str().unwrap().to_owned(),
                n["body"].clone(),
            )
        })
        .collect();
    list.reverse();
    list
}

async fn notified(
    app: &TestApp,
    user: u64,
    wanted: &[(&str, &str)],
) -> Vec<(String, String, Value)> {
    eventually(WAIT, || async {
        let list = notifications(app, user).await;
        let have: HashSet<(&str, &str)> = list
            .iter()
            .map(|(k, c, _)| (k.as_str(), c.as_str()))
            .collect();
        wanted
            .iter()
            .all(|pair| have.contains(pair))
            .then_some(list)
    })
    .await
}

fn body_of<'a>(list: &'a [(String, String, Value)], kind: &str) -> &'a Value {
    &list
        .iter()
        .find(|(found, _, _)| found == kind)
        .unwrap_or_else(|| panic!("no {kind} in {list:?}"))
        .2
}

fn has_types(events: &[ReadEvent], key: &str, types: &[&str]) -> bool {
    let seen = first_arrivals(events, key);
    types.iter().all(|wanted| seen.iter().any(|t| t == wanted))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_flows_through_kafka_and_rabbitmq_from_buy_now_to_review_request() {
    let (database, redis, prefix, brokers) = real_services().await;
    let app = spawn_app_with(|settings| {
        use_services(settings, &database.url, &redis);
        use_brokers(settings, &brokers, &prefix, true);
        settings.shop.reservation_ttl_secs = 2;
    })
    .await;
    app.create_product(1, 1_000, 10).await;
    let paid = place(&app, 7).await;
    let failed = place(&app, 8).await;
    let expired = place(&app, 9).await;
    verdict(&app, &paid, "SUCCESS").await;
    verdict(&app, &failed, "FAILED").await;

    // The failed payment's and the expired reservation's units come back.
    eventually(WAIT, || async {
        let inventory = app.inventory(1).await;
        (inventory["reserved"] == 0).then_some(())
    })
    .await;
    let inventory = app.inventory(1).await;
    assert_eq!(
        (inventory["sold"].as_u64(), inventory["left"].as_u64()),
        (Some(2), Some(8))
    );

    // Logistics ships, the courier reports, the parcel arrives.
    let logistics = app.token(50, Role::Logistics);
    let courier = app.token(60, Role::Delivery);
    let shipped = app
        .post(
            &format!("/api/v1/orders/{paid}/ship"),
            &logistics,
            json!({"trackingId": "TRK-9", "estimatedDelivery": "2030-01-02T10:00:00Z"}),
        )
        .await;
    assert_eq!(shipped.status(), StatusCode::OK);
    let moved = app
        .post(
            &format!("/api/v1/deliveries/{paid}/location"),
            &courier,
            json!({"lat": 12.97, "lng": 77.59, "status": "IN_TRANSIT"}),
        )
        .await;
    assert_eq!(moved.status(), StatusCode::OK);
    let delivered = app
        .post(
            &format!("/api/v1/deliveries/{paid}/complete"),
            &courier,
            json!({"signature": "R. Kumar", "photoUrl": "https://photos.example/p/9.jpg"}),
        )
        .await;
    assert_eq!(delivered.status(), StatusCode::OK);

    // Kafka: every order's events, in order per key.
    let topic = format!("{prefix}order-events");
    let events = read_topic(&brokers, &topic, WAIT, |events| {
        has_types(events, &paid, &["order_delivered"])
            && has_types(events, &failed, &["order_cancelled"])
            && has_types(events, &expired, &["order_expired"])
    })
    .await;
    assert_eq!(
        first_arrivals(&events, &paid),
        [
            "order_placed",
            "payment_completed",
            "order_confirmed",
            "order_shipped",
            "delivery_location_updated",
            "order_delivered"
        ]
    );
    assert_eq!(
        first_arrivals(&events, &failed),
        ["order_placed", "payment_failed", "order_cancelled"]
    );
    assert_eq!(
        first_arrivals(&events, &expired),
        ["order_placed", "order_expired"]
    );
    let placed = events
        .iter()
        .find(|event| event.key == paid && event.event_type == "order_placed")
        .expect("placed");
    assert_eq!(placed.payload["schemaVersion"], 1);
    assert_eq!(placed.payload["data"]["userId"], 7);
    assert_eq!(placed.payload["data"]["items"][0]["quantity"], 2);

    // RabbitMQ: the saga's jobs, recorded by the default sender.
    let sent = notified(
        &app,
        7,
        &[
            ("payment_success", "email"),
            ("order_confirmation", "email"),
            ("order_confirmation", "sms"),
            ("shipping_label", "email"),
            ("review_request", "email"),
        ],
    )
    .await;
    let confirmation = sent
        .iter()
        .find(|(kind, _, _)| kind == "order_confirmation")
        .expect("confirmation");
    assert!(
        confirmation.2["deliveryPartner"]
            .as_str()
            .is_some_and(|p| p.starts_with("partner-")),
        "logistics assigned a partner: {}",
        confirmation.2
    );
    let cancelled = notified(&app, 8, &[("order_cancelled", "email")]).await;
    assert_eq!(
        body_of(&cancelled, "order_cancelled")["reason"],
        "order_cancelled"
    );
    let expired_notice = notified(&app, 9, &[("order_cancelled", "email")]).await;
    assert_eq!(
        body_of(&expired_notice, "order_cancelled")["reason"],
        "order_expired"
    );
    // Each job was recorded once, whatever the redeliveries.
    let all = notifications(&app, 7).await;
    let unique: HashSet<(String, String)> =
        all.iter().map(|(k, c, _)| (k.clone(), c.clone())).collect();
    assert_eq!(unique.len(), all.len(), "{all:?}");
    // The payment requests went to the provider, not to the shoppers: every order's is in
    // the provider log (admins), keyed by its order for the provider to deduplicate on.
    assert!(
        all.iter().all(|(kind, _, _)| kind != "payment_request"),
        "{all:?}"
    );
    let requests = eventually(WAIT, || async {
        let response = app
            .get_as("/api/v1/admin/provider-messages?limit=200", &app.admin())
            .await;
        let body: Value = response.json().await.ok()?;
        let messages = body["messages"].as_array()?.clone();
        let requested = |order: &str| {
            messages
                .iter()
                .any(|message| message["orderId"] == order && message["kind"] == "payment_request")
        };
        [&paid, &failed, &expired]
            .iter()
            .all(|order| requested(order))
            .then_some(messages)
    })
    .await;
    let request = requests
        .iter()
        .find(|message| message["orderId"] == paid.as_str())
        .expect("the paid order's request");
    assert_eq!(request["channel"], "payment_provider");
    assert_eq!(request["userId"], 7);
    assert_eq!(
        request["dedupKey"],
        format!("{paid}:payment_request:payment_provider")
    );
    assert_eq!(request["body"]["total"], 2_000);
    let forbidden = app
        .get_as(
            "/api/v1/admin/provider-messages",
            &app.token(7, Role::Customer),
        )
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // Analytics, from the `analytics` consumer group.
    let sales = eventually(WAIT, || async {
        let response = app.get_as("/api/v1/analytics/sales/1", &app.admin()).await;
        let body: Value = response.json().await.ok()?;
        (body["ordersPlaced"] == 3 && body["unitsSold"] == 2).then_some(body)
    })
    .await;
    assert_eq!(sales["revenue"], 2_000);
    let forbidden = app
        .get_as("/api/v1/analytics/sales", &app.token(7, Role::Customer))
        .await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let trending: Value = app
        .get("/api/v1/analytics/trending")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(trending["products"][0]["productId"], 1);
    assert_eq!(trending["products"][0]["ordersPlaced"], 3);

    let teardown = workflow::rabbit::Rabbit::connect(workflow::rabbit::RabbitSettings {
        url: rabbit_url(),
        prefix,
        prefetch: 1,
        attempts: 1,
        backoff: Duration::from_millis(100),
    })
    .await
    .expect("rabbitmq");
    app.stop().await;
    teardown.delete_topology().await.expect("teardown");
    teardown.close().await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_while_kafka_is_down() {
    // A hang here is a failure with a name, not a stuck CI.
    tokio::time::timeout(Duration::from_secs(180), events_wait_out_an_outage())
        .await
        .expect("the outage test finished within 3 minutes");
}

async fn events_wait_out_an_outage() {
    let kafka = PrivateKafka::start().await;
    let prefix = unique_prefix();
    let brokers = kafka.brokers();
    let app = spawn_app_with(|settings| {
        use_brokers(settings, &brokers, &prefix, false);
        settings.server.quantity_per_order_max = 10;
    })
    .await;
    app.create_product(1, 100, 1_000).await;
    let topic = format!("{prefix}order-events");
    let placed_count = |events: &[ReadEvent]| {
        events
            .iter()
            .filter(|event| event.event_type == "order_placed")
            .map(|event| event.key.clone())
            .collect::<HashSet<_>>()
    };
    let mut orders = HashSet::new();
    for user in 1..=10 {
        orders.insert(place(&app, user).await);
    }
    let before = read_topic(&brokers, &topic, WAIT, |events| {
        placed_count(events).len() >= 10
    })
    .await;
    assert_eq!(
        placed_count(&before),
        orders,
        "Kafka is up: the first orders are there"
    );

    kafka.cut();
    // A burst while the broker is unreachable: every order is accepted and committed.
    let burst = (11..=110).map(|user| {
        let app = &app;
        async move { place(app, user).await }
    });
    for order in futures_util::future::join_all(burst).await {
        orders.insert(order);
    }
    assert_eq!(orders.len(), 110);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = outbox_len(&app).await;
    assert!(
        waiting >= 100,
        "the burst waits in the outbox ({waiting} events)"
    );

    kafka.restore();
    let after = read_topic(&brokers, &topic, WAIT, |events| {
        placed_count(events).len() >= 110
    })
    .await;
    assert_eq!(
        placed_count(&after),
        orders,
        "every order's event arrived, none lost"
    );
    eventually(WAIT, || async {
        (outbox_len(&app).await == 0).then_some(())
    })
    .await;
    app.stop().await;
}

async fn outbox_len(app: &TestApp) -> i64 {
    let url = format!(
        "sqlite://{}?mode=ro",
        app.data_dir.join("flashcart.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
    let count: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(event_count), 0) FROM outbox")
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_events_tell_of_sales_stock_outs_and_views() {
    let prefix = unique_prefix();
    let brokers = kafka_brokers();
    let app = spawn_app_with(|settings| use_brokers(settings, &brokers, &prefix, false)).await;
    app.create_product(1, 99_900, 100).await;
    app.start_sale(1, 4, 2).await;
    for user in 1..=2 {
        let response = app.buy(user, 1, 2, &format!("sale-{user}")).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let sold_out = app.buy(3, 1, 1, "sale-3").await;
    assert_eq!(sold_out.status(), StatusCode::CONFLICT);
    assert_eq!(app.get("/api/v1/products/1").await.status(), StatusCode::OK);

    let topic = format!("{prefix}product-events");
    let events = read_topic(&brokers, &topic, WAIT, |events| {
        has_types(
            events,
            "1",
            &[
                "flash_sale_scheduled",
                "flash_sale_stock_out",
                "product_viewed",
            ],
        )
    })
    .await;
    assert_eq!(
        first_arrivals(&events, "1"),
        [
            "flash_sale_scheduled",
            "flash_sale_stock_out",
            "product_viewed"
        ]
    );
    let stock_outs = events
        .iter()
        .filter(|event| event.event_type == "flash_sale_stock_out")
        .count();
    assert_eq!(stock_outs, 1, "the stock-out is announced once");
    let scheduled = events
        .iter()
        .find(|event| event.event_type == "flash_sale_scheduled")
        .expect("scheduled");
    assert_eq!(scheduled.payload["data"]["stock"], 4);
    assert_eq!(scheduled.payload["data"]["salePrice"], 49_900);

    // Analytics without RabbitMQ still comes from the `analytics` consumer group.
    let trending = eventually(WAIT, || async {
        let body: Value = app
            .get("/api/v1/analytics/trending")
            .await
            .json()
            .await
            .ok()?;
        (body["products"][0]["views"] == 1 && body["products"][0]["ordersPlaced"] == 2)
            .then_some(body)
    })
    .await;
    assert_eq!(trending["products"][0]["productId"], 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_events_tell_of_carts_and_searches() {
    let prefix = unique_prefix();
    let brokers = kafka_brokers();
    let app = spawn_app_with(|settings| use_brokers(settings, &brokers, &prefix, false)).await;
    app.create_product(1, 1_000, 10).await;
    let added = app.add_to_cart(7, 1, 2).await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let wished = app.add_to_wishlist(7, 1).await;
    assert_eq!(wished.status(), StatusCode::CREATED);
    let searched = app.get("/api/v1/search?q=product").await;
    assert_eq!(searched.status(), StatusCode::OK);

    let topic = format!("{prefix}user-events");
    let events = read_topic(&brokers, &topic, WAIT, |events| {
        has_types(events, "7", &["cart_item_added", "wishlist_item_added"])
            && events
                .iter()
                .any(|event| event.event_type == "search_performed")
    })
    .await;
    let added = events
        .iter()
        .find(|event| event.event_type == "cart_item_added")
        .expect("cart_item_added");
    assert_eq!(added.key, "7");
    assert_eq!(added.payload["data"]["productId"], 1);
    assert_eq!(added.payload["data"]["quantity"], 2);
    let wished = events
        .iter()
        .find(|event| event.event_type == "wishlist_item_added")
        .expect("wishlist_item_added");
    assert_eq!(wished.payload["data"]["productId"], 1);
    let search = events
        .iter()
        .find(|event| event.event_type == "search_performed")
        .expect("search_performed");
    assert_eq!(search.payload["data"]["query"], "product");
    app.stop().await;
}
