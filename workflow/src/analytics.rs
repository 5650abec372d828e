//! Sales per product, trending products, and products bought or viewed together
//! ([`crate::recommendations`]), kept from the event stream.
//!
//! Figures count each event they are given: with at-least-once delivery a replay after a
//! crash can count a few events twice, which analytics tolerates and billing would not.
//!
//! On a cluster every node's consumer takes a share of the partitions, so each event is
//! counted by one node; the cluster's figures are the sum of the nodes' [`FiguresShare`]s.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{Money, ProductId, UserId};
use persistence::{NeighbourList, RecommendationStore, StoreError};
use serde::{Deserialize, Serialize};

use crate::event::EventBody;
use crate::recommendations::{CoOccurrence, RecommendationSettings};

/// What analytics reads of a `product_viewed` event.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Viewed {
    product_id: ProductId,
    /// Views of signed-in users pair within their session.
    #[serde(default)]
    user_id: Option<UserId>,
}

/// Width of one trending bucket.
const BUCKET_MS: u64 = 60_000;
/// A placed order says more about interest than a page view.
const ORDER_WEIGHT: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductSales {
    pub product_id: ProductId,
    /// Orders placed (reserved), paid or not.
    pub orders_placed: u64,
    /// Units of confirmed (paid) orders.
    pub units_sold: u64,
    /// Revenue of confirmed orders, in minor units.
    pub revenue: Money,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trending {
    pub product_id: ProductId,
    pub score: u64,
    pub views: u64,
    pub orders_placed: u64,
}

#[derive(Default)]
struct Bucket {
    start_ms: u64,
    views: HashMap<ProductId, u64>,
    orders: HashMap<ProductId, u64>,
}

struct Figures {
    sales: HashMap<ProductId, ProductSales>,
    buckets: VecDeque<Bucket>,
    together: CoOccurrence,
    events: u64,
}

pub struct Analytics {
    /// How far back trending looks.
    window_ms: u64,
    figures: Mutex<Figures>,
}

impl Analytics {
    pub fn new(window_ms: u64) -> Self {
        Self {
            window_ms: window_ms.max(BUCKET_MS),
            figures: Mutex::new(Figures {
                sales: HashMap::new(),
                buckets: VecDeque::new(),
                together: CoOccurrence::new(RecommendationSettings::default()),
                events: 0,
            }),
        }
    }

    /// Takes one event body; bodies it cannot read or does not count are skipped.
    pub fn record_payload(&self, payload: &[u8]) {
        match EventBody::parse(payload) {
            Ok(body) => self.record(&body),
            Err(error) => tracing::warn!(%error, "analytics skipped an event"),
        }
    }

    pub fn record(&self, body: &EventBody) {
        let mut figures = self.lock();
        figures.events += 1;
        match body.event_type.as_str() {
            "order_placed" => {
                let Ok(order) = body.order() else { return };
                let products: Vec<ProductId> = order.items.iter().map(|i| i.product_id).collect();
                figures
                    .together
                    .bought_together(&products, body.occurred_at_ms);
                for item in &order.items {
                    figures.sales_of(item.product_id).orders_placed += 1;
                    *self
                        .bucket(&mut figures, body.occurred_at_ms)
                        .orders
                        .entry(item.product_id)
                        .or_default() += 1;
                }
            }
            "order_confirmed" => {
                let Ok(order) = body.order() else { return };
                for item in &order.items {
                    let sales = figures.sales_of(item.product_id);
                    sales.units_sold += u64::from(item.quantity);
                    sales.revenue = Money(sales.revenue.0.saturating_add(
                        item.unit_price.0.saturating_mul(u64::from(item.quantity)),
                    ));
                }
            }
            "product_viewed" => {
                let Ok(Viewed {
                    product_id,
                    user_id,
                }) = body.data::<Viewed>()
                else {
                    return;
                };
                if let Some(user) = user_id {
                    figures
                        .together
                        .viewed(user, product_id, body.occurred_at_ms);
                }
                *self
                    .bucket(&mut figures, body.occurred_at_ms)
                    .views
                    .entry(product_id)
                    .or_default() += 1;
            }
            _ => {}
        }
    }

    /// Events taken so far (tests wait on it).
    pub fn events_recorded(&self) -> u64 {
        self.lock().events
    }

    /// Best sellers first (by units sold, then orders placed).
    pub fn sales(&self, limit: usize) -> Vec<ProductSales> {
        let figures = self.lock();
        let sales: Vec<ProductSales> = figures.sales.values().copied().collect();
        best_sellers(sales, limit)
    }

    pub fn sales_of(&self, product_id: ProductId) -> Option<ProductSales> {
        self.lock().sales.get(&product_id).copied()
    }

    /// Products by interest over the window: views plus weighted placed orders.
    pub fn trending(&self, limit: usize) -> Vec<Trending> {
        let since = now_ms().saturating_sub(self.window_ms);
        let figures = self.lock();
        let mut totals: HashMap<ProductId, (u64, u64)> = HashMap::new();
        for bucket in figures
            .buckets
            .iter()
            .filter(|bucket| bucket.start_ms + BUCKET_MS > since)
        {
            for (product, views) in &bucket.views {
                totals.entry(*product).or_default().0 += views;
            }
            for (product, orders) in &bucket.orders {
                totals.entry(*product).or_default().1 += orders;
            }
        }
        let trending = totals
            .into_iter()
            .map(|(product_id, (views, orders_placed))| Trending {
                product_id,
                score: views + orders_placed * ORDER_WEIGHT,
                views,
                orders_placed,
            })
            .collect();
        most_trending(trending, limit)
    }

    /// The products most often bought or viewed with `product` (this node's share of the
    /// stream), best first.
    pub fn bought_or_viewed_with(&self, product: ProductId, limit: usize) -> Vec<(ProductId, f64)> {
        self.lock().together.recommend(product, limit, now_ms())
    }

    /// Starts the recommendations from the lists saved before a restart.
    pub fn restore_together(&self, lists: Vec<NeighbourList>) {
        self.lock().together.restore(lists);
    }

    /// Saves the recommendation lists that changed since the last save as `node`'s;
    /// answers how many. Lists that could not be saved go with the next save.
    pub async fn save_together(
        &self,
        store: &dyn RecommendationStore,
        node: &str,
    ) -> Result<usize, StoreError> {
        let lists = self.lock().together.take_changed();
        if lists.is_empty() {
            return Ok(0);
        }
        match store.save_neighbour_lists(node, &lists).await {
            Ok(()) => Ok(lists.len()),
            Err(error) => {
                self.lock().together.unsaved(&lists);
                Err(error)
            }
        }
    }

    /// Everything this node counted: what a cluster sums up.
    pub fn share(&self) -> FiguresShare {
        FiguresShare {
            sales: self.sales(usize::MAX),
            trending: self.trending(usize::MAX),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Figures> {
        // Figures stay consistent even if a holder panicked: every update is one step.
        self.figures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The bucket of `at_ms`, dropping buckets older than the window.
    fn bucket<'f>(&self, figures: &'f mut Figures, at_ms: u64) -> &'f mut Bucket {
        let start_ms = at_ms - at_ms % BUCKET_MS;
        let horizon = now_ms().saturating_sub(self.window_ms + BUCKET_MS);
        while figures
            .buckets
            .front()
            .is_some_and(|bucket| bucket.start_ms < horizon)
        {
            figures.buckets.pop_front();
        }
        let position = figures
            .buckets
            .iter()
            .position(|bucket| bucket.start_ms == start_ms);
        let index = match position {
            Some(index) => index,
            None => {
                // Events arrive roughly in time order; keep the deque sorted anyway.
                let index = figures
                    .buckets
                    .partition_point(|bucket| bucket.start_ms < start_ms);
                figures.buckets.insert(
                    index,
                    Bucket {
                        start_ms,
                        ..Bucket::default()
                    },
                );
                index
            }
        };
        &mut figures.buckets[index]
    }
}

/// One node's figures, whole: every product's sales and its trending totals over the
/// window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiguresShare {
    pub sales: Vec<ProductSales>,
    pub trending: Vec<Trending>,
}

impl FiguresShare {
    /// The sum of several nodes' shares (each event was counted by one of them).
    pub fn merge(shares: impl IntoIterator<Item = FiguresShare>) -> Self {
        let mut sales: HashMap<ProductId, ProductSales> = HashMap::new();
        let mut trending: HashMap<ProductId, Trending> = HashMap::new();
        for share in shares {
            for part in share.sales {
                let sum = sales.entry(part.product_id).or_insert(ProductSales {
                    product_id: part.product_id,
                    orders_placed: 0,
                    units_sold: 0,
                    revenue: Money(0),
                });
                sum.orders_placed += part.orders_placed;
                sum.units_sold += part.units_sold;
                sum.revenue = Money(sum.revenue.0.saturating_add(part.revenue.0));
            }
            for part in share.trending {
                let sum = trending.entry(part.product_id).or_insert(Trending {
                    product_id: part.product_id,
                    score: 0,
                    views: 0,
                    orders_placed: 0,
                });
                sum.score += part.score;
                sum.views += part.views;
                sum.orders_placed += part.orders_placed;
            }
        }
        Self {
            sales: best_sellers(sales.into_values().collect(), usize::MAX),
            trending: most_trending(trending.into_values().collect(), usize::MAX),
        }
    }

    /// Best sellers first, as [`Analytics::sales`].
    pub fn sales(&self, limit: usize) -> Vec<ProductSales> {
        best_sellers(self.sales.clone(), limit)
    }

    pub fn sales_of(&self, product_id: ProductId) -> Option<ProductSales> {
        self.sales
            .iter()
            .find(|sales| sales.product_id == product_id)
            .copied()
    }

    /// Most interest first, as [`Analytics::trending`].
    pub fn trending(&self, limit: usize) -> Vec<Trending> {
        most_trending(self.trending.clone(), limit)
    }
}

fn best_sellers(mut sales: Vec<ProductSales>, limit: usize) -> Vec<ProductSales> {
    sales.sort_by(|a, b| {
        (b.units_sold, b.orders_placed, a.product_id).cmp(&(
            a.units_sold,
            a.orders_placed,
            b.product_id,
        ))
    });
    sales.truncate(limit);
    sales
}

fn most_trending(mut trending: Vec<Trending>, limit: usize) -> Vec<Trending> {
    trending.sort_by(|a, b| (b.score, a.product_id).cmp(&(a.score, b.product_id)));
    trending.truncate(limit);
    trending
}

impl Figures {
    fn sales_of(&mut self, product_id: ProductId) -> &mut ProductSales {
        self.sales.entry(product_id).or_insert(ProductSales {
            product_id,
            orders_placed: 0,
            units_sold: 0,
            revenue: Money(0),
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sold(product: u64, orders_placed: u64, units_sold: u64, revenue: u64) -> ProductSales {
        ProductSales {
            product_id: ProductId(product),
            orders_placed,
            units_sold,
            revenue: Money(revenue),
        }
    }

    fn trend(product: u64, views: u64, orders_placed: u64) -> Trending {
        Trending {
            product_id: ProductId(product),
            score: views + orders_placed * ORDER_WEIGHT,
            views,
            orders_placed,
        }
    }

    #[test]
    fn a_cluster_sums_its_nodes_shares() {
        let first = FiguresShare {
            sales: vec![sold(1, 3, 2, 200), sold(2, 1, 0, 0)],
            trending: vec![trend(1, 10, 3), trend(2, 1, 1)],
        };
        let second = FiguresShare {
            sales: vec![sold(2, 4, 4, 400)],
            trending: vec![trend(2, 20, 4), trend(3, 2, 0)],
        };
        let cluster = FiguresShare::merge([first, second]);
        assert_eq!(
            cluster.sales(10),
            vec![sold(2, 5, 4, 400), sold(1, 3, 2, 200)]
        );
        assert_eq!(cluster.sales_of(ProductId(1)), Some(sold(1, 3, 2, 200)));
        assert_eq!(cluster.sales_of(ProductId(3)), None);
        assert_eq!(
            cluster.trending(2),
            vec![trend(2, 21, 5), trend(1, 10, 3)],
            "scores add up, the top ones first"
        );
    }
}
