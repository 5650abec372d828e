//! Reviews: only customers who received the product, once each; the product's rating
//! becomes the average and feeds browse; bad input is named.

use gateway::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, WEBHOOK_SECRET, error_code, spawn_app, spawn_app_with, use_services,
};

/// An order of `user` for product 1, paid, shipped and delivered.
async fn delivered(app: &TestApp, user: u64) {
    let order: Value = app
        .buy(user, 1, 1, &format!("review-{user}"))
        .await
        .json()
        .await
        .unwrap();
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let verdict =
        json!({"orderId": order_id, "status": "SUCCESS", "transactionId": format!("t-{user}")});
    assert_eq!(
        app.payment_webhook(&verdict, Some(WEBHOOK_SECRET))
            .await
            .status(),
        StatusCode::OK
    );
    let shipped = app
        .post(
            &format!("/api/v1/orders/{order_id}/ship"),
            &app.token(50, Role::Logistics),
            json!({"trackingId": "TRK", "estimatedDelivery": "2030-01-02T10:00:00Z"}),
        )
        .await;
    assert_eq!(shipped.status(), StatusCode::OK);
    let done = app
        .post(
            &format!("/api/v1/deliveries/{order_id}/complete"),
            &app.token(60, Role::Delivery),
            json!({"signature": "ok", "photoUrl": "https://photos.example/1.jpg"}),
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
}

async fn review(app: &TestApp, user: u64, body: Value) -> reqwest::Response {
    app.post(
        "/api/v1/products/1/reviews",
        &app.token(user, Role::Customer),
        body,
    )
    .await
}

#[tokio::test]
async fn customers_who_received_a_product_review_it_once_and_move_its_rating() {
    reviews_flow(&spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_who_received_a_product_review_it_once_on_postgres() {
    let database = persistence::test_support::TestDatabase::create().await;
    let redis = persistence::test_support::redis_url();
    let app = spawn_app_with(|settings| use_services(settings, &database.url, &redis)).await;
    reviews_flow(&app).await;
    app.stop().await;
    database.drop_database().await;
}

async fn reviews_flow(app: &TestApp) {
    app.create_product(1, 1_000, 10).await;
    app.create_product(2, 1_000, 10).await;
    // Not received: refused.
    let (status, code) =
        error_code(review(app, 7, json!({"rating": 5, "title": "great"})).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "not_received")
    );

    delivered(app, 7).await;
    delivered(app, 8).await;
    let first = review(
        app,
        7,
        json!({"rating": 5, "title": "Great phone", "body": "fast"}),
    )
    .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        (
            first["productRating"].as_f64(),
            first["reviewCount"].as_u64()
        ),
        (Some(5.0), Some(1))
    );
    let (status, code) =
        error_code(review(app, 7, json!({"rating": 1, "title": "again"})).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "already_reviewed")
    );
    let second: Value = review(app, 8, json!({"rating": 2, "title": "Meh"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["productRating"].as_f64(), Some(3.5));
    assert_eq!(second["reviewCount"], 2);

    // The listing, newest first, paginated.
    let page: Value = app
        .get("/api/v1/products/1/reviews?pageSize=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["title"], "Meh");
    let next: Value = app
        .get("/api/v1/products/1/reviews?page=2&pageSize=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["items"][0]["title"], "Great phone");

    // The rating feeds browse: product 1 (3.5) is filtered out at 4 stars and up.
    let product: Value = app.get("/api/v1/products/1").await.json().await.unwrap();
    assert_eq!(product["rating"].as_f64(), Some(3.5));
    let listed: Value = app
        .get("/api/v1/products?ratingMin=3.6")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<u64> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert!(!ids.contains(&1), "{ids:?}");
}

#[tokio::test]
async fn bad_reviews_are_named() {
    let app = spawn_app().await;
    app.create_product(1, 1_000, 10).await;
    delivered(&app, 7).await;
    for (body, field) in [
        (json!({"rating": 0, "title": "x"}), "rating"),
        (json!({"rating": 6, "title": "x"}), "rating"),
        (json!({"rating": 4, "title": "   "}), "title"),
        (json!({"rating": 4, "title": "x".repeat(201)}), "title"),
        (
            json!({"rating": 4, "title": "ok", "body": "x".repeat(5_001)}),
            "body",
        ),
    ] {
        let response = review(&app, 7, body.clone()).await;
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let (status, code) = error_code(
        app.post(
            "/api/v1/products/99/reviews",
            &app.token(7, Role::Customer),
            json!({"rating": 4, "title": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, _) = error_code(
        app.post(
            "/api/v1/products/1/reviews",
            &app.admin(),
            json!({"rating": 4, "title": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, code) = error_code(app.get("/api/v1/products/1/reviews?page=0").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
}
