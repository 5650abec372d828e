//! `flashcart import-products`: a catalog file into the store, thousands of products per
//! transaction ([`persistence::Database::import_products`]), while the engine is stopped.
//! The engine builds its catalog and search index from the store when it starts.
//!
//! The file holds one JSON object per line, the body of `POST /api/v1/products` with its
//! `id` required: a catalog carries its own ids, so importing the same file again updates
//! the records instead of adding copies. Every line is checked by the rules the API
//! applies; the first bad line stops the import and is named (the chunks before it are
//! in, and running the fixed file again is safe).

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use persistence::{Database, ImportSummary, ImportedProduct};

use crate::routes::products::NewProduct;

/// Products per transaction: large enough that the commit's fsync is shared by thousands,
/// small enough that a transaction stays well under a second.
pub const IMPORT_CHUNK: usize = 5_000;

/// What an import did, and how long it took.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportReport {
    pub summary: ImportSummary,
    pub elapsed: Duration,
}

/// Reads `lines` and imports them into `store`, a chunk per transaction.
pub async fn import_products(
    store: &Database,
    lines: impl BufRead,
    at_ms: u64,
) -> anyhow::Result<ImportReport> {
    let started = Instant::now();
    let mut report = ImportReport::default();
    let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
    for (index, line) in lines.lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("reading line {number}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let product = parse(&line).with_context(|| {
            format!(
                "line {number} (the {} products before it are imported)",
                report.summary.created + report.summary.updated
            )
        })?;
        chunk.push(product);
        if chunk.len() == IMPORT_CHUNK {
            report.summary += store
                .import_products(&chunk, at_ms)
                .await
                .with_context(|| format!("importing the products up to line {number}"))?;
            chunk.clear();
        }
    }
    report.summary += store
        .import_products(&chunk, at_ms)
        .await
        .context("importing the last products")?;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn parse(line: &str) -> anyhow::Result<ImportedProduct> {
    let line: NewProduct = serde_json::from_str(line)?;
    let (id, draft, stock) = line.into_parts();
    let Some(id) = id.filter(|id| id.0 > 0) else {
        anyhow::bail!("id: must be at least 1 (a catalog import carries its ids)");
    };
    engine::product::check_stock("stock", stock)?;
    Ok(ImportedProduct {
        product: draft.validate(id)?,
        stock,
    })
}
