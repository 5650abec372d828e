//! What the shop reads and writes durably, one narrow trait per concern. In production
//! every one of them is the same `persistence::Database`; a test may put something else in
//! front of one (the simulation wraps the ledger in a fault injector).

use std::sync::Arc;

use persistence::{
    Carts, CatalogStore, Database, Deliveries, NotificationStore, OrderLedger, OrderLookup,
    ReviewStore, SellerStore, WishlistStore,
};

#[derive(Clone)]
pub struct ShopStores {
    /// The group-committed writes and the rebuild of a product's stock: the hot path.
    pub ledger: Arc<dyn OrderLedger>,
    pub orders: Arc<dyn OrderLookup>,
    pub catalog: Arc<dyn CatalogStore>,
    pub deliveries: Arc<dyn Deliveries>,
    pub reviews: Arc<dyn ReviewStore>,
    pub notifications: Arc<dyn NotificationStore>,
    pub wishlists: Arc<dyn WishlistStore>,
    pub sellers: Arc<dyn SellerStore>,
    pub carts: Carts,
}

/// How long an untouched cart line is kept when nothing else is said (the gateway's
/// `server.cart_retention_days` default).
pub const CART_RETENTION_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3_600);

impl ShopStores {
    /// Every concern, carts included, in one database (benches and tests).
    pub fn in_database(database: &Arc<Database>) -> Self {
        Self::of(
            database,
            Carts::in_database(database.clone(), CART_RETENTION_DEFAULT),
        )
    }

    /// Every concern from one database, carts where `carts` keeps them.
    pub fn of(database: &Arc<Database>, carts: Carts) -> Self {
        Self {
            ledger: database.clone(),
            orders: database.clone(),
            catalog: database.clone(),
            deliveries: database.clone(),
            reviews: database.clone(),
            notifications: database.clone(),
            wishlists: database.clone(),
            sellers: database.clone(),
            carts,
        }
    }
}
