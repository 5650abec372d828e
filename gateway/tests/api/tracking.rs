//! An order on its way: shipped by logistics, positions from the courier, delivered; the
//! owner watches it live and in order, anyone else is turned away.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{TestApp, WEBHOOK_SECRET, error_code, spawn_app};

/// A paid order of `user`, ready to ship.
async fn paid_order(app: &TestApp, user: u64) -> String {
    app.create_product(1, 1_000, 10).await;
    let order: Value = app.buy(user, 1, 1, "track").await.json().await.unwrap();
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let verdict =
        json!({"orderId": order_id, "status": "SUCCESS", "transactionId": format!("txn-{user}")});
    assert_eq!(
        app.payment_webhook(&verdict, Some(WEBHOOK_SECRET))
            .await
            .status(),
        StatusCode::OK
    );
    order_id
}

async fn ship(app: &TestApp, order_id: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/orders/{order_id}/ship"),
        &app.token(50, Role::Logistics),
        json!({"trackingId": "TRK-1", "estimatedDelivery": "2030-01-02T10:00:00Z"}),
    )
    .await
}

fn ws_url(app: &TestApp, order_id: &str) -> String {
    format!(
        "{}/ws/orders/{order_id}",
        app.address.replacen("http", "ws", 1)
    )
}

async fn next_view(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time")?
            .ok()?;
        match message {
            Message::Text(text) => return Some(serde_json::from_str(&text).expect("json")),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn the_owner_sees_shipping_positions_and_delivery_in_order() {
    let app = spawn_app().await;
    let order_id = paid_order(&app, 7).await;
    assert_eq!(ship(&app, &order_id).await.status(), StatusCode::OK);

    let mut request = ws_url(&app, &order_id).into_client_request().unwrap();
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", app.token(7, Role::Customer))
            .parse()
            .unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("owner connects");
    let first = next_view(&mut socket).await.expect("snapshot");
    assert_eq!(first["status"], "SHIPPED");
    assert_eq!(first["trackingId"], "TRK-1");

    let courier = app.token(60, Role::Delivery);
    let stops = [
        (12.97, 77.59, "PICKED_UP"),
        (12.98, 77.60, "IN_TRANSIT"),
        (12.99, 77.61, "OUT_FOR_DELIVERY"),
    ];
    let mut last_sequence = first["sequence"].as_u64().unwrap();
    for (lat, lng, status) in stops {
        let response = app
            .post(
                &format!("/api/v1/deliveries/{order_id}/location"),
                &courier,
                json!({"lat": lat, "lng": lng, "status": status}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let view = next_view(&mut socket).await.expect("a position");
        let sequence = view["sequence"].as_u64().unwrap();
        assert!(sequence > last_sequence, "updates arrive in order");
        last_sequence = sequence;
        assert_eq!(view["location"]["status"], status);
        assert_eq!(view["location"]["lat"], lat);
    }
    let delivered = app
        .post(
            &format!("/api/v1/deliveries/{order_id}/complete"),
            &courier,
            json!({"signature": "R. Kumar", "photoUrl": "https://photos.example/p/1.jpg"}),
        )
        .await;
    assert_eq!(delivered.status(), StatusCode::OK);
    let last = next_view(&mut socket).await.expect("delivery");
    assert_eq!(last["status"], "DELIVERED");
    assert!(last["sequence"].as_u64().unwrap() > last_sequence);
    let order: Value = app
        .get_as(&format!("/api/v1/orders/{order_id}"), &app.admin())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "DELIVERED");
    // Delivered is final.
    let again = app
        .post(
            &format!("/api/v1/deliveries/{order_id}/location"),
            &courier,
            json!({"lat": 1.0, "lng": 1.0, "status": "NEARBY"}),
        )
        .await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::CONFLICT, "not_in_transit".into())
    );
}

#[tokio::test]
async fn others_are_turned_away_and_the_token_may_come_as_first_message() {
    let app = spawn_app().await;
    let order_id = paid_order(&app, 8).await;
    assert_eq!(ship(&app, &order_id).await.status(), StatusCode::OK);

    // Another customer, by header: closed with a policy violation.
    let mut request = ws_url(&app, &order_id).into_client_request().unwrap();
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", app.token(9, Role::Customer))
            .parse()
            .unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("close in time");
    match message {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Policy),
        other => panic!("expected a policy close, got {other:?}"),
    }

    // The owner, from a browser: the token as the first message.
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, &order_id))
        .await
        .expect("upgrade");
    let token = json!({"token": app.token(8, Role::Customer)}).to_string();
    socket
        .send(Message::Text(token.into()))
        .await
        .expect("send token");
    let first = next_view(&mut socket)
        .await
        .expect("snapshot for the owner");
    assert_eq!(first["status"], "SHIPPED");

    // No token at all: turned away too.
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url(&app, &order_id))
        .await
        .expect("upgrade");
    socket
        .send(Message::Text("hello".into()))
        .await
        .expect("send");
    let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("close in time");
    assert!(
        matches!(message, Some(Ok(Message::Close(Some(frame)))) if frame.code == CloseCode::Policy)
    );
}

