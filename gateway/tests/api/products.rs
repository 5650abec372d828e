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
