//! The marketing send rate. Sale campaigns and cart reminders go out at most at the rate
//! the email and push providers accept (`[campaigns] send_rate_per_second`): one token
//! bucket per node, shared by every worker, channel and kind. Transactional messages
//! (payment requests, order confirmations) are not paced: a million-message campaign must
//! not delay a buyer's confirmation behind it.

use std::num::NonZeroU32;
use std::sync::Arc;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::WorkflowError;
use crate::jobs::{Job, Sender};

/// The job kinds that wait for the marketing rate.
pub const PACED_KINDS: [&str; 3] = [SALE_SCHEDULED, SALE_STARTS_SOON, CART_REMINDER];
/// A sale campaign's announcement.
pub const SALE_SCHEDULED: &str = "sale_scheduled";
/// A sale campaign's reminder.
pub const SALE_STARTS_SOON: &str = "sale_starts_soon";
/// The one reminder of an abandoned cart.
pub const CART_REMINDER: &str = "cart_reminder";

/// A [`Sender`] that sends the kinds in [`PACED_KINDS`] at `per_second` at most.
pub struct PacedSender {
    inner: Arc<dyn Sender>,
    rate: DefaultDirectRateLimiter,
}

impl PacedSender {
    /// Bursts are a hundredth of the rate: a provider's contract is per second, and a
    /// whole second's worth at once would not honour it.
    pub fn new(inner: Arc<dyn Sender>, per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(per_second / 100).unwrap_or(NonZeroU32::MIN);
        Self {
            inner,
            rate: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
        }
    }
}

#[async_trait]
impl Sender for PacedSender {
    async fn send(&self, channel: &str, job: &Job) -> Result<(), WorkflowError> {
        if PACED_KINDS.contains(&job.kind.as_str()) {
            self.rate.until_ready().await;
        }
        self.inner.send(channel, job).await
    }
}
