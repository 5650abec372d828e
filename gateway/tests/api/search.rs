//! Search through the API: the index follows the catalog, typos are forgiven, filters and
//! facets are exact, bad input is named; browse filters by rating and brand.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, eventually, spawn_app};

async fn product(app: &TestApp, id: u64, title: &str, brand: &str, price: u64, rating: f32) {
    let response = app
        .post(
            "/api/v1/products",
            &app.admin(),
            json!({"id": id, "title": title, "brand": brand, "category": "mobiles",
                   "description": format!("{title} by {brand}"), "price": price, "stock": 10,
                   "rating": rating}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn search(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/api/v1/search?{query}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn ids(body: &Value) -> Vec<u64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn search_forgives_typos_filters_exactly_and_counts_facets() {
    let app = spawn_app().await;
    product(&app, 1, "Samsung Galaxy S24", "Samsung", 7_999_900, 4.6).await;
    product(&app, 2, "Samsung Galaxy A15", "Samsung", 1_499_900, 4.1).await;
    product(&app, 3, "Pixel 8", "Google", 5_999_900, 4.4).await;
    // The index follows the catalog within a moment.
    eventually(Duration::from_secs(10), || async {
        (search(&app, "q=pixel").await["total"] == 1).then_some(())
    })
    .await;
    let typo = search(&app, "q=samsnug+galxy+s24").await;
    assert_eq!(ids(&typo)[0], 1, "{typo}");
    let filtered = search(&app, "q=galaxy&priceMax=2000000&ratingMin=4").await;
    assert_eq!(ids(&filtered), [2]);
    // Each word alone matches; no product has both.
    assert_eq!(search(&app, "q=samsung").await["total"], 2);
    assert_eq!(search(&app, "q=google").await["total"], 1);
    assert_eq!(
        search(&app, "q=samsung+google").await["total"],
        0,
        "every word must match"
    );
    let all = search(&app, "q=samsung&priceInterval=5000000").await;
    assert_eq!(all["total"], 2);
    assert_eq!(
        all["facets"]["brands"],
        json!([{"brand": "Samsung", "count": 2}])
    );
    assert_eq!(
        all["facets"]["priceHistogram"],
        json!([{"from": 0, "to": 5_000_000, "count": 1}, {"from": 5_000_000, "to": 10_000_000, "count": 1}])
    );
    // A renamed product is found by its new name.
    let renamed = app
        .client
        .put(app.url("/api/v1/products/3"))
        .bearer_auth(app.admin())
        .json(
            &json!({"title": "Pixel 9 Pro", "brand": "Google", "category": "mobiles",
                      "price": 5_999_900, "rating": 4.4}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), StatusCode::OK);
    eventually(Duration::from_secs(10), || async {
        (ids(&search(&app, "q=pixel+pro").await) == [3]).then_some(())
    })
    .await;

    for (query, field) in [
        ("", "q"),
        ("q=+++", "q"),
        ("q=phone&page=0", "page"),
        ("q=phone&pageSize=1000", "pageSize"),
        ("q=phone&priceMin=10&priceMax=5", "priceMin"),
        ("q=phone&ratingMin=7", "ratingMin"),
        ("q=phone&priceInterval=0", "priceInterval"),
    ] {
        let response = app.get(&format!("/api/v1/search?{query}")).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, _) = error_code(app.get("/api/v1/search?q=phone&sort=abc").await).await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn browse_filters_by_rating_and_brand_and_sorts_by_rating() {
    let app = spawn_app().await;
    product(&app, 1, "Samsung Galaxy S24", "Samsung", 7_999_900, 4.6).await;
    product(&app, 2, "Samsung Galaxy A15", "Samsung", 1_499_900, 3.1).await;
    product(&app, 3, "Pixel 8", "Google", 5_999_900, 4.4).await;
    let list = |query: &'static str| {
        let app = &app;
        async move {
            let response = app.get(&format!("/api/v1/products?{query}")).await;
            assert_eq!(response.status(), StatusCode::OK, "{query}");
            let body: Value = response.json().await.unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["id"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list("sort=rating").await, [1, 3, 2]);
    assert_eq!(list("ratingMin=4&sort=price").await, [3, 1]);
    assert_eq!(list("brand=samsung&sort=price").await, [2, 1]);
    let response = app.get("/api/v1/products?ratingMin=9").await;
    let (status, code) = error_code(response).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
}
