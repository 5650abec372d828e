//! Memory of resident products (embedded store, fresh directory, the server's allocator):
//! N products in the catalog, then all N loaded into memory (stock state, no actor), then
//! a sample of them activated as live actors. RSS is measured after each step.
//!
//! `cargo bench -p flashcart-benches --bench resident_products -- [N, default 1000000]`

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Live actors activated to measure their own cost.
const LIVE_SAMPLE: u64 = 20_000;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::{Shop, ShopParts, ShopSettings, ShopStores};
use engine::{Money, Product, ProductId};
use persistence::{Database, ImportedProduct};

fn main() {
    let count: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(count));
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1_024.0 * 1_024.0)
}

async fn run(count: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Database::open(dir.path()).await.expect("store"));
    // The bulk import (`flashcart import-products`), a chunk per transaction as it runs.
    let started = Instant::now();
    let mut next = 1;
    while next <= count {
        let last = (next + gateway::import::IMPORT_CHUNK as u64 - 1).min(count);
        let chunk: Vec<ImportedProduct> = (next..=last)
            .map(|id| ImportedProduct {
                product: Product {
                    id: ProductId(id),
                    title: format!("Resident product {id}"),
                    brand: "Brand".into(),
                    category: format!("category-{}", id % 50),
                    description: String::new(),
                    price: Money(10_000 + id % 1_000),
                    rating: 4.0,
                    popularity: id % 10_000,
                    seller_id: None,
                },
                stock: 100,
            })
            .collect();
        store.import_products(&chunk, 1).await.expect("products");
        next = last + 1;
    }
    let import_seconds = started.elapsed().as_secs_f64();
    println!(
        "imported {count} products in {import_seconds:.1} s ({:.0} a second)",
        count as f64 / import_seconds
    );

    let before_start = flashcart_benches::rss_bytes();
    let settings = ShopSettings {
        passivate_after: Duration::from_secs(24 * 3_600),
        preload_on_start: false,
        ..ShopSettings::default()
    };
    let shop = Shop::start(ShopParts::new(settings, ShopStores::in_database(&store)))
        .await
        .expect("shop");
    let with_catalog = flashcart_benches::rss_bytes();

    let started = Instant::now();
    let loaded = shop.preload(shop.product_ids()).await as u64;
    let preload_seconds = started.elapsed().as_secs_f64();
    assert_eq!(loaded, count);
    let resident = flashcart_benches::rss_bytes();

    let live = LIVE_SAMPLE.min(count);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(512));
    let mut warming = tokio::task::JoinSet::new();
    for id in 1..=live {
        let shop = shop.clone();
        let permit = Arc::clone(&in_flight)
            .acquire_owned()
            .await
            .expect("semaphore");
        warming.spawn(async move {
            let _permit = permit;
            shop.warm(ProductId(id)).await.expect("warm");
        });
        while warming.try_join_next().is_some() {}
    }
    while warming.join_next().await.is_some() {}
    assert_eq!(shop.live_product_count() as u64, live);
    let with_live = flashcart_benches::rss_bytes();

    let catalog = with_catalog.saturating_sub(before_start);
    let state = resident.saturating_sub(with_catalog);
    let actors = with_live.saturating_sub(resident);
    println!("resident products: {count} (loaded into memory in {preload_seconds:.0} s)");
    println!("RSS before the shop:        {:>9.1} MiB", mib(before_start));
    println!(
        "RSS with the catalog:       {:>9.1} MiB  (+{} bytes per product record)",
        mib(with_catalog),
        catalog / count
    );
    println!(
        "RSS with every product resident: {:>4.1} MiB  (+{} bytes per product's stock state)",
        mib(resident),
        state / count
    );
    println!(
        "RSS with {live} live actors: {:>9.1} MiB  (+{} bytes per live product actor)",
        mib(with_live),
        actors / live
    );
    println!(
        "resident total: {} bytes per product; {:.2} GiB for {count}",
        resident.saturating_sub(before_start) / count,
        resident as f64 / (1u64 << 30) as f64
    );
}
