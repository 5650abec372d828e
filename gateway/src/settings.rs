//! Typed configuration, read once at startup. Layers, last wins:
//! built-in defaults -> optional TOML file -> `FLASHCART_SECTION__KEY` env vars -> flags.
//! Every limit has a name and a default that says why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::ShopSettings;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use persistence::GroupCommitSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub store: StoreSettings,
    pub redis: RedisConfig,
    pub payments: PaymentSettings,
    pub kafka: KafkaConfig,
    pub rabbitmq: RabbitConfig,
    pub workflow: WorkflowConfig,
    pub campaigns: CampaignConfig,
    pub payouts: PayoutConfig,
    pub shop: ShopConfig,
    pub cluster: ClusterConfig,
    pub telemetry: TelemetrySettings,
    pub rate_limits: RateLimitSettings,
    /// Seed a demo catalog (when empty) and print tokens to try it.
    pub demo: bool,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Record Prometheus metrics and serve them at `/metrics`. On by default: operators
    /// need them during a sale; off only to measure what they cost
    /// (`loadtests/feature_cost.sh metrics`).
    pub metrics: bool,
    /// `text` for people, `json` (one object per line) for log shippers.
    pub format: LogFormat,
    /// One INFO line per answered request (route, status, milliseconds). Off by default: at
    /// a sale's rate the proxy's access log already holds them, and writing each costs.
    pub access_log: bool,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (`http://collector:4318`): spans of
    /// every request, shop call, actor turn and commit go to `<url>/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            metrics: true,
            format: LogFormat::Text,
            access_log: false,
            otlp_endpoint: None,
            service_name: "flashcart".into(),
        }
    }
}

/// Token buckets per caller: the JWT's user when the request carries a valid token, else the
/// client's IP. Each class of request has its own bucket, so a script pressing Buy Now does
/// not stop the same user from reading their orders. The payment webhook, health checks and
/// `/metrics` are never limited; neither is the node channel (its callers were limited by
/// the node they came in through).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or CIDR blocks, e.g. the
    /// NGINX in front). From anyone else the header is ignored: it is the client's to forge.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `POST /api/v1/buy-now`. A person presses a few times at most; a script presses
    /// as fast as it can and would take the product's in-flight slots from everyone.
    pub buy_now: RateLimit,
    /// `POST /api/v1/orders` (checkout of the cart).
    pub checkout: RateLimit,
    /// Every other write: cart, reviews, cancellations, admin and delivery updates.
    pub writes: RateLimit,
    /// Reads: products, orders, notifications, analytics, the page. Anonymous readers
    /// behind one address (an office, a mobile carrier's NAT) share a bucket, hence the
    /// generous default.
    pub reads: RateLimit,
    /// `GET /api/v1/search` (a full-text query is the dearest read).
    pub search: RateLimit,
    /// Opening a stock or order WebSocket.
    pub websocket_connects: RateLimit,
}

