//! The cart: add checks stock without reserving it, quantities are validated, prices are
//! as of now, lines are changed and removed, and bad input is named.

use gateway::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with, use_services};

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: u64,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(app.token(user, Role::Customer));
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

async fn cart_flow(app: &TestApp) {
    app.create_product(1, 1_000, 5).await;
    app.create_product(2, 250, 100).await;
    let added = send(
        app,
        reqwest::Method::POST,
        "/api/v1/cart/items",
        7,
        Some(json!({"productId": 1, "quantity": 2})),
    )
    .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    let cart: Value = added.json().await.unwrap();
    assert_eq!(cart["items"][0]["quantity"], 2);
    assert_eq!(cart["items"][0]["unitPrice"], 1_000);
    assert_eq!(cart["total"], 2_000);
    // Adding again adds units; the stock is not held for the cart.
    let again = send(
        app,
        reqwest::Method::POST,
        "/api/v1/cart/items",
        7,
        Some(json!({"productId": 1, "quantity": 1})),
    )
    .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["items"][0]["quantity"], 3);
    assert_eq!(app.inventory(1).await["reserved"], 0);
    assert_eq!(app.inventory(1).await["left"], 5);
    // More than the shelf holds: 409 naming what is left.
    let (status, code) = error_code(
        send(
            app,
            reqwest::Method::POST,
            "/api/v1/cart/items",
            7,
            Some(json!({"productId": 1, "quantity": 3})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "insufficient_stock")
    );
    let second = send(
        app,
        reqwest::Method::POST,
        "/api/v1/cart/items",
        7,
        Some(json!({"productId": 2, "quantity": 4})),
    )
    .await;
    assert_eq!(second.status(), StatusCode::CREATED);
    let cart: Value = second.json().await.unwrap();
    assert_eq!(cart["total"], 3 * 1_000 + 4 * 250);

    // Change and remove.
    let changed = send(
        app,
        reqwest::Method::PATCH,
        "/api/v1/cart/items/2",
        7,
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let cart: Value = changed.json().await.unwrap();
    assert_eq!(cart["total"], 3 * 1_000 + 250);
    let removed = send(
        app,
        reqwest::Method::DELETE,
        "/api/v1/cart/items/1",
        7,
        None,
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let cart: Value = send(app, reqwest::Method::GET, "/api/v1/cart/items", 7, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    assert_eq!(cart["items"][0]["productId"], 2);
    // Someone else's cart is their own.
    let other: Value = send(app, reqwest::Method::GET, "/api/v1/cart/items", 8, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["items"].as_array().unwrap().len(), 0);

    // A live sale shows its price in the cart.
    app.start_sale(2, 10, 2).await;
    let cart: Value = send(app, reqwest::Method::GET, "/api/v1/cart/items", 7, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cart["items"][0]["unitPrice"], 49_900);
    assert_eq!(cart["items"][0]["onSale"], true);
}

#[tokio::test]
async fn a_cart_holds_lines_without_holding_stock() {
    cart_flow(&spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_holds_lines_without_holding_stock_on_postgres() {
    let database = persistence::test_support::TestDatabase::create().await;
    let redis = persistence::test_support::redis_url();
    let app = spawn_app_with(|settings| use_services(settings, &database.url, &redis)).await;
    cart_flow(&app).await;
    app.stop().await;
    database.drop_database().await;
}

#[tokio::test]
async fn bad_cart_requests_are_named() {
    let app = spawn_app().await;
    app.create_product(1, 1_000, 5).await;
    let cases = [
        (
            reqwest::Method::POST,
            "/api/v1/cart/items",
            Some(json!({"productId": 1, "quantity": 0})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/cart/items",
            Some(json!({"productId": 1, "quantity": -2})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/cart/items",
            Some(json!({"productId": 1, "quantity": 11})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/cart/items",
            Some(json!({"productId": 99, "quantity": 1})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/cart/items/1",
            Some(json!({"quantity": 1})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/cart/items/1",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (method, path, body, want_status, want_code) in cases {
        let (status, code) =
            error_code(send(&app, method.clone(), path, 7, body.clone()).await).await;
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{method} {path} {body:?}"
        );
    }
    let unknown_field = send(
        &app,
        reqwest::Method::POST,
        "/api/v1/cart/items",
        7,
        Some(json!({"productId": 1, "qty": 1})),
    )
    .await;
    assert!(unknown_field.status().is_client_error());
    let anonymous = app
        .client
        .get(app.url("/api/v1/cart/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
