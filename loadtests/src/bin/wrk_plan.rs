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
use loadtests::plan::{create_product, create_products, now_ms, schedule_sale, token};
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
        /// Also create this many regular products and spread the orders over them instead
        /// of the hot product's sale (`spread <id>` lines of the plan).
        #[arg(long, default_value_t = 0)]
        spread: u64,
        #[arg(long)]
        out: PathBuf,
    },
    Count {
        /// The product to count, or, with --plan, the plan's products.
        #[arg(long, required_unless_present = "plan")]
        product: Option<u64>,
        /// A plan file: counts its spread products when it has some, else its hot product.
        #[arg(long)]
        plan: Option<PathBuf>,
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
            spread,
            out,
        } => prepare(&cli.host, jwt_secret, shoppers, stock, spread, &out).await,
        Command::Count {
            product,
            plan,
            database_url,
        } => {
            let products = match (product, plan) {
                (_, Some(plan)) => plan_products(&plan)?,
                (Some(product), None) => vec![product],
                (None, None) => bail!("--product or --plan"),
            };
            count(&cli.host, products, database_url.as_deref()).await
        }
    }
}

async fn prepare(
    host: &str,
    secret: String,
    shoppers: u64,
    stock: u64,
    spread: u64,
    out: &PathBuf,
) -> anyhow::Result<()> {
    let keys = JwtKeys::new(SecretString::from(secret));
    let client = reqwest::Client::new();
    let admin = token(&keys, 1, Role::Admin);
    let product = create_product(&client, host, &admin, "wrk", "load-0", stock).await?;
    schedule_sale(&client, host, &admin, product, stock, 1_000).await?;
    let now = now_ms();
    // Shopper ids unique to this run: earlier runs' purchases never count against limits.
    let mut plan = format!("product {product}\nrun w{now}\n");
    let categories = ["load-spread".to_owned()];
    let spread = usize::try_from(spread).context("--spread")?;
    for id in create_products(&client, host, &admin, spread, &categories, stock).await? {
        plan.push_str(&format!("spread {id}\n"));
    }
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

async fn count(host: &str, products: Vec<u64>, database_url: Option<&str>) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + SETTLE_WITHIN;
    loop {
        let engine_units = engine_units(host, &products).await?;
        let store_units = match database_url {
            None => None,
            Some(url) => Some(loadtests::verify::store_units(url, products.clone()).await?),
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

/// Units sold or reserved over `products`, as the engine tells them (32 reads at a time).
async fn engine_units(host: &str, products: &[u64]) -> anyhow::Result<u64> {
    let client = reqwest::Client::new();
    let mut total = 0;
    for chunk in products.chunks(32) {
        let mut reads = tokio::task::JoinSet::new();
        for product in chunk {
            let url = format!("{host}/api/v1/inventory/{product}");
            let client = client.clone();
            reads.spawn(async move {
                let inventory: Value = client.get(url).send().await?.json().await?;
                anyhow::Ok(
                    inventory["sold"].as_u64().unwrap_or(0)
                        + inventory["reserved"].as_u64().unwrap_or(0),
                )
            });
        }
        while let Some(units) = reads.join_next().await {
            total += units
                .context("an inventory read")?
                .context("reading the inventory")?;
        }
    }
    Ok(total)
}

/// `count`'s products in a plan file: the spread ones if any, else the hot one.
fn plan_products(plan: &PathBuf) -> anyhow::Result<Vec<u64>> {
    let text =
        std::fs::read_to_string(plan).with_context(|| format!("reading {}", plan.display()))?;
    let ids = |prefix: &str| -> Vec<u64> {
        text.lines()
            .filter_map(|line| line.strip_prefix(prefix)?.parse().ok())
            .collect()
    };
    let spread = ids("spread ");
    Ok(if spread.is_empty() {
        ids("product ")
    } else {
        spread
    })
}