#[tokio::test]
async fn shipping_and_delivery_refuse_bad_input_and_wrong_roles() {
    let app = spawn_app().await;
    let order_id = paid_order(&app, 4).await;
    let unpaid: Value = app.buy(3, 1, 1, "unpaid").await.json().await.unwrap();
    let unpaid = unpaid["orderId"].as_str().unwrap();
    // Unpaid orders cannot ship.
    let (status, code) = error_code(ship(&app, unpaid).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "illegal_transition")
    );
    let customer = app
        .post(
            &format!("/api/v1/orders/{order_id}/ship"),
            &app.token(4, Role::Customer),
            json!({"trackingId": "T", "estimatedDelivery": "2030-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(error_code(customer).await.0, StatusCode::FORBIDDEN);
    let bad_time = app
        .post(
            &format!("/api/v1/orders/{order_id}/ship"),
            &app.token(50, Role::Logistics),
            json!({"trackingId": "T", "estimatedDelivery": "soon"}),
        )
        .await;
    assert_eq!(
        error_code(bad_time).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Not shipped yet: no positions.
    let courier = app.token(60, Role::Delivery);
    let early = app
        .post(
            &format!("/api/v1/deliveries/{order_id}/location"),
            &courier,
            json!({"lat": 1.0, "lng": 1.0, "status": "IN_TRANSIT"}),
        )
        .await;
    assert_eq!(
        error_code(early).await,
        (StatusCode::CONFLICT, "not_in_transit".into())
    );
    assert_eq!(ship(&app, &order_id).await.status(), StatusCode::OK);
    let off_map = app
        .post(
            &format!("/api/v1/deliveries/{order_id}/location"),
            &courier,
            json!({"lat": 91.0, "lng": 1.0, "status": "IN_TRANSIT"}),
        )
        .await;
    assert_eq!(
        error_code(off_map).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let unknown_status = app
        .post(
            &format!("/api/v1/deliveries/{order_id}/location"),
            &courier,
            json!({"lat": 1.0, "lng": 1.0, "status": "TELEPORTED"}),
        )
        .await;
    assert_eq!(
        error_code(unknown_status).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let bad_photo = app
        .post(
            &format!("/api/v1/deliveries/{order_id}/complete"),
            &courier,
            json!({"signature": "S", "photoUrl": "file:///etc/passwd"}),
        )
        .await;
    assert_eq!(
        error_code(bad_photo).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let logistics_delivers = app
        .post(
            &format!("/api/v1/deliveries/{order_id}/complete"),
            &app.token(50, Role::Logistics),
            json!({"signature": "S", "photoUrl": "https://x/y"}),
        )
        .await;
    assert_eq!(
        error_code(logistics_delivers).await.0,
        StatusCode::FORBIDDEN
    );
}
