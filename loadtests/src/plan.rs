//! What a run works on: products, a sale, shoppers with tokens, all created through the
//! public API before the load starts, and shared by every goose user.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use gateway::auth::{Claims, JwtKeys, Role};
use serde_json::{Value, json};

use crate::stats::Stats;

pub struct Plan {
    pub hot_product: u64,
    pub spread_products: Vec<u64>,
    /// Share of Buy Nows that go to the hot product (the rest spread evenly).
    pub hot_share: f64,
    pub quantity: u32,
    pub sale_stock: u64,
    pub categories: Vec<String>,
    /// Whether a shed shopper waits out the answer's Retry-After before pressing again,
    /// as the shop's app does, or retries at once (an impatient or hostile client).
    pub honor_retry_after: bool,
    tokens: Vec<String>,
    /// Tokens for cart shoppers, one per goose user: a cart belongs to one user, and a
    /// user checks out one cart at a time.
    cart_tokens: Vec<String>,
    next_shopper: AtomicU64,
    next_key: AtomicU64,
    run_id: String,
    pub stats: Stats,
}

static PLAN: OnceLock<Plan> = OnceLock::new();

/// The run's plan; set once before goose starts.
pub fn plan() -> &'static Plan {
    PLAN.get().expect("the plan is set before the load starts")
}

pub fn install(plan: Plan) {
    if PLAN.set(plan).is_err() {
        panic!("the plan is installed once");
    }
}

pub struct PlanOptions {
    pub host: String,
    pub keys: JwtKeys,
    pub products: usize,
    pub hot_share: f64,
    pub stock_per_product: u64,
    pub sale_stock: u64,
    pub per_user_limit: u32,
    pub shoppers: usize,
    /// Goose users: each gets a cart shopper of its own.
    pub users: usize,
    pub quantity: u32,
    pub honor_retry_after: bool,
}

impl Plan {
    pub fn all_products(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(self.hot_product).chain(self.spread_products.iter().copied())
    }

    /// The next shopper: shoppers take turns, so each stays under the sale limit for as
    /// long as possible.
    pub fn next_shopper(&self) -> usize {
        let turn = self.next_shopper.fetch_add(1, Ordering::Relaxed);
        (turn % self.tokens.len() as u64) as usize
    }

    pub fn token(&self, shopper: usize) -> &str {
        &self.tokens[shopper]
    }

    /// The cart shopper of goose user `user` (users past the minted ones share, which only
    /// makes some of their checkouts answer 409 `checkout_in_progress`).
    pub fn cart_token(&self, user: usize) -> &str {
        &self.cart_tokens[user % self.cart_tokens.len()]
    }

    pub fn next_idempotency_key(&self) -> String {
        let n = self.next_key.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.run_id)
    }

    pub fn pick_product(&self, random: u64) -> u64 {
        let unit = (random % 1_000_000) as f64 / 1_000_000.0;
        if self.spread_products.is_empty() || unit < self.hot_share {
            self.hot_product
        } else {
            self.spread_products[(random / 1_000_000) as usize % self.spread_products.len()]
        }
    }

    /// Creates the products and the sale through the API and mints the shoppers' tokens.
    pub async fn create(options: PlanOptions) -> anyhow::Result<Plan> {
        let client = reqwest::Client::new();
        let now_ms = now_ms();
        let admin = token(&options.keys, 1, Role::Admin);
        let categories: Vec<String> = (0..8).map(|n| format!("load-{n}")).collect();
        let hot_product = create_product(
            &client,
            &options.host,
            &admin,
            "hot",
            &categories[0],
            options.stock_per_product.max(options.sale_stock),
        )
        .await?;
        let spread_products = create_products(
            &client,
            &options.host,
            &admin,
            options.products,
            &categories,
            options.stock_per_product,
        )
        .await?;
        schedule_sale(
            &client,
            &options.host,
            &admin,
            hot_product,
            options.sale_stock,
            options.per_user_limit,
        )
        .await?;
        // Shopper ids unique to this run, so earlier runs' purchases never count against
        // this run's limits.
        let first_shopper = now_ms;
        let tokens = (0..options.shoppers as u64)
            .map(|n| token(&options.keys, first_shopper + n, Role::Customer))
            .collect();
        let first_cart_shopper = first_shopper + options.shoppers as u64;
        let cart_tokens = (0..options.users.max(1) as u64)
            .map(|n| token(&options.keys, first_cart_shopper + n, Role::Customer))
            .collect();
        Ok(Plan {
            hot_product,
            spread_products,
            hot_share: options.hot_share,
            quantity: options.quantity,
            sale_stock: options.sale_stock,
            categories,
            honor_retry_after: options.honor_retry_after,
            tokens,
            cart_tokens,
            next_shopper: AtomicU64::new(0),
            next_key: AtomicU64::new(0),
            run_id: format!("load-{now_ms}"),
            stats: Stats::default(),
        })
    }
}

