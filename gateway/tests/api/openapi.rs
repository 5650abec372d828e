//! The OpenAPI contract (`GET /api-docs/openapi.json`, `api_doc.rs`): every route of the API
//! is in it and nothing else is, and real answers match the schemas it claims for them.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use gateway::auth::Role;

async fn document(app: &TestApp) -> Value {
    let answer = app.get("/api-docs/openapi.json").await;
    assert_eq!(answer.status(), StatusCode::OK);
    answer.json().await.expect("the document is JSON")
}

/// Every (method, path template) the document describes.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("a path item")
                .keys()
                .filter(|key| ["get", "put", "post", "delete", "patch"].contains(&key.as_str()))
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// A concrete URL for a path template (ids that parse; they need not exist).
fn concrete(path: &str) -> String {
    path.replace("{id}", "0191a8b0-0000-7000-8000-000000000000")
        .replace("{product_id}", "1")
}

#[tokio::test]
async fn the_document_describes_every_route_and_nothing_else() {
    let app = spawn_app().await;
    let document = document(&app).await;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        document["openapi"]
    );
    let described = operations(&document);

    // Every described operation is served: the router never answers "no such route" or
    // "method not allowed" for it.
    for (method, path) in &described {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let answer = app
            .client
            .request(method.clone(), app.url(&concrete(path)))
            .send()
            .await
            .expect("sent");
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            !(status == StatusCode::NOT_FOUND
                && code == "not_found"
                && body["error"]["message"] == "no such route")
                && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is described but not served: {status} {body}"
        );
    }

    // Every route of the API is described: API routes are registered only through
    // `utoipa_axum::routes!` (which takes their description along); plain `.route(` is
    // for what is not the API (health checks, metrics, the page, the node channel).
    let routes_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let not_api = ["health.rs", "page.rs", "internal.rs", "mod.rs"];
    for entry in std::fs::read_dir(&routes_dir).expect("routes") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if not_api.contains(&name.as_str()) {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("source");
        assert!(
            !source.contains(".route(\""),
            "{name} registers a route outside `routes!`: it would be served undocumented"
        );
    }
    // And the document holds exactly these: the API under /api/v1 and the two feeds.
    for (_, path) in &described {
        assert!(
            path.starts_with("/api/v1/") || path == "/ws/stock" || path == "/ws/orders/{id}",
            "{path} is not part of the API"
        );
    }
    let expected = [
        ("POST", "/api/v1/buy-now"),
        ("GET", "/api/v1/products"),
        ("POST", "/api/v1/products"),
        ("GET", "/api/v1/products/{id}"),
        ("PUT", "/api/v1/products/{id}"),
        ("GET", "/api/v1/products/{id}/reviews"),
        ("POST", "/api/v1/products/{id}/reviews"),
        ("GET", "/api/v1/inventory/{product_id}"),
        ("GET", "/api/v1/flash-sales"),
        ("POST", "/api/v1/flash-sales"),
        ("PATCH", "/api/v1/flash-sales/{sale_id}"),
        ("DELETE", "/api/v1/flash-sales/{sale_id}"),
        ("POST", "/api/v1/orders"),
        ("GET", "/api/v1/orders/{id}"),
        ("POST", "/api/v1/orders/{id}/cancel"),
        ("POST", "/api/v1/orders/{id}/ship"),
        ("POST", "/api/v1/deliveries/{id}/location"),
        ("POST", "/api/v1/deliveries/{id}/complete"),
        ("POST", "/api/v1/payments/webhook"),
        ("GET", "/api/v1/cart/items"),
        ("POST", "/api/v1/cart/items"),
        ("PATCH", "/api/v1/cart/items/{product_id}"),
        ("DELETE", "/api/v1/cart/items/{product_id}"),
        ("GET", "/api/v1/wishlist"),
        ("POST", "/api/v1/wishlist/items"),
        ("DELETE", "/api/v1/wishlist/items/{product_id}"),
        ("GET", "/api/v1/admin/campaigns/{sale_id}"),
        ("GET", "/api/v1/seller/orders"),
        ("GET", "/api/v1/seller/payouts"),
        ("GET", "/api/v1/search"),
        ("GET", "/api/v1/notifications"),
        ("GET", "/api/v1/admin/provider-messages"),
        ("GET", "/api/v1/analytics/sales"),
        ("GET", "/api/v1/analytics/sales/{product_id}"),
        ("GET", "/api/v1/analytics/trending"),
        ("GET", "/api/v1/products/{id}/recommendations"),
        ("GET", "/api/v1/cluster/status"),
        ("GET", "/api/v1/cluster/node"),
        ("GET", "/api/v1/cluster/where"),
        ("GET", "/api/v1/cluster/inspect"),
        ("POST", "/api/v1/cluster/drain"),
        ("POST", "/api/v1/cluster/move"),
        ("GET", "/ws/stock"),
        ("GET", "/ws/orders/{id}"),
    ];
    let expected: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(described, expected);

    // Every operation says what it answers, errors in the one error shape; who may call
    // is stated (bearer JWT, or the provider's HMAC for the webhook).
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["webhook_signature"]["in"], "header");
    for (method, path) in &described {
        let operation = &document["paths"][path][method.to_lowercase()];
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses
                .keys()
                .any(|status| status.starts_with('2') || status == "101"),
            "{method} {path} has no success answer"
        );
        assert!(responses.contains_key("503"), "{method} {path}: 503");
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
    let webhook = &document["paths"]["/api/v1/payments/webhook"]["post"];
    assert_eq!(webhook["security"][0]["webhook_signature"], json!([]));
    let buy_now = &document["paths"]["/api/v1/buy-now"]["post"];
    assert_eq!(buy_now["security"][0]["bearer"], json!([]));
    assert!(buy_now["requestBody"]["content"]["application/json"]["schema"].is_object());
    app.stop().await;
}

