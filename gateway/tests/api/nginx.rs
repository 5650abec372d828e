//! The shipped NGINX configuration (`deploy/nginx/flashcart.conf`), run by the real NGINX
//! (Debian package, `deploy/ops_servers.sh`) in front of the engine on loopback: Buy Now and
//! a stock feed through it, and its own 429 in the engine's error shape when flooded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinSet;

use gateway::feed_client::StockFeedClient;

use crate::helpers::{eventually, free_port, spawn_app};

/// NGINX with the shipped configuration, its upstream pointed at `engine` and listening on
/// a free loopback port; stopped when dropped.
struct Nginx {
    process: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/flashcart.conf")
}

impl Nginx {
    async fn in_front_of(engine: &str) -> Self {
        let shipped = std::fs::read_to_string(shipped_config()).expect("the shipped config");
        let address = format!("127.0.0.1:{}", free_port());
        // Only the addresses change: the compose names of the nodes and the public port.
        let mut nodes_replaced = 0;
        let mut config = String::new();
        for line in shipped.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("server node") {
                nodes_replaced += 1;
                if nodes_replaced == 1 {
                    config.push_str(&format!(
                        "    server {engine} max_fails=3 fail_timeout=5s;\n"
                    ));
                }
            } else if trimmed == "listen 8000;" {
                config.push_str(&format!("    listen {address};\n"));
            } else {
                config.push_str(line);
                config.push('\n');
            }
        }
        assert!(nodes_replaced >= 1, "the upstream names the nodes");
        assert!(config.contains(&address), "the server listens on 8000");

        let dir = tempfile::tempdir().expect("a temporary directory");
        // Workers run as an unprivileged user when NGINX starts as root: let them in.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
        let root = dir.path().display().to_string();
        std::fs::write(dir.path().join("flashcart.conf"), config).expect("written");
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\n\
                 error_log {root}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {root}/body;\n\
                 proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n\
                 uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n\
                 include {root}/flashcart.conf;\n}}\n"
            ),
        )
        .expect("written");
        let process = std::process::Command::new("/usr/sbin/nginx")
            .args(["-p", &root, "-c", &format!("{root}/nginx.conf")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("nginx starts (deploy/ops_servers.sh installs it)");
        let nginx = Self {
            process,
            address,
            _dir: dir,
        };
        let health = format!("http://{}/healthz", nginx.address);
        eventually(Duration::from_secs(20), || async {
            let answer = reqwest::get(&health).await.ok()?;
            (answer.status() == StatusCode::OK).then_some(())
        })
        .await;
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_sells_streams_stock_and_limits_floods() {
    let app = spawn_app().await;
    app.create_product(1, 1_000, 50).await;
    let nginx = Nginx::in_front_of(app.address.trim_start_matches("http://")).await;
    let front = format!("http://{}", nginx.address);

    // A screen watches the product through NGINX's WebSocket upgrade.
    let mut feed = StockFeedClient::connect(&front, &[engine::ProductId(1)])
        .await
        .expect("the stock feed upgrades through nginx");
    let first = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .expect("a first frame")
        .expect("a stock view");
    assert_eq!(first.left, 50);

    // Buy Now through the proxy, with the request id passed on.
    let response = app
        .client
        .post(format!("{front}/api/v1/buy-now"))
        .bearer_auth(app.token(7, gateway::auth::Role::Customer))
        .header("Idempotency-Key", "through-nginx")
        .header("X-Request-Id", "nginx-test-1")
        .json(&serde_json::json!({ "productId": 1, "quantity": 2 }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::CREATED);
    let order: Value = response.json().await.expect("json");
    assert!(order["orderId"].is_string(), "{order}");

    // The screen sees the sale.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = tokio::time::timeout_at(deadline, feed.next())
            .await
            .expect("the sale reaches the screen within 10 s")
            .expect("a stock view");
        if view.left == 48 {
            break;
        }
    }

    // A flood from one address: NGINX's burst of 100 passes, the rest get its 429 in the
    // engine's error shape, with Retry-After.
    let mut flood = JoinSet::new();
    for _ in 0..400 {
        let client = app.client.clone();
        let url = format!("{front}/api/v1/products/1");
        flood.spawn(async move {
            let response = client.get(url).send().await.expect("sent");
            let status = response.status();
            let retry_after = response.headers().contains_key("retry-after");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        });
    }
    let (mut served, mut limited) = (0, 0);
    while let Some(result) = flood.join_next().await {
        let (status, retry_after, body) = result.expect("task");
        match status {
            StatusCode::OK => served += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry_after, "nginx's 429 says when to come back");
                assert_eq!(body["error"]["code"], "rate_limited", "{body}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(served >= 100, "the burst is served: {served}");
    assert!(limited >= 100, "the flood is limited: {limited} of 400");
    // The payment provider is never limited, even now.
    let webhook = app
        .client
        .post(format!("{front}/api/v1/payments/webhook"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(webhook.status(), StatusCode::UNAUTHORIZED);
    drop(nginx);
    app.stop().await;
}
