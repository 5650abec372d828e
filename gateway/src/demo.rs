//! The demo catalog: a few hundred products in categories, one flash sale starting now and
//! one starting in two hours, so that `serve --demo` has something to browse, buy, and be
//! notified of.

use actors::Shop;
use engine::{FlashSaleDraft, Money, ProductDraft, ProductId, UserId};
use tokio::task::JoinSet;

/// The product that carries the demo flash sale.
pub const SALE_PRODUCT: ProductId = ProductId(1);
/// The product whose sale starts later (its card offers "Notify me").
pub const COMING_SALE_PRODUCT: ProductId = ProductId(2);
const COMING_SALE_STARTS_IN_MS: u64 = 2 * 3_600_000;
const PRODUCT_COUNT: u64 = 300;
/// The demo's marketplace sellers: every product but the sale's belongs to one of them
/// (`flashcart demo-token --role seller --user 2001` to see their orders and payouts).
pub const SELLERS: [UserId; 3] = [UserId(2_001), UserId(2_002), UserId(2_003)];

const CATEGORIES: [(&str, &[&str], u64); 8] = [
    (
        "mobiles",
        &["Samsung", "Xiaomi", "Apple", "OnePlus", "Realme"],
        1_500_000,
    ),
    (
        "laptops",
        &["Lenovo", "HP", "Dell", "Asus", "Apple"],
        6_000_000,
    ),
    ("televisions", &["Sony", "LG", "Samsung", "TCL"], 4_000_000),
    (
        "headphones",
        &["boAt", "Sony", "JBL", "Sennheiser"],
        300_000,
    ),
    (
        "cameras",
        &["Canon", "Nikon", "Sony", "Fujifilm"],
        5_000_000,
    ),
    ("watches", &["Titan", "Fastrack", "Casio", "Noise"], 500_000),
    (
        "home-kitchen",
        &["Prestige", "Philips", "Bajaj", "Pigeon"],
        250_000,
    ),
    (
        "books",
        &["Penguin", "HarperCollins", "Rupa", "Westland"],
        40_000,
    ),
];

/// Seeds the catalog if it is empty; a restart with the same data directory keeps what is
/// there (and its orders).
pub async fn seed(shop: &Shop) -> anyhow::Result<()> {
    if shop.product(SALE_PRODUCT).is_some() {
        tracing::info!("demo catalog already present; not seeding again");
        return Ok(());
    }
    let mut creations = JoinSet::new();
    for id in 1..=PRODUCT_COUNT {
        let shop = shop.clone();
        creations.spawn(async move {
            let (draft, stock) = demo_product(id);
            shop.create_product(Some(ProductId(id)), draft, stock).await
        });
    }
    while let Some(created) = creations.join_next().await {
        created??;
    }
    let now_ms = actors::clock::now_ms();
    let sale = shop
        .schedule_sale(FlashSaleDraft {
            product_id: SALE_PRODUCT,
            sale_price: Money(49_900),
            original_price: Money(99_900),
            start_ms: now_ms,
            end_ms: Some(now_ms + 3_600_000),
            stock: 100,
            per_user_limit: 2,
        })
        .await?;
    let coming = shop
        .schedule_sale(FlashSaleDraft {
            product_id: COMING_SALE_PRODUCT,
            sale_price: Money(demo_product(COMING_SALE_PRODUCT.0).0.price.0 / 2),
            original_price: demo_product(COMING_SALE_PRODUCT.0).0.price,
            start_ms: now_ms + COMING_SALE_STARTS_IN_MS,
            end_ms: Some(now_ms + COMING_SALE_STARTS_IN_MS + 3_600_000),
            stock: 50,
            per_user_limit: 1,
        })
        .await?;
    tracing::info!(
        products = PRODUCT_COUNT,
        sale_id = %sale.id,
        coming_sale_id = %coming.id,
        "demo catalog seeded"
    );
    Ok(())
}

/// Deterministic pseudo-random attributes: the same demo everywhere.
fn demo_product(id: u64) -> (ProductDraft, u64) {
    // SplitMix64: tiny, good enough spread for fake catalog data.
    let mut state = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    if id == SALE_PRODUCT.0 {
        let draft = ProductDraft {
            title: "Flashphone X1 (demo flash sale)".into(),
            brand: "Flashcart".into(),
            category: "mobiles".into(),
            description: "The phone everyone wants at noon.".into(),
            price: Money(99_900),
            rating: 4.6,
            popularity: 1_000_000,
            seller_id: None,
        };
        return (draft, 1_000);
    }
    let (category, brands, base_price) = CATEGORIES[(next() % CATEGORIES.len() as u64) as usize];
    let brand = brands[(next() % brands.len() as u64) as usize];
    let price = base_price / 2 + next() % base_price;
    let draft = ProductDraft {
        title: format!("{brand} {} {}", category.replace('-', " "), 100 + id),
        brand: brand.into(),
        category: category.into(),
        description: format!("Demo product {id} from {brand}."),
        // Prices end in .99, as shops like them.
        price: Money(price / 100 * 100 + 99),
        rating: (30 + next() % 21) as f32 / 10.0,
        popularity: next() % 10_000,
        seller_id: Some(SELLERS[(id % SELLERS.len() as u64) as usize]),
    };
    (draft, 10 + next() % 500)
}
