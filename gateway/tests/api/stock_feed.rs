//! The live stock feed: every screen ends on the truth (sold out), none gets more than the
//! coalescing rate allows, and a screen that stops reading slows nobody.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::task::JoinSet;

use gateway::feed_client::StockFeedClient;

use crate::helpers::{TestApp, error_code, spawn_app};

fn ws_url(app: &TestApp, products: &str) -> String {
    format!(
        "{}/ws/stock?products={products}",
        app.address.replacen("http", "ws", 1)
    )
}

/// Sells `buyers` Buy Nows for product `product_id`, `concurrency` at a time.
async fn sell(app: &TestApp, product_id: u64, buyers: u64, concurrency: usize) -> usize {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut requests = JoinSet::new();
    for user in 1..=buyers {
        let client = app.client.clone();
        let url = app.url("/api/v1/buy-now");
        let token = app.token(user, gateway::auth::Role::Customer);
        let slots = Arc::clone(&slots);
        requests.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore");
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "feed")
                .json(&serde_json::json!({"productId": product_id, "quantity": 1}))
                .send()
                .await
                .expect("sent")
                .status()
        });
    }
    let mut created = 0;
    while let Some(status) = requests.join_next().await {
        if status.expect("task") == StatusCode::CREATED {
            created += 1;
        }
    }
    created
}

struct Watched {
    messages: usize,
    first_to_last: Duration,
    last: actors::StockView,
}

/// Reads one product's feed until it shows sold out, with the shared feed client.
async fn watch_until_sold_out(base: String, product_id: u64) -> Watched {
    let mut feed = StockFeedClient::connect(&base, &[engine::ProductId(product_id)])
        .await
        .expect("websocket connects");
    read_until_sold_out(&mut feed, Duration::from_secs(60)).await
}

/// Reads a connected feed until it shows sold out, within `limit`.
async fn read_until_sold_out(feed: &mut StockFeedClient, limit: Duration) -> Watched {
    let mut messages = 0;
    let mut first_at = None;
    let deadline = Instant::now() + limit;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let view = tokio::time::timeout(remaining, feed.next())
            .await
            .expect("sold out reaches every screen in time")
            .expect("a stock value");
        messages += 1;
        let first_at = *first_at.get_or_insert_with(Instant::now);
        if view.left == 0 {
            return Watched {
                messages,
                first_to_last: first_at.elapsed(),
                last: view,
            };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_screens_watch_a_sale_sell_out_at_a_bounded_rate() {
    let app = spawn_app().await;
    app.create_product(1, 99_900, 2_000).await;
    app.start_sale(1, 2_000, 1).await;
    let mut screens = JoinSet::new();
    for _ in 0..1_000 {
        screens.spawn(watch_until_sold_out(app.address.clone(), 1));
    }
    // Every screen has its snapshot before the sale starts moving.
    eventually_connected(&app, 1_000).await;
    let created = sell(&app, 1, 5_000, 128).await;
    assert_eq!(created, 2_000, "the sale sells out exactly");

    let rate_per_second = 10.0;
    while let Some(watched) = screens.join_next().await {
        let watched = watched.expect("screen task");
        assert_eq!(watched.last.left, 0);
        assert_eq!(watched.last.status, actors::StockStatus::SoldOut);
        assert_eq!(watched.last.sold + watched.last.reserved, 2_000);
        // The snapshot, then at most `rate` a second, plus the sold-out message sent at once.
        let allowed = (watched.first_to_last.as_secs_f64() * rate_per_second).ceil() as usize + 2;
        assert!(
            watched.messages <= allowed,
            "{} messages in {:?} (allowed {allowed})",
            watched.messages,
            watched.first_to_last
        );
    }
}

async fn eventually_connected(app: &TestApp, screens: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.open_websockets() < screens {
        assert!(Instant::now() < deadline, "screens did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_that_never_reads_slows_neither_sales_nor_other_screens() {
    let app = spawn_app().await;
    app.create_product(2, 99_900, 300).await;
    // Connected, and never read from again.
    let (stalled, _) = tokio_tungstenite::connect_async(ws_url(&app, "2"))
        .await
        .expect("connects");
    let reader = tokio::spawn(watch_until_sold_out(app.address.clone(), 2));
    eventually_connected(&app, 2).await;
    let started = Instant::now();
    assert_eq!(sell(&app, 2, 300, 32).await, 300);
    let watched = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the reading screen gets sold out promptly")
        .expect("task");
    assert_eq!(watched.last.left, 0);
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(stalled);
}

#[tokio::test]
async fn bad_subscriptions_are_refused_before_the_upgrade() {
    let app = spawn_app().await;
    app.create_product(3, 99_900, 5).await;
    let (status, code) = error_code(app.get("/ws/stock?products=abc").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    let many: Vec<String> = (1..=51).map(|id| id.to_string()).collect();
    let (status, _) = error_code(
        app.get(&format!("/ws/stock?products={}", many.join(",")))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        tokio_tungstenite::connect_async(ws_url(&app, "999"))
            .await
            .is_err(),
        "unknown product: no upgrade"
    );
    let (status, code) = error_code(app.get("/ws/stock?products=3").await).await;
    assert_eq!(
        (status.is_client_error(), code.as_str()),
        (true, "websocket_expected")
    );
}

#[tokio::test]
async fn a_screen_that_sends_more_than_a_feed_reads_is_closed_and_the_others_keep_watching() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let app = spawn_app().await;
    app.create_product(4, 99_900, 10).await;
    let mut watcher = StockFeedClient::connect(&app.address, &[engine::ProductId(4)])
        .await
        .expect("the watcher connects");
    assert_eq!(watcher.next().await.expect("snapshot").left, 10);
    let (mut chatty, _) = tokio_tungstenite::connect_async(ws_url(&app, "4"))
        .await
        .expect("connects");
    let first = chatty.next().await.expect("snapshot").expect("frame");
    assert!(first.is_text());
    // What a screen may send: a ping is answered and the feed stays open.
    chatty
        .send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .expect("ping sent");
    let pong = tokio::time::timeout(Duration::from_secs(5), chatty.next())
        .await
        .expect("answered")
        .expect("open")
        .expect("frame");
    assert_eq!(pong, Message::Pong(b"still there?".to_vec().into()));
    // More than a feed ever reads: the connection is closed, not buffered.
    let oversized = "x".repeat(gateway::websocket::CLIENT_MESSAGE_MAX_BYTES + 1);
    let _ = chatty.send(Message::Text(oversized.into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match chatty.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the oversized message ends the connection");
    // The other screen still follows the product.
    assert_eq!(sell(&app, 4, 10, 4).await, 10);
    let watched = read_until_sold_out(&mut watcher, Duration::from_secs(10)).await;
    assert_eq!(watched.last.left, 0);
}
