//! Stopping the server commits what it decided; a restart on the same data directory
//! shows the same inventory and orders.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Server, eventually, free_port, spawn_app_in, stored_orders, wait_ready};

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

/// The real binary on PostgreSQL and Redis, killed with SIGKILL in the middle of a burst of
/// Buy Nows at a sale, then restarted: every 201 is in PostgreSQL, nothing else is, the
/// stock adds up, and the Redis mirror shows what PostgreSQL holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_loses_no_answered_order_and_invents_none() {
    kill_9_mid_burst(true).await;
}

/// The same on the embedded store (the default): its commit fsyncs the WAL before any
/// answer, and a checkpoint or a half-written batch left by the kill is recovered at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_on_the_embedded_store_loses_no_answered_order() {
    kill_9_mid_burst(false).await;
}

async fn kill_9_mid_burst(on_postgres: bool) {
    use persistence::test_support::{TestDatabase, redis_prefix, redis_url};

    let database = match on_postgres {
        true => Some(TestDatabase::create().await),
        false => None,
    };
    let prefix = redis_prefix();
    let redis = redis_url();
    let env: Vec<(&str, &str)> = match &database {
        Some(database) => vec![
            ("FLASHCART_STORE__DATABASE_URL", database.url.as_str()),
            ("FLASHCART_REDIS__URL", redis.as_str()),
            ("FLASHCART_REDIS__KEY_PREFIX", prefix.as_str()),
        ],
        None => Vec::new(),
    };
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
    let mut server = Server::start_with(dir.path(), free_port(), &env);
    wait_ready(&client, &server.address).await;
    let admin = token(1, gateway::auth::Role::Admin);
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", server.address))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let created = post("/api/v1/products", serde_json::json!({"id": 1, "title": "P", "brand": "B", "category": "mobiles", "price": 99_900, "stock": 3_000})).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let now_ms = actors::clock::now_ms();
    let sale = post("/api/v1/flash-sales", serde_json::json!({
        "productId": 1, "salePrice": 49_900, "originalPrice": 99_900,
        "startTime": crate::helpers::rfc3339(now_ms - 1_000), "endTime": crate::helpers::rfc3339(now_ms + 3_600_000),
        "stock": 2_000, "perUserLimit": 1
    })).await.unwrap();
    assert_eq!(sale.status(), StatusCode::CREATED);

    // 4,000 buyers for 2,000 units, 64 at a time.
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let answered_count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut buyers = tokio::task::JoinSet::new();
    for user in 1..=4_000u64 {
        let client = client.clone();
        let url = format!("{}/api/v1/buy-now", server.address);
        let token = token(user, gateway::auth::Role::Customer);
        let in_flight = std::sync::Arc::clone(&in_flight);
        let answered_count = std::sync::Arc::clone(&answered_count);
        buyers.spawn(async move {
            let _slot = in_flight.acquire_owned().await.ok()?;
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "crash")
                .json(&serde_json::json!({"productId": 1, "quantity": 1}))
                .send()
                .await
                .ok()?;
            if response.status() != StatusCode::CREATED {
                return None;
            }
            let body: Value = response.json().await.ok()?;
            answered_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(body["orderId"].as_str()?.to_owned())
        });
    }
    eventually(Duration::from_secs(60), || async {
        (answered_count.load(std::sync::atomic::Ordering::Relaxed) >= 500).then_some(())
    })
    .await;
    server.kill_9();
    let mut answered = Vec::new();
    while let Some(order) = buyers.join_next().await {
        answered.extend(order.unwrap());
    }
    assert!(
        answered.len() >= 500 && answered.len() < 2_000,
        "the kill came mid-burst: {}",
        answered.len()
    );

    let stored = match &database {
        Some(database) => crate::helpers::stored_orders_postgres(&database.url, 1).await,
        None => crate::helpers::stored_orders(dir.path(), 1).await,
    };
    let stored_ids: std::collections::HashSet<&str> =
        stored.iter().map(|order| order.0.as_str()).collect();
    for id in &answered {
        assert!(
            stored_ids.contains(id.as_str()),
            "answered order {id} survived the kill"
        );
    }
    // Committed but unanswered orders may exist (the kill came between commit and reply);
    // they are real reservations, within the sale, one per user.
    assert!(stored.len() <= 2_000);
    let mut users: Vec<u64> = stored.iter().map(|order| order.1).collect();
    users.sort_unstable();
    users.dedup();
    assert_eq!(users.len(), stored.len(), "one order per user");

    let server = Server::start_with(dir.path(), free_port(), &env);
    wait_ready(&client, &server.address).await;
    let inventory: Value = client
        .get(format!("{}/api/v1/inventory/1", server.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (initial, reserved, sold, left) = (
        inventory["initial"].as_u64().unwrap(),
        inventory["reserved"].as_u64().unwrap(),
        inventory["sold"].as_u64().unwrap(),
        inventory["left"].as_u64().unwrap(),
    );
    assert_eq!(sold + reserved + left, initial);
    assert_eq!(reserved as usize, stored.len(), "rebuilt from the orders");
    assert_eq!(
        inventory["sale"]["left"].as_u64().unwrap() as usize,
        2_000 - stored.len()
    );
    drop(server);
    if let Some(database) = database {
        // The mirror, rewritten at start, equals PostgreSQL.
        let expected = (Some(left), inventory["sale"]["left"].as_u64());
        eventually(Duration::from_secs(20), || async {
            (crate::helpers::mirrored(&prefix, 1).await == expected).then_some(())
        })
        .await;
        database.drop_database().await;
    }
}

/// One engine per data directory: a second binary started on a directory an engine runs
/// on exits at once with an error naming it (two would each answer the same products),
/// and the first goes on serving. A `kill -9` of the first frees the directory (the
/// kernel drops its lock), and an engine starts on it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_a_data_directory_in_use_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let client = reqwest::Client::new();
    let mut first = Server::start(dir.path(), free_port());
    wait_ready(&client, &first.address).await;
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_flashcart"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("FLASHCART_AUTH__JWT_SECRET", "test-secret")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the second binary runs");
    let gave_up_at = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().expect("its status") {
            break status;
        }
        if std::time::Instant::now() >= gave_up_at {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second engine runs on a data directory in use");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!status.success(), "the second engine exits with an error");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("piped"), &mut stderr)
        .expect("its error");
    assert!(
        stderr.contains("is in use by another flashcart engine"),
        "{stderr}"
    );
    first.create_product(&client, 1, 10).await;
    first.kill_9();
    let again = Server::start(dir.path(), free_port());
    wait_ready(&client, &again.address).await;
}
