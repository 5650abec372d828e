//! The simulated process: a shop over a real in-memory SQLite database, on tokio's paused
//! clock, whose every store call waits on the [`Board`] for the simulator to decide it.
//!
//! Why this replays exactly: the runtime has one thread and its clock only moves when
//! every task is waiting. The simulator decides one parked call per millisecond of
//! virtual time, at a moment when nothing else can run, and runs it on a blocking thread
//! (`blocking`: the simulated runtime's only thread waits, so nothing else runs and the
//! clock stays still until it is done), against a database that lives on another
//! runtime (so none of its background work runs on the simulated one). Ids come from the seed, time from the
//! paused clock; so the same seed makes the same calls in the same order with the same
//! fates, and `SIM_SEED=<seed>` replays a failure step by step.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actors::{Clock, OrderIds, Shop, ShopParts, ShopSettings, ShopStores};
use persistence::{Carts, Database, GroupCommitSettings};

use super::faulty_store::{Board, Fate, FaultyStore, Kind};
use super::rng::Rng;

/// Virtual time between two decisions of the simulator.
const PUMP: Duration = Duration::from_millis(1);
/// Quiet pumps in a row that count as "settled".
const SETTLED_AFTER_QUIET_PUMPS: u32 = 30;
/// A world that does not settle within this many pumps has a liveness bug.
const SETTLE_PUMPS_MAX: u32 = 60_000;

/// The wall-clock time the simulated process starts at (2027-01-15).
pub const START_MS: u64 = 1_800_000_000_000;

/// How often each fault happens, per thousand decisions. Drawn per seed, so some seeds
/// run clean and others are a storm (swarm testing: one fixed mix would miss the bugs
/// that need a rare fault to be common).
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub commit_fails_before_writing: u64,
    pub commit_fails_after_writing: u64,
    pub commit_stalls: u64,
    pub stall_max_ms: u64,
    pub read_fails: u64,
    pub crash: u64,
}

impl Faults {
    pub fn none() -> Self {
        Self {
            commit_fails_before_writing: 0,
            commit_fails_after_writing: 0,
            commit_stalls: 0,
            stall_max_ms: 0,
            read_fails: 0,
            crash: 0,
        }
    }

    pub fn draw(rng: &mut Rng) -> Self {
        Self {
            commit_fails_before_writing: rng.one_of(&[0, 20, 100]),
            commit_fails_after_writing: rng.one_of(&[0, 20, 100]),
            commit_stalls: rng.one_of(&[0, 50, 200]),
            stall_max_ms: rng.one_of(&[20, 150, 400]),
            read_fails: rng.one_of(&[0, 20, 80]),
            crash: rng.one_of(&[0, 20, 60]),
        }
    }
}

/// Settings that make every path of the shop reachable within a short run: small
/// timeouts (stalls become unknown outcomes), a small admission bound (bursts get 503),
/// short reservations (they expire within a run), quick passivation.
pub fn simulation_settings(rng: &mut Rng) -> ShopSettings {
    ShopSettings {
        shard_count: 4,
        in_flight_per_product_max: rng.one_of(&[4, 16]) as u32,
        stock_feed_rate_per_second: 10,
        preload_on_start: rng.chance(500),
        reservation_ttl: Duration::from_millis(rng.one_of(&[1_500, 4_000])),
        request_timeout: Duration::from_millis(800),
        passivate_after: Duration::from_millis(rng.one_of(&[700, 60_000])),
        passivation_sweep_every: Duration::from_millis(300),
        idempotency_retention: Duration::from_secs(3_600),
        recovery_retry: Duration::from_millis(50),
        quantity_per_order_max: 3,
        wishlist_items_max: 500,
        commission: actors::CommissionRates::default(),
        group_commit: GroupCommitSettings {
            batch_size_max: rng.one_of(&[1, 8, 256]) as usize,
            // None, the embedded default (under a timer tick: yields), and a timed wait.
            batch_delay: Duration::from_micros(rng.one_of(&[0, 500, 2_000])),
            queue_capacity: 64,
            commit_timeout: Duration::from_millis(200),
            abandon_after: Duration::from_millis(600),
        },
    }
}

pub struct World {
    pub seed: u64,
    pub rng: Rng,
    pub board: Board,
    /// The database itself, as the simulator (not the shop) sees it.
    pub database: Arc<Database>,
    pub database_name: String,
    pub settings: ShopSettings,
    pub faults: Faults,
    pub faults_on: bool,
    /// The running incarnation (absent only while the first one starts).
    shop: Option<Shop>,
    /// Every decision and outcome, in order: two runs of a seed must write the same.
    pub trace: Vec<String>,
    pub crashes: u32,
    /// Print the trace as it is written (when replaying one seed).
    verbose: bool,
    pump: u64,
    origin: tokio::time::Instant,
}

