use std::time::Duration;

use persistence::GroupCommitSettings;

/// Every bound of the actor layer, with the reason for its default.
#[derive(Clone, Debug)]
pub struct ShopSettings {
    /// Virtual shards. Fixed for the life of a deployment: it is the unit a cluster moves
    /// between nodes, so it must be much larger than any node count (256 nodes at most).
    pub shard_count: u32,
    /// Requests one product may hold unanswered. Little's law sets it: the latency budget
    /// (p99 50 ms, so ~25 ms typical) times the peak one product sustains (~10K orders/s)
    /// is ~250 in flight. Past that, a buyer would only queue behind others, so the engine
    /// answers 503 at once and admitted buyers keep their latency (measured: with 512,
    /// admitted buyers waited 65 ms at p50 under 3x overload).
    pub in_flight_per_product_max: u32,
    /// Stock values per second a watched product publishes to live screens, at most (sold
    /// out goes at once): ten a second reads as live to a person, and a product selling
    /// 10K a second does not wake every screen 500 times a second.
    pub stock_feed_rate_per_second: u32,
    /// Load every product's state into memory in the background after start, so first
    /// requests need no store read (a million products take ~0.8 GiB).
    pub preload_on_start: bool,
    /// How long an unpaid order keeps its units (the platform's 10 minutes).
    pub reservation_ttl: Duration,
    /// How long a caller waits for an answer before it gets 503. Above the commit timeout,
    /// so a slow commit is reported as such rather than as a lost reply.
    pub request_timeout: Duration,
    /// A product actor with no request for this long is stopped; it is rebuilt from the
    /// store on the next request. Keeps memory proportional to the products in demand.
    pub passivate_after: Duration,
    /// How often each shard looks for idle product actors.
    pub passivation_sweep_every: Duration,
    /// How long a Buy Now idempotency key keeps answering after its order settled. Clients
    /// retry within seconds; a day covers any sane retry policy.
    pub idempotency_retention: Duration,
    /// Pause before a product actor that could not reload from the store tries again.
    pub recovery_retry: Duration,
    /// Units of one product in one order (a Buy Now, a cart line) at most.
    pub quantity_per_order_max: u32,
    /// Products on one customer's wishlist at most: a list is read whole to render, and
    /// 500 is far past what a person keeps (and bounds what a bad client can store).
    pub wishlist_items_max: u32,
    /// What the marketplace keeps of a seller's line when it pays them on delivery.
    pub commission: crate::payouts::CommissionRates,
    pub group_commit: GroupCommitSettings,
}

impl Default for ShopSettings {
    fn default() -> Self {
        Self {
            shard_count: 256,
            in_flight_per_product_max: 256,
            preload_on_start: true,
            stock_feed_rate_per_second: 10,
            reservation_ttl: Duration::from_secs(600),
            request_timeout: Duration::from_secs(3),
            passivate_after: Duration::from_secs(600),
            passivation_sweep_every: Duration::from_secs(60),
            idempotency_retention: Duration::from_secs(24 * 3600),
            recovery_retry: Duration::from_millis(500),
            // A flash sale limits buyers to a few units; ten covers every real basket.
            quantity_per_order_max: 10,
            wishlist_items_max: 500,
            commission: crate::payouts::CommissionRates::default(),
            group_commit: GroupCommitSettings::default(),
        }
    }
}
