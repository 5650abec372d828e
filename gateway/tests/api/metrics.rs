//! `GET /metrics`: the Prometheus text exposition, with the engine's names, moving with
//! what the engine does. Both tests run the engine binary in a process of its own: the
//! engines of this test binary share one recorder, so their figures would mix.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use gateway::auth::Role;
use gateway::feed_client::StockFeedClient;
use serde_json::json;

use crate::helpers::{Server, eventually, free_port, wait_ready};

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn scrape(client: &reqwest::Client, address: &str) -> String {
    let response = client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("text")
}

/// On the engine binary, in a process of its own: its counters are its own, exactly (the
/// engines of this test binary would share one recorder).
#[tokio::test]
async fn metrics_follow_orders_refusals_requests_and_commits() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let engine_server = Server::start(data.path(), port);
    let address = engine_server.address.clone();
    let client = reqwest::Client::new();
    wait_ready(&client, &address).await;
    engine_server.create_product(&client, 1, 2).await;
    let before = scrape(&client, &address).await;
    let buy_now_201 = [
        ("route", "/api/v1/buy-now"),
        ("method", "POST"),
        ("status", "201"),
    ];
    let sold_out = [("reason", "sold_out")];
    let count =
        |text: &str, name: &str, labels: &[(&str, &str)]| sample(text, name, labels).unwrap_or(0.0);

    for user in 1..=3 {
        client
            .post(format!("{address}/api/v1/buy-now"))
            .bearer_auth(engine_server.token(user, Role::Customer))
            .header("Idempotency-Key", format!("metrics-{user}"))
            .json(&json!({ "productId": 1, "quantity": 1 }))
            .send()
            .await
            .expect("sent");
    }
    let after = scrape(&client, &address).await;

    assert_eq!(
        sample(
            &after,
            "flashcart_orders_placed_total",
            &[("path", "buy_now")]
        ),
        Some(2.0),
        "this engine placed two orders"
    );
    assert_eq!(
        count(&after, "flashcart_http_requests_total", &buy_now_201)
            - count(&before, "flashcart_http_requests_total", &buy_now_201),
        2.0
    );
    assert_eq!(
        count(&after, "flashcart_buy_now_refused_total", &sold_out)
            - count(&before, "flashcart_buy_now_refused_total", &sold_out),
        1.0
    );
    let route = [("route", "/api/v1/buy-now"), ("le", "+Inf")];
    assert!(
        count(
            &after,
            "flashcart_http_request_duration_seconds_bucket",
            &route
        ) >= 3.0
    );
    assert!(
        count(&after, "flashcart_group_commit_batch_size_count", &[]) >= 2.0,
        "every batch is measured"
    );
    assert!(
        sample(
            &after,
            "flashcart_group_commit_duration_seconds_bucket",
            &[("le", "0.005")]
        )
        .is_some()
    );
    assert!(sample(&after, "flashcart_product_actors_live", &[]).is_some_and(|live| live >= 1.0));
    assert!(sample(&after, "flashcart_mailbox_depth_max", &[]).is_some());
    // The orders' jobs (each order asks the payment provider) are counted as they finish.
    eventually(Duration::from_secs(20), || async {
        let text = scrape(&client, &address).await;
        sample(&text, "flashcart_jobs_total", &[("outcome", "done")]).filter(|done| *done >= 1.0)
    })
    .await;
    // Bounded labels: a path with an id is counted under its route template.
    client
        .get(format!("{address}/api/v1/products/1"))
        .send()
        .await
        .expect("sent");
    let templated = scrape(&client, &address).await;
    assert!(
        sample(
            &templated,
            "flashcart_http_requests_total",
            &[("route", "/api/v1/products/{id}")]
        )
        .is_some(),
        "{templated}"
    );
    assert!(!templated.contains("route=\"/api/v1/products/1\""));
}

/// A Prometheus server (the Debian package, `deploy/ops_servers.sh`) scraping `target`
/// every second, on a free loopback port; stopped when dropped.
struct Prometheus {
    process: std::process::Child,
    address: String,
    _data: tempfile::TempDir,
}

impl Prometheus {
    async fn scraping(target: &str) -> Self {
        let data = tempfile::tempdir().expect("a temporary directory");
        let config = data.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: flashcart\n    metrics_path: /metrics\n\
                 \x20   static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("the config is written");
        let address = format!("127.0.0.1:{}", free_port());
        let process = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus starts (deploy/ops_servers.sh installs it)");
        let prometheus = Self {
            process,
            address,
            _data: data,
        };
        let ready = format!("http://{}/-/ready", prometheus.address);
        eventually(Duration::from_secs(30), || async {
            let answer = reqwest::get(&ready).await.ok()?;
            (answer.status() == StatusCode::OK).then_some(())
        })
        .await;
        prometheus
    }

