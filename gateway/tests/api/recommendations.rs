//! Recommendations: after scripted purchases (multi-line checkouts) and signed-in views, a
//! product's recommendations list the products most often bought or viewed with it, in
//! order; a product nothing is known of gets the trending products; a restart keeps them
//! (the counts are saved to the store and reloaded). On the embedded store with the
//! events counted in process, and on PostgreSQL with the `analytics` consumer group on
//! Kafka.

use std::time::Duration;

use gateway::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use gateway::settings::Settings;

use crate::helpers::{
    TestApp, error_code, eventually, real_services, spawn_app_in, spawn_app_with, use_kafka,
    use_services,
};

async fn check_out(app: &TestApp, user: u64, products: &[u64]) {
    for &product in products {
        let added = app.add_to_cart(user, product, 1).await;
        assert_eq!(added.status(), StatusCode::CREATED);
    }
    let placed = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(app.token(user, Role::Customer))
        .header("Idempotency-Key", format!("together-{user}"))
        .json(&json!({"addressId": "home-1", "paymentMethod": "UPI"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(placed.status(), StatusCode::CREATED);
}

async fn view(app: &TestApp, user: u64, product: u64) {
    let viewed = app
        .get_as(
            &format!("/api/v1/products/{product}"),
            &app.token(user, Role::Customer),
        )
        .await;
    assert_eq!(viewed.status(), StatusCode::OK);
}

async fn recommended(app: &TestApp, product: u64) -> Value {
    let answer = app
        .get(&format!(
            "/api/v1/products/{product}/recommendations?limit=3"
        ))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    answer.json().await.expect("json")
}

fn ids(body: &Value) -> Vec<u64> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["productId"].as_u64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_bought_and_viewed_together_are_recommended_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_in(dir.path(), |_| {}).await;
    together_in_order(&app).await;
    // A restart starts from the saved counts: the same answers at once.
    app.stop().await;
    let app = spawn_app_in(dir.path(), |_| {}).await;
    still_in_order(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommendations_on_postgres_and_kafka_survive_a_restart() {
    let (database, redis, prefix, brokers) = real_services().await;
    let configure = |settings: &mut Settings| {
        use_services(settings, &database.url, &redis);
        use_kafka(settings, &brokers, &prefix);
    };
    let app = spawn_app_with(configure).await;
    together_in_order(&app).await;
    app.stop().await;
    let app = spawn_app_with(configure).await;
    still_in_order(&app).await;
    app.stop().await;
    database.drop_database().await;
}

async fn still_in_order(app: &TestApp) {
    let again = recommended(app, 1).await;
    assert_eq!(again["source"], "together", "{again}");
    assert_eq!(ids(&again), [2, 3, 4], "{again}");
    assert_eq!(ids(&recommended(app, 4).await), [1]);
}

async fn together_in_order(app: &TestApp) {
    for product in 1..=6 {
        app.create_product(product, 1_000 * product, 100).await;
    }
    // 1 with 2 in three orders, with 3 in one; 4 with 1 in two sessions of views.
    check_out(app, 11, &[1, 2]).await;
    check_out(app, 12, &[1, 2, 3]).await;
    check_out(app, 13, &[2, 1]).await;
    for user in [21, 22] {
        view(app, user, 4).await;
        view(app, user, 1).await;
    }
    // Anonymous views pair with nothing.
    for product in [5, 1] {
        assert_eq!(
            app.get(&format!("/api/v1/products/{product}"))
                .await
                .status(),
            StatusCode::OK
        );
    }

    let body = eventually(Duration::from_secs(20), || async {
        let body = recommended(app, 1).await;
        (ids(&body).len() == 3).then_some(body)
    })
    .await;
    // Bought together 3 x 3 = 9; viewed together 2 x 1 = 2; bought together once = 3.
    assert_eq!(ids(&body), [2, 3, 4], "{body}");
    assert_eq!(body["source"], "together");
    assert_eq!(body["items"][0]["title"], "Phone 2");
    assert_eq!(body["items"][0]["price"], 2_000);
    assert_eq!(ids(&recommended(app, 4).await), [1]);

    // Nothing is known of 6: the trending products stand in, itself left out.
    let fallback = recommended(app, 6).await;
    assert_eq!(fallback["source"], "trending", "{fallback}");
    assert!(
        !ids(&fallback).is_empty() && !ids(&fallback).contains(&6),
        "{fallback}"
    );

    let unknown = app.get("/api/v1/products/99/recommendations").await;
    assert_eq!(
        error_code(unknown).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let bad = app.get("/api/v1/products/1/recommendations?limit=0").await;
    assert_eq!(error_code(bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_token = app.get_as("/api/v1/products/1", "not-a-token").await;
    assert_eq!(bad_token.status(), StatusCode::UNAUTHORIZED);
}
