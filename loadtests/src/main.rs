//! `flashcart-load`: the goose harness. It creates its own products, sale and shoppers
//! through the API, runs a scenario bounded in time, verifies that clients, engine and
//! store agree, and prints throughput, latency percentiles and its own CPU use.
//!
//! ```text
//! flashcart-load --host http://127.0.0.1:8080 --data-dir data --scenario flash-sale \
//!     --users 64 --run-time 30s [--products 10000 --hot-share 0] [--verify-database-url URL]
//! ```
//! Every goose option (`--users`, `--run-time`, `--report-file`, ...) is accepted as is.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use gateway::auth::JwtKeys;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use secrecy::SecretString;
use serde_json::json;

use loadtests::plan::{self, Plan, PlanOptions};
use loadtests::{scenarios, stats, verify};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScenarioName {
    /// Buy Now only: one hot product and, with --products, a spread of others.
    FlashSale,
    /// Listings and product pages.
    Browse,
    /// Browse, Buy Now and order status in a shop's proportions.
    Mixed,
    /// WebSocket stock screens on the hot product, alongside flash-sale buyers
    /// (--watcher-share of the users).
    Watchers,
}

#[derive(Parser)]
#[command(
    name = "flashcart-load",
    about = "Load-test harness for the flashcart engine"
)]
struct Cli {
    #[arg(long, value_enum, default_value = "flash-sale")]
    scenario: ScenarioName,
    /// The engine's token secret (else read from --data-dir/jwt-secret).
    #[arg(long, env = "FLASHCART_AUTH__JWT_SECRET")]
    jwt_secret: Option<String>,
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Products besides the hot one, to spread Buy Now over.
    #[arg(long, default_value_t = 0)]
    products: usize,
    /// Share of Buy Nows for the hot product (0 to 1).
    #[arg(long, default_value_t = 1.0)]
    hot_share: f64,
    #[arg(long, default_value_t = 1_000_000)]
    stock_per_product: u64,
    /// Units in the hot product's flash sale.
    #[arg(long, default_value_t = 1_000_000)]
    sale_stock: u64,
    #[arg(long, default_value_t = 1_000)]
    per_user_limit: u32,
    /// Distinct shoppers (tokens) the virtual users take turns with.
    #[arg(long, default_value_t = 20_000)]
    shoppers: usize,
    #[arg(long, default_value_t = 1)]
    quantity: u32,
    /// PostgreSQL URL or sqlite://path of the engine's store, to count stored orders.
    #[arg(long)]
    verify_database_url: Option<String>,
    /// With --scenario watchers: the share of users that are screens (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    watcher_share: f64,
    /// Shed shoppers press again at once instead of waiting out the answer's Retry-After
    /// (the worst case: clients that ignore the engine's back-off).
    #[arg(long)]
    ignore_retry_after: bool,
    /// Skip the end-of-run verification (for the echo ceiling, which keeps nothing).
    #[arg(long)]
    no_verify: bool,
    /// Also write the figures as JSON here (compare.sh reads it).
    #[arg(long)]
    summary_json: Option<PathBuf>,
    #[command(flatten)]
    goose: GooseConfiguration,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let passed = runtime.block_on(run(cli))?;
    if !passed {
        std::process::exit(2);
    }
    Ok(())
}

