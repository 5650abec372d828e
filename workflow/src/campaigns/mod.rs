//! Sale campaigns: when a sale is scheduled, every user who wishlisted its product gets a
//! push and an email ("Galaxy S24 at 499, today 12:00"), and a reminder shortly before the
//! start. For a popular phone that is a million people.
//!
//! - [`planner`]: the relay hands it `flash_sale_scheduled`; it plans the sale's two
//!   campaigns in the store (the announcement due now, the reminder due
//!   `reminder_before` the start). Planning again (a replayed event) changes nothing
//!   that started.
//! - [`runner`]: finds campaigns due, walks the product's wishers in user id order one
//!   keyset page at a time, queues one message per wisher, and stores the cursor after
//!   each page: memory does not grow with the wishers, and a restart continues from the
//!   cursor.
//! - [`queue`]: where a page goes: RabbitMQ's `campaigns` exchange when configured (a
//!   page counts as queued once the broker confirmed it), in process otherwise (a page
//!   counts once it was sent).
//! - [`messages`]: sending one message on one channel: skipped if its delivery is
//!   recorded, else through the [`Sender`](crate::jobs::Sender) at the marketing rate
//!   ([`crate::pacing`]: a token bucket shared by every worker), then recorded (the
//!   dedupe key, batched).
//!
//! A message goes out once: a page queued again after a crash finds its deliveries
//! recorded. The one gap is a message in flight at the crash (sent, not yet recorded): it
//! goes out again, with the same job id, which a provider's idempotency key absorbs.

pub mod messages;
pub mod planner;
pub mod queue;
pub mod runner;

use std::time::Duration;

/// The channels every campaign message goes out on.
pub const CAMPAIGN_CHANNELS: [&str; 2] = ["push", "email"];

#[derive(Clone, Debug)]
pub struct CampaignSettings {
    /// Marketing messages (campaigns and cart reminders) sent a second at most by this
    /// node, over every channel and worker.
    pub send_rate_per_second: u32,
    /// How long before a sale's start its reminder goes out.
    pub reminder_before: Duration,
    /// Wishers read and queued at a time.
    pub page_size: u32,
    /// How often the runner looks for campaigns that fell due.
    pub poll_interval: Duration,
    /// Messages in flight at once: in process, and per RabbitMQ worker (its prefetch).
    pub concurrency: u16,
}

impl Default for CampaignSettings {
    fn default() -> Self {
        Self {
            send_rate_per_second: 10_000,
            reminder_before: Duration::from_secs(600),
            page_size: 500,
            poll_interval: Duration::from_secs(1),
            concurrency: 256,
        }
    }
}
