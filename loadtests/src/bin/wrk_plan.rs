//! `flashcart-wrk`: what a `wrk` run needs before and after it, through the public API.
//!
//! - `prepare` creates a product with a live flash sale (stock and per-user limit far
//!   above what a run can buy) and mints shopper tokens; it writes a plan file the Lua
//!   script reads (`loadtests/wrk/buy_now.lua`): `product <id>`, `run <id>`, then one
//!   token per line.
//! - `count` prints, as JSON, the units of the product the engine counts as sold or
//!   reserved, and (with `--database-url`) the units of its orders in the store: every
//!   2xx answer of the run must be one new order, so both must equal wrk's 2xx count. It
//!   waits (up to 10 s) for the two to agree: the requests in flight when wrk stopped are
//!   counted by the engine at once and held by the store once their batch commits.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use gateway::auth::{JwtKeys, Role};
use loadtests::plan::{create_product, now_ms, rfc3339, token};
use secrecy::SecretString;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "flashcart-wrk", about = "Setup and counts around a wrk run")]
struct Cli {
    #[arg(long)]
    host: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Prepare {
        #[arg(long, env = "FLASHCART_AUTH__JWT_SECRET")]
        jwt_secret: String,
        /// Distinct shoppers; requests take turns over them.
        #[arg(long, default_value_t = 20_000)]
        shoppers: u64,
        #[arg(long, default_value_t = 100_000_000)]
        stock: u64,
        #[arg(long)]
        out: PathBuf,
    },
    Count {
        #[arg(long)]
        product: u64,
        /// PostgreSQL URL or sqlite://path of the engine's store.
        #[arg(long)]
        database_url: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Prepare {
            jwt_secret,
            shoppers,
            stock,
            out,
        } => prepare(&cli.host, jwt_secret, shoppers, stock, &out).await,
        Command::Count {
            product,
            database_url,
        } => count(&cli.host, product, database_url.as_deref()).await,
    }
}

async fn prepare(
    host: &str,
    secret: String,
    shoppers: u64,
    stock: u64,
    out: &PathBuf,
) -> anyhow::Result<()> {
    let keys = JwtKeys::new(SecretString::from(secret));
    let client = reqwest::Client::new();
    let admin = token(&keys, 1, Role::Admin);
    let product = create_product(&client, host, &admin, "wrk", "load-0", stock).await?;
    let now = now_ms();
    let sale = json!({
        "productId": product, "salePrice": 49_900, "originalPrice": 99_900,
        "startTime": rfc3339(now - 1_000), "endTime": rfc3339(now + 3_600_000),
        "stock": stock, "perUserLimit": 1_000,
    });
    let response = client
        .post(format!("{host}/api/v1/flash-sales"))
        .bearer_auth(&admin)
        .json(&sale)
        .send()
        .await
        .context("scheduling the sale")?;
    if response.status() != 201 {
        bail!("scheduling the sale: {}", response.status());
    }
    // Shopper ids unique to this run: earlier runs' purchases never count against limits.
    let mut plan = format!("product {product}\nrun w{now}\n");
    for n in 0..shoppers {
        plan.push_str(&token(&keys, now + n, Role::Customer));
        plan.push('\n');
    }
    std::fs::write(out, plan).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// How long `count` waits for the requests still in flight when wrk stopped: the engine
/// counts a reservation at once and the store holds it after its batch commits.
const SETTLE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

async fn count(host: &str, product: u64, database_url: Option<&str>) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + SETTLE_WITHIN;
    loop {
        let inventory: Value = reqwest::get(format!("{host}/api/v1/inventory/{product}"))
            .await?
            .json()
            .await
            .context("reading the inventory")?;
        let engine_units =
            inventory["sold"].as_u64().unwrap_or(0) + inventory["reserved"].as_u64().unwrap_or(0);
        let store_units = match database_url {
            None => None,
            Some(url) => Some(loadtests::verify::store_units(url, vec![product]).await?),
        };
        let settled = store_units.is_none_or(|units| units == engine_units);
        if settled || std::time::Instant::now() >= deadline {
            println!(
                "{}",
                json!({ "engine_units": engine_units, "store_units": store_units })
            );
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
