use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use actors::Shop;
use gateway::App;
use gateway::auth::{Claims, JwtKeys, Role};
use gateway::settings::Settings;
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    /// PostgreSQL URL when the app runs on PostgreSQL (else the embedded store).
    pub database_url: Option<String>,
    /// Redis key prefix when the app mirrors to Redis.
    pub redis_prefix: Option<String>,
    pub address: String,
    pub client: reqwest::Client,
    pub shop: Shop,
    pub data_dir: PathBuf,
    /// The app's rate limiter, when `[rate_limits]` is on.
    pub rate_limiter: Option<Arc<gateway::rate_limit::RateLimiter>>,
    keys: Arc<JwtKeys>,
    websocket_slots: Arc<tokio::sync::Semaphore>,
    websockets_max: usize,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn test_settings(data_dir: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    settings.store.data_dir = data_dir.to_path_buf();
    settings.auth.jwt_secret = Some(SecretString::from("test-secret".to_owned()));
    settings.payments.webhook_secret = Some(SecretString::from(WEBHOOK_SECRET.to_owned()));
    // Every test calls from 127.0.0.1, often as one user storming a product: the limits
    // would answer for the engine. `rate_limits.rs` turns them on and tests them.
    settings.rate_limits.enabled = false;
    settings
}

pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// Starts the app on a fresh data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = spawn_app_in(dir.path(), configure).await;
    app._dir = Some(dir);
    app
}

/// Starts the app on an existing data directory (a restart).
pub async fn spawn_app_in(data_dir: &Path, configure: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        gateway::telemetry::init("info", std::io::stdout, false);
    }
    let mut settings = test_settings(data_dir);
    configure(&mut settings);
    let database_url = settings
        .store
        .database_url
        .as_ref()
        .map(|url| secrecy::ExposeSecret::expose_secret(url).to_owned());
    let redis_prefix = settings
        .redis
        .url
        .as_ref()
        .map(|_| settings.redis.key_prefix.clone());
    let app = App::build(&settings).await.expect("app builds");
    let address = format!("http://{}", app.address());
    let shop = app.shop().clone();
    let keys = app.keys();
    let websocket_slots = app.websocket_slots();
    let rate_limiter = app.rate_limiter();
    let websockets_max = settings.server.websocket_connections_max;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        database_url,
        redis_prefix,
        address,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        shop,
        data_dir: data_dir.to_path_buf(),
        rate_limiter,
        keys,
        websocket_slots,
        websockets_max,
        shutdown: Some(shutdown),
        server: Some(server),
        _dir: None,
    }
}

impl TestApp {
    pub fn token(&self, user: u64, role: Role) -> String {
        sign(&self.keys, user, role)
    }

    /// Sends a payment verdict as the provider would, signed with `secret`.
    pub async fn payment_webhook(&self, body: &Value, secret: Option<&str>) -> Response {
        let raw = serde_json::to_vec(body).expect("json");
        let mut request = self
            .client
            .post(self.url("/api/v1/payments/webhook"))
            .header("Content-Type", "application/json");
        if let Some(secret) = secret {
            request = request.header(
                gateway::routes::payments::SIGNATURE_HEADER,
                gateway::routes::payments::sign(secret.as_bytes(), &raw),
            );
        }
        request.body(raw).send().await.expect("request sent")
    }

    /// Payments recorded in the store for an order: (transaction, status).
    pub async fn stored_payments(&self, order_id: &str) -> Vec<(String, String)> {
        use sqlx::Row;
        let query =
            "SELECT transaction_id, status FROM payments WHERE order_id::text = $1 ORDER BY id";
        match &self.database_url {
            Some(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                let rows = sqlx::query(query)
                    .bind(order_id)
                    .fetch_all(&pool)
                    .await
                    .expect("query");
                rows.iter().map(|row| (row.get(0), row.get(1))).collect()
            }
            None => {
                let url = format!(
                    "sqlite://{}?mode=ro",
                    self.data_dir.join("flashcart.db").display()
                );
                let pool = sqlx::SqlitePool::connect(&url).await.expect("open");
                let rows = sqlx::query(
                    "SELECT transaction_id, status FROM payments WHERE order_id = ? ORDER BY id",
                )
                .bind(order_id)
                .fetch_all(&pool)
                .await
                .expect("query");
                rows.iter().map(|row| (row.get(0), row.get(1))).collect()
            }
        }
    }

