//! Bad input gets a clear 4xx with a JSON error naming the problem; never a 500.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_code, spawn_app};
use gateway::auth::Role;

#[tokio::test]
async fn every_malformed_buy_now_is_refused_with_a_reason() {
    let app = spawn_app().await;
    app.create_product(1, 99_900, 10).await;
    let url = app.url("/api/v1/buy-now");
    let token = app.token(9, Role::Customer);
    let send = |body: String, key: Option<&'static str>, content_type: &'static str| {
        let mut request = app
            .client
            .post(&url)
            .bearer_auth(&token)
            .header("Content-Type", content_type)
            .body(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };
    let json = "application/json";
    let cases: Vec<(String, Option<&str>, &str, StatusCode, &str)> = vec![
        (
            r#"{"productId":1,"quantity":0}"#.into(),
            Some("a"),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            r#"{"productId":1,"quantity":-1}"#.into(),
            Some("a"),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            r#"{"productId":1,"quantity":11}"#.into(),
            Some("a"),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            r#"{"productId":1,"quantity":99999999999999999999}"#.into(),
            Some("a"),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            r#"{"productId":1,"quantity":1.5}"#.into(),
            Some("a"),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            r#"{"productId":1,"quantity":1,"price":1}"#.into(),
            Some("a"),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            r#"{"productId":1}"#.into(),
            Some("a"),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            r#"{"productId":1,"quantity":1"#.into(),
            Some("a"),
            json,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            r#"{"productId":1,"quantity":1}"#.into(),
            None,
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            r#"{"productId":1,"quantity":1}"#.into(),
            Some("has space"),
            json,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            r#"{"productId":1,"quantity":1}"#.into(),
            Some("a"),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            format!(
                r#"{{"productId":1,"quantity":1,"pad":"{}"}}"#,
                "x".repeat(20_000)
            ),
            Some("a"),
            json,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            r#"{"productId":777,"quantity":1}"#.into(),
            Some("a"),
            json,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (body, key, content_type, expected_status, expected_code) in cases {
        let response = send(body.clone(), key, content_type).await.expect("sent");
        let (status, code) = error_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (expected_status, expected_code),
            "body {}",
            &body[..body.len().min(60)]
        );
    }
    // Nothing above bought anything.
    assert_eq!(app.inventory(1).await["reserved"], 0);
}

#[tokio::test]
async fn tokens_and_roles_are_checked() {
    let app = spawn_app().await;
    let product =
        json!({"title": "T", "brand": "B", "category": "mobiles", "price": 100, "stock": 1});
    let no_token = app
        .client
        .post(app.url("/api/v1/products"))
        .json(&product)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(no_token).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let garbage = app
        .post("/api/v1/products", "not.a.token", product.clone())
        .await;
    assert_eq!(
        error_code(garbage).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let customer = app
        .post(
            "/api/v1/products",
            &app.token(5, Role::Customer),
            product.clone(),
        )
        .await;
    assert_eq!(
        error_code(customer).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let expired = app.keys_encode_expired();
    let expired = app
        .post("/api/v1/products", &expired, product.clone())
        .await;
    assert_eq!(
        error_code(expired).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".into())
    );
    let delivery_buys = app.buy_as(Role::Delivery).await;
    assert_eq!(
        error_code(delivery_buys).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    assert_eq!(
        app.post("/api/v1/products", &app.admin(), product)
            .await
            .status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn bad_paths_queries_and_records_are_named() {
    let app = spawn_app().await;
    assert_eq!(
        error_code(app.get("/api/v1/products/abc").await).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        error_code(app.get("/api/v1/products/-1").await).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        error_code(app.get("/api/v1/products/99").await).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        error_code(app.get("/api/v1/nowhere").await).await.0,
        StatusCode::NOT_FOUND
    );
    let listing = app.get("/api/v1/products?sort=cheapest").await;
    assert_eq!(
        error_code(listing).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field".into())
    );
    let listing = app.get("/api/v1/products?pageSize=100000").await;
    assert_eq!(
        error_code(listing).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let listing = app.get("/api/v1/products?priceMin=abc").await;
    assert_eq!(
        error_code(listing).await,
        (StatusCode::BAD_REQUEST, "invalid_query".into())
    );
    let order = app.get_as("/api/v1/orders/not-a-uuid", &app.admin()).await;
    assert_eq!(error_code(order).await.0, StatusCode::BAD_REQUEST);

    let admin = app.admin();
    let bad_products = [
        (
            json!({"title": "", "brand": "B", "category": "mobiles", "price": 100, "stock": 1}),
            "title",
        ),
        (
            json!({"title": "T", "brand": "B", "category": "Mobiles!", "price": 100, "stock": 1}),
            "category",
        ),
        (
            json!({"title": "T", "brand": "B", "category": "mobiles", "price": 0, "stock": 1}),
            "price",
        ),
        (
            json!({"title": "T", "brand": "B", "category": "mobiles", "price": 100, "stock": 1, "rating": 9}),
            "rating",
        ),
        (
            json!({"title": "T", "brand": "B", "category": "mobiles", "price": 100, "stock": 2_000_000_000u64}),
            "stock",
        ),
    ];
    for (body, field) in bad_products {
        let response = app.post("/api/v1/products", &admin, body).await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let bad_sales = [
        (
            json!({"productId": 1, "salePrice": 1, "originalPrice": 2, "startTime": "noon", "stock": 1, "perUserLimit": 1}),
            "startTime",
        ),
        (
            json!({"productId": 1, "salePrice": 3, "originalPrice": 2, "startTime": "2026-01-01T00:00:00Z", "stock": 1, "perUserLimit": 1}),
            "salePrice",
        ),
        (
            json!({"productId": 1, "salePrice": 1, "originalPrice": 2, "startTime": "2026-01-01T00:00:00Z", "endTime": "2025-01-01T00:00:00Z", "stock": 1, "perUserLimit": 1}),
            "endTime",
        ),
        (
            json!({"productId": 1, "salePrice": 1, "originalPrice": 2, "startTime": "2026-01-01T00:00:00Z", "stock": 0, "perUserLimit": 1}),
            "stock",
        ),
    ];
    app.create_product(1, 99_900, 10).await;
    for (body, field) in bad_sales {
        let response = app.post("/api/v1/flash-sales", &admin, body).await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let too_big = json!({"productId": 1, "salePrice": 1, "originalPrice": 2,
        "startTime": "2026-01-01T00:00:00Z", "stock": 11, "perUserLimit": 1});
    let (status, code) = error_code(app.post("/api/v1/flash-sales", &admin, too_big).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "sale_refused")
    );
}

impl crate::helpers::TestApp {
    fn keys_encode_expired(&self) -> String {
        let claims = gateway::auth::Claims {
            sub: "1".into(),
            role: Role::Admin,
            exp: 1,
        };
        gateway::auth::JwtKeys::new(secrecy::SecretString::from("test-secret".to_owned()))
            .encode(&claims)
    }

    async fn buy_as(&self, role: Role) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/buy-now"))
            .bearer_auth(self.token(3, role))
            .header("Idempotency-Key", "role-check")
            .json(&json!({"productId": 1, "quantity": 1}))
            .send()
            .await
            .unwrap()
    }
}