/// `count` regular products ("spread <n>"), their categories taking turns over
/// `categories`, created 32 at a time; their ids in ascending order.
pub async fn create_products(
    client: &reqwest::Client,
    host: &str,
    admin: &str,
    count: usize,
    categories: &[String],
    stock: u64,
) -> anyhow::Result<Vec<u64>> {
    anyhow::ensure!(!categories.is_empty(), "products need a category");
    let mut ids = Vec::with_capacity(count);
    let mut creations = tokio::task::JoinSet::new();
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    for n in 0..count {
        let (client, host, admin) = (client.clone(), host.to_owned(), admin.to_owned());
        let category = categories[n % categories.len()].clone();
        let in_flight = std::sync::Arc::clone(&in_flight);
        creations.spawn(async move {
            let _slot = in_flight.acquire_owned().await?;
            create_product(
                &client,
                &host,
                &admin,
                &format!("spread {n}"),
                &category,
                stock,
            )
            .await
        });
    }
    while let Some(created) = creations.join_next().await {
        ids.push(created??);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// A flash sale of `stock` units on `product`, live from a second ago for an hour.
pub async fn schedule_sale(
    client: &reqwest::Client,
    host: &str,
    admin: &str,
    product: u64,
    stock: u64,
    per_user_limit: u32,
) -> anyhow::Result<()> {
    let now_ms = now_ms();
    let sale = json!({
        "productId": product, "salePrice": 49_900, "originalPrice": 99_900,
        "startTime": rfc3339(now_ms - 1_000), "endTime": rfc3339(now_ms + 3_600_000),
        "stock": stock, "perUserLimit": per_user_limit,
    });
    let response = client
        .post(format!("{host}/api/v1/flash-sales"))
        .bearer_auth(admin)
        .json(&sale)
        .send()
        .await
        .context("scheduling the sale")?;
    if response.status() != 201 {
        bail!(
            "scheduling the sale: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn create_product(
    client: &reqwest::Client,
    host: &str,
    admin: &str,
    title: &str,
    category: &str,
    stock: u64,
) -> anyhow::Result<u64> {
    let body = json!({
        "title": format!("Load {title}"), "brand": "Load", "category": category,
        "price": 99_900, "stock": stock, "popularity": 1,
    });
    for attempt in 0..5u64 {
        let response = client
            .post(format!("{host}/api/v1/products"))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await
            .context("creating a product")?;
        if response.status() == 201 {
            let created: Value = response.json().await?;
            return created["id"].as_u64().context("the product has an id");
        }
        if response.status() != 503 {
            bail!(
                "creating a product: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
    }
    bail!("creating a product: still unavailable after retries")
}

pub fn token(keys: &JwtKeys, user: u64, role: Role) -> String {
    keys.encode(&Claims {
        sub: user.to_string(),
        role,
        exp: now_ms() / 1_000 + 24 * 3_600,
    })
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|moment| {
            moment
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
