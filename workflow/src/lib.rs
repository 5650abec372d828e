//! Events and the order workflow around the engine.
//!
//! The engine writes every event to the outbox in the transaction of the change it
//! describes. From there:
//! - [`relay`] hands each batch of the outbox to its sinks (Kafka, the workflow, local
//!   analytics) and deletes the batch only when every sink took it: at least once, never lost.
//! - [`analytics`] keeps sales per product and trending products, fed by the `analytics`
//!   Kafka consumer group (or straight from the relay when Kafka is not configured).
//! - [`saga`] is the order workflow: payment initiated, confirmations sent, a delivery
//!   partner assigned, customers told when an order fails. It runs over RabbitMQ
//!   ([`rabbit`]) when configured, in process otherwise ([`local`]).
//! - [`jobs`] are the notifications it sends, with attempts, backoff, delays and a
//!   concurrency limit; the default [`jobs::RecordingSender`] writes them to the store.
//! - [`campaigns`] tell every wisher of a product about its sale, and remind them before
//!   it starts, at a global send rate, each message once, resumable after a restart.
//! - [`cart_reminders`] send an abandoned cart its one reminder; [`pacing`] keeps campaign
//!   messages and cart reminders within the providers' rate.
//! - [`payout_notices`] tell a seller of each payout a delivery released.
//! - [`recommendations`] counts products bought and viewed together, for [`analytics`].

pub mod analytics;
mod batcher;
pub mod campaigns;
pub mod cart_reminders;
mod error;
pub mod event;
pub mod jobs;
pub mod kafka;
pub mod local;
mod notices;
pub mod pacing;
pub mod payout_notices;
pub mod rabbit;
pub mod recommendations;
pub mod relay;
mod runtime;
pub mod saga;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use error::WorkflowError;
pub use runtime::{Workflow, WorkflowSettings, WorkflowStores};