    /// The value of an instant query with one series, if it has one.
    async fn query(&self, query: &str) -> Option<f64> {
        let url = reqwest::Url::parse_with_params(
            &format!("http://{}/api/v1/query", self.address),
            &[("query", query)],
        )
        .ok()?;
        let answer: Value = reqwest::get(url).await.ok()?.json().await.ok()?;
        answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }
}

impl Prometheus {
    /// Whether the query API runs `query` (valid PromQL over known functions).
    async fn accepts(&self, query: &str) -> bool {
        let Ok(url) = reqwest::Url::parse_with_params(
            &format!("http://{}/api/v1/query", self.address),
            &[("query", query)],
        ) else {
            return false;
        };
        let Ok(answer) = reqwest::get(url).await else {
            return false;
        };
        let answer: Value = answer.json().await.unwrap_or(Value::Null);
        answer["status"] == "success"
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The engine binary in a process of its own (so its counters are its own), scraped by the
/// real Prometheus server. Prometheus answers what it sold, and every query of the shipped
/// Grafana dashboard is valid PromQL over names the engine exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_engine_and_the_dashboard_queries_what_it_exports() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let port = free_port();
    let engine_server = Server::start(data.path(), port);
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &address).await;
    let prometheus = Prometheus::scraping(&format!("127.0.0.1:{port}")).await;

    let token = |user: u64, role: Role| engine_server.token(user, role);
    engine_server.create_product(&client, 1, 3).await;
    // A screen stays open while Prometheus scrapes.
    let _screen = StockFeedClient::connect(&address, &[engine::ProductId(1)])
        .await
        .expect("a stock screen");
    let buy = |user: u64, key: String| {
        client
            .post(format!("{address}/api/v1/buy-now"))
            .bearer_auth(token(user, Role::Customer))
            .header("Idempotency-Key", key)
            .json(&json!({ "productId": 1, "quantity": 1 }))
            .send()
    };
    for user in 1..=3 {
        let bought = buy(user, format!("scraped-{user}")).await.expect("sent");
        assert_eq!(bought.status(), StatusCode::CREATED);
    }
    // Sold out now: refusals. One user pressing past the default Buy Now bucket (burst
    // 10): shedding.
    let mut statuses = Vec::new();
    for press in 0..15 {
        statuses.push(
            buy(9, format!("press-{press}"))
                .await
                .expect("sent")
                .status(),
        );
    }
    assert!(statuses.contains(&StatusCode::CONFLICT), "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    let placed = eventually(Duration::from_secs(30), || async {
        prometheus
            .query(r#"flashcart_orders_placed_total{job="flashcart",path="buy_now"}"#)
            .await
            .filter(|placed| *placed >= 3.0)
    })
    .await;
    assert_eq!(placed, 3.0);
    let up = prometheus.query(r#"up{job="flashcart"}"#).await;
    assert_eq!(up, Some(1.0), "the target is healthy");

    // Every name the dashboard queries is in the engine's scrape, once the jobs of the
    // three orders have run.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/grafana/dashboards/flashcart.json"),
        )
        .expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().expect("an expr").to_owned())
        .collect();
    assert!(queries.len() >= 10, "{queries:?}");
    let names: std::collections::BTreeSet<String> = queries
        .iter()
        .flat_map(|query| metric_names(query))
        .collect();
    let text = eventually(Duration::from_secs(20), || async {
        let text = client
            .get(format!("{address}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        names
            .iter()
            .all(|name| exported(&text, name))
            .then_some(text)
    })
    .await;
    for name in &names {
        assert!(exported(&text, name), "{name} is not in the scrape");
    }
    for query in &queries {
        assert!(
            prometheus.accepts(query).await,
            "Prometheus refuses {query}"
        );
    }
}

/// The `flashcart_...` names a PromQL query reads.
fn metric_names(query: &str) -> Vec<String> {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("flashcart_"))
        .map(str::to_owned)
        .collect()
}

/// Whether a scrape has samples of `name` (a histogram's `_bucket`, `_sum`, `_count` too).
fn exported(scrape: &str, name: &str) -> bool {
    scrape.lines().any(|line| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}
