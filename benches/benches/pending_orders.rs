//! Memory per pending order: N unpaid Buy Now orders held by the shop (embedded store,
//! the server's allocator), measured as live heap bytes (a counting wrapper around the
//! allocator: exact, whatever the allocator keeps for later) and as RSS.
//!
//! `cargo bench -p flashcart-benches --bench pending_orders -- [N, default 500000]`
//!
//! At the mission's peak (10K orders/s) with the default 10-minute reservation, 6 million
//! orders are pending at once: this is the figure that multiplies.

use flashcart_benches::rss_bytes;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use actors::{BuyNowReply, BuyNowRequest, Shop, ShopSettings};
use engine::{IdempotencyKey, ProductId, UserId};

/// The server's allocator, counting the bytes it has handed out and not taken back.
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

// SAFETY: every call is forwarded unchanged to mimalloc; the counter is only arithmetic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { INNER.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { INNER.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Buy Nows in flight at once.
const WAVE: u64 = 1_000;

fn main() {
    let count: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(500_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(count));
}

async fn run(count: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = ShopSettings {
        in_flight_per_product_max: 100_000,
        preload_on_start: false,
        ..ShopSettings::default()
    };
    let shop =
        flashcart_benches::shop_with_product(dir.path(), settings, engine::product::STOCK_MAX)
            .await;
    // Warm up every structure once, so that its first allocation is not counted as the
    // cost of the orders.
    place(&shop, 0, WAVE).await;
    settle().await;
    let (heap_before, rss_before) = (LIVE_BYTES.load(Ordering::Relaxed), rss_bytes() as i64);
    let started = Instant::now();
    let mut placed = 0;
    while placed < count {
        let wave = WAVE.min(count - placed);
        place(&shop, WAVE + placed, wave).await;
        placed += wave;
    }
    let seconds = started.elapsed().as_secs_f64();
    settle().await;
    let (heap_after, rss_after) = (LIVE_BYTES.load(Ordering::Relaxed), rss_bytes() as i64);
    assert_eq!(shop.pending_order_count() as u64, count + WAVE);
    let per_order = |before: i64, after: i64| (after - before) as f64 / count as f64;
    println!(
        "{count} pending orders placed in {seconds:.1} s ({:.0}/s, through the shop, no HTTP)",
        count as f64 / seconds
    );
    println!(
        "live heap: {:.0} bytes per pending order ({:.1} MiB in all)",
        per_order(heap_before, heap_after),
        (heap_after - heap_before) as f64 / (1_024.0 * 1_024.0)
    );
    println!(
        "RSS: {:.0} bytes per pending order ({:.1} MiB in all)",
        per_order(rss_before, rss_after),
        (rss_after - rss_before) as f64 / (1_024.0 * 1_024.0)
    );
}

/// `count` Buy Nows by distinct users, `WAVE` at a time; each must be placed.
async fn place(shop: &Shop, first: u64, count: u64) {
    let mut buyers = tokio::task::JoinSet::new();
    for n in first..first + count {
        let shop = shop.clone();
        buyers.spawn(async move {
            let request = BuyNowRequest {
                product_id: ProductId(1),
                user_id: UserId(n + 1),
                quantity: 1,
                idempotency_key: IdempotencyKey::parse(&format!("pending-{n}")).expect("key"),
            };
            shop.buy_now(request).await
        });
    }
    while let Some(answer) = buyers.join_next().await {
        let answer = answer.expect("buyer task");
        assert!(
            matches!(answer, Ok(BuyNowReply::Placed(_))),
            "every Buy Now is placed: {answer:?}"
        );
    }
}

/// Lets the actors finish what follows a commit (tracking new orders) before measuring.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}
