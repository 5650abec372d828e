//! A cluster node's view of the products and sales other nodes serve: browse, product
//! pages, search and sale listings on every node show them. Their records are written by
//! their owners; a node reads what changed from the store every second or so and applies
//! it (the products it serves keep the records their own actors hold).

use persistence::StoreError;

use super::Shop;

/// How far before the newest change already seen each read starts: a record is stamped by
/// its writer's clock a moment before its transaction commits, and nodes' clocks differ
/// a little, so a change stamped earlier than one already seen may still appear. Changes
/// read twice are applied once (an unchanged record is left alone).
pub const CATALOG_FOLLOW_OVERLAP_MS: u64 = 10_000;

impl Shop {
    /// Applies the catalog changes of other nodes' products stamped since `since_ms` (less
    /// the overlap), and returns the newest stamp seen: the next call's `since_ms`. Zero
    /// reads everything (a node's first call: sales of shards it does not serve are not
    /// loaded otherwise).
    pub async fn follow_catalog_changes(&self, since_ms: u64) -> Result<u64, StoreError> {
        let from = since_ms.saturating_sub(CATALOG_FOLLOW_OVERLAP_MS);
        let changes = self.ctx.stores().catalog.catalog_changes(from).await?;
        let mut newest = since_ms;
        let mut applied = 0usize;
        for (product, stamped_ms) in changes.products {
            newest = newest.max(stamped_ms);
            if self.ctx.admits(product.id) {
                continue;
            }
            self.ctx.observe_product_id(product.id);
            let known = self.ctx.catalog().get(product.id);
            if known.as_deref() != Some(&product) {
                self.ctx.catalog().put(product);
                applied += 1;
            }
        }
        for (sale, stamped_ms) in changes.sales {
            newest = newest.max(stamped_ms);
            if !self.ctx.admits(sale.product_id) {
                self.ctx.note_followed_sale(sale);
            }
        }
        if applied > 0 {
            tracing::debug!(applied, "followed other nodes' catalog changes");
        }
        Ok(newest)
    }
}
