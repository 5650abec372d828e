//! Wishlists: a customer lists products (once each, up to the bound), pages through them
//! newest first with each product's next sale, takes them off again; a product's page
//! counts its wishers; bad input and other people's lists are refused with named errors.

use gateway::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app, spawn_app_with, use_services};

async fn send(
    app: &TestApp,
    method: Method,
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

async fn add(app: &TestApp, user: u64, product_id: u64) -> reqwest::Response {
    let body = json!({"productId": product_id});
    send(
        app,
        Method::POST,
        "/api/v1/wishlist/items",
        user,
        Some(body),
    )
    .await
}

async fn list(app: &TestApp, user: u64, query: &str) -> Value {
    let path = format!("/api/v1/wishlist{query}");
    let response = send(app, Method::GET, &path, user, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

async fn wishlist_count(app: &TestApp, product_id: u64) -> Value {
    let product: Value = app
        .get(&format!("/api/v1/products/{product_id}"))
        .await
        .json()
        .await
        .expect("json");
    product["wishlistCount"].clone()
}

async fn wishlist_flow(app: &TestApp) {
    for id in 1..=3 {
        app.create_product(id, 1_000 * id, 10).await;
    }
    app.start_sale(2, 5, 1).await;
    assert_eq!(wishlist_count(app, 1).await, 0);

    let first = add(app, 7, 1).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("json");
    assert_eq!(
        (first["productId"].clone(), first["added"].clone()),
        (json!(1), json!(true))
    );
    let again = add(app, 7, 1).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a second add changes nothing"
    );
    assert_eq!(again.json::<Value>().await.expect("json")["added"], false);
    assert_eq!(add(app, 7, 2).await.status(), StatusCode::CREATED);
    assert_eq!(add(app, 7, 3).await.status(), StatusCode::CREATED);
    assert_eq!(add(app, 8, 1).await.status(), StatusCode::CREATED);
    assert_eq!(wishlist_count(app, 1).await, 2);
    assert_eq!(wishlist_count(app, 3).await, 1);

    let page = list(app, 7, "?page=1&pageSize=2").await;
    assert_eq!(
        (page["total"].clone(), page["pageSize"].clone()),
        (json!(3), json!(2))
    );
    let ids: Vec<u64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["productId"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [3, 2], "newest first");
    let on_sale = &page["items"][1];
    assert_eq!(on_sale["title"], "Phone 2");
    assert_eq!(on_sale["price"], 2_000);
    assert_eq!(
        on_sale["sale"]["salePrice"], 49_900,
        "the product's live sale: {on_sale}"
    );
    assert!(
        on_sale["addedAt"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );
    assert!(
        page["items"][0].get("sale").is_none(),
        "no sale for product 3"
    );
    let rest = list(app, 7, "?page=2&pageSize=2").await;
    assert_eq!(rest["items"][0]["productId"], 1);
    // Another customer sees only their own list.
    let other = list(app, 8, "").await;
    assert_eq!(
        (
            other["total"].clone(),
            other["items"].as_array().map(Vec::len)
        ),
        (json!(1), Some(1))
    );

    let removed = send(app, Method::DELETE, "/api/v1/wishlist/items/1", 7, None).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(list(app, 7, "").await["total"], 2);
    assert_eq!(wishlist_count(app, 1).await, 1);
    assert_eq!(
        list(app, 8, "").await["total"],
        1,
        "the other list is untouched"
    );
}

#[tokio::test]
async fn a_wishlist_lists_counts_and_removes() {
    wishlist_flow(&spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wishlist_lists_counts_and_removes_on_postgres() {
    let database = persistence::test_support::TestDatabase::create().await;
    let redis = persistence::test_support::redis_url();
    let app = spawn_app_with(|settings| use_services(settings, &database.url, &redis)).await;
    wishlist_flow(&app).await;
    app.stop().await;
    database.drop_database().await;
}

#[tokio::test]
async fn bad_wishlist_requests_are_named() {
    let app = spawn_app_with(|settings| settings.shop.wishlist_items_max = 2).await;
    for id in 1..=3 {
        app.create_product(id, 1_000, 10).await;
    }
    assert_eq!(add(&app, 7, 1).await.status(), StatusCode::CREATED);
    assert_eq!(add(&app, 7, 2).await.status(), StatusCode::CREATED);
    assert_eq!(add(&app, 8, 3).await.status(), StatusCode::CREATED);
    let cases = [
        (
            Method::POST,
            "/api/v1/wishlist/items",
            Some(json!({"productId": 99})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/v1/wishlist/items",
            Some(json!({"productId": 3})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Method::POST,
            "/api/v1/wishlist/items",
            Some(json!({"productId": -1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::POST,
            "/api/v1/wishlist/items",
            Some(json!({"product": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        // Product 3 is on user 8's list, not on user 7's.
        (
            Method::DELETE,
            "/api/v1/wishlist/items/3",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/api/v1/wishlist/items/abc",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            Method::GET,
            "/api/v1/wishlist?pageSize=0",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Method::GET,
            "/api/v1/wishlist?page=0",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Method::GET,
            "/api/v1/wishlist?sort=price",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
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
    assert_eq!(
        add(&app, 8, 1).await.status(),
        StatusCode::CREATED,
        "user 8's list has room"
    );
    assert_eq!(
        app.get("/api/v1/wishlist").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let as_admin = app.get_as("/api/v1/wishlist", &app.admin()).await;
    assert_eq!(
        error_code(as_admin).await,
        (StatusCode::FORBIDDEN, "forbidden".to_owned())
    );
    assert_eq!(
        list(&app, 7, "").await["total"],
        2,
        "refused adds changed nothing"
    );
}
