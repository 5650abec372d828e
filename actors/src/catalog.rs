//! The catalog as a read model: every product's record in memory, for listings.
//!
//! Product actors own their records and write them here after each change is durable
//! (CQRS: the write side is the actor, this is the query side). Listing never touches an
//! actor, so browsing cannot slow Buy Now down.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use engine::{Money, Product, ProductId};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListSort {
    /// Most popular first, then by id for a stable order.
    #[default]
    Popularity,
    /// Cheapest first, then by id.
    Price,
    /// Best rated first, then the most popular, then by id.
    Rating,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ListQuery {
    pub category: Option<String>,
    pub price_min: Option<Money>,
    pub price_max: Option<Money>,
    /// Average rating at least this.
    pub rating_min: Option<f32>,
    /// Exact brand, case-insensitive.
    pub brand: Option<String>,
    pub sort: ListSort,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

#[derive(Clone, Debug)]
pub struct Page {
    pub items: Vec<Arc<Product>>,
    /// Products matching the filters, over all pages.
    pub total: u64,
}

#[derive(Default)]
struct Index {
    products: HashMap<ProductId, Arc<Product>>,
    by_category: HashMap<String, BTreeSet<ProductId>>,
    /// Bumped with every change of a product in the category (moved in or out included):
    /// a cached page of the category is current exactly while its number is.
    category_generations: HashMap<String, u64>,
    /// Bumped with every change: the number of listings across categories.
    generation: u64,
}

#[derive(Default)]
pub struct Catalog {
    // A std RwLock, not tokio's: it is never held across an await, and reads only clone
    // `Arc`s out, so hold times stay in microseconds.
    index: RwLock<Index>,
    /// Products changed since the search index last looked: a set, so a product edited
    /// many times is indexed once, and it never grows past the catalog.
    changed: std::sync::Mutex<HashSet<ProductId>>,
    changes: tokio::sync::Notify,
}

impl Catalog {
    pub fn from_products(products: impl IntoIterator<Item = Product>) -> Self {
        let catalog = Catalog::default();
        for product in products {
            catalog.put(product);
        }
        catalog
    }

    pub fn put(&self, product: Product) {
        self.changed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(product.id);
        self.changes.notify_one();
        let mut index = self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let product = Arc::new(product);
        if let Some(old) = index.products.insert(product.id, Arc::clone(&product))
            && old.category != product.category
        {
            if let Some(ids) = index.by_category.get_mut(&old.category) {
                ids.remove(&old.id);
            }
            *index
                .category_generations
                .entry(old.category.clone())
                .or_default() += 1;
        }
        *index
            .category_generations
            .entry(product.category.clone())
            .or_default() += 1;
        index.generation += 1;
        index
            .by_category
            .entry(product.category.clone())
            .or_default()
            .insert(product.id);
    }

    /// Waits until a product changed, then returns the changed ones (each once).
    pub async fn next_changes(&self) -> Vec<ProductId> {
        loop {
            let changed: Vec<ProductId> = self
                .changed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .drain()
                .collect();
            if !changed.is_empty() {
                return changed;
            }
            self.changes.notified().await;
        }
    }

    /// The number a cached listing of `category` (or of every category) is valid for.
    /// Read it before listing: a change bumps it and updates the products under one lock,
    /// so a listing made after reading a number is at least as new as that number.
    pub fn generation(&self, category: Option<&str>) -> u64 {
        let index = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match category {
            Some(category) => index
                .category_generations
                .get(category)
                .copied()
                .unwrap_or(0),
            None => index.generation,
        }
    }

    pub fn get(&self, id: ProductId) -> Option<Arc<Product>> {
        let index = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        index.products.get(&id).cloned()
    }

    pub fn contains(&self, id: ProductId) -> bool {
        let index = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        index.products.contains_key(&id)
    }

    pub fn ids(&self) -> Vec<ProductId> {
        let index = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut ids: Vec<ProductId> = index.products.keys().copied().collect();
        // In id order: callers (the preload) then touch the store in a repeatable order.
        ids.sort_unstable();
        ids
    }

    pub fn len(&self) -> usize {
        let index = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        index.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn list(&self, query: &ListQuery) -> Page {
        assert!(query.page >= 1 && query.page_size >= 1);
        let in_range = |product: &Product| {
            query.price_min.is_none_or(|min| product.price >= min)
                && query.price_max.is_none_or(|max| product.price <= max)
                && query.rating_min.is_none_or(|min| product.rating >= min)
                && query
                    .brand
                    .as_ref()
                    .is_none_or(|brand| product.brand.eq_ignore_ascii_case(brand))
        };
        let mut matches: Vec<Arc<Product>> = {
            let index = self
                .index
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match &query.category {
                Some(category) => index
                    .by_category
                    .get(category)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| index.products.get(id))
                    .filter(|product| in_range(product))
                    .cloned()
                    .collect(),
                None => index
                    .products
                    .values()
                    .filter(|product| in_range(product))
                    .cloned()
                    .collect(),
            }
        };
        match query.sort {
            ListSort::Popularity => matches
                .sort_unstable_by(|a, b| b.popularity.cmp(&a.popularity).then(a.id.cmp(&b.id))),
            ListSort::Price => {
                matches.sort_unstable_by(|a, b| a.price.cmp(&b.price).then(a.id.cmp(&b.id)))
            }
            ListSort::Rating => matches.sort_unstable_by(|a, b| {
                b.rating
                    .total_cmp(&a.rating)
                    .then(b.popularity.cmp(&a.popularity))
                    .then(a.id.cmp(&b.id))
            }),
        }
        let total = matches.len() as u64;
        let skip = (query.page as usize - 1).saturating_mul(query.page_size as usize);
        let items = matches
            .into_iter()
            .skip(skip)
            .take(query.page_size as usize)
            .collect();
        Page { items, total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: u64, category: &str, price: u64, popularity: u64) -> Product {
        Product {
            id: ProductId(id),
            title: format!("p{id}"),
            brand: "b".into(),
            category: category.into(),
            description: String::new(),
            price: Money(price),
            rating: 4.0,
            popularity,
            seller_id: None,
        }
    }

    fn query(category: Option<&str>, sort: ListSort) -> ListQuery {
        ListQuery {
            category: category.map(str::to_owned),
            price_min: None,
            price_max: None,
            rating_min: None,
            brand: None,
            sort,
            page: 1,
            page_size: 10,
        }
    }

    #[test]
    fn filters_sorts_and_pages() {
        let catalog = Catalog::from_products([
            product(1, "mobiles", 500, 10),
            product(2, "mobiles", 300, 30),
            product(3, "mobiles", 900, 20),
            product(4, "laptops", 100, 99),
        ]);
        let ids = |page: Page| page.items.iter().map(|p| p.id.0).collect::<Vec<_>>();
        assert_eq!(
            ids(catalog.list(&query(Some("mobiles"), ListSort::Popularity))),
            [2, 3, 1]
        );
        assert_eq!(
            ids(catalog.list(&query(Some("mobiles"), ListSort::Price))),
            [2, 1, 3]
        );
        let priced = ListQuery {
            price_min: Some(Money(300)),
            price_max: Some(Money(500)),
            ..query(None, ListSort::Price)
        };
        assert_eq!(ids(catalog.list(&priced)), [2, 1]);
        let second = ListQuery {
            page: 2,
            page_size: 2,
            ..query(Some("mobiles"), ListSort::Price)
        };
        let page = catalog.list(&second);
        assert_eq!(page.total, 3);
        assert_eq!(ids(page), [3]);
    }

    #[test]
    fn filters_by_rating_and_brand_and_sorts_by_rating() {
        let mut rated = product(1, "mobiles", 500, 10);
        rated.rating = 4.8;
        rated.brand = "Samsung".into();
        let mut poor = product(2, "mobiles", 300, 30);
        poor.rating = 2.5;
        poor.brand = "Samsung".into();
        let mut good = product(3, "mobiles", 900, 20);
        good.rating = 4.1;
        let catalog = Catalog::from_products([rated, poor, good]);
        let ids = |page: Page| page.items.iter().map(|p| p.id.0).collect::<Vec<_>>();
        assert_eq!(ids(catalog.list(&query(None, ListSort::Rating))), [1, 3, 2]);
        let four_up = ListQuery {
            rating_min: Some(4.0),
            ..query(None, ListSort::Price)
        };
        assert_eq!(ids(catalog.list(&four_up)), [1, 3]);
        let samsung = ListQuery {
            brand: Some("samsung".into()),
            ..query(None, ListSort::Price)
        };
        assert_eq!(ids(catalog.list(&samsung)), [2, 1]);
    }

    #[test]
    fn a_change_bumps_the_generation_of_every_listing_it_can_alter() {
        let catalog = Catalog::from_products([
            product(1, "mobiles", 500, 10),
            product(2, "laptops", 900, 10),
        ]);
        let before = |category| catalog.generation(category);
        let (mobiles, laptops, tablets, all) = (
            before(Some("mobiles")),
            before(Some("laptops")),
            before(Some("tablets")),
            before(None),
        );
        catalog.put(product(1, "mobiles", 450, 10));
        assert!(catalog.generation(Some("mobiles")) > mobiles);
        assert_eq!(catalog.generation(Some("laptops")), laptops);
        assert!(catalog.generation(None) > all);
        // Moving to another category changes both listings.
        let mobiles = catalog.generation(Some("mobiles"));
        catalog.put(product(1, "tablets", 450, 10));
        assert!(catalog.generation(Some("mobiles")) > mobiles);
        assert!(catalog.generation(Some("tablets")) > tablets);
    }

    #[test]
    fn moving_a_product_to_another_category_moves_it_in_listings() {
        let catalog = Catalog::from_products([product(1, "mobiles", 500, 10)]);
        catalog.put(product(1, "tablets", 500, 10));
        assert_eq!(
            catalog.list(&query(Some("mobiles"), ListSort::Price)).total,
            0
        );
        assert_eq!(
            catalog.list(&query(Some("tablets"), ListSort::Price)).total,
            1
        );
    }
}
