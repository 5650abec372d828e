//! `flashcart`: the engine's server binary. Thin: parse arguments, call the library.

use std::path::PathBuf;

/// mimalloc instead of glibc malloc: a profile of Buy Now under load spent ~15% of the
/// engine's CPU in glibc's allocator (chunk consolidation, arena locking between worker
/// threads); mimalloc's per-thread free lists remove most of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gateway::App;
use gateway::auth::{Claims, JwtKeys, Role, load_or_create_secret};
use gateway::settings::{Overrides, Settings};

#[derive(Parser)]
#[command(
    name = "flashcart",
    version,
    about = "An actor-based, in-memory commerce engine that survives a flash sale"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine.
    Serve {
        /// TOML configuration file (optional; env vars FLASHCART_SECTION__KEY and flags override it).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Directory of the embedded store and the generated token secret.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Seed a demo catalog with a flash sale starting now (if the store is empty).
        #[arg(long)]
        demo: bool,
    },
    /// Load a catalog file (one product per line, the JSON of POST /api/v1/products with
    /// its id) into the store, thousands per transaction. Run it while the engine is
    /// stopped: the engine reads its catalog from the store when it starts.
    ImportProducts {
        /// The file, or - for standard input.
        file: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Operate a cluster through any of its nodes (admin token).
    Cluster {
        /// Any node's address.
        #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
        server: String,
        /// An admin token (`flashcart demo-token --role admin`).
        #[arg(long, global = true, env = "FLASHCART_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The API's JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Read the configuration as `serve` would (file, FLASHCART_* env vars), refuse what it
    /// does not know, and print what the engine would listen on and run against, as JSON.
    /// Deployment manifests are checked with it.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a bearer token for trying the API (its last line is the token).
    DemoToken {
        #[arg(long)]
        user: u64,
        /// customer, admin, logistics, delivery or seller.
        #[arg(long, default_value = "customer")]
        role: Role,
        /// Lifetime of the token in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Every node (alive, shards, in flight, orders a second), the group, recent moves.
    Status,
    /// The shard, owner node and epoch of a product.
    Where {
        #[arg(long)]
        product: u64,
    },
    /// A product's live actor, asked of its owner.
    Inspect {
        #[arg(long)]
        product: u64,
    },
    /// Hand every shard of a node to the others; it keeps answering by forwarding.
    Drain {
        #[arg(long)]
        node: String,
        /// Return once the other nodes hold every one of its shards.
        #[arg(long)]
        wait: bool,
    },
    /// Move one shard to a node (its holder hands it off first).
    Move {
        #[arg(long)]
        shard: u32,
        #[arg(long)]
        to: String,
    },
    /// Flash sales.
    Sales {
        #[command(subcommand)]
        command: SalesCommand,
    },
    /// Event topics.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
}

#[derive(Subcommand)]
enum SalesCommand {
    /// Sales scheduled or live.
    List,
    /// Schedule a sale (the admin API's POST /flash-sales).
    Create {
        #[arg(long)]
        product: u64,
        /// Minor units.
        #[arg(long)]
        sale_price: u64,
        /// Minor units.
        #[arg(long)]
        original_price: u64,
        /// RFC 3339.
        #[arg(long)]
        start: String,
        /// RFC 3339.
        #[arg(long)]
        end: Option<String>,
        #[arg(long)]
        stock: u64,
        #[arg(long, default_value_t = 1)]
        per_user_limit: u32,
    },
    /// Move a sale that has not started (PATCH /flash-sales/{id}).
    Move {
        #[arg(long)]
        sale: u64,
        /// RFC 3339.
        #[arg(long)]
        start: String,
        /// RFC 3339; without it the sale runs until sold out.
        #[arg(long)]
        end: Option<String>,
    },
    /// Cancel a scheduled or live sale (DELETE /flash-sales/{id}).
    Cancel {
        #[arg(long)]
        sale: u64,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print a topic's events as they arrive (key, then the event).
    Tail {
        /// `order-events`, `product-events` or `user-events`.
        #[arg(long)]
        topic: String,
        #[arg(long)]
        from_beginning: bool,
        #[arg(
            long,
            env = "FLASHCART_KAFKA__BROKERS",
            default_value = "127.0.0.1:9092"
        )]
        brokers: String,
        /// The engine's `[kafka] prefix`.
        #[arg(long, env = "FLASHCART_KAFKA__PREFIX", default_value = "")]
        prefix: String,
        /// Stop after this many events.
        #[arg(long)]
        max: Option<usize>,
        /// Stop after this many seconds without an event.
        #[arg(long)]
        idle_secs: Option<u64>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let operator = matches!(cli.command, Command::Cluster { .. });
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // An operator's command fails with one line, for scripts and people alike.
        Err(error) if operator => {
            eprintln!("flashcart cluster: {error:#}");
            std::process::ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("Error: {error:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            config,
            listen,
            data_dir,
            demo,
        } => {
            let overrides = Overrides {
                listen,
                data_dir,
                demo,
            };
            let settings = load_settings(config, overrides)?;
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            runtime()?.block_on(async {
                let _telemetry =
                    gateway::telemetry::init_with(&settings.telemetry, std::io::stdout, ansi)?;
                serve(settings).await
            })
        }
        Command::ImportProducts {
            file,
            config,
            data_dir,
        } => {
            let settings = load_settings(config, Overrides::data_dir(data_dir))?;
            runtime()?.block_on(import_products(settings, file))
        }
        Command::CheckConfig { config } => {
            let settings = load_settings(config, Overrides::default())?;
            let summary = serde_json::json!({
                "listen": settings.server.listen.to_string(),
                "internalListen": settings.cluster.internal_listen.to_string(),
                "clustered": settings.cluster.node_id.is_some(),
                "store": if settings.store.database_url.is_some() { "postgres" } else { "embedded" },
                "dataDir": settings.store.data_dir,
                "redis": settings.redis.url.is_some(),
                "kafka": settings.kafka.brokers.is_some(),
                "rabbitmq": settings.rabbitmq.url.is_some(),
                "rateLimits": settings.rate_limits.enabled,
                "metrics": settings.telemetry.metrics,
            });
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::DemoToken {
            user,
            role,
            ttl_secs,
            config,
            data_dir,
        } => {
            let settings = load_settings(config, Overrides::data_dir(data_dir))?;
            let token = token(&settings, user, role, ttl_secs)?;
            println!("{token}");
            Ok(())
        }
        Command::Cluster {
            server,
            token,
            json,
            command,
        } => runtime()?.block_on(cluster(server, token, json, command)),
    }
}

async fn cluster(
    server: String,
    token: Option<String>,
    json: bool,
    command: ClusterCommand,
) -> anyhow::Result<()> {
    use gateway::ops_cli::{self, OpsClient};
    let client = || OpsClient::new(&server, token.clone());
    let (value, table): (serde_json::Value, fn(&serde_json::Value) -> String) = match command {
        ClusterCommand::Status => (client()?.status().await?, ops_cli::status_table),
        ClusterCommand::Where { product } => {
            (client()?.where_is(product).await?, ops_cli::fields_table)
        }
        ClusterCommand::Inspect { product } => {
            (client()?.inspect(product).await?, ops_cli::fields_table)
        }
        ClusterCommand::Drain { node, wait } => {
            (client()?.drain(&node, wait).await?, ops_cli::fields_table)
        }
        ClusterCommand::Move { shard, to } => (
            client()?.move_shard(shard, &to).await?,
            ops_cli::fields_table,
        ),
        ClusterCommand::Sales {
            command: SalesCommand::List,
        } => (client()?.sales().await?, ops_cli::sales_table),
        ClusterCommand::Sales {
            command:
                SalesCommand::Create {
                    product,
                    sale_price,
                    original_price,
                    start,
                    end,
                    stock,
                    per_user_limit,
                },
        } => {
            let sale = serde_json::json!({
                "productId": product, "salePrice": sale_price, "originalPrice": original_price,
                "startTime": start, "endTime": end, "stock": stock, "perUserLimit": per_user_limit,
            });
            (client()?.create_sale(&sale).await?, ops_cli::fields_table)
        }
        ClusterCommand::Sales {
            command: SalesCommand::Move { sale, start, end },
        } => {
            let window = serde_json::json!({ "startTime": start, "endTime": end });
            (
                client()?.move_sale(sale, &window).await?,
                ops_cli::fields_table,
            )
        }
        ClusterCommand::Sales {
            command: SalesCommand::Cancel { sale },
        } => (client()?.cancel_sale(sale).await?, ops_cli::fields_table),
        // The broker's, not an API call: no token needed.
        ClusterCommand::Events {
            command:
                EventsCommand::Tail {
                    topic,
                    from_beginning,
                    brokers,
                    prefix,
                    max,
                    idle_secs,
                },
        } => {
            let tail = cluster::ops::Tail {
                brokers,
                topic: format!("{prefix}{topic}"),
                from_beginning,
                max,
                idle: idle_secs.map(std::time::Duration::from_secs),
            };
            return tail_events(tail, json).await;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", table(&value));
    }
    Ok(())
}

fn load_settings(config: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<Settings> {
    Settings::load(config.as_deref(), &overrides).context("reading the configuration")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn token(settings: &Settings, user: u64, role: Role, ttl_secs: u64) -> anyhow::Result<String> {
    let secret = load_or_create_secret(
        settings.auth.jwt_secret.as_ref(),
        &settings.store.data_dir,
        gateway::auth::JWT_SECRET_FILE,
    )?;
    let claims = Claims {
        sub: user.to_string(),
        role,
        exp: actors::clock::now_ms() / 1_000 + ttl_secs,
    };
    Ok(JwtKeys::new(secret).encode(&claims))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = App::build(&settings).await?;
    let url = format!("http://{}", app.address());
    println!("flashcart listening on {url}");
    if settings.demo {
        let customer = token(&settings, 1_001, Role::Customer, 86_400)?;
        let admin = token(&settings, 1, Role::Admin, 86_400)?;
        let seller_id = gateway::demo::SELLERS[0];
        let seller = token(&settings, seller_id.0, Role::Seller, 86_400)?;
        println!(
            "demo flash sale on product {}: try",
            gateway::demo::SALE_PRODUCT
        );
        println!("  curl -s {url}/api/v1/inventory/1");
        println!(
            "  curl -s -X POST {url}/api/v1/buy-now -H 'Authorization: Bearer {customer}' \
             -H 'Content-Type: application/json' -H 'Idempotency-Key: try-1' -d '{{\"productId\":1,\"quantity\":1}}'"
        );
        println!("customer token (user 1001): {customer}");
        println!("admin token (user 1): {admin}");
        println!("seller token (user {seller_id}, sells demo products): {seller}");
    }
    app.run_until_stopped(shutdown_signal()).await
}

/// Prints a topic's events, one a line (`key  event`, or a JSON object with `--json`).
async fn tail_events(tail: cluster::ops::Tail, json: bool) -> anyhow::Result<()> {
    let read = tokio::task::spawn_blocking(move || {
        cluster::ops::tail(&tail, |event| {
            if json {
                let line = serde_json::json!({
                    "partition": event.partition, "offset": event.offset,
                    "key": event.key, "event": event.payload,
                });
                println!("{line}");
            } else {
                println!("{}  {}", event.key, event.payload);
            }
        })
    })
    .await
    .context("the tail stopped")?;
    read.context("reading the topic")?;
    Ok(())
}

/// Statements of an import may take longer than the hot path's.
const IMPORT_STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn import_products(settings: Settings, file: PathBuf) -> anyhow::Result<()> {
    let store = gateway::app::open_database(&settings, IMPORT_STATEMENT_TIMEOUT).await?;
    let at_ms = actors::clock::now_ms();
    let report = if file.as_os_str() == "-" {
        gateway::import::import_products(&store, std::io::stdin().lock(), at_ms).await?
    } else {
        let opened =
            std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
        gateway::import::import_products(&store, std::io::BufReader::new(opened), at_ms).await?
    };
    let seconds = report.elapsed.as_secs_f64();
    let total = report.summary.created + report.summary.updated;
    println!(
        "imported {total} products ({} new, {} updated) in {seconds:.1} s: {:.0} a second",
        report.summary.created,
        report.summary.updated,
        total as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// Ctrl-C or SIGTERM: stop taking requests, finish the ones in flight, commit, exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining requests and committing");
}