impl World {
    /// A fresh database and a shop started on it. Must run on a current-thread runtime
    /// with a paused clock.
    pub async fn start(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let settings = simulation_settings(&mut rng);
        let faults = Faults::draw(&mut rng);
        Self::start_with(seed, rng, settings, faults).await
    }

    /// A world with these settings and faults (the actor tests choose their own).
    pub async fn start_with(seed: u64, rng: Rng, settings: ShopSettings, faults: Faults) -> Self {
        // Unique in this process: runs of one seed (the replay test) must not share one.
        static DATABASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = DATABASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let database_name = format!("simulation-{}-{seed}-{run}", std::process::id());
        let database = Arc::new(
            blocking({
                let name = database_name.clone();
                async move { Database::open_in_memory(&name).await }
            })
            .expect("an in-memory SQLite database"),
        );
        let board = Board::default();
        let origin = tokio::time::Instant::now();
        let starting = start_shop(&database, &board, &settings, seed, origin);
        let mut world = Self {
            seed,
            rng,
            board,
            database,
            database_name,
            settings,
            faults,
            faults_on: false,
            shop: None,
            trace: Vec::new(),
            crashes: 0,
            verbose: std::env::var("SIM_SEED").is_ok(),
            pump: 0,
            origin,
        };
        world.shop = Some(world.drive(starting).await.expect("the shop starts"));
        world
    }

    /// The running shop.
    pub fn shop(&self) -> Shop {
        self.shop.clone().expect("a shop runs")
    }

    pub fn now_ms(&self) -> u64 {
        START_MS + self.origin.elapsed().as_millis() as u64
    }

    pub fn note(&mut self, line: impl Into<String>) {
        let line = line.into();
        if self.verbose {
            println!("{line}");
        }
        self.trace.push(line);
    }

    /// Runs `future` to its end, deciding parked calls meanwhile.
    pub async fn drive<T>(&mut self, future: impl Future<Output = T>) -> T {
        tokio::pin!(future);
        loop {
            tokio::select! {
                biased;
                output = &mut future => return output,
                _ = tokio::time::sleep(PUMP) => self.decide_one().await,
            }
        }
    }

    /// Lets the process run for `duration_ms` of virtual time.
    pub async fn run_for(&mut self, duration_ms: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(duration_ms);
        while tokio::time::Instant::now() < until {
            tokio::time::sleep(PUMP).await;
            self.decide_one().await;
        }
    }

    /// Decides calls until nothing has been parked for a while: every request answered,
    /// every commit done, every actor rebuilt. Panics if that never happens.
    pub async fn settle(&mut self) {
        let mut quiet = 0;
        for _ in 0..SETTLE_PUMPS_MAX {
            if self.board.parked_count() == 0 {
                quiet += 1;
                if quiet >= SETTLED_AFTER_QUIET_PUMPS {
                    return;
                }
            } else {
                quiet = 0;
            }
            tokio::time::sleep(PUMP).await;
            self.decide_one().await;
        }
        panic!(
            "seed {}: the shop did not settle ({} calls still parked)",
            self.seed,
            self.board.parked_count()
        );
    }

    /// Lets the process run for `duration_ms` without deciding anything: calls pile up.
    pub async fn hold(&mut self, duration_ms: u64) {
        tokio::time::sleep(Duration::from_millis(duration_ms)).await;
    }

    /// Decides parked calls (running them) until the oldest one is what `stop` looks for,
    /// which stays parked; returns its label.
    pub async fn run_until_parked(&mut self, stop: impl Fn(&str) -> bool) -> String {
        for _ in 0..SETTLE_PUMPS_MAX {
            tokio::time::sleep(PUMP).await;
            if let Some(label) = self.board.parked_labels().into_iter().next() {
                if stop(&label) {
                    return label;
                }
                self.decide_next(Fate::Run).await;
            }
        }
        panic!("seed {}: nothing parked matched", self.seed);
    }

    /// The oldest parked call runs with `fate` (waiting for one if none is parked yet);
    /// returns its label.
    pub async fn decide_next(&mut self, fate: Fate) -> String {
        for _ in 0..SETTLE_PUMPS_MAX {
            self.pump += 1;
            if let Some(parked) = self.board.take_next(u64::MAX) {
                let label = parked.label.clone();
                self.note(format!("{} {fate:?}: {label}", self.pump));
                let deliver = blocking(parked.execute(fate));
                deliver();
                return label;
            }
            tokio::time::sleep(PUMP).await;
        }
        panic!("seed {}: nothing was parked", self.seed);
    }

