//! Stopping the server commits what it decided; a restart on the same data directory
//! shows the same inventory and orders.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{eventually, spawn_app_in, stored_orders};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_commits_and_a_restart_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), |_| {}).await;
    app.create_product(1, 1_000, 30).await;
    app.start_sale(1, 10, 1).await;
    let mut buys = tokio::task::JoinSet::new();
    for user in 1..=25u64 {
        let client = app.client.clone();
        let url = app.url("/api/v1/buy-now");
        let token = app.token(user, gateway::auth::Role::Customer);
        buys.spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "once")
                .json(&serde_json::json!({"productId": 1, "quantity": 1}))
                .send()
                .await
                .map(|response| response.status())
        });
    }
    let mut created = 0;
    while let Some(status) = buys.join_next().await {
        if status.unwrap().unwrap() == StatusCode::CREATED {
            created += 1;
        }
    }
    assert_eq!(created, 10);
    let before = app.inventory(1).await;
    let orders_before = app.stored_orders(1).await;
    app.stop().await;

    let app = spawn_app_in(dir.path(), |_| {}).await;
    assert_eq!(app.inventory(1).await, before);
    assert_eq!(app.stored_orders(1).await, orders_before);
    let (status, _) = crate::helpers::error_code(app.buy(99, 1, 1, "late").await).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the sale is still sold out after the restart"
    );
    app.stop().await;
}

struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(data_dir: &std::path::Path, port: u16) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_flashcart"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .env("FLASHCART_AUTH__JWT_SECRET", "test-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the flashcart binary starts");
        Server {
            child,
            address: format!("http://127.0.0.1:{port}"),
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.child.wait().expect("server exits")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_ready(client: &reqwest::Client, address: &str) {
    eventually(Duration::from_secs(30), || async {
        let response = client.get(format!("{address}/readyz")).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
}

/// The real binary, stopped with SIGTERM while buyers are still pressing Buy Now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_orders_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let keys = gateway::auth::JwtKeys::new(secrecy::SecretString::from("test-secret".to_owned()));
    let token = |user: u64, role| {
        keys.encode(&gateway::auth::Claims {
            sub: user.to_string(),
            role,
            exp: actors::clock::now_ms() / 1_000 + 600,
        })
    };
    let mut server = Server::start(dir.path(), free_port());
    wait_ready(&client, &server.address).await;
    let admin = token(1, gateway::auth::Role::Admin);
    let created = client
        .post(format!("{}/api/v1/products", server.address))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"id": 1, "title": "P", "brand": "B", "category": "mobiles", "price": 100, "stock": 1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    // Buyers keep going while the server is told to stop.
    let mut buyers = tokio::task::JoinSet::new();
    for user in 1..=200u64 {
        let client = client.clone();
        let url = format!("{}/api/v1/buy-now", server.address);
        let token = token(user, gateway::auth::Role::Customer);
        buyers.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "sigterm")
                .json(&serde_json::json!({"productId": 1, "quantity": 1}))
                .send()
                .await;
            match response {
                Ok(response) if response.status() == StatusCode::CREATED => {
                    let body: Value = response.json().await.unwrap();
                    Some(body["orderId"].as_str().unwrap().to_owned())
                }
                _ => None,
            }
        });
    }
    // Stop mid-burst: once some orders are in, while others are still arriving.
    eventually(Duration::from_secs(30), || async {
        let inventory: Value = client
            .get(format!("{}/api/v1/inventory/1", server.address))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (inventory["reserved"].as_u64()? >= 20).then_some(())
    })
    .await;
    let status = server.terminate();
    assert!(status.success(), "a graceful stop exits 0, got {status}");
    let mut answered = Vec::new();
    while let Some(order) = buyers.join_next().await {
        answered.extend(order.unwrap());
    }

    // Every 201 is in the store; nothing else is.
    let stored = stored_orders(dir.path(), 1).await;
    let mut stored_ids: Vec<String> = stored.iter().map(|order| order.0.clone()).collect();
    answered.sort();
    stored_ids.sort();
    assert_eq!(stored_ids, answered);

    let server = Server::start(dir.path(), free_port());
    wait_ready(&client, &server.address).await;
    let inventory: Value = client
        .get(format!("{}/api/v1/inventory/1", server.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        inventory["reserved"].as_u64().unwrap() as usize,
        answered.len()
    );
    assert_eq!(
        inventory["left"].as_u64().unwrap() as usize,
        1_000 - answered.len()
    );
}

#[tokio::test]
async fn reservation_timers_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), |settings| {
        settings.shop.reservation_ttl_secs = 2
    })
    .await;
    app.create_product(1, 1_000, 4).await;
    let order: Value = app.buy(5, 1, 3, "pending").await.json().await.unwrap();
    app.stop().await;

    let app = spawn_app_in(dir.path(), |settings| {
        settings.shop.reservation_ttl_secs = 2
    })
    .await;
    assert_eq!(
        app.inventory(1).await["reserved"],
        3,
        "still reserved right after the restart"
    );
    eventually(Duration::from_secs(10), || async {
        (app.inventory(1).await["reserved"] == 0).then_some(())
    })
    .await;
    let path = format!("/api/v1/orders/{}", order["orderId"].as_str().unwrap());
    let expired: Value = app.get_as(&path, &app.admin()).await.json().await.unwrap();
    assert_eq!(expired["status"], "EXPIRED");
    assert_eq!(app.inventory(1).await["left"], 4);
    app.stop().await;
}
