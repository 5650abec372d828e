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
    /// Print a bearer token for trying the API (its last line is the token).
    DemoToken {
        #[arg(long)]
        user: u64,
        /// customer, admin, logistics or delivery.
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            demo,
        } => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            gateway::telemetry::init("info", std::io::stdout, ansi);
            let overrides = Overrides {
                listen,
                data_dir,
                demo,
            };
            let settings = load_settings(config, overrides)?;
            runtime()?.block_on(serve(settings))
        }
        Command::ImportProducts {
            file,
            config,
            data_dir,
        } => {
            let settings = load_settings(config, Overrides::data_dir(data_dir))?;
            runtime()?.block_on(import_products(settings, file))
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
    }
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
    }
    app.run_until_stopped(shutdown_signal()).await
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
