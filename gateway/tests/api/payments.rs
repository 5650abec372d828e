//! The payment webhook: a signed verdict moves the order and its stock; forged or replayed
//! webhooks change nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, WEBHOOK_SECRET, error_code, spawn_app, spawn_app_with, use_services,
};

async fn place(app: &TestApp, user: u64, quantity: i64) -> String {
    let order: Value = app
        .buy(user, 1, quantity, &format!("pay-{user}"))
        .await
        .json()
        .await
        .unwrap();
    order["orderId"].as_str().expect("order id").to_owned()
}

async fn paid_orders_sell_their_units_once(app: &TestApp) {
    app.create_product(1, 1_000, 10).await;
    let order_id = place(app, 7, 3).await;
    let verdict = json!({"orderId": order_id, "status": "SUCCESS", "transactionId": "txn-1"});
    let paid = app.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
    assert_eq!(paid.status(), StatusCode::OK);
    let paid: Value = paid.json().await.unwrap();
    assert_eq!(paid["status"], "PAID");
    let inventory = app.inventory(1).await;
    assert_eq!(
        (
            inventory["sold"].as_u64(),
            inventory["reserved"].as_u64(),
            inventory["left"].as_u64()
        ),
        (Some(3), Some(0), Some(7))
    );

    // The provider retries: nothing changes, the answer is the same.
    for _ in 0..3 {
        let replay = app.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
        assert_eq!(replay.status(), StatusCode::OK);
        assert_eq!(replay.json::<Value>().await.unwrap()["status"], "PAID");
    }
    assert_eq!(app.inventory(1).await["sold"], 3);
    assert_eq!(
        app.stored_payments(&order_id).await,
        [("txn-1".to_owned(), "SUCCESS".to_owned())]
    );
    // A late failure for a paid order is refused, not applied.
    let late = json!({"orderId": order_id, "status": "FAILED", "transactionId": "txn-2"});
    let (status, code) = error_code(app.payment_webhook(&late, Some(WEBHOOK_SECRET)).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "order_not_payable")
    );
    let path = format!("/api/v1/orders/{order_id}");
    let order: Value = app.get_as(&path, &app.admin()).await.json().await.unwrap();
    assert_eq!(order["status"], "PAID");
}

#[tokio::test]
async fn a_paid_order_sells_its_units_once() {
    paid_orders_sell_their_units_once(&spawn_app().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_sells_its_units_once_on_postgres() {
    let database = persistence::test_support::TestDatabase::create().await;
    let redis = persistence::test_support::redis_url();
    let app = spawn_app_with(|settings| use_services(settings, &database.url, &redis)).await;
    paid_orders_sell_their_units_once(&app).await;
    app.stop().await;
    database.drop_database().await;
}

#[tokio::test]
async fn a_failed_payment_cancels_the_order_and_returns_the_stock() {
    let app = spawn_app().await;
    app.create_product(1, 1_000, 5).await;
    let order_id = place(&app, 8, 2).await;
    let verdict = json!({"orderId": order_id, "status": "FAILED", "transactionId": "txn-9"});
    let failed: Value = app
        .payment_webhook(&verdict, Some(WEBHOOK_SECRET))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failed["status"], "CANCELLED");
    let inventory = app.inventory(1).await;
    assert_eq!(
        (inventory["reserved"].as_u64(), inventory["left"].as_u64()),
        (Some(0), Some(5))
    );
    let replay = app.payment_webhook(&verdict, Some(WEBHOOK_SECRET)).await;
    assert_eq!(
        replay.status(),
        StatusCode::OK,
        "a replayed failure is harmless"
    );
}

#[tokio::test]
async fn forged_or_unsigned_webhooks_change_nothing() {
    let app = spawn_app().await;
    app.create_product(1, 1_000, 5).await;
    let order_id = place(&app, 9, 1).await;
    let verdict = json!({"orderId": order_id, "status": "SUCCESS", "transactionId": "txn-x"});
    for secret in [None, Some("not-the-secret")] {
        let (status, code) = error_code(app.payment_webhook(&verdict, secret).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
    }
    // Signed, but the body was changed on the way.
    let raw = serde_json::to_vec(&verdict).unwrap();
    let signature = gateway::routes::payments::sign(WEBHOOK_SECRET.as_bytes(), &raw);
    let tampered = serde_json::to_vec(
        &json!({"orderId": order_id, "status": "SUCCESS", "transactionId": "txn-y"}),
    )
    .unwrap();
    let response = app
        .client
        .post(app.url("/api/v1/payments/webhook"))
        .header(gateway::routes::payments::SIGNATURE_HEADER, signature)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let order: Value = app
        .get_as(&format!("/api/v1/orders/{order_id}"), &app.admin())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "PENDING_PAYMENT");
    assert_eq!(app.inventory(1).await["reserved"], 1);
    assert!(app.stored_payments(&order_id).await.is_empty());
    // Signed nonsense is refused with a reason.
    let bad = json!({"orderId": order_id, "status": "MAYBE", "transactionId": "t"});
    assert_eq!(
        error_code(app.payment_webhook(&bad, Some(WEBHOOK_SECRET)).await)
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let unknown = json!({"orderId": "01a21448-98c5-72b3-ad14-996475285440", "status": "SUCCESS", "transactionId": "t"});
    assert_eq!(
        error_code(app.payment_webhook(&unknown, Some(WEBHOOK_SECRET)).await)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}