    /// The oldest call that may be decided gets its fate and runs (or stalls).
    async fn decide_one(&mut self) {
        self.pump += 1;
        let Some(parked) = self.board.take_next(self.pump) else {
            return;
        };
        let faults = if self.faults_on && !parked.decided {
            self.faults
        } else {
            Faults::none()
        };
        if parked.kind == Kind::Commit && self.rng.chance(faults.commit_stalls) {
            let stall_ms = self.rng.between(1, faults.stall_max_ms.max(1));
            self.note(format!(
                "{} stall {stall_ms} ms: {}",
                self.pump, parked.label
            ));
            self.board.stall(parked, self.pump + stall_ms);
            return;
        }
        let fate = match parked.kind {
            Kind::Commit if self.rng.chance(faults.commit_fails_before_writing) => {
                Fate::FailBeforeWriting
            }
            Kind::Commit if self.rng.chance(faults.commit_fails_after_writing) => {
                Fate::FailAfterWriting
            }
            Kind::Read if self.rng.chance(faults.read_fails) => Fate::FailBeforeWriting,
            Kind::Commit | Kind::Read => Fate::Run,
        };
        self.note(format!("{} {fate:?}: {}", self.pump, parked.label));
        let deliver = blocking(parked.execute(fate));
        deliver();
    }

    /// The process dies at once (like `kill -9`) and starts again from the database. A
    /// commit it left in flight may or may not have reached the disk.
    pub async fn crash_and_restart(&mut self) {
        self.crashes += 1;
        self.note(format!("{} crash", self.pump));
        let left_parked = self.board.crash();
        let shop = self.shop();
        self.drive(async move { shop.crash().await }).await;
        for parked in left_parked {
            let reached_disk = parked.kind == Kind::Commit && self.rng.chance(500);
            self.note(format!(
                "{} crash {}: {}",
                self.pump,
                if reached_disk { "wrote" } else { "lost" },
                parked.label
            ));
            if reached_disk {
                // Its process is dead: nobody is told.
                drop(blocking(parked.execute(Fate::Run)));
            }
        }
        let starting = start_shop(
            &self.database,
            &self.board,
            &self.settings,
            self.seed,
            self.origin,
        );
        let faults_on = std::mem::replace(&mut self.faults_on, false);
        self.shop = Some(self.drive(starting).await.expect("the shop restarts"));
        self.faults_on = faults_on;
    }
}

/// A shop whose stores go through the board (those the shop reads and writes while it
/// sells); the others, unused by the simulation, are the database itself.
fn start_shop(
    database: &Arc<Database>,
    board: &Board,
    settings: &ShopSettings,
    seed: u64,
    origin: tokio::time::Instant,
) -> impl Future<Output = Result<Shop, persistence::StoreError>> + use<> {
    let faulty = Arc::new(FaultyStore::new(Arc::clone(database), board.clone()));
    let stores = ShopStores {
        ledger: faulty.clone(),
        orders: faulty.clone(),
        catalog: faulty.clone(),
        deliveries: database.clone(),
        reviews: database.clone(),
        notifications: database.clone(),
        wishlists: database.clone(),
        sellers: database.clone(),
        carts: Carts::in_database(faulty, Duration::from_secs(3_600)),
    };
    let now_ms = START_MS + origin.elapsed().as_millis() as u64;
    // Each incarnation draws ids from its own sequence of the seed.
    let ids = OrderIds::seeded(seed ^ (board.generation() + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let parts = ShopParts::new(settings.clone(), stores).with_clock(Clock::tokio_from(now_ms), ids);
    Shop::start(parts)
}

/// Runs database work to its end while the simulated process stands still: the work
/// runs on a runtime of its own ([`database_runtime`]) and this thread, the simulated
/// runtime's only one, waits for it. So no simulated task runs meanwhile, the paused clock
/// cannot move, and what sqlx does in the background (returning a connection to its pool)
/// never runs on the simulated runtime: the call is instantaneous and invisible to it.
pub fn blocking<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    database_runtime().spawn(async move {
        let _ = done.send(work.await);
    });
    result
        .recv()
        .expect("the database runtime finishes the work")
}

/// The runtime every database of the simulations runs on, for the life of the process.
fn database_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("simulated-database")
            .enable_all()
            .build()
            .expect("the database runtime")
    })
}