/// A token bucket: `per_second` tokens refill it, `burst` is its size.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    const fn of(per_second: u32, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            trusted_proxies: Vec::new(),
            buy_now: RateLimit::of(5, 10),
            checkout: RateLimit::of(2, 5),
            writes: RateLimit::of(10, 20),
            reads: RateLimit::of(100, 200),
            search: RateLimit::of(10, 20),
            websocket_connects: RateLimit::of(2, 10),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Loopback by default: exposing the engine is a deliberate choice.
    pub listen: SocketAddr,
    /// Largest request body. Every request of this API fits in a few hundred bytes; 16 KiB
    /// leaves room for long product descriptions and refuses anything abusive early.
    pub body_limit_bytes: usize,
    /// Units one Buy Now may ask for. Real buyers ask for a handful; the engine's own
    /// bound (10,000) only protects arithmetic.
    pub quantity_per_order_max: u32,
    /// Largest page of a product listing.
    pub page_size_max: u32,
    /// A WebSocket client that does not take a message within this is dropped.
    pub websocket_write_timeout_ms: u64,
    /// Open WebSockets at most; each costs a task and its buffers.
    pub websocket_connections_max: usize,
    /// Cart lines untouched this many days are dropped (a month of "saved for later").
    pub cart_retention_days: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit_bytes: 16 * 1024,
            quantity_per_order_max: 10,
            page_size_max: 100,
            websocket_write_timeout_ms: 5_000,
            websocket_connections_max: 50_000,
            cart_retention_days: 30,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret for bearer tokens. When unset, one is generated on first start and
    /// kept in `<data_dir>/jwt-secret` (mode 0600), so `serve` and `demo-token` agree
    /// without anyone choosing a weak default.
    pub jwt_secret: Option<SecretString>,
    /// The shop's identity provider (Keycloak, Auth0, Cognito...): its JWKS document. When
    /// set, its RS256/ES256 tokens are accepted besides the engine's own HS256 ones.
    pub jwks_url: Option<String>,
    /// The provider's `iss`; required with `jwks_url`.
    pub issuer: Option<String>,
    /// This API's `aud` at the provider; required with `jwks_url`.
    pub audience: Option<String>,
    /// Where the role is in the provider's claims, dotted (`realm_access.roles`): a string or
    /// a list of strings; admin, logistics, delivery or customer (the first of these found,
    /// in that order). A caller without one is a customer.
    pub role_claim: String,
    /// The algorithms the provider signs with. Never `none`, never an HMAC one: a public key
    /// must not become a shared secret.
    pub algorithms: Vec<String>,
    /// A token naming a key we do not have refreshes the JWKS, at most this often (a flood of
    /// made-up `kid`s must not become a flood of fetches).
    pub jwks_refresh_min_ms: u64,
    /// Keys are fetched again after this long anyway, so keys the provider rotated out stop
    /// being accepted.
    pub jwks_max_age_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwks_url: None,
            issuer: None,
            audience: None,
            role_claim: "role".into(),
            algorithms: vec!["RS256".into(), "ES256".into()],
            jwks_refresh_min_ms: 10_000,
            jwks_max_age_secs: 300,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// HMAC-SHA256 key shared with the payment provider for its webhook. When unset, one is
    /// generated into `<data_dir>/webhook-secret`.
    pub webhook_secret: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Where the embedded store (SQLite) and the generated secret live.
    pub data_dir: PathBuf,
    /// `postgres://user:password@host:port/database`. When set, PostgreSQL is the source
    /// of truth instead of the embedded store.
    pub database_url: Option<SecretString>,
    /// PostgreSQL connections: the committer's, plus reloads and order lookups. Group
    /// commit needs few; more only contend for the same rows.
    pub database_max_connections: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_max_connections: 8,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port`. When set, committed stock is mirrored there for other services.
    pub url: Option<SecretString>,
    /// Prepended to every key; lets several engines (or tests) share one Redis.
    pub key_prefix: String,
    /// Longest wait for one mirror write; the mirror retries, sales never wait for it.
    pub timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: String::new(),
            timeout_ms: 1_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port]`. When set, events are published to Kafka (topics
    /// `order-events`, `product-events`, `user-events`) and analytics reads them back as
    /// the `analytics` consumer group; otherwise analytics is fed in process.
    pub brokers: Option<String>,
    /// Prepended to topic and consumer group names; lets several engines share a cluster.
    pub prefix: String,
    /// Partitions per topic when the engine creates the topics.
    pub partitions: i32,
    /// How long an event may wait for the broker before the relay tries again.
    pub delivery_timeout_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: None,
            prefix: String::new(),
            partitions: 3,
            delivery_timeout_ms: 10_000,
        }
    }
}