async fn run(mut cli: Cli) -> anyhow::Result<bool> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&cli.hot_share),
        "--hot-share must be between 0 and 1"
    );
    anyhow::ensure!(
        cli.shoppers > 0 && cli.quantity > 0,
        "--shoppers and --quantity must be positive"
    );
    let host = cli
        .goose
        .host
        .clone()
        .context("--host is required, e.g. --host http://127.0.0.1:8080")?;
    let secret = match &cli.jwt_secret {
        Some(secret) => secret.clone(),
        None => std::fs::read_to_string(cli.data_dir.join("jwt-secret"))
            .with_context(|| {
                format!(
                    "reading {}/jwt-secret (or pass --jwt-secret)",
                    cli.data_dir.display()
                )
            })?
            .trim()
            .to_owned(),
    };
    let keys = JwtKeys::new(SecretString::from(secret));

    println!(
        "setting up: {} spread products, sale stock {}",
        cli.products, cli.sale_stock
    );
    let plan = Plan::create(PlanOptions {
        host: host.clone(),
        keys,
        products: cli.products,
        hot_share: cli.hot_share,
        stock_per_product: cli.stock_per_product,
        sale_stock: cli.sale_stock,
        per_user_limit: cli.per_user_limit,
        shoppers: cli.shoppers,
        users: cli.goose.users.unwrap_or(1),
        quantity: cli.quantity,
        honor_retry_after: !cli.ignore_retry_after,
    })
    .await?;
    plan::install(plan);

    if cli.goose.report_file.is_empty() {
        std::fs::create_dir_all("target/loadtest").context("creating target/loadtest")?;
        cli.goose.report_file = vec![
            "target/loadtest/report.html".into(),
            "target/loadtest/report.json".into(),
        ];
    }
    let scenarios = match cli.scenario {
        ScenarioName::FlashSale => vec![scenarios::flash_sale()?],
        ScenarioName::Browse => vec![scenarios::browse()?],
        ScenarioName::Mixed => vec![scenarios::mixed()?],
        ScenarioName::Watchers => {
            anyhow::ensure!(
                (0.0..1.0).contains(&cli.watcher_share),
                "--watcher-share must be in [0, 1)"
            );
            let watchers = (cli.watcher_share * 100.0).round().max(1.0) as usize;
            vec![
                scenarios::flash_sale()?.set_weight(100 - watchers)?,
                scenarios::watchers()?.set_weight(watchers)?,
            ]
        }
    };
    let mut attack = GooseAttack::initialize_with_config(cli.goose)?;
    for scenario in scenarios {
        attack = attack.register_scenario(scenario);
    }
    let attack = attack
        .set_default(GooseDefault::Users, 64usize)?
        .set_default(GooseDefault::IncreaseRate, "64")?
        .set_default(GooseDefault::RunTime, 30usize)?
        .set_default(GooseDefault::NoResetMetrics, true)?;

    let cpu_before = stats::own_cpu_seconds();
    let started = Instant::now();
    let metrics = attack.execute().await?;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = stats::own_cpu_seconds() - cpu_before;

    let plan = plan::plan();
    let stats = &plan.stats;
    let placed = stats.placed.load(Ordering::Relaxed);
    let [p50, p90, p99, p999] = stats.percentiles_ms();
    let all_requests: usize = metrics
        .requests
        .values()
        .map(|aggregate| aggregate.success_count + aggregate.fail_count)
        .sum();
    println!();
    println!(
        "buy-now: {placed} placed, {} sold out, {} shed (429/503), {} other; {:.0} orders/s over {elapsed:.1} s",
        stats.sold_out.load(Ordering::Relaxed),
        stats.shed.load(Ordering::Relaxed),
        stats.other.load(Ordering::Relaxed),
        placed as f64 / elapsed
    );
    println!(
        "buy-now latency of placed orders, ms: p50 {p50:.2} | p90 {p90:.2} | p99 {p99:.2} | p99.9 {p999:.2}"
    );
    let checkouts = stats.checkouts_placed.load(Ordering::Relaxed);
    if checkouts > 0 {
        println!(
            "checkout: {checkouts} cart orders placed ({} units)",
            stats.checkout_units.load(Ordering::Relaxed)
        );
    }
    let watch_messages = stats.watch_messages.load(Ordering::Relaxed);
    if watch_messages > 0 {
        println!(
            "watchers: {watch_messages} stock messages received ({:.0}/s)",
            watch_messages as f64 / elapsed
        );
    }
    println!(
        "all requests: {all_requests} ({:.0}/s); generator CPU {cpu:.1} s = {:.0}% of one core",
        all_requests as f64 / elapsed,
        100.0 * cpu / elapsed
    );
    let verified = if cli.no_verify {
        println!("VERIFY skipped (--no-verify)");
        true
    } else {
        let verdict = verify::verify(&host, plan, cli.verify_database_url.as_deref()).await?;
        println!("{}", verdict.line());
        verdict.holds()
    };

    if let Some(path) = &cli.summary_json {
        let summary = json!({
            "orders_per_sec": placed as f64 / elapsed,
            "buy_now_requests": stats.requests(),
            "requests_per_sec": all_requests as f64 / elapsed,
            "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "p999_ms": p999,
            "placed": placed,
            "shed": stats.shed.load(Ordering::Relaxed),
            "sold_out": stats.sold_out.load(Ordering::Relaxed),
            "generator_cpu_percent": 100.0 * cpu / elapsed,
            "verified": verified,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(verified)
}
