//! PostgreSQL and Redis failing under load, through a TCP proxy that the test cuts: the
//! engine keeps its promises (no oversell, every 201 durable, bounded answers) and recovers
//! without a restart.

use std::time::{Duration, Instant};

use persistence::test_support::{TcpProxy, TestDatabase, redis_url, socket_address, via};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::{TestApp, eventually, spawn_app_with, use_services};

struct Answer {
    user: u64,
    status: StatusCode,
    order_id: Option<String>,
    elapsed: Duration,
    retry_after: bool,
}

async fn buy_all(app: &TestApp, users: std::ops::RangeInclusive<u64>, key: &str) -> Vec<Answer> {
    let mut requests = JoinSet::new();
    for user in users {
        let client = app.client.clone();
        let url = app.url("/api/v1/buy-now");
        let token = app.token(user, gateway::auth::Role::Customer);
        let key = key.to_owned();
        requests.spawn(async move {
            let started = Instant::now();
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({"productId": 1, "quantity": 1}))
                .send()
                .await
                .expect("the engine answers");
            let status = response.status();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.expect("json");
            Answer {
                user,
                status,
                order_id: body["orderId"].as_str().map(str::to_owned),
                elapsed: started.elapsed(),
                retry_after,
            }
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = requests.join_next().await {
        answers.push(answer.expect("request task"));
    }
    answers
}

fn created(answers: &[Answer]) -> usize {
    answers
        .iter()
        .filter(|answer| answer.status == StatusCode::CREATED)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_go_on_while_redis_is_down_and_the_mirror_catches_up() {
    let database = TestDatabase::create().await;
    let proxy = TcpProxy::start(socket_address(&redis_url())).await;
    let redis_via_proxy = via(&redis_url(), proxy.address());
    let app =
        spawn_app_with(|settings| use_services(settings, &database.url, &redis_via_proxy)).await;
    app.create_product(1, 99_900, 400).await;
    app.start_sale(1, 300, 1).await;

    assert_eq!(created(&buy_all(&app, 1..=100, "k").await), 100);
    app.mirror_converges(1).await;
    assert_eq!(app.mirrored(1).await, (Some(300), Some(200)));

    proxy.cut();
    let during = buy_all(&app, 101..=200, "k").await;
    assert_eq!(created(&during), 100, "Redis being down stops no sale");
    let inventory = app.inventory(1).await;
    assert_eq!(
        (
            inventory["left"].as_u64(),
            inventory["sale"]["left"].as_u64()
        ),
        (Some(200), Some(100))
    );
    assert_eq!(
        app.mirrored(1).await,
        (Some(300), Some(200)),
        "the mirror is stale while cut off"
    );

    proxy.restore();
    app.mirror_converges(1).await;
    assert_eq!(app.mirrored(1).await, (Some(200), Some(100)));
    assert_eq!(app.stored_orders(1).await.len(), 200);
    app.stop().await;
    database.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_means_quick_503s_no_oversell_and_sales_resume_after() {
    let database = TestDatabase::create().await;
    let proxy = TcpProxy::start(socket_address(&database.url)).await;
    let database_via_proxy = via(&database.url, proxy.address());
    let app = spawn_app_with(|settings| {
        use_services(settings, &database_via_proxy, &redis_url());
        settings.shop.commit_timeout_ms = 1_000;
        settings.shop.request_timeout_ms = 2_000;
        settings.shop.commit_abandon_after_ms = 2_000;
    })
    .await;
    app.create_product(1, 99_900, 1_000).await;
    app.start_sale(1, 500, 1).await;
    let before = buy_all(&app, 1..=100, "k").await;
    assert_eq!(created(&before), 100);

    proxy.cut();
    let during = buy_all(&app, 101..=300, "k").await;
    let unavailable: Vec<&Answer> = during
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!unavailable.is_empty(), "the outage was felt");
    for answer in &during {
        assert!(
            matches!(
                answer.status,
                StatusCode::CREATED | StatusCode::SERVICE_UNAVAILABLE
            ),
            "user {} got {}",
            answer.user,
            answer.status
        );
        // Bounded: the request timeout plus scheduling slack, never a hang.
        assert!(
            answer.elapsed < Duration::from_secs(5),
            "user {} waited {:?}",
            answer.user,
            answer.elapsed
        );
    }
    assert!(
        unavailable.iter().all(|answer| answer.retry_after),
        "503s say when to retry"
    );

    proxy.restore();
    // Sales resume by themselves: a new buyer eventually gets an order.
    eventually(Duration::from_secs(30), || async {
        let answers = buy_all(&app, 1_000..=1_000, "resume").await;
        (answers[0].status == StatusCode::CREATED).then_some(())
    })
    .await;
    // Each 503 was "retry with the same key": doing so settles every buyer exactly once.
    let mut retried = Vec::new();
    for answer in &unavailable {
        retried.extend(buy_all(&app, answer.user..=answer.user, "k").await);
    }
    assert!(
        retried
            .iter()
            .all(|answer| answer.status == StatusCode::CREATED)
    );

    let mut answered: Vec<String> = before
        .iter()
        .chain(during.iter())
        .chain(retried.iter())
        .filter_map(|answer| answer.order_id.clone())
        .collect();
    answered.sort();
    answered.dedup();
    let stored = crate::helpers::stored_orders_postgres(&database.url, 1).await;
    let stored_ids: Vec<String> = stored.iter().map(|order| order.0.clone()).collect();
    // Users 1..=300 and 1000: one order each, none twice, all answered.
    assert_eq!(stored.len(), 301);
    let mut users: Vec<u64> = stored.iter().map(|order| order.1).collect();
    users.sort_unstable();
    users.dedup();
    assert_eq!(users.len(), 301, "nobody bought twice");
    for id in &answered {
        assert!(stored_ids.contains(id), "answered order {id} is stored");
    }
    let inventory = app.inventory(1).await;
    assert_eq!(inventory["sale"]["reserved"], 301);
    assert_eq!(inventory["sale"]["left"], 199);
    app.stop().await;
    database.drop_database().await;
}