/// Several nodes selling from one catalog (issue 15, in progress). Without `node_id`,
/// one process, as always.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Turns cluster mode on; needs `[store] database_url` (PostgreSQL holds the shard
    /// leases) and `[kafka] brokers` (the consumer group assigns the shards).
    pub node_id: Option<String>,
    /// The node-to-node channel.
    pub internal_listen: SocketAddr,
    /// What the other nodes dial; `internal_listen` when not set.
    pub advertise: Option<String>,
    /// How long the group waits for a silent node before its shards go to the others.
    pub session_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            internal_listen: SocketAddr::from(([127, 0, 0, 1], 7101)),
            advertise: None,
            session_timeout_ms: 6_000,
        }
    }
}

impl Settings {
    /// The shards group this node joins, if it is a cluster node (`check_cluster` made sure
    /// the brokers are there).
    pub fn membership_settings(&self) -> Option<cluster::MembershipSettings> {
        let node_id = self.cluster.node_id.clone()?;
        Some(cluster::MembershipSettings {
            brokers: self.kafka.brokers.clone()?,
            prefix: self.kafka.prefix.clone(),
            node_id,
            shard_count: self.shop.shard_count,
            session_timeout: Duration::from_millis(self.cluster.session_timeout_ms),
            // A hand-off drains each actor within the request timeout; give it a few.
            handoff_timeout: Duration::from_millis(self.cluster.session_timeout_ms),
        })
    }
}

