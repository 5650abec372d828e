//! Per-user and per-address rate limits (`[rate_limits]`, `rate_limit.rs`): a script pressing
//! Buy Now as fast as it can gets 429 with Retry-After, everyone else keeps buying.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use serde_json::json;

use crate::helpers::{TestApp, error_code, spawn_app_with};

fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn spawn_limited(configure: impl FnOnce(&mut gateway::Settings)) -> TestApp {
    spawn_app_with(|settings| {
        settings.rate_limits.enabled = true;
        configure(settings);
    })
    .await
}

#[tokio::test]
async fn a_user_pressing_buy_now_fifty_times_a_second_is_limited_and_another_is_not() {
    let app = spawn_limited(|settings| {
        settings.rate_limits.buy_now = gateway::settings::RateLimit {
            per_second: 5,
            burst: 10,
        };
    })
    .await;
    app.create_product(1, 100, 100_000).await;

    // The second user buys at a person's pace, twice a second, while the first one storms.
    let calm = {
        let app_client = app.client.clone();
        let url = app.url("/api/v1/buy-now");
        let token = app.token(2, gateway::auth::Role::Customer);
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for n in 0..4 {
                let response = app_client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("calm-{n}"))
                    .json(&json!({ "productId": 1, "quantity": 1 }))
                    .send()
                    .await
                    .expect("request sent");
                statuses.push(response.status());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            statuses
        })
    };

    let started = Instant::now();
    let mut accepted: u64 = 0;
    let mut limited: u32 = 0;
    let mut last_wait = 0;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    for n in 0..50 {
        every.tick().await;
        let response = app.buy(1, 1, 1, &format!("storm-{n}")).await;
        match response.status() {
            StatusCode::CREATED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let wait = retry_after(&response).expect("a 429 says when to come back");
                assert!((1..=2).contains(&wait), "Retry-After {wait}");
                last_wait = wait;
                let (_, code) = error_code(response).await;
                assert_eq!(code, "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst of 10, plus 5 a second for the time the storm took (and one of slack for
    // the token that refilled while the last request was on its way).
    let allowed = 10.0 + 5.0 * elapsed + 1.0;
    assert!(
        accepted as f64 <= allowed,
        "{accepted} accepted in {elapsed:.2} s"
    );
    assert!(accepted >= 10, "the burst is served: {accepted}");
    assert!(limited >= 30, "{limited} limited, {accepted} accepted");

    let calm = calm.await.expect("calm buyer");
    assert!(
        calm.iter().all(|status| *status == StatusCode::CREATED),
        "the calm buyer is never limited: {calm:?}"
    );

    // Having waited what it was told, the first user buys again.
    tokio::time::sleep(Duration::from_secs(last_wait)).await;
    let response = app.buy(1, 1, 1, "after-the-wait").await;
    assert_eq!(response.status(), StatusCode::CREATED);

    // Stock moved only for the accepted orders: a 429 reserved nothing.
    let inventory = app.inventory(1).await;
    let calm_orders = calm.len() as u64;
    assert_eq!(
        inventory["reserved"].as_u64(),
        Some(accepted + calm_orders + 1),
        "{inventory}"
    );

    // Operators see it as shedding.
    let scrape = app.get("/metrics").await.text().await.expect("scrape");
    let shed = scrape
        .lines()
        .find(|line| line.starts_with("flashcart_shed_total{reason=\"rate_limited\"}"))
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .expect("rate_limited is counted");
    assert!(shed >= f64::from(limited), "{shed} < {limited}");
    app.stop().await;
}

async fn read(app: &TestApp, forwarded_for: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url("/api/v1/products"))
        .header("X-Forwarded-For", forwarded_for);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn anonymous_callers_share_their_address_bucket_and_forwarded_for_needs_a_trusted_proxy() {
    let tight = gateway::settings::RateLimit {
        per_second: 1,
        burst: 3,
    };
    // Nobody trusted: the header is the caller's own claim, so two "clients" are one.
    let app = spawn_limited(|settings| settings.rate_limits.reads = tight).await;
    for _ in 0..3 {
        assert_eq!(
            read(&app, "203.0.113.1", None).await.status(),
            StatusCode::OK
        );
    }
    let response = read(&app, "203.0.113.2", None).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&response).is_some());
    // A signed-in caller from the same address has a bucket of its own.
    let token = app.token(5, gateway::auth::Role::Customer);
    assert_eq!(
        read(&app, "203.0.113.2", Some(&token)).await.status(),
        StatusCode::OK
    );
    // Health checks, metrics and the payment provider are never limited.
    for _ in 0..10 {
        assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
        assert_eq!(app.get("/metrics").await.status(), StatusCode::OK);
        let webhook = app
            .payment_webhook(&json!({ "orderId": "x" }), Some("wrong"))
            .await;
        assert_eq!(webhook.status(), StatusCode::UNAUTHORIZED);
    }
    app.stop().await;

    // Behind a trusted proxy (NGINX on loopback), each forwarded client has its own bucket.
    let app = spawn_limited(|settings| {
        settings.rate_limits.reads = tight;
        settings.rate_limits.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")];
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            read(&app, "203.0.113.1", None).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        read(&app, "203.0.113.1", None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        read(&app, "203.0.113.2", None).await.status(),
        StatusCode::OK
    );
    let limiter = app.rate_limiter.clone().expect("limits are on");
    assert_eq!(limiter.buckets(), 2);
    app.stop().await;
}
