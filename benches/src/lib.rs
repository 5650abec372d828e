//! Benchmarks only; see `benches/hot_path.rs`. Run with `cargo bench -p flashcart-benches`.
//! This library holds what several benches share.

use std::sync::Arc;

use actors::{Shop, ShopParts, ShopSettings, ShopStores};
use engine::{Money, ProductDraft, ProductId};
use persistence::Database;

/// A shop on a fresh embedded store in `dir`, with product 1 (`stock` units) live.
pub async fn shop_with_product(dir: &std::path::Path, settings: ShopSettings, stock: u64) -> Shop {
    let database = Arc::new(Database::open(dir).await.expect("store"));
    let shop = Shop::start(ShopParts::new(settings, ShopStores::in_database(&database)))
        .await
        .expect("shop");
    let draft = ProductDraft {
        title: "Bench phone".into(),
        brand: "Bench".into(),
        category: "mobiles".into(),
        description: String::new(),
        price: Money(1_000),
        rating: 4.0,
        popularity: 0,
        seller_id: None,
    };
    shop.create_product(Some(ProductId(1)), draft, stock)
        .await
        .expect("product");
    shop.warm(ProductId(1)).await.expect("warm");
    shop
}

/// This process's resident set size in bytes (Linux `/proc/self/status`; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1_024)
}