impl ClusterConfig {
    /// What the other nodes dial: `advertise`, else the address `internal_listen` bound
    /// (`bound`: a port 0 in tests binds some free port, and that one is what they dial).
    pub fn advertised(&self, bound: SocketAddr) -> String {
        self.advertise.clone().unwrap_or_else(|| bound.to_string())
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitConfig {
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`. When set, the order workflow and the
    /// notification jobs run over RabbitMQ; otherwise in process.
    pub url: Option<SecretString>,
    /// Prepended to exchange and queue names.
    pub prefix: String,
    /// Messages one RabbitMQ worker holds unacknowledged: its concurrency. (Without
    /// RabbitMQ, jobs run in process: `[workflow] local_jobs_concurrency`.) 256, not 16:
    /// a message's work ends in a batched write, so the messages in flight are the batch.
    /// Issue 14, `FLASHCART_RABBITMQ__URL=... loadtests/cost.sh postgres 10 64`, one pair:
    /// with 16, 7% of the run's payment requests went out during it and the rest took 24 s
    /// more (engine 140 µs, machine 485 µs per order, that catch-up counted); with 256,
    /// 51%, 5 s, 133 and 401.
    pub prefetch: u16,
    /// Tries per message before the dead-letter queue.
    pub attempts: u32,
    /// First retry delay; each later one doubles.
    pub backoff_ms: u64,
}

impl Default for RabbitConfig {
    fn default() -> Self {
        Self {
            url: None,
            prefix: String::new(),
            prefetch: 256,
            attempts: 5,
            backoff_ms: 1_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowConfig {
    /// After delivery, when the review request goes out.
    pub review_delay_secs: u64,
    /// Partners logistics assigns paid orders to.
    pub delivery_partners: Vec<String>,
    /// How far back `GET /api/v1/analytics/trending` looks.
    pub trending_window_secs: u64,
    /// How often the recommendation counts that changed are saved to the store (a crash
    /// loses at most this much counting; a graceful stop saves the rest).
    pub save_recommendations_secs: u64,
    /// Jobs the in-process queue (no RabbitMQ) runs at once: every order's payment request,
    /// the confirmations. See [`WorkflowConfig::LOCAL_JOBS_CONCURRENCY`].
    pub local_jobs_concurrency: usize,
}

impl WorkflowConfig {
    /// Why a thousand, not RabbitMQ's prefetch (16), which set it before: a job's send is
    /// one record in a batched write, so the jobs in flight are the batch, and 16 kept the
    /// order workflow at 16 records per commit. Issue 14, `loadtests/cost.sh <store> 10 64`,
    /// the builds before and after, one pair per store: with 16, 13-14% of the run's payment
    /// requests went out during the run and the rest took 28-31 s more; the CPU per order
    /// with that catch-up counted was, on PostgreSQL, 57 µs in the engine and 146 on the
    /// machine (wrk's share out), embedded 90 and 95. With 1,024 every request went out
    /// during the run, and 39 and 82, 58 and 61. Buy Now's own figure in the run falls
    /// (21.1K to 15.4K orders/s on PostgreSQL, 24.4K to 19.1K embedded): the workflow's work
    /// now runs beside the orders instead of after them. Jobs waiting stay bounded by this
    /// (the rest waits in the outbox, on disk).
    pub const LOCAL_JOBS_CONCURRENCY: usize = 1_024;
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            review_delay_secs: 24 * 60 * 60,
            delivery_partners: vec![
                "partner-north".into(),
                "partner-south".into(),
                "partner-east".into(),
            ],
            trending_window_secs: 60 * 60,
            save_recommendations_secs: 10,
            local_jobs_concurrency: Self::LOCAL_JOBS_CONCURRENCY,
        }
    }
}

/// Marketing messages: sale campaigns (to every wisher of a product when its sale is
/// scheduled, and shortly before it starts) and abandoned-cart reminders.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignConfig {
    /// Messages a second this node sends at most, over every channel (the providers'
    /// contract).
    pub send_rate_per_second: u32,
    /// How long before a sale starts its reminder goes out.
    pub reminder_before_secs: u64,
    /// How long a cart with items stays unchanged before its one reminder (0: never).
    pub cart_abandoned_after_secs: u64,
    /// Wishers read and queued at a time.
    pub page_size: u32,
    /// Messages in flight at once (in process, and per RabbitMQ campaign worker).
    pub concurrency: u16,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        let defaults = workflow::campaigns::CampaignSettings::default();
        Self {
            send_rate_per_second: defaults.send_rate_per_second,
            reminder_before_secs: defaults.reminder_before.as_secs(),
            // A day: long enough that the customer has left, soon enough that they
            // still remember the cart.
            cart_abandoned_after_secs: 24 * 3600,
            page_size: defaults.page_size,
            concurrency: defaults.concurrency,
        }
    }
}

impl Settings {
    /// How long a cart stays unchanged before its reminder, unless reminders are off.
    pub fn cart_abandoned_after(&self) -> Option<Duration> {
        let secs = self.campaigns.cart_abandoned_after_secs;
        (secs > 0).then(|| Duration::from_secs(secs))
    }

    /// The workflow's settings: Kafka and RabbitMQ when configured.
    pub fn workflow_settings(&self) -> workflow::WorkflowSettings {
        use secrecy::ExposeSecret;
        let rabbit = &self.rabbitmq;
        workflow::WorkflowSettings {
            kafka: self
                .kafka
                .brokers
                .as_ref()
                .map(|brokers| workflow::kafka::KafkaSettings {
                    brokers: brokers.clone(),
                    prefix: self.kafka.prefix.clone(),
                    partitions: self.kafka.partitions,
                    delivery_timeout: Duration::from_millis(self.kafka.delivery_timeout_ms),
                }),
            rabbit: rabbit
                .url
                .as_ref()
                .map(|url| workflow::rabbit::RabbitSettings {
                    url: url.expose_secret().to_owned(),
                    prefix: rabbit.prefix.clone(),
                    prefetch: rabbit.prefetch,
                    attempts: rabbit.attempts,
                    backoff: Duration::from_millis(rabbit.backoff_ms),
                }),
            saga: workflow::saga::SagaSettings {
                review_delay: Duration::from_secs(self.workflow.review_delay_secs),
                delivery_partners: self.workflow.delivery_partners.clone(),
            },
            local_concurrency: self.workflow.local_jobs_concurrency,
            local_attempts: rabbit.attempts,
            local_backoff: Duration::from_millis(rabbit.backoff_ms),
            trending_window: Duration::from_secs(self.workflow.trending_window_secs),
            campaigns: workflow::campaigns::CampaignSettings {
                send_rate_per_second: self.campaigns.send_rate_per_second,
                reminder_before: Duration::from_secs(self.campaigns.reminder_before_secs),
                page_size: self.campaigns.page_size,
                concurrency: self.campaigns.concurrency,
                ..workflow::campaigns::CampaignSettings::default()
            },
            node: self
                .cluster
                .node_id
                .clone()
                .unwrap_or_else(|| "local".to_owned()),
            save_recommendations_every: Duration::from_secs(
                self.workflow.save_recommendations_secs.max(1),
            ),
        }
    }
}

/// What sellers are paid on delivery: their lines' price less the marketplace's
/// commission, in basis points (1,000 = 10%).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PayoutConfig {
    /// For every category not named in `categories`.
    pub commission_bps: u32,
    /// category -> commission in basis points (`[payouts.categories] mobiles = 500`).
    pub categories: std::collections::HashMap<String, u32>,
}

impl Default for PayoutConfig {
    fn default() -> Self {
        let rates = actors::CommissionRates::default();
        Self {
            commission_bps: rates.default_bps,
            categories: rates.by_category,
        }
    }
}

/// The actor layer's bounds, in config-file units. Defaults come from [`ShopSettings`].
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShopConfig {
    pub shard_count: u32,
    pub in_flight_per_product_max: u32,
    pub preload_on_start: bool,
    pub stock_feed_rate_per_second: u32,
    pub reservation_ttl_secs: u64,
    pub request_timeout_ms: u64,
    pub passivate_after_secs: u64,
    pub passivation_sweep_secs: u64,
    pub idempotency_retention_secs: u64,
    pub commit_batch_size_max: usize,
    /// Unset: the store's own (`GroupCommitSettings::POSTGRES_BATCH_DELAY` or
    /// `SQLITE_BATCH_DELAY`: they differ, and why is measured there).
    pub commit_batch_delay_us: Option<u64>,
    pub commit_queue_capacity: usize,
    pub commit_timeout_ms: u64,
    pub commit_abandon_after_ms: u64,
    pub wishlist_items_max: u32,
}

impl Default for ShopConfig {
    fn default() -> Self {
        let shop = ShopSettings::default();
        let commit = &shop.group_commit;
        Self {
            shard_count: shop.shard_count,
            in_flight_per_product_max: shop.in_flight_per_product_max,
            preload_on_start: shop.preload_on_start,
            stock_feed_rate_per_second: shop.stock_feed_rate_per_second,
            reservation_ttl_secs: shop.reservation_ttl.as_secs(),
            request_timeout_ms: shop.request_timeout.as_millis() as u64,
            passivate_after_secs: shop.passivate_after.as_secs(),
            passivation_sweep_secs: shop.passivation_sweep_every.as_secs(),
            idempotency_retention_secs: shop.idempotency_retention.as_secs(),
            commit_batch_size_max: commit.batch_size_max,
            commit_batch_delay_us: None,
            commit_queue_capacity: commit.queue_capacity,
            commit_timeout_ms: commit.commit_timeout.as_millis() as u64,
            commit_abandon_after_ms: commit.abandon_after.as_millis() as u64,
            wishlist_items_max: shop.wishlist_items_max,
        }
    }
}

impl Settings {
    /// The actor layer's settings: the `[shop]` section, the quantity bound of `[server]`,
    /// and the store's own commit wait unless `[shop]` names one.
    pub fn shop_settings(&self) -> ShopSettings {
        let store_batch_delay = match self.store.database_url {
            Some(_) => GroupCommitSettings::POSTGRES_BATCH_DELAY,
            None => GroupCommitSettings::SQLITE_BATCH_DELAY,
        };
        ShopSettings {
            commission: actors::CommissionRates {
                default_bps: self.payouts.commission_bps,
                by_category: self.payouts.categories.clone(),
            },
            ..self
                .shop
                .to_shop_settings(self.server.quantity_per_order_max, store_batch_delay)
        }
    }
}

impl ShopConfig {
    fn to_shop_settings(
        &self,
        quantity_per_order_max: u32,
        store_batch_delay: Duration,
    ) -> ShopSettings {
        ShopSettings {
            shard_count: self.shard_count,
            in_flight_per_product_max: self.in_flight_per_product_max,
            preload_on_start: self.preload_on_start,
            stock_feed_rate_per_second: self.stock_feed_rate_per_second,
            reservation_ttl: Duration::from_secs(self.reservation_ttl_secs),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            passivate_after: Duration::from_secs(self.passivate_after_secs),
            passivation_sweep_every: Duration::from_secs(self.passivation_sweep_secs.max(1)),
            idempotency_retention: Duration::from_secs(self.idempotency_retention_secs),
            recovery_retry: ShopSettings::default().recovery_retry,
            quantity_per_order_max,
            wishlist_items_max: self.wishlist_items_max,
            commission: ShopSettings::default().commission,
            group_commit: GroupCommitSettings {
                batch_size_max: self.commit_batch_size_max,
                batch_delay: self
                    .commit_batch_delay_us
                    .map_or(store_batch_delay, Duration::from_micros),
                queue_capacity: self.commit_queue_capacity,
                commit_timeout: Duration::from_millis(self.commit_timeout_ms),
                abandon_after: Duration::from_millis(self.commit_abandon_after_ms),
            },
        }
    }
}

/// Overrides given on the command line (the last layer).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub demo: bool,
}

impl Overrides {
    /// Only the data directory (the commands beside `serve`).
    pub fn data_dir(data_dir: Option<PathBuf>) -> Self {
        Self {
            data_dir,
            ..Self::default()
        }
    }
}

impl Settings {
    /// Defaults, then `config_file` if given, then the environment, then `overrides`.
    pub fn load(
        config_file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::new();
        if let Some(path) = config_file {
            figment = figment.merge(Toml::file_exact(path));
        }
        // FLASHCART_TOKEN is the ops CLI's (`flashcart cluster`), not a setting: a shell
        // that exported it still starts engines.
        figment = figment.merge(Env::prefixed("FLASHCART_").ignore(&["token"]).split("__"));
        if let Some(listen) = overrides.listen {
            figment = figment.merge(Serialized::default("server.listen", listen.to_string()));
        }
        if let Some(data_dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("store.data_dir", data_dir));
        }
        if overrides.demo {
            figment = figment.merge(Serialized::default("demo", true));
        }
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings
            .check()
            .map_err(|rule| Box::new(figment::Error::from(rule)))?;
        Ok(settings)
    }

    /// Bounds that must hold for the engine to run at all.
    fn check(&self) -> Result<(), String> {
        let shop = &self.shop;
        let rules = [
            (shop.shard_count > 0, "shop.shard_count must be at least 1"),
            (
                shop.in_flight_per_product_max > 0,
                "shop.in_flight_per_product_max must be at least 1",
            ),
            (
                shop.commit_batch_size_max > 0,
                "shop.commit_batch_size_max must be at least 1",
            ),
            (
                shop.commit_queue_capacity > 0,
                "shop.commit_queue_capacity must be at least 1",
            ),
            (
                shop.reservation_ttl_secs > 0,
                "shop.reservation_ttl_secs must be at least 1",
            ),
            (
                shop.wishlist_items_max > 0,
                "shop.wishlist_items_max must be at least 1",
            ),
            (
                self.server.quantity_per_order_max >= 1
                    && self.server.quantity_per_order_max <= engine::order::QUANTITY_MAX,
                "server.quantity_per_order_max must be between 1 and 10000",
            ),
            (
                !self.workflow.delivery_partners.is_empty(),
                "workflow.delivery_partners must name at least one partner",
            ),
            (
                self.workflow.local_jobs_concurrency >= 1,
                "workflow.local_jobs_concurrency must be at least 1",
            ),
            (
                self.campaigns.send_rate_per_second >= 1
                    && self.campaigns.page_size >= 1
                    && self.campaigns.concurrency >= 1,
                "campaigns.send_rate_per_second, page_size and concurrency must be at least 1",
            ),
            (
                self.payouts.commission_bps <= engine::payout::BPS_WHOLE
                    && self
                        .payouts
                        .categories
                        .values()
                        .all(|bps| *bps <= engine::payout::BPS_WHOLE),
                "payouts.commission_bps and payouts.categories must be at most 10000 (100%)",
            ),
            (
                self.rabbitmq.attempts >= 1,
                "rabbitmq.attempts must be at least 1",
            ),
            (
                self.kafka.partitions >= 1,
                "kafka.partitions must be at least 1",
            ),
            (
                self.server.page_size_max >= 1,
                "server.page_size_max must be at least 1",
            ),
            (
                self.rate_limits
                    .classes()
                    .iter()
                    .all(|(_, limit)| limit.per_second >= 1 && limit.burst >= 1),
                "every rate_limits class needs per_second and burst of at least 1",
            ),
        ];
        match rules.iter().find(|(holds, _)| !holds) {
            Some((_, rule)) => Err((*rule).to_owned()),
            None => {
                self.check_identity_provider()?;
                self.check_cluster()
            }
        }
    }

    /// An identity provider's tokens are only checked with an issuer and an audience, and
    /// only with public-key algorithms.
    fn check_identity_provider(&self) -> Result<(), String> {
        let auth = &self.auth;
        if auth.jwks_url.is_none() {
            return Ok(());
        }
        if auth.issuer.is_none() || auth.audience.is_none() {
            return Err("auth.jwks_url needs auth.issuer and auth.audience".into());
        }
        if auth.algorithms.is_empty() {
            return Err("auth.algorithms must name at least one algorithm".into());
        }
        crate::auth::public_key_algorithms(&auth.algorithms).map(|_| ())
    }

    /// A node id asks for cluster mode: say at once what it lacks.
    fn check_cluster(&self) -> Result<(), String> {
        let Some(node_id) = &self.cluster.node_id else {
            return Ok(());
        };
        if node_id.trim().is_empty() || node_id.len() > 64 {
            return Err("cluster.node_id must be 1 to 64 characters".into());
        }
        let postgres = self.store.database_url.as_ref().is_some_and(|url| {
            let url = url.expose_secret();
            url.starts_with("postgres://") || url.starts_with("postgresql://")
        });
        let missing: Vec<&str> = [
            (
                !postgres,
                "store.database_url (a PostgreSQL URL: it holds the shard leases)",
            ),
            (
                self.kafka.brokers.is_none(),
                "kafka.brokers (its consumer group assigns the shards)",
            ),
        ]
        .into_iter()
        .filter_map(|(missing, what)| missing.then_some(what))
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "cluster.node_id \"{node_id}\" turns cluster mode on, which needs {}",
                missing.join(" and ")
            ));
        }
        if self.cluster.session_timeout_ms < 1_000 {
            return Err("cluster.session_timeout_ms must be at least 1000".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings a config file holding `toml` gives.
    fn load_toml(toml: &str) -> Result<Settings, Box<figment::Error>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("flashcart.toml");
        std::fs::write(&file, toml).expect("write");
        Settings::load(Some(&file), &Overrides::default())
    }

    #[test]
    fn defaults_work_out_of_the_box() {
        let settings = Settings::load(None, &Overrides::default()).expect("defaults load");
        assert_eq!(settings.server.listen.port(), 8080);
        assert_eq!(settings.shop.reservation_ttl_secs, 600);
    }

    #[test]
    fn flags_win_and_bad_values_are_named() {
        let overrides = Overrides {
            listen: Some("127.0.0.1:9999".parse().expect("addr")),
            data_dir: Some(PathBuf::from("/tmp/x")),
            demo: true,
        };
        let settings = Settings::load(None, &overrides).expect("load");
        assert_eq!(settings.server.listen.port(), 9999);
        assert!(settings.demo);

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("flashcart.toml");
        std::fs::write(&file, "[shop]\nshard_count = 0\n").expect("write");
        let error = Settings::load(Some(&file), &Overrides::default()).expect_err("refused");
        assert!(error.to_string().contains("shard_count"), "{error}");

        std::fs::write(&file, "[shop]\nshard_cuont = 3\n").expect("write");
        let error = Settings::load(Some(&file), &Overrides::default()).expect_err("refused");
        assert!(error.to_string().contains("shard_cuont"), "{error}");
    }

    #[test]
    fn in_process_jobs_run_by_the_workflow_section_not_by_rabbitmqs_prefetch() {
        let concurrency = |toml: &str| {
            load_toml(toml)
                .expect("load")
                .workflow_settings()
                .local_concurrency
        };
        assert_eq!(concurrency(""), WorkflowConfig::LOCAL_JOBS_CONCURRENCY);
        assert_eq!(
            concurrency("[rabbitmq]\nprefetch = 4\n"),
            WorkflowConfig::LOCAL_JOBS_CONCURRENCY
        );
        assert_eq!(concurrency("[workflow]\nlocal_jobs_concurrency = 64\n"), 64);
        let error = load_toml("[workflow]\nlocal_jobs_concurrency = 0\n").expect_err("refused");
        assert!(
            error.to_string().contains("local_jobs_concurrency"),
            "{error}"
        );
    }

    #[test]
    fn the_store_picks_the_commit_wait_unless_the_shop_section_names_one() {
        let delay = |toml: &str| {
            let settings = load_toml(toml).expect("load");
            settings.shop_settings().group_commit.batch_delay
        };
        assert_eq!(delay(""), GroupCommitSettings::SQLITE_BATCH_DELAY);
        let postgres = "[store]\ndatabase_url = \"postgres://127.0.0.1/x\"\n";
        assert_eq!(delay(postgres), GroupCommitSettings::POSTGRES_BATCH_DELAY);
        assert_ne!(
            GroupCommitSettings::POSTGRES_BATCH_DELAY,
            GroupCommitSettings::SQLITE_BATCH_DELAY
        );
        let named = format!("{postgres}[shop]\ncommit_batch_delay_us = 250\n");
        assert_eq!(delay(&named), Duration::from_micros(250));
    }

    #[test]
    fn a_node_id_without_postgresql_or_kafka_is_refused_naming_what_is_missing() {
        let error = load_toml("[cluster]\nnode_id = \"n1\"\n").expect_err("refused");
        let error = error.to_string();
        assert!(
            error.contains("store.database_url") && error.contains("kafka.brokers"),
            "{error}"
        );
        let postgres = "[store]\ndatabase_url = \"postgres://127.0.0.1/x\"\n";
        let error = load_toml(&format!("{postgres}[cluster]\nnode_id = \"n1\"\n"))
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("kafka.brokers") && !error.contains("store.database_url"),
            "{error}"
        );
        let kafka = "[kafka]\nbrokers = \"127.0.0.1:9092\"\n";
        let cluster = "[cluster]\nnode_id = \"n1\"\ninternal_listen = \"127.0.0.1:7102\"\n";
        let settings =
            load_toml(&format!("{postgres}{kafka}{cluster}")).expect("a full node loads");
        assert_eq!(settings.cluster.node_id.as_deref(), Some("n1"));
        assert_eq!(
            settings
                .cluster
                .advertised(settings.cluster.internal_listen),
            "127.0.0.1:7102"
        );
        assert_eq!(settings.cluster.session_timeout_ms, 6_000);

        let defaults = Settings::load(None, &Overrides::default()).expect("defaults");
        assert_eq!(defaults.cluster.node_id, None, "one process unless asked");
    }
}
