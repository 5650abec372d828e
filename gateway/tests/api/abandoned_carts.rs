//! Abandoned carts: a cart left unchanged for `[campaigns] cart_abandoned_after_secs` gets
//! one `cart_reminder` and one `cart_abandoned` event; a change re-arms the reminder, a
//! checkout calls it off. On the embedded store (carts in the database, reminders in
//! process), and on PostgreSQL with the carts in Redis, the event on Kafka and the
//! reminder over RabbitMQ.

use std::time::Duration;

use gateway::auth::Role;
use gateway::settings::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use workflow::test_support::read_topic;

use crate::helpers::{
    TestApp, eventually, real_services, spawn_app_with, use_kafka, use_rabbitmq, use_services,
};

/// Long enough that the steps below (a touch at 1.5 s) happen well inside it on a
/// loaded machine; the reminders are checked against when each cart last changed.
const ABANDONED_AFTER: Duration = Duration::from_secs(4);
const WAIT: Duration = Duration::from_secs(30);

const LEFT: u64 = 21;
const TOUCHED: u64 = 22;
const CHECKED_OUT: u64 = 23;
const EMPTIED: u64 = 24;

fn abandon_quickly(settings: &mut Settings) {
    settings.campaigns.cart_abandoned_after_secs = ABANDONED_AFTER.as_secs();
}

/// The cart reminders a user was sent.
async fn reminders(app: &TestApp, user: u64) -> Vec<Value> {
    app.notifications(user)
        .await
        .into_iter()
        .filter(|message| message["kind"] == "cart_reminder")
        .collect()
}

async fn add(app: &TestApp, user: u64, product: u64, quantity: u32) {
    let added = app.add_to_cart(user, product, quantity).await;
    assert_eq!(added.status(), StatusCode::CREATED);
}

/// Four carts: one left alone, one changed 1.5 s later, one checked out, one emptied.
/// Returns when the left one's reminder arrived, having checked that nobody else had one
/// by then.
async fn leave_four_carts(app: &TestApp) -> Value {
    app.create_product(1, 1_000, 100).await;
    app.create_product(2, 500, 100).await;
    add(app, LEFT, 1, 2).await;
    add(app, LEFT, 2, 1).await;
    add(app, TOUCHED, 1, 1).await;
    add(app, CHECKED_OUT, 2, 1).await;
    add(app, EMPTIED, 1, 1).await;
    let placed = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(app.token(CHECKED_OUT, Role::Customer))
        .header("Idempotency-Key", "abandon-checkout")
        .json(&json!({"addressId": "home-1", "paymentMethod": "UPI"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(placed.status(), StatusCode::CREATED);
    let emptied = app
        .client
        .delete(app.url("/api/v1/cart/items/1"))
        .bearer_auth(app.token(EMPTIED, Role::Customer))
        .send()
        .await
        .expect("sent");
    assert_eq!(emptied.status(), StatusCode::NO_CONTENT);
    let touched_at = tokio::time::Instant::now() + Duration::from_millis(1_500);
    tokio::time::sleep_until(touched_at).await;
    let changed = app
        .client
        .patch(app.url("/api/v1/cart/items/1"))
        .bearer_auth(app.token(TOUCHED, Role::Customer))
        .json(&json!({"quantity": 3}))
        .send()
        .await
        .expect("sent");
    assert_eq!(changed.status(), StatusCode::OK);

    let reminder = eventually(WAIT, || async {
        reminders(app, LEFT).await.into_iter().next()
    })
    .await;
    // The touched cart is due 1.5 s after the untouched one: not yet.
    assert!(reminders(app, TOUCHED).await.is_empty());
    reminder
}

/// After the touched cart's reminder came (re-armed by its change), every count is final
/// once a few more scans went by: one each for the left and touched carts, none for the
/// checked-out and emptied ones.
async fn only_two_reminders(app: &TestApp) {
    let touched = eventually(WAIT, || async {
        reminders(app, TOUCHED).await.into_iter().next()
    })
    .await;
    assert_eq!(
        touched["body"]["items"],
        json!([{"productId": 1, "quantity": 3}])
    );
    tokio::time::sleep(ABANDONED_AFTER / 2).await;
    assert_eq!(reminders(app, LEFT).await.len(), 1);
    assert_eq!(reminders(app, TOUCHED).await.len(), 1);
    assert!(reminders(app, CHECKED_OUT).await.is_empty());
    assert!(reminders(app, EMPTIED).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_cart_gets_one_reminder_a_changed_one_later_a_checked_out_one_none() {
    let app = spawn_app_with(abandon_quickly).await;
    let reminder = leave_four_carts(&app).await;
    assert_eq!(reminder["channel"], "email");
    assert_eq!(
        reminder["body"]["items"],
        json!([{"productId": 1, "quantity": 2}, {"productId": 2, "quantity": 1}])
    );
    only_two_reminders(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_carts_in_redis_are_told_on_kafka_and_reminded_over_rabbitmq() {
    let (database, redis, prefix, brokers) = real_services().await;
    let app = spawn_app_with(|settings| {
        use_services(settings, &database.url, &redis);
        abandon_quickly(settings);
        use_kafka(settings, &brokers, &prefix);
        use_rabbitmq(settings, &prefix);
    })
    .await;
    leave_four_carts(&app).await;
    only_two_reminders(&app).await;

    let topic = format!("{prefix}user-events");
    let abandoned = |events: &[workflow::test_support::ReadEvent]| -> Vec<(String, Value)> {
        events
            .iter()
            .filter(|event| event.event_type == "cart_abandoned")
            .map(|event| (event.key.clone(), event.payload["data"].clone()))
            .collect()
    };
    read_topic(&brokers, &topic, WAIT, |events| {
        abandoned(events).len() >= 2
    })
    .await;
    // Everything on the topic by now, to count them: a second event for a cart would be
    // right behind the first.
    let events = read_topic(&brokers, &topic, Duration::from_secs(3), |_| false).await;
    let mut told = abandoned(&events);
    told.sort_by(|a, b| a.0.cmp(&b.0));
    let users: Vec<&str> = told.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(users, [LEFT.to_string(), TOUCHED.to_string()]);
    assert_eq!(told[0].1["userId"], LEFT);
    assert_eq!(
        told[0].1["items"][0],
        json!({"productId": 1, "quantity": 2})
    );
    app.stop().await;
    database.drop_database().await;
}
