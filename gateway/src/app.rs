//! One app builder for `main` and the tests, so tests run the production wiring.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actors::{Shop, ShopParts, ShopStores};
use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use persistence::{
    Carts, Database, NotificationsOnCommitter, OutboxOnCommitter, PageCache, PostgresSettings,
    RedisMirror, RedisSettings,
};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use workflow::jobs::RecordingSender;
use workflow::{Workflow, WorkflowStores};

use crate::auth::{JwtKeys, load_or_create_secret};
use crate::settings::Settings;

/// Handler state: what the routes call. axum clones it for every request, so it is one
/// `Arc` (a profile of Buy Now under load spent ~2% of the engine's CPU cloning and
/// dropping the eight fields one by one); fields are read through it (`ctx.shop`).
#[derive(Clone)]
pub struct ApiContext(Arc<ApiParts>);

impl std::ops::Deref for ApiContext {
    type Target = ApiParts;

    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

/// What [`ApiContext`] shares.
pub struct ApiParts {
    /// Every rule of the shop: buying, orders, catalog, cart, reviews.
    pub shop: Shop,
    pub keys: Arc<JwtKeys>,
    /// The shop's identity provider (`[auth] jwks_url`), if its tokens are accepted.
    pub identity_provider: Option<Arc<crate::auth::IdentityProvider>>,
    pub limits: Arc<Limits>,
    /// Shared with the payment provider, to check its webhook signatures.
    pub webhook_secret: Arc<[u8]>,
    /// Open WebSockets, bounded: each holds a task and buffers.
    pub websocket_slots: Arc<tokio::sync::Semaphore>,
    /// Sales per product and trending products, kept from the event stream.
    pub analytics: Arc<workflow::analytics::Analytics>,
    /// The catalog's search index, following catalog changes.
    pub search: Arc<search::SearchIndex>,
    /// Rendered product listings (cache-aside): in Redis when configured, else in memory.
    pub pages: PageCache,
    /// A cluster node's way to the owners of products it does not serve.
    pub forwarder: Option<Arc<crate::forward::Forwarder>>,
    /// A cluster node's screens of products served elsewhere.
    pub remote_feeds: Option<Arc<crate::remote_feeds::RemoteFeeds>>,
    /// A cluster node's view for the operators' API.
    pub cluster: Option<Arc<crate::routes::cluster::ClusterOps>>,
    /// Events waiting to be relayed (read for `flashcart_outbox_pending`).
    pub outbox: Arc<dyn persistence::Outbox>,
    /// Sale campaigns' progress, for the admins.
    pub campaigns: Arc<dyn persistence::CampaignStore>,
    /// Per-user and per-IP buckets (`[rate_limits]`), when enabled.
    pub rate_limiter: Option<Arc<crate::rate_limit::RateLimiter>>,
}

/// How long Redis keeps a rendered listing. Changes never wait for it (pages are keyed by
/// catalog generation); it only bounds the memory of pages nobody asks for any more.
const PAGE_CACHE_TTL: Duration = Duration::from_secs(300);

/// Request-shape bounds the gateway enforces itself.
#[derive(Debug)]
pub struct Limits {
    pub page_size_max: u32,
    /// The largest request body taken (also what a cluster node keeps of a request it may
    /// have to re-route: `forward::reroute_moved`).
    pub body_limit_bytes: usize,
    /// `/metrics` answers (`[telemetry] metrics`).
    pub metrics: bool,
    /// One log line per answered request (`[telemetry] access_log`).
    pub access_log: bool,
    /// Spans go to a collector (`[telemetry] otlp_endpoint`): requests' spans carry their
    /// method, route and status.
    pub spans_exported: bool,
    pub websocket_write_timeout: Duration,
    /// Demo mode: the page may hand out shopper tokens.
    pub demo: bool,
}

/// PostgreSQL when a database URL is configured, else the embedded SQLite database.
/// `timeout` bounds each statement on PostgreSQL.
pub async fn open_database(
    settings: &Settings,
    timeout: Duration,
) -> anyhow::Result<Arc<Database>> {
    let database = match &settings.store.database_url {
        Some(url) => {
            let postgres = PostgresSettings {
                url: url.expose_secret().to_owned(),
                max_connections: settings.store.database_max_connections,
                timeout,
                connection_lifetime: PostgresSettings::CONNECTION_LIFETIME,
            };
            Database::connect(&postgres)
                .await
                .context("connecting to PostgreSQL (store.database_url)")?
        }
        None => {
            let data_dir = &settings.store.data_dir;
            Database::open(data_dir)
                .await
                .with_context(|| format!("opening the embedded store in {}", data_dir.display()))?
        }
    };
    Ok(Arc::new(database))
}

/// The search index in the data directory; an in-memory one when the directory's index is
/// held by another engine (the catalog is the truth, so either is rebuilt from it).
fn open_search_index(dir: &std::path::Path) -> anyhow::Result<Arc<search::SearchIndex>> {
    match search::SearchIndex::open(dir) {
        Ok(index) => Ok(Arc::new(index)),
        Err(error) => {
            tracing::warn!(%error, dir = %dir.display(), "search index in memory instead");
            Ok(Arc::new(
                search::SearchIndex::in_memory().context("creating the search index")?,
            ))
        }
    }
}

/// Keeps the search index in step with the catalog: at start every product is "changed",
/// so the index is rebuilt from the catalog; later, each batch of changes is one commit.
async fn follow_catalog(shop: Shop, index: Arc<search::SearchIndex>) {
    loop {
        let changed = shop.next_catalog_changes().await;
        let products: Vec<Arc<engine::Product>> =
            changed.iter().filter_map(|id| shop.product(*id)).collect();
        let index = Arc::clone(&index);
        let indexed = tokio::task::spawn_blocking(move || {
            let refs: Vec<&engine::Product> = products.iter().map(Arc::as_ref).collect();
            index.update(&refs, &[])
        })
        .await;
        match indexed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "search index update failed"),
            Err(error) => tracing::warn!(%error, "search indexer stopped"),
        }
    }
}

