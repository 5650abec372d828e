//! Products, sales and stock: the admin's changes (each made by the product's actor) and
//! the reads that never touch an actor (the catalog read model).

use std::sync::Arc;

use engine::stock::Inventory;
use engine::{FlashSale, FlashSaleDraft, Product, ProductDraft, ProductEdit, ProductId, SaleId};
use ractor::rpc::CallResult;
use tokio::sync::watch;

use super::Shop;
use crate::catalog::{ListQuery, Page};
use crate::error::AdminError;
use crate::protocol::{ProductMsg, ProductUpdate, SaleChange, ShardMsg};
use crate::stock_feed::StockUpdate;

impl Shop {
    /// A new product with `stock` units, under `id` or the next free one.
    pub async fn create_product(
        &self,
        id: Option<ProductId>,
        draft: ProductDraft,
        stock: u64,
    ) -> Result<Product, AdminError> {
        engine::product::check_stock("stock", stock)?;
        let id = match id {
            Some(id) => {
                if id.0 == 0 {
                    return Err(engine::product::Invalid::new("id", "must be at least 1").into());
                }
                self.ctx.observe_product_id(id);
                id
            }
            None => self.allocate_served_product_id()?,
        };
        let product = draft.validate(id)?;
        let Some(shard) = self.ctx.shard(id) else {
            return Err(AdminError::Unavailable("the shop is not started".into()));
        };
        // The shard supervisor creates it: two admins creating one id cannot both win.
        let answer = shard
            .call(
                |reply| ShardMsg::Create {
                    product,
                    stock,
                    reply,
                },
                Some(self.ctx.settings().request_timeout),
            )
            .await;
        match answer {
            Ok(CallResult::Success(result)) => result,
            Ok(_) | Err(_) => Err(AdminError::Unavailable("the shard did not answer".into())),
        }
    }

    /// The next free id, among those whose shard this node serves. A node creates products
    /// only in its own shards, and it knows every product of them (it loads the catalog
    /// when it takes a shard), so an id it hands out is free in the cluster too; ids of
    /// other nodes' shards are skipped, not reused.
    fn allocate_served_product_id(&self) -> Result<ProductId, AdminError> {
        // With N nodes about one id in N is ours: this many tries miss once in a lifetime.
        let tries = 64 * self.ctx.settings().shard_count.max(1);
        for _ in 0..tries {
            let id = self.ctx.allocate_product_id();
            if self.ctx.admits(id) {
                return Ok(id);
            }
        }
        Err(AdminError::Unavailable(
            "this node serves no shard right now; create the product with an id".into(),
        ))
    }

    /// Changes a product's record (the fields `edit` names) and, with `stock`, its units
    /// on the shelf.
    pub async fn update_product(
        &self,
        id: ProductId,
        edit: ProductEdit,
        stock: Option<u64>,
    ) -> Result<Product, AdminError> {
        let update = ProductUpdate { edit, stock };
        self.call_product(id, |reply| ProductMsg::Update(Box::new(update), reply))
            .await?
    }

    pub fn product(&self, id: ProductId) -> Option<Arc<Product>> {
        self.ctx.catalog().get(id)
    }

    pub fn list_products(&self, query: &ListQuery) -> Page {
        self.ctx.catalog().list(query)
    }

    /// The catalog generation a cached listing of `category` is valid for (see
    /// [`crate::Catalog::generation`]).
    pub fn catalog_generation(&self, category: Option<&str>) -> u64 {
        self.ctx.catalog().generation(category)
    }

    /// Waits for catalog changes (the search index follows them); each changed product once.
    pub async fn next_catalog_changes(&self) -> Vec<ProductId> {
        self.ctx.catalog().next_changes().await
    }

    /// Every product id of the catalog.
    pub fn product_ids(&self) -> Vec<ProductId> {
        self.ctx.catalog().ids()
    }

    pub async fn schedule_sale(&self, draft: FlashSaleDraft) -> Result<FlashSale, AdminError> {
        let product_id = draft.product_id;
        if !self.ctx.catalog().contains(product_id) {
            return Err(AdminError::UnknownProduct(product_id));
        }
        let sale_id = self.ctx.allocate_sale_id(draft.product_id);
        let sale = draft.validate(sale_id, self.ctx.now_ms())?;
        self.call_product(product_id, |reply| {
            ProductMsg::ScheduleSale(Box::new(sale), reply)
        })
        .await?
    }

    /// The sale `id` while it is its product's current one: what [`Self::change_sale`]
    /// can change, and which product (and so which node) holds it.
    pub fn sale(&self, id: SaleId) -> Option<FlashSale> {
        self.ctx.sale(id)
    }

    /// Cancels a sale or moves it before it starts (see [`SaleChange`]); answers the sale
    /// as changed. Its campaign stops or follows through the sale's event.
    pub async fn change_sale(&self, change: SaleChange) -> Result<FlashSale, AdminError> {
        let sale_id = change.sale_id();
        let sale = self.sale(sale_id).ok_or(AdminError::UnknownSale(sale_id))?;
        self.call_product(sale.product_id, |reply| {
            ProductMsg::ChangeSale(Box::new(change), reply)
        })
        .await?
    }

    /// Sales that are scheduled or live, soonest first, with their products. Products not
    /// yet in memory are not listed until they are (the preload at start loads them all).
    pub fn current_sales(&self) -> Vec<(FlashSale, Arc<Product>)> {
        let now = self.ctx.now_ms();
        let mut sales: Vec<(FlashSale, Arc<Product>)> = self
            .ctx
            .sales()
            .into_iter()
            .filter(|sale| sale.phase(now) != engine::SalePhase::Ended)
            .filter_map(|sale| {
                let product = self.ctx.catalog().get(sale.product_id)?;
                Some((sale, product))
            })
            .collect();
        sales.sort_by_key(|(sale, _)| (sale.start_ms, sale.id));
        sales
    }

    pub async fn inventory(&self, id: ProductId) -> Result<Inventory, AdminError> {
        self.call_product(id, ProductMsg::Inventory).await
    }

    /// Live stock of a product: the current value at once, then each committed change.
    pub async fn watch_stock(
        &self,
        id: ProductId,
    ) -> Result<watch::Receiver<StockUpdate>, AdminError> {
        self.call_product(id, ProductMsg::Watch).await
    }
}