/// Checks one real answer against the schema the document claims for it.
struct Contract {
    document: Value,
    checked: Vec<String>,
    failures: Vec<String>,
}

impl Contract {
    async fn check(&mut self, method: &str, template: &str, answer: reqwest::Response) -> Value {
        let status = answer.status().as_u16().to_string();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        let operation = &self.document["paths"][template][method.to_lowercase()];
        let schema = &operation["responses"][&status]["content"]["application/json"]["schema"];
        let label = format!("{method} {template} {status}");
        if schema.is_null() {
            self.failures
                .push(format!("{label}: answered, but not described ({body})"));
            return body;
        }
        // The schema's references point into the document's components.
        let mut rooted = schema.clone();
        if let Some(object) = rooted.as_object_mut() {
            object.insert("components".into(), self.document["components"].clone());
        }
        let validator = jsonschema::draft202012::new(&rooted)
            .unwrap_or_else(|error| panic!("{label}: not a schema: {error}"));
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|error| format!("{error} at {}", error.instance_path()))
            .collect();
        if !errors.is_empty() {
            self.failures
                .push(format!("{label}: {} ({body})", errors.join("; ")));
        }
        self.checked.push(label);
        body
    }
}

#[tokio::test]
async fn real_answers_match_the_schemas_the_document_claims() {
    let app = spawn_app().await;
    let mut contract = Contract {
        document: document(&app).await,
        checked: Vec::new(),
        failures: Vec::new(),
    };
    let admin = app.admin();
    let shopper = app.token(21, Role::Customer);
    let send = |method: Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = app.client.request(method, app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.header("Idempotency-Key", format!("contract-{path}"))
    };

    let product = json!({
        "id": 1, "title": "Phone", "brand": "Acme", "category": "mobiles", "price": 1_000, "stock": 5
    });
    let answer = send(
        Method::POST,
        "/api/v1/products",
        Some(&admin),
        Some(product.clone()),
    )
    .send()
    .await
    .expect("sent");
    contract.check("POST", "/api/v1/products", answer).await;
    let answer = send(
        Method::POST,
        "/api/v1/products",
        Some(&admin),
        Some(product),
    )
    .send()
    .await
    .expect("sent");
    contract.check("POST", "/api/v1/products", answer).await; // 409 product_exists
    app.create_product(2, 500, 10).await;
    for (path, template) in [
        ("/api/v1/products/1", "/api/v1/products/{id}"),
        ("/api/v1/products/404", "/api/v1/products/{id}"),
        ("/api/v1/products?category=mobiles", "/api/v1/products"),
        ("/api/v1/products?sort=nonsense", "/api/v1/products"),
        ("/api/v1/inventory/1", "/api/v1/inventory/{product_id}"),
        (
            "/api/v1/products/1/reviews",
            "/api/v1/products/{id}/reviews",
        ),
        ("/api/v1/search?q=phone", "/api/v1/search"),
        ("/api/v1/analytics/trending", "/api/v1/analytics/trending"),
        ("/api/v1/flash-sales", "/api/v1/flash-sales"),
    ] {
        let answer = send(Method::GET, path, None, None)
            .send()
            .await
            .expect("sent");
        contract.check("GET", template, answer).await;
    }
    let sale = json!({
        "productId": 2, "salePrice": 400, "originalPrice": 500,
        "startTime": "2020-01-01T00:00:00Z", "stock": 5, "perUserLimit": 2
    });
    let answer = send(
        Method::POST,
        "/api/v1/flash-sales",
        Some(&admin),
        Some(sale),
    )
    .send()
    .await
    .expect("sent");
    contract.check("POST", "/api/v1/flash-sales", answer).await;
    let answer = send(Method::GET, "/api/v1/flash-sales", None, None)
        .send()
        .await
        .expect("sent");
    contract.check("GET", "/api/v1/flash-sales", answer).await;
    let answer = send(Method::GET, "/api/v1/inventory/2", None, None)
        .send()
        .await
        .expect("sent");
    contract
        .check("GET", "/api/v1/inventory/{product_id}", answer)
        .await;

    // Buying, and the ways it is refused.
    let buy = json!({ "productId": 1, "quantity": 1 });
    let answer = send(
        Method::POST,
        "/api/v1/buy-now",
        Some(&shopper),
        Some(buy.clone()),
    )
    .send()
    .await
    .expect("sent");
    let placed = contract.check("POST", "/api/v1/buy-now", answer).await;
    let answer = send(Method::POST, "/api/v1/buy-now", None, Some(buy.clone()))
        .send()
        .await
        .expect("sent");
    contract.check("POST", "/api/v1/buy-now", answer).await; // 401
    let answer = send(
        Method::POST,
        "/api/v1/buy-now",
        Some(&shopper),
        Some(json!({ "productId": 1, "quantity": 0 })),
    )
    .send()
    .await
    .expect("sent");
    contract.check("POST", "/api/v1/buy-now", answer).await; // 422
    let answer = app
        .client
        .post(app.url("/api/v1/buy-now"))
        .bearer_auth(&shopper)
        .header("Idempotency-Key", "too-many")
        .json(&json!({ "productId": 1, "quantity": 9 }))
        .send()
        .await
        .expect("sent");
    contract.check("POST", "/api/v1/buy-now", answer).await; // 409 sold_out

    // The order, the cart and its checkout, the provider's verdict.
    let order_id = placed["orderId"].as_str().expect("an order").to_owned();
    let order_path = format!("/api/v1/orders/{order_id}");
    let answer = send(Method::GET, &order_path, Some(&shopper), None)
        .send()
        .await
        .expect("sent");
    contract.check("GET", "/api/v1/orders/{id}", answer).await;
    let answer = send(
        Method::POST,
        "/api/v1/cart/items",
        Some(&shopper),
        Some(json!({ "productId": 2, "quantity": 1 })),
    )
    .send()
    .await
    .expect("sent");
    contract.check("POST", "/api/v1/cart/items", answer).await;
    let answer = send(Method::GET, "/api/v1/cart/items", Some(&shopper), None)
        .send()
        .await
        .expect("sent");
    contract.check("GET", "/api/v1/cart/items", answer).await;
    let answer = send(
        Method::POST,
        "/api/v1/orders",
        Some(&shopper),
        Some(json!({ "addressId": "home", "paymentMethod": "UPI" })),
    )
    .send()
    .await
    .expect("sent");
    let checked_out = contract.check("POST", "/api/v1/orders", answer).await;
    let verdict = json!({
        "orderId": checked_out["orderId"], "status": "SUCCESS", "transactionId": "txn-1"
    });
    let answer = app
        .payment_webhook(&verdict, Some(crate::helpers::WEBHOOK_SECRET))
        .await;
    contract
        .check("POST", "/api/v1/payments/webhook", answer)
        .await;
    let answer = app.payment_webhook(&verdict, Some("wrong")).await;
    contract
        .check("POST", "/api/v1/payments/webhook", answer)
        .await; // 401
    let answer = send(
        Method::POST,
        &format!("{order_path}/cancel"),
        Some(&shopper),
        None,
    )
    .send()
    .await
    .expect("sent");
    contract
        .check("POST", "/api/v1/orders/{id}/cancel", answer)
        .await;
    let answer = send(Method::GET, "/api/v1/notifications", Some(&shopper), None)
        .send()
        .await
        .expect("sent");
    contract.check("GET", "/api/v1/notifications", answer).await;
    for caller in [&admin, &shopper] {
        let answer = send(
            Method::GET,
            "/api/v1/admin/provider-messages",
            Some(caller.as_str()),
            None,
        )
        .send()
        .await
        .expect("sent");
        contract
            .check("GET", "/api/v1/admin/provider-messages", answer)
            .await; // 200, then 403
    }
    let answer = send(Method::GET, "/api/v1/analytics/sales", Some(&shopper), None)
        .send()
        .await
        .expect("sent");
    contract
        .check("GET", "/api/v1/analytics/sales", answer)
        .await; // 403
    let answer = send(Method::GET, "/api/v1/cluster/status", Some(&admin), None)
        .send()
        .await
        .expect("sent");
    contract
        .check("GET", "/api/v1/cluster/status", answer)
        .await; // 404: alone

    // The checker can fail: a body of the wrong shape is caught.
    let mut rooted = json!({ "$ref": "#/components/schemas/ProductBody" });
    rooted["components"] = contract.document["components"].clone();
    let validator = jsonschema::draft202012::new(&rooted).expect("schema");
    assert!(!validator.is_valid(&json!({ "id": "one", "title": 5 })));
    assert!(validator.is_valid(&json!({
        "id": 1, "title": "Phone", "brand": "Acme", "category": "mobiles",
        "description": "", "price": 1, "rating": 0.0, "popularity": 0
    })));
    assert!(
        contract.failures.is_empty(),
        "answers that break the contract:\n{}",
        contract.failures.join("\n")
    );
    assert!(contract.checked.len() >= 25, "{:?}", contract.checked);
    app.stop().await;
}
