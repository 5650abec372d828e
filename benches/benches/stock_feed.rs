//! Buy Now throughput with 1,000 WebSocket screens watching the product, against the same
//! sale without them, in one run (embedded store, the real app).
//!
//! `cargo bench -p flashcart-benches --bench stock_feed`

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gateway::App;
use gateway::auth::{Claims, JwtKeys, Role};
use gateway::settings::Settings;
use secrecy::SecretString;
use serde_json::json;

const SCREENS: usize = 1_000;
const BUYERS: u64 = 5_000;
const CONCURRENCY: usize = 128;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let without = run(0).await;
        let with = run(SCREENS).await;
        println!("Buy Now, {BUYERS} buyers, {CONCURRENCY} at a time, sale of {BUYERS} units:");
        println!("  without screens:     {without:>8.0} orders/s");
        println!(
            "  with {SCREENS} screens: {with:>8.0} orders/s ({:.2}x)",
            with / without
        );
    });
}

async fn run(screens: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    settings.store.data_dir = dir.path().to_path_buf();
    settings.auth.jwt_secret = Some(SecretString::from("bench".to_owned()));
    let app = App::build(&settings).await.expect("app");
    let address = app.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let host = format!("http://{address}");
    let keys = Arc::new(JwtKeys::new(SecretString::from("bench".to_owned())));
    let token = |user: u64, role| {
        keys.encode(&Claims {
            sub: user.to_string(),
            role,
            exp: 4_000_000_000,
        })
    };
    let client = reqwest::Client::new();
    let admin = token(1, Role::Admin);
    let created = client
        .post(format!("{host}/api/v1/products"))
        .bearer_auth(&admin)
        .json(&json!({"id": 1, "title": "P", "brand": "B", "category": "c", "price": 1_000, "stock": BUYERS}))
        .send()
        .await
        .expect("product");
    assert_eq!(created.status(), 201);

    let mut screen_tasks = Vec::new();
    for _ in 0..screens {
        let url = format!("ws://{address}/ws/stock?products=1");
        screen_tasks.push(tokio::spawn(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
            while let Some(Ok(_)) = socket.next().await {}
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut buyers = tokio::task::JoinSet::new();
    let started = Instant::now();
    for user in 1..=BUYERS {
        let client = client.clone();
        let url = format!("{host}/api/v1/buy-now");
        let token = token(user + 10, Role::Customer);
        let slots = Arc::clone(&slots);
        buyers.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore");
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "bench")
                .json(&json!({"productId": 1, "quantity": 1}))
                .send()
                .await
                .expect("sent")
                .status()
        });
    }
    let mut placed = 0u64;
    while let Some(status) = buyers.join_next().await {
        if status.expect("task") == 201 {
            placed += 1;
        }
    }
    let rate = placed as f64 / started.elapsed().as_secs_f64();
    for task in screen_tasks {
        task.abort();
    }
    let _ = stop.send(());
    rate
}
