//! An order after Buy Now: read by its owner, cancelled, expired; a product actor that
//! dies comes back from the store with the same stock.

use std::time::Duration;

use gateway::auth::Role;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{error_code, eventually, spawn_app, spawn_app_with};

#[tokio::test]
async fn owners_read_and_cancel_their_orders_and_the_stock_returns() {
    let app = spawn_app().await;
    app.create_product(1, 1_000, 3).await;
    let order: Value = app.buy(7, 1, 2, "mine").await.json().await.unwrap();
    let path = format!("/api/v1/orders/{}", order["orderId"].as_str().unwrap());

    let mine: Value = app
        .get_as(&path, &app.token(7, Role::Customer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["status"], "PENDING_PAYMENT");
    assert_eq!(mine["items"][0]["quantity"], 2);
    assert_eq!(mine["total"], 2_000);
    let theirs = app.get_as(&path, &app.token(8, Role::Customer)).await;
    assert_eq!(
        error_code(theirs).await.0,
        StatusCode::NOT_FOUND,
        "other users cannot see it"
    );
    assert_eq!(
        app.get_as(&path, &app.admin()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        error_code(app.get(&path).await).await.0,
        StatusCode::UNAUTHORIZED
    );

    let stranger = app
        .post(
            &format!("{path}/cancel"),
            &app.token(8, Role::Customer),
            Value::Null,
        )
        .await;
    assert_eq!(error_code(stranger).await.0, StatusCode::NOT_FOUND);
    let cancelled = app
        .post(
            &format!("{path}/cancel"),
            &app.token(7, Role::Customer),
            Value::Null,
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!(cancelled["status"], "CANCELLED");
    let inventory = app.inventory(1).await;
    assert_eq!(
        (inventory["reserved"].as_u64(), inventory["left"].as_u64()),
        (Some(0), Some(3))
    );
    let again = app
        .post(
            &format!("{path}/cancel"),
            &app.token(7, Role::Customer),
            Value::Null,
        )
        .await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::CONFLICT, "illegal_transition".into())
    );
    // The retry of the cancelled purchase reports the order as it is now.
    let retry = app.buy(7, 1, 2, "mine").await;
    assert_eq!(retry.status(), StatusCode::CREATED);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["status"], "CANCELLED");
    assert_eq!(app.stored_orders(1).await[0].3, "CANCELLED");
}

#[tokio::test]
async fn unpaid_reservations_expire_and_their_stock_returns() {
    let app = spawn_app_with(|settings| settings.shop.reservation_ttl_secs = 1).await;
    app.create_product(1, 1_000, 5).await;
    app.start_sale(1, 5, 5).await;
    let order: Value = app.buy(7, 1, 3, "soon-expired").await.json().await.unwrap();
    assert_eq!(app.inventory(1).await["sale"]["left"], 2);

    let inventory = eventually(Duration::from_secs(10), || async {
        let inventory = app.inventory(1).await;
        (inventory["reserved"] == 0).then_some(inventory)
    })
    .await;
    assert_eq!(inventory["left"], 5);
    assert_eq!(
        inventory["sale"]["left"], 5,
        "the units went back to the open sale pool"
    );
    let path = format!("/api/v1/orders/{}", order["orderId"].as_str().unwrap());
    let expired: Value = app.get_as(&path, &app.admin()).await.json().await.unwrap();
    assert_eq!(expired["status"], "EXPIRED");
    // The user's sale allowance is free again.
    assert_eq!(
        app.buy(7, 1, 5, "second-try").await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_killed_product_actor_comes_back_from_the_store_with_the_same_stock() {
    let app = spawn_app().await;
    app.create_product(1, 1_000, 50).await;
    app.start_sale(1, 20, 2).await;
    for user in 1..=7 {
        assert_eq!(app.buy(user, 1, 2, "k").await.status(), StatusCode::CREATED);
    }
    let before = app.inventory(1).await;
    let actor = app
        .shop
        .product_actor(engine::ProductId(1))
        .expect("live actor");
    let killed_id = actor.get_id();
    actor.kill();

    let restarted = eventually(Duration::from_secs(10), || async {
        app.shop
            .product_actor(engine::ProductId(1))
            .filter(|actor| actor.get_id() != killed_id)
    })
    .await;
    assert_ne!(restarted.get_id(), killed_id);
    let after = app.inventory(1).await;
    assert_eq!(after, before, "nothing lost, nothing invented");
    // Its memory of idempotency keys and per-user holdings came back too.
    assert_eq!(
        app.buy(1, 1, 2, "k").await.headers()["idempotent-replayed"],
        "true"
    );
    let (status, code) = error_code(app.buy(1, 1, 1, "k2").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "limit_reached")
    );
    assert_eq!(app.buy(8, 1, 2, "k").await.status(), StatusCode::CREATED);
    assert_eq!(app.inventory(1).await["sale"]["left"], 4);
}

#[tokio::test]
async fn idle_product_actors_are_passivated_and_come_back_on_demand() {
    let app = spawn_app_with(|settings| {
        settings.shop.passivate_after_secs = 0;
        settings.shop.passivation_sweep_secs = 1;
    })
    .await;
    app.create_product(1, 1_000, 5).await;
    let order: Value = app.buy(7, 1, 1, "before").await.json().await.unwrap();
    let path = format!(
        "/api/v1/orders/{}/cancel",
        order["orderId"].as_str().unwrap()
    );
    assert_eq!(
        app.post(&path, &app.token(7, Role::Customer), Value::Null)
            .await
            .status(),
        StatusCode::OK
    );
    let before = app.inventory(1).await;
    assert!(app.shop.live_product_count() >= 1);

    // Nothing holds it (no reservation, nothing in flight): the sweep stops it.
    eventually(Duration::from_secs(10), || async {
        (app.shop.live_product_count() == 0).then_some(())
    })
    .await;
    assert_eq!(
        app.inventory(1).await,
        before,
        "rebuilt from the store on demand"
    );
    assert_eq!(
        app.buy(7, 1, 1, "before").await.headers()["idempotent-replayed"],
        "true"
    );
}
