//! The catalog: create, read, replace, list.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app};

#[tokio::test]
async fn products_are_created_listed_and_replaced() {
    let app = spawn_app().await;
    let admin = app.admin();
    for (price, category, popularity) in [
        (500, "mobiles", 3),
        (300, "mobiles", 9),
        (900, "laptops", 1),
    ] {
        let response = app
            .post(
                "/api/v1/products",
                &admin,
                json!({"title": "Thing", "brand": "B", "category": category, "price": price, "stock": 5, "popularity": popularity}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    // Ids were allocated 1, 2, 3; a client-chosen id is kept and a duplicate refused.
    let chosen = app.create_product(50, 700, 1).await;
    assert_eq!(chosen["id"], 50);
    let duplicate = app
        .post("/api/v1/products", &admin, json!({"id": 50, "title": "T", "brand": "B", "category": "mobiles", "price": 1, "stock": 1}))
        .await;
    assert_eq!(
        error_code(duplicate).await,
        (StatusCode::CONFLICT, "product_exists".into())
    );

    let list: Value = app
        .get("/api/v1/products?category=mobiles&sort=price")
        .await
        .json()
        .await
        .unwrap();
    let prices: Vec<u64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price"].as_u64().unwrap())
        .collect();
    assert_eq!(prices, [300, 500, 700]);
    assert_eq!(list["total"], 3);
    let list: Value = app
        .get("/api/v1/products?category=mobiles&priceMax=500")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<u64> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 1], "most popular first");
    let page: Value = app
        .get("/api/v1/products?page=2&pageSize=3")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["total"], 4);

    // Replace: new price applies to the next Buy Now; stock can be restocked.
    let replaced = app
        .client
        .put(app.url("/api/v1/products/1"))
        .bearer_auth(&admin)
        .json(&json!({"title": "Thing 2", "brand": "B", "category": "laptops", "price": 450, "stock": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), StatusCode::OK);
    let shown: Value = app.get("/api/v1/products/1").await.json().await.unwrap();
    assert_eq!(shown["title"], "Thing 2");
    assert_eq!(shown["popularity"], 3, "kept when not sent");
    let inventory = app.inventory(1).await;
    assert_eq!(
        (inventory["left"].as_u64(), inventory["initial"].as_u64()),
        (Some(20), Some(20))
    );
    let bought: Value = app
        .buy(8, 1, 1, "after-price-change")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bought["unitPrice"], 450);
    let laptops: Value = app
        .get("/api/v1/products?category=laptops")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(laptops["total"], 2);
}

/// (x-cache, body) of a listing.
async fn listing(app: &crate::helpers::TestApp, query: &str) -> (String, Value) {
    let response = app.get(&format!("/api/v1/products?{query}")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cache = response.headers()["x-cache"].to_str().unwrap().to_owned();
    (cache, response.json().await.unwrap())
}

async fn replace_price(app: &crate::helpers::TestApp, id: u64, category: &str, price: u64) {
    let replaced = app
        .client
        .put(app.url(&format!("/api/v1/products/{id}")))
        .bearer_auth(app.admin())
        .json(&json!({"title": format!("Phone {id}"), "brand": "Acme", "category": category, "price": price}))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), StatusCode::OK);
}

/// Cache-aside: a listing is rendered once, served from the cache until a product that
/// could be on it changes, then rendered again with the change.
async fn listings_are_cached_until_the_catalog_changes(app: &crate::helpers::TestApp) {
    app.create_product(1, 500, 5).await;
    app.create_product(2, 300, 5).await;
    let laptop = app
        .post(
            "/api/v1/products",
            &app.admin(),
            json!({"id": 3, "title": "Laptop", "brand": "Acme", "category": "laptops", "price": 900, "stock": 1}),
        )
        .await;
    assert_eq!(laptop.status(), StatusCode::CREATED);
    let query = "category=mobiles&sort=price";
    let (cache, first) = listing(app, query).await;
    assert_eq!(cache, "miss");
    // The page is stored off the reply path: the next read finds it shortly.
    let (cache, again) = crate::helpers::eventually(std::time::Duration::from_secs(5), || async {
        let (cache, body) = listing(app, query).await;
        (cache == "hit").then_some((cache, body))
    })
    .await;
    assert_eq!((cache.as_str(), &again), ("hit", &first));
    // Another category's change leaves this page alone.
    replace_price(app, 3, "laptops", 950).await;
    assert_eq!(listing(app, query).await.0, "hit");
    // A product on the page changes: rendered again, with the new price.
    replace_price(app, 1, "mobiles", 250).await;
    let (cache, changed) = listing(app, query).await;
    assert_eq!(cache, "miss");
    let prices: Vec<u64> = changed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price"].as_u64().unwrap())
        .collect();
    assert_eq!(prices, [250, 300]);
    // A product moving into the category changes the page too.
    replace_price(app, 3, "mobiles", 100).await;
    let (cache, moved) = listing(app, query).await;
    assert_eq!(cache, "miss");
    assert_eq!(moved["total"], 3);
    // Across categories: any change renders again.
    let (_, _) = listing(app, "sort=price").await;
    replace_price(app, 2, "mobiles", 310).await;
    assert_eq!(listing(app, "sort=price").await.0, "miss");
}

#[tokio::test]
async fn listings_are_cached_in_memory_until_the_catalog_changes() {
    listings_are_cached_until_the_catalog_changes(&crate::helpers::spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_are_cached_in_redis_until_the_catalog_changes() {
    let database = persistence::test_support::TestDatabase::create().await;
    let redis_url = persistence::test_support::redis_url();
    let app = crate::helpers::spawn_app_with(|settings| {
        crate::helpers::use_services(settings, &database.url, &redis_url)
    })
    .await;
    listings_are_cached_until_the_catalog_changes(&app).await;
    // The pages are in Redis, under this app's prefix.
    let prefix = app.redis_prefix.clone().expect("Redis configured");
    let client = redis::Client::open(redis_url).expect("url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let pages: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}page:*"))
        .query_async(&mut redis)
        .await
        .expect("KEYS");
    assert!(pages.len() >= 3, "{pages:?}");
    app.stop().await;
    database.drop_database().await;
}
