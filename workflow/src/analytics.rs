//! Sales per product and trending products, kept from the event stream.
//!
//! Figures count each event they are given: with at-least-once delivery a replay after a
//! crash can count a few events twice, which analytics tolerates and billing would not.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use engine::{Money, ProductId};
use serde::Serialize;

use crate::event::EventBody;

/// What analytics reads of a `product_viewed` event.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Viewed {
    product_id: ProductId,
}

/// Width of one trending bucket.
const BUCKET_MS: u64 = 60_000;
/// A placed order says more about interest than a page view.
const ORDER_WEIGHT: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

#[derive(Default)]
struct Figures {
    sales: HashMap<ProductId, ProductSales>,
    buckets: VecDeque<Bucket>,
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
            figures: Mutex::new(Figures::default()),
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
                let Ok(Viewed { product_id }) = body.data::<Viewed>() else {
                    return;
                };
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
        let mut sales: Vec<ProductSales> = figures.sales.values().copied().collect();
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
        let mut trending: Vec<Trending> = totals
            .into_iter()
            .map(|(product_id, (views, orders_placed))| Trending {
                product_id,
                score: views + orders_placed * ORDER_WEIGHT,
                views,
                orders_placed,
            })
            .collect();
        trending.sort_by(|a, b| (b.score, a.product_id).cmp(&(a.score, b.product_id)));
        trending.truncate(limit);
        trending
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
