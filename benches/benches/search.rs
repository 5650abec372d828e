//! Search latency over generated products: the tantivy index (on disk, as `serve` keeps
//! it) answering a mix of queries (exact words, typos, filters, facets), against a
//! baseline measured in the same run: a plain scan of every title for the query's words
//! (no typos, no ranking), the way a shop without a search engine would do it.
//!
//! `cargo bench -p flashcart-benches --bench search -- [products, default 100000]`

use std::time::{Duration, Instant};

use engine::{Money, Product, ProductId};
use search::{SearchIndex, SearchQuery};

const BRANDS: [&str; 12] = [
    "Samsung", "Apple", "Xiaomi", "OnePlus", "Realme", "Vivo", "Oppo", "Motorola", "Nokia",
    "Google", "Sony", "Lenovo",
];
const LINES: [&str; 10] = [
    "Galaxy", "Note", "Pixel", "Nord", "Redmi", "Edge", "Xperia", "Narzo", "Reno", "Tab",
];
const KINDS: [&str; 8] = [
    "phone", "tablet", "earbuds", "watch", "charger", "case", "laptop", "speaker",
];
const COLOURS: [&str; 6] = ["black", "blue", "silver", "green", "gold", "white"];
const QUERIES: usize = 2_000;

fn main() {
    let count: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(100_000);
    let products: Vec<Product> = (1..=count).map(generated).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let index = SearchIndex::open(dir.path()).expect("index");
    let started = Instant::now();
    for chunk in products.chunks(20_000) {
        let refs: Vec<&Product> = chunk.iter().collect();
        index.update(&refs, &[]).expect("index");
    }
    println!(
        "indexed {count} products in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let queries: Vec<SearchQuery> = (0..QUERIES).map(query).collect();

    let mut engine_latencies = Vec::with_capacity(QUERIES);
    let mut found = 0u64;
    for query in &queries {
        let started = Instant::now();
        let results = index.search(query).expect("search");
        engine_latencies.push(started.elapsed());
        found += results.total;
    }
    let mut scan_latencies = Vec::with_capacity(QUERIES);
    let mut scanned = 0u64;
    for query in &queries {
        let started = Instant::now();
        scanned += scan(&products, query);
        scan_latencies.push(started.elapsed());
    }
    let engine = percentiles(&mut engine_latencies);
    let baseline = percentiles(&mut scan_latencies);
    println!(
        "{QUERIES} queries over {count} products (mixed: exact, typos, filters; facets always on)"
    );
    println!("                      p50        p90        p99     matches/query");
    println!(
        "tantivy index   {:>9.2?}  {:>9.2?}  {:>9.2?}  {:>8}",
        engine[0],
        engine[1],
        engine[2],
        found / QUERIES as u64
    );
    println!(
        "title scan      {:>9.2?}  {:>9.2?}  {:>9.2?}  {:>8}   (baseline: exact words only)",
        baseline[0],
        baseline[1],
        baseline[2],
        scanned / QUERIES as u64
    );
    println!(
        "ratio index/scan: p50 {:.2}x, p99 {:.2}x",
        ratio(engine[0], baseline[0]),
        ratio(engine[2], baseline[2])
    );
}

fn generated(id: u64) -> Product {
    let pick = |list: &[&'static str], salt: u64| {
        list[((id * 2_654_435_761 + salt) % list.len() as u64) as usize]
    };
    let brand = pick(&BRANDS, 1);
    let line = pick(&LINES, 7);
    let kind = pick(&KINDS, 13);
    let colour = pick(&COLOURS, 29);
    Product {
        id: ProductId(id),
        title: format!("{brand} {line} {} {kind} {colour}", id % 97),
        brand: brand.into(),
        category: kind.into(),
        description: format!(
            "A {colour} {kind} from {brand}, model {line} {}, with fast charging",
            id % 97
        ),
        price: Money(99_900 + (id * 7_919) % 15_000_000),
        rating: 1.0 + ((id * 31) % 40) as f32 / 10.0,
        popularity: (id * 104_729) % 10_000,
        seller_id: None,
    }
}

fn query(i: usize) -> SearchQuery {
    let brand = BRANDS[i % BRANDS.len()];
    let line = LINES[(i / 3) % LINES.len()];
    let kind = KINDS[(i / 7) % KINDS.len()];
    let text = match i % 4 {
        0 => format!("{brand} {line}"),
        // A typo: one letter dropped from the line's name.
        1 => format!("{} {kind}", &line[..line.len() - 1]),
        2 => format!("{kind} {}", COLOURS[i % COLOURS.len()]),
        _ => format!("{brand} {kind}"),
    };
    SearchQuery {
        text,
        price_min: i.is_multiple_of(3).then_some(Money(1_000_000)),
        price_max: i.is_multiple_of(3).then_some(Money(8_000_000)),
        rating_min: i.is_multiple_of(5).then_some(3.5),
        brand: None,
        page: 1,
        page_size: 20,
        price_interval: 1_000_000,
    }
}

/// The baseline: every title, lower-cased, checked for every query word.
fn scan(products: &[Product], query: &SearchQuery) -> u64 {
    let words: Vec<String> = query
        .text
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    products
        .iter()
        .filter(|product| {
            let title = product.title.to_lowercase();
            words.iter().all(|word| title.contains(word.as_str()))
                && query.price_min.is_none_or(|min| product.price >= min)
                && query.price_max.is_none_or(|max| product.price <= max)
                && query.rating_min.is_none_or(|min| product.rating >= min)
        })
        .count() as u64
}

fn percentiles(latencies: &mut [Duration]) -> [Duration; 3] {
    latencies.sort_unstable();
    let at = |fraction: f64| {
        latencies[((latencies.len() as f64 * fraction) as usize).min(latencies.len() - 1)]
    };
    [at(0.50), at(0.90), at(0.99)]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}