    /// WebSockets the app holds open right now.
    pub fn open_websockets(&self) -> usize {
        self.websockets_max - self.websocket_slots.available_permits()
    }

    pub fn admin(&self) -> String {
        self.token(1, Role::Admin)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Graceful stop, the path SIGTERM takes: in-flight requests finish, actors commit.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn buy(&self, user: u64, product_id: u64, quantity: i64, key: &str) -> Response {
        self.client
            .post(self.url("/api/v1/buy-now"))
            .bearer_auth(self.token(user, Role::Customer))
            .header("Idempotency-Key", key)
            .json(&json!({ "productId": product_id, "quantity": quantity }))
            .send()
            .await
            .expect("request sent")
    }

    /// A customer's `POST /api/v1/cart/items`.
    pub async fn add_to_cart(&self, user: u64, product_id: u64, quantity: u32) -> Response {
        let body = json!({ "productId": product_id, "quantity": quantity });
        self.post(
            "/api/v1/cart/items",
            &self.token(user, Role::Customer),
            body,
        )
        .await
    }

    /// A customer's `POST /api/v1/wishlist/items`.
    pub async fn add_to_wishlist(&self, user: u64, product_id: u64) -> Response {
        let body = json!({ "productId": product_id });
        self.post(
            "/api/v1/wishlist/items",
            &self.token(user, Role::Customer),
            body,
        )
        .await
    }

    /// A user's notifications as `GET /api/v1/notifications` lists them (newest first).
    pub async fn notifications(&self, user: u64) -> Vec<Value> {
        let response = self
            .get_as(
                "/api/v1/notifications?limit=200",
                &self.token(user, Role::Customer),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body: Value = response.json().await.expect("json");
        match body["notifications"].take() {
            Value::Array(list) => list,
            other => panic!("no notification list: {other}"),
        }
    }

    pub async fn create_product(&self, id: u64, price: u64, stock: u64) -> Value {
        let response = self
            .post(
                "/api/v1/products",
                &self.admin(),
                json!({
                    "id": id, "title": format!("Phone {id}"), "brand": "Acme",
                    "category": "mobiles", "price": price, "stock": stock
                }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }

    /// A sale live from a minute ago for an hour.
    pub async fn start_sale(&self, product_id: u64, stock: u64, per_user_limit: u32) -> Value {
        let now_ms = actors::clock::now_ms();
        let window = (now_ms - 60_000, now_ms + 3_600_000);
        self.schedule_sale(product_id, window, stock, per_user_limit)
            .await
    }

    /// A sale of `product_id` at 499 (was 999) from `window.0` to `window.1`.
    pub async fn schedule_sale(
        &self,
        product_id: u64,
        (start_ms, end_ms): (u64, u64),
        stock: u64,
        per_user_limit: u32,
    ) -> Value {
        let response = self
            .post(
                "/api/v1/flash-sales",
                &self.admin(),
                json!({
                    "productId": product_id, "salePrice": 49_900, "originalPrice": 99_900,
                    "startTime": rfc3339(start_ms), "endTime": rfc3339(end_ms),
                    "stock": stock, "perUserLimit": per_user_limit
                }),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn inventory(&self, product_id: u64) -> Value {
        let response = self.get(&format!("/api/v1/inventory/{product_id}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("json")
    }

    /// Orders stored for a product, read straight from the store.
    pub async fn stored_orders(&self, product_id: u64) -> Vec<(String, u64, u32, String)> {
        match &self.database_url {
            Some(url) => stored_orders_postgres(url, product_id).await,
            None => stored_orders(&self.data_dir, product_id).await,
        }
    }

    /// The mirror's view of a product: (`inventory:{id}`, `flash_sale:stock:{id}`).
    pub async fn mirrored(&self, product_id: u64) -> (Option<u64>, Option<u64>) {
        let prefix = self
            .redis_prefix
            .as_ref()
            .expect("the app mirrors to Redis");
        mirrored(prefix, product_id).await
    }

    /// Waits until the mirror shows what the engine shows.
    pub async fn mirror_converges(&self, product_id: u64) {
        eventually(Duration::from_secs(20), || async {
            let inventory = self.inventory(product_id).await;
            let expected = (
                inventory["left"].as_u64(),
                inventory["sale"]["left"].as_u64(),
            );
            (self.mirrored(product_id).await == expected).then_some(())
        })
        .await;
    }
}

pub async fn stored_orders(data_dir: &Path, product_id: u64) -> Vec<(String, u64, u32, String)> {
    use sqlx::Row;
    let url = format!(
        "sqlite://{}?mode=ro",
        data_dir.join("flashcart.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open store read-only");
    let rows = sqlx::query(
        "SELECT o.id, o.user_id, i.quantity, o.status FROM orders o
         JOIN order_items i ON i.order_id = o.id WHERE i.product_id = ? ORDER BY o.id",
    )
    .bind(i64::try_from(product_id).expect("small id"))
    .fetch_all(&pool)
    .await
    .expect("query");
    pool.close().await;
    rows.iter()
        .map(|row| {
            (
                row.get::<String, _>(0),
                u64::try_from(row.get::<i64, _>(1)).expect("positive"),
                u32::try_from(row.get::<i64, _>(2)).expect("small"),
                row.get::<String, _>(3),
            )
        })
        .collect()
}

pub async fn stored_orders_postgres(url: &str, product_id: u64) -> Vec<(String, u64, u32, String)> {
    use sqlx::Row;
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("connect to the test database");
    let rows = sqlx::query(
        "SELECT o.id::text, o.user_id, i.quantity, o.status::text FROM orders o
         JOIN order_items i ON i.order_id = o.id WHERE i.product_id = $1 ORDER BY o.id",
    )
    .bind(i64::try_from(product_id).expect("small id"))
    .fetch_all(&pool)
    .await
    .expect("query");
    pool.close().await;
    rows.iter()
        .map(|row| {
            (
                row.get::<String, _>(0),
                u64::try_from(row.get::<i64, _>(1)).expect("positive"),
                u32::try_from(row.get::<i32, _>(2)).expect("positive"),
                row.get::<String, _>(3),
            )
        })
        .collect()
}

pub async fn mirrored(prefix: &str, product_id: u64) -> (Option<u64>, Option<u64>) {
    let client = redis::Client::open(persistence::test_support::redis_url()).expect("redis url");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");
    let left: Option<u64> = redis::cmd("GET")
        .arg(format!("{prefix}inventory:{product_id}"))
        .query_async(&mut redis)
        .await
        .expect("GET");
    let sale_left: Option<u64> = redis::cmd("GET")
        .arg(format!("{prefix}flash_sale:stock:{product_id}"))
        .query_async(&mut redis)
        .await
        .expect("GET");
    (left, sale_left)
}

/// What a test on the real services starts from: a fresh PostgreSQL database, the Redis
/// URL, and a topic and queue prefix of its own with the Kafka brokers, as `(database,
/// redis, prefix, brokers)`. Pass them on with [`use_services`], [`use_kafka`] and
/// [`use_rabbitmq`].
pub async fn real_services() -> (
    persistence::test_support::TestDatabase,
    String,
    String,
    String,
) {
    (
        persistence::test_support::TestDatabase::create().await,
        persistence::test_support::redis_url(),
        workflow::test_support::unique_prefix(),
        workflow::test_support::kafka_brokers(),
    )
}

/// Events on Kafka: topics under `prefix`, two partitions, deliveries given up quickly.
pub fn use_kafka(settings: &mut Settings, brokers: &str, prefix: &str) {
    settings.kafka.brokers = Some(brokers.to_owned());
    settings.kafka.prefix = prefix.to_owned();
    settings.kafka.partitions = 2;
    settings.kafka.delivery_timeout_ms = 2_000;
}

/// Jobs over RabbitMQ: exchanges and queues under `prefix`, retried quickly.
pub fn use_rabbitmq(settings: &mut Settings, prefix: &str) {
    settings.rabbitmq.url = Some(SecretString::from(workflow::test_support::rabbit_url()));
    settings.rabbitmq.prefix = prefix.to_owned();
    settings.rabbitmq.backoff_ms = 100;
}

/// Settings for PostgreSQL (a fresh database) and Redis (a fresh key prefix), through the
/// given URLs (which may point at a [`persistence::test_support::TcpProxy`]).
pub fn use_services(settings: &mut Settings, database_url: &str, redis_url: &str) {
    settings.store.database_url = Some(SecretString::from(database_url.to_owned()));
    settings.redis.url = Some(SecretString::from(redis_url.to_owned()));
    settings.redis.key_prefix = persistence::test_support::redis_prefix();
}

pub fn rfc3339(ms: u64) -> String {
    let moment =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).expect("time");
    moment
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// Polls `check` until it returns `Some`, or panics after `deadline`. Tests wait for
/// conditions, never for fixed sleeps.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn error_code(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.expect("error bodies are JSON");
    let code = body["error"]["code"]
        .as_str()
        .expect("error.code")
        .to_owned();
    assert!(
        body["error"]["message"].is_string(),
        "error.message in {body}"
    );
    (status, code)
}

/// The real `flashcart` binary as a child process, for what only a process can show
/// (SIGKILL, SIGTERM, SIGSTOP).
pub struct Server {
    child: Child,
    pub address: String,
}

impl Server {
    pub fn start(data_dir: &std::path::Path, port: u16) -> Server {
        Self::start_with(data_dir, port, &[])
    }

    pub fn start_with(data_dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Server {
        Self::start_logging(data_dir, port, env, Stdio::null())
    }

    /// Like `start_with`, with the engine's standard output (its log) going to `log`.
    pub fn start_logging(
        data_dir: &std::path::Path,
        port: u16,
        env: &[(&str, &str)],
        log: impl Into<Stdio>,
    ) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_flashcart"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .env("FLASHCART_AUTH__JWT_SECRET", "test-secret")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("the flashcart binary starts");
        Server {
            child,
            address: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A token the binary accepts (it runs with the tests' secret).
    pub fn token(&self, user: u64, role: Role) -> String {
        sign(
            &JwtKeys::new(SecretString::from("test-secret".to_owned())),
            user,
            role,
        )
    }

    /// Creates product `id` ("Phone", price 1,000) with `stock` units, as an admin.
    pub async fn create_product(&self, client: &reqwest::Client, id: u64, stock: u64) {
        let created = client
            .post(format!("{}/api/v1/products", self.address))
            .bearer_auth(self.token(1, Role::Admin))
            .json(&json!({
                "id": id, "title": "Phone", "brand": "Acme", "category": "mobiles",
                "price": 1_000, "stock": stock
            }))
            .send()
            .await
            .expect("sent");
        assert_eq!(created.status(), StatusCode::CREATED);
    }

    /// SIGKILL: no drain, no flush, nothing.
    pub fn kill_9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn wait_ready(client: &reqwest::Client, address: &str) {
    eventually(Duration::from_secs(30), || async {
        let response = client.get(format!("{address}/readyz")).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
}

/// Serves `router` on a free loopback port (a stand-in for a service the engine calls: an
/// OTLP collector, an identity provider); returns its address.
pub async fn serve_on_loopback(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    address
}

/// A token of `user` with `role`, valid for an hour.
fn sign(keys: &JwtKeys, user: u64, role: Role) -> String {
    keys.encode(&Claims {
        sub: user.to_string(),
        role,
        exp: actors::clock::now_ms() / 1_000 + 3_600,
    })
}