pub struct App {
    listener: TcpListener,
    router: Router,
    shop: Shop,
    keys: Arc<JwtKeys>,
    websocket_slots: Arc<tokio::sync::Semaphore>,
    rate_limiter: Option<Arc<crate::rate_limit::RateLimiter>>,
    workflow: Workflow,
    /// The store, closed once everything above it has stopped.
    database: Arc<Database>,
    /// Tasks that follow the shop: the search indexer, the abandoned-cart scan.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// This node's membership of the cluster, if it is one.
    cluster: Option<cluster::ClusterNode>,
    /// Where the other nodes of the cluster send this node's requests.
    /// The node channel: its listener and what it serves (the API and the node-only routes).
    internal: Option<(TcpListener, Router)>,
}

impl App {
    /// Opens the store, starts the shop (rebuilding from the store), seeds demo data if
    /// asked, and binds the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let data_dir = &settings.store.data_dir;
        let shop_settings = settings.shop_settings();
        let database = open_database(settings, shop_settings.group_commit.commit_timeout).await?;
        let redis = settings.redis.url.as_ref().map(|url| RedisSettings {
            url: url.expose_secret().to_owned(),
            key_prefix: settings.redis.key_prefix.clone(),
            timeout: Duration::from_millis(settings.redis.timeout_ms),
        });
        let cart_retention = Duration::from_secs(settings.server.cart_retention_days * 86_400);
        let (mirror, carts, pages) = match redis {
            None => (
                None,
                Carts::in_database(database.clone(), cart_retention),
                PageCache::in_memory(),
            ),
            Some(redis) => {
                let carts =
                    Carts::in_redis(&redis, cart_retention).context("configuring Redis carts")?;
                let pages = PageCache::in_redis(&redis, PAGE_CACHE_TTL)
                    .context("configuring the Redis page cache")?;
                let (mirror, _writer) = RedisMirror::start(redis, database.clone())
                    .context("configuring the Redis mirror")?;
                (Some(mirror), carts, pages)
            }
        };
        let mut parts =
            ShopParts::new(shop_settings, ShopStores::of(&database, carts)).with_mirror(mirror);
        let membership = settings.membership_settings();
        if membership.is_some() {
            parts = parts.clustered();
        }
        let shop = Shop::start(parts)
            .await
            .context("starting the shop from the store")?;
        // The node channel: the other nodes forward requests for this node's products here.
        let (cluster, internal) = match membership {
            Some(membership) => {
                let internal_listen = settings.cluster.internal_listen;
                let internal = TcpListener::bind(internal_listen).await.with_context(|| {
                    format!("binding {internal_listen} (cluster.internal_listen)")
                })?;
                let advertise = settings.cluster.advertised(internal.local_addr()?);
                let node = cluster::ClusterNode::join(
                    shop.clone(),
                    database.clone(),
                    membership,
                    advertise,
                )
                .await
                .context("joining the cluster (kafka.brokers)")?;
                (Some(node), Some(internal))
            }
            None => (None, None),
        };
        // The workflow writes through the shop's group committer: one writer.
        let notifications = NotificationsOnCommitter::new(database.clone(), shop.committer());
        let sender = Arc::new(RecordingSender::new(Arc::new(notifications)));
        let outbox: Arc<dyn persistence::Outbox> =
            Arc::new(OutboxOnCommitter::new(database.clone(), shop.committer()));
        let campaigns: Arc<dyn persistence::CampaignStore> = database.clone();
        let workflow_stores = WorkflowStores {
            outbox: Arc::clone(&outbox),
            deliveries: database.clone(),
            campaigns: Arc::clone(&campaigns),
            wishlists: database.clone(),
            recommendations: Arc::new(persistence::RecommendationsOnCommitter::new(
                database.clone(),
                shop.committer(),
            )),
        };
        // The outbox is shared: on a cluster, the holder of shard 0 relays it.
        let relay_gate: workflow::relay::RelayGate = if cluster.is_some() {
            let shop = shop.clone();
            Arc::new(move || shop.serves_shard(0))
        } else {
            Arc::new(|| true)
        };
        let workflow = Workflow::start_gated(
            settings.workflow_settings(),
            workflow_stores,
            sender,
            relay_gate,
        )
        .await
        .context("starting the event relay and the order workflow (kafka, rabbitmq)")?;
        if settings.demo {
            crate::demo::seed(&shop)
                .await
                .context("seeding the demo catalog")?;
        }
        let search = open_search_index(&data_dir.join("search-index"))?;
        let mut background = vec![tokio::spawn(follow_catalog(
            shop.clone(),
            Arc::clone(&search),
        ))];
        if let Some(after) = settings.cart_abandoned_after() {
            background.push(shop.start_abandoned_cart_scan(after));
        }
        let secret = load_or_create_secret(
            settings.auth.jwt_secret.as_ref(),
            data_dir,
            crate::auth::JWT_SECRET_FILE,
        )?;
        let keys = Arc::new(JwtKeys::new(secret));
        let webhook_secret = load_or_create_secret(
            settings.payments.webhook_secret.as_ref(),
            data_dir,
            crate::auth::WEBHOOK_SECRET_FILE,
        )?;
        let webhook_secret: Arc<[u8]> = webhook_secret.expose_secret().as_bytes().into();
        let websocket_slots = Arc::new(tokio::sync::Semaphore::new(
            settings.server.websocket_connections_max,
        ));
        let forwarder = cluster.as_ref().map(|node| {
            let view = node.view();
            Arc::new(crate::forward::Forwarder::new(
                view.node_id().to_owned(),
                Arc::clone(view.routes()),
                settings.shop_settings().request_timeout,
            ))
        });
        // Orders spanning nodes hold their other lines over the same channel.
        if let Some(forwarder) = &forwarder {
            shop.connect_node_channel(Arc::new(crate::node_channel::HttpNodeChannel::new(
                Arc::clone(forwarder),
                shop.clone(),
            )));
        }
        let rate_limiter = settings
            .rate_limits
            .enabled
            .then(|| crate::rate_limit::RateLimiter::start(&settings.rate_limits));
        let ctx = ApiContext(Arc::new(ApiParts {
            shop: shop.clone(),
            keys: Arc::clone(&keys),
            identity_provider: crate::auth::IdentityProvider::from_settings(&settings.auth)?
                .map(Arc::new),
            limits: Arc::new(Limits {
                page_size_max: settings.server.page_size_max,
                body_limit_bytes: settings.server.body_limit_bytes,
                metrics: settings.telemetry.metrics,
                access_log: settings.telemetry.access_log,
                spans_exported: settings.telemetry.otlp_endpoint.is_some(),
                websocket_write_timeout: Duration::from_millis(
                    settings.server.websocket_write_timeout_ms,
                ),
                demo: settings.demo,
            }),
            websocket_slots: Arc::clone(&websocket_slots),
            webhook_secret,
            analytics: workflow.analytics(),
            search,
            pages,
            forwarder: forwarder.clone(),
            remote_feeds: cluster.as_ref().map(|node| {
                let view = node.view();
                crate::remote_feeds::RemoteFeeds::new(
                    view.node_id().to_owned(),
                    shop.clone(),
                    Arc::clone(view.routes()),
                )
            }),
            cluster: cluster
                .as_ref()
                .map(|node| crate::routes::cluster::ClusterOps::start(node.view(), shop.clone())),
            outbox,
            campaigns,
            rate_limiter: rate_limiter.clone(),
        }));
        let body_limit = DefaultBodyLimit::max(settings.server.body_limit_bytes);
        let internal = internal.map(|listener| {
            let router = crate::routes::internal_router()
                .layer(body_limit)
                .layer(axum::middleware::from_fn_with_state(
                    ctx.clone(),
                    crate::envelope::around_node_request,
                ))
                .with_state(ctx.clone());
            (listener, router)
        });
        let router = crate::routes::router().layer(body_limit);
        if settings.telemetry.metrics {
            // Installed before the first request makes its handles.
            crate::metrics::handle();
        }
        // A request this node took for one of its shards, whose shard left before it was
        // served, goes to the shard's new node.
        let router = if ctx.forwarder.is_some() {
            router.layer(axum::middleware::from_fn_with_state(
                ctx.clone(),
                crate::forward::reroute_moved,
            ))
        } else {
            router
        };
        let router = router
            .layer(axum::middleware::from_fn_with_state(
                ctx.clone(),
                crate::envelope::around_request,
            ))
            .with_state(ctx);
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("binding {}", settings.server.listen))?;
        Ok(Self {
            listener,
            router,
            shop,
            keys,
            websocket_slots,
            rate_limiter,
            workflow,
            database,
            background,
            cluster,
            internal,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.address().port()
    }

    pub fn shop(&self) -> &Shop {
        &self.shop
    }

    /// Free WebSocket slots (tests count open connections with it).
    pub fn websocket_slots(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.websocket_slots)
    }

    /// The rate limiter, when `[rate_limits]` is enabled (tests watch its buckets).
    pub fn rate_limiter(&self) -> Option<Arc<crate::rate_limit::RateLimiter>> {
        self.rate_limiter.clone()
    }

    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    pub fn keys(&self) -> Arc<JwtKeys> {
        Arc::clone(&self.keys)
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish, commits
    /// everything the actors decided, and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_internal, internal_stopped) = tokio::sync::watch::channel(false);
        let internal = self.internal.map(|(listener, router)| {
            let mut stopped = internal_stopped;
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                };
                if let Err(error) = axum::serve(listener, router)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(%error, "the node channel stopped");
                }
            })
        });
        // The peer's address keys the rate limits of anonymous callers.
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        for task in &self.background {
            task.abort();
        }
        // Hand the shards off first: the other nodes take them at once instead of after
        // the session timeout.
        if let Some(cluster) = self.cluster {
            cluster.leave().await;
        }
        // Requests forwarded here while the shards were handed off are answered by now.
        let _ = stop_internal.send(true);
        if let Some(internal) = internal {
            let _ = internal.await;
        }
        // While the committer still takes writes.
        self.workflow.save_recommendations().await;
        self.shop.shutdown().await;
        // Events left in the outbox go out on the next start.
        self.workflow.stop().await;
        // Last: the embedded store's data directory is free for the next engine only once
        // nothing of this one can write.
        self.database.close().await;
        Ok(())
    }
}
