//! Buy Now throughput with 1,000 WebSocket screens watching the product, against the same
//! sale without them, in one run (embedded store, the real app).
//!
//! Everything shares this machine's cores: the engine, the buyers' HTTP client, and the
//! screens' WebSocket clients. The screens run on a thread of their own, so the bench can
//! say what their reading cost (CPU a real deployment spends on the viewers' devices) and
//! what the engine spent per order with and without them.
//!
//! `cargo bench -p flashcart-benches --bench stock_feed`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gateway::App;
use gateway::auth::{Claims, JwtKeys, Role};
use gateway::settings::Settings;
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::oneshot;

const SCREENS: usize = 1_000;
const BUYERS: u64 = 20_000;
const CONCURRENCY: usize = 128;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let without = run(0).await;
        let with = run(SCREENS).await;
        println!(
            "Buy Now, {BUYERS} buyers, {CONCURRENCY} at a time, sale of {BUYERS} units \
             (engine, buyers and screens on the same cores):"
        );
        for (name, sale) in [("without screens", &without), ("with 1,000 screens", &with)] {
            println!(
                "  {name:<19} {:>7.0} orders/s, engine and buyers {:>5.1} us CPU per order, \
                 screens {:>4.0} ms CPU for {} frames",
                sale.orders_per_second,
                sale.cpu_per_order_us(),
                sale.screens_cpu.as_secs_f64() * 1e3,
                sale.frames,
            );
        }
        println!(
            "  throughput with screens: {:.2}x; engine and buyers' CPU per order: {:.2}x",
            with.orders_per_second / without.orders_per_second,
            with.cpu_per_order_us() / without.cpu_per_order_us(),
        );
    });
}

struct Sale {
    orders_per_second: f64,
    orders: u64,
    /// CPU of the whole process during the sale, less the screens' thread.
    engine_cpu: Duration,
    screens_cpu: Duration,
    /// Frames the screens received during the sale.
    frames: u64,
}

impl Sale {
    fn cpu_per_order_us(&self) -> f64 {
        self.engine_cpu.as_secs_f64() * 1e6 / self.orders as f64
    }
}

async fn run(screens: usize) -> Sale {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse().expect("address");
    settings.store.data_dir = dir.path().to_path_buf();
    settings.auth.jwt_secret = Some(SecretString::from("bench".to_owned()));
    // A thousand screens from one address are not what this bench limits.
    settings.rate_limits.enabled = false;
    let app = App::build(&settings).await.expect("app");
    let address = app.address();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let host = format!("http://{address}");
    let keys = Arc::new(JwtKeys::new(SecretString::from("bench".to_owned())));
    let token = |user: u64, role| {
        keys.encode(&Claims {
            sub: user.to_string(),
            role,
            exp: 4_000_000_000,
        })
    };
    let client = reqwest::Client::new();
    let admin = token(1, Role::Admin);
    let created = client
        .post(format!("{host}/api/v1/products"))
        .bearer_auth(&admin)
        .json(&json!({"id": 1, "title": "P", "brand": "B", "category": "c", "price": 1_000, "stock": BUYERS}))
        .send()
        .await
        .expect("product");
    assert_eq!(created.status(), 201);

    let screens = Screens::connect(format!("ws://{address}/ws/stock?products=1"), screens);
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut buyers = tokio::task::JoinSet::new();
    let process_cpu_before = process_cpu();
    let screens_window = screens.begin();
    let started = Instant::now();
    for user in 1..=BUYERS {
        let client = client.clone();
        let url = format!("{host}/api/v1/buy-now");
        let token = token(user + 10, Role::Customer);
        let slots = Arc::clone(&slots);
        buyers.spawn(async move {
            let _slot = slots.acquire_owned().await.expect("semaphore");
            client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "bench")
                .json(&json!({"productId": 1, "quantity": 1}))
                .send()
                .await
                .expect("sent")
                .status()
        });
    }
    let mut placed = 0u64;
    while let Some(status) = buyers.join_next().await {
        if status.expect("task") == 201 {
            placed += 1;
        }
    }
    let elapsed = started.elapsed();
    let (screens_cpu, frames) = screens_window.end().await;
    let process_cpu = process_cpu() - process_cpu_before;
    let _ = stop.send(());
    Sale {
        orders_per_second: placed as f64 / elapsed.as_secs_f64(),
        orders: placed,
        engine_cpu: process_cpu.saturating_sub(screens_cpu),
        screens_cpu,
        frames,
    }
}

/// The screens' clients, on a single-threaded runtime of their own thread.
struct Screens {
    begin: oneshot::Sender<WindowSignals>,
}

/// What the screens' thread measures over a window: its own CPU time and the frames it read.
type Measured = (Duration, u64);

/// Handed to the screens' thread when the window opens: when it ends, and where to report.
type WindowSignals = (oneshot::Receiver<()>, oneshot::Sender<Measured>);

struct ScreensWindow {
    end: oneshot::Sender<()>,
    measured: oneshot::Receiver<Measured>,
}

impl Screens {
    /// Connects `count` screens and returns once each has its first frame (the stock as
    /// it connected, which is not counted).
    fn connect(url: String, count: usize) -> Self {
        let (begin, begun) = oneshot::channel();
        let (ready, connected) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("screens runtime");
            runtime.block_on(async move {
                let frames = Arc::new(AtomicU64::new(0));
                for _ in 0..count {
                    // A screen's buffers sized as the engine's own feed clients are
                    // (`gateway::websocket`): tungstenite's default zero-fills 128 KiB per read.
                    let config = Some(gateway::websocket::feed_client_config());
                    let (mut socket, _) =
                        tokio_tungstenite::connect_async_with_config(url.as_str(), config, true)
                            .await
                            .expect("ws");
                    socket.next().await.expect("first frame").expect("frame");
                    let frames = Arc::clone(&frames);
                    tokio::spawn(async move {
                        while let Some(Ok(_)) = socket.next().await {
                            frames.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                let _ = ready.send(());
                let Ok::<WindowSignals, _>((end, measured)) = begun.await else {
                    return;
                };
                let cpu_before = thread_cpu();
                frames.store(0, Ordering::Relaxed);
                let _ = end.await;
                let _ = measured.send((thread_cpu() - cpu_before, frames.load(Ordering::Relaxed)));
            });
        });
        connected.recv().expect("screens connected");
        Self { begin }
    }

    fn begin(self) -> ScreensWindow {
        let (end, ended) = oneshot::channel();
        let (measure, measured) = oneshot::channel();
        let _ = self.begin.send((ended, measure));
        ScreensWindow { end, measured }
    }
}

impl ScreensWindow {
    async fn end(self) -> Measured {
        let _ = self.end.send(());
        self.measured.await.expect("screens measured")
    }
}

/// User plus system CPU from a `/proc/.../stat` line (fields 14 and 15, in clock ticks of
/// 1/100 s on Linux).
fn cpu_of(stat_path: &str) -> Duration {
    let stat = std::fs::read_to_string(stat_path).expect("stat");
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

fn process_cpu() -> Duration {
    cpu_of("/proc/self/stat")
}

fn thread_cpu() -> Duration {
    cpu_of("/proc/thread-self/stat")
}
