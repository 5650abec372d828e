//! The HTTP face of the engine: thin by design. It authenticates, validates, translates
//! JSON to shop calls and outcomes to status codes; every business rule lives below it.
//!
//! Where does Buy Now go? `routes/buy_now.rs` -> `actors::Shop::buy_now`
//! (`actors/src/shop/buying.rs`) -> the product actor (`actors/src/product/mod.rs`) ->
//! `engine::stock::ProductStock::reserve` -> the group committer
//! (`persistence/src/group_commit.rs`).

pub mod api_doc;
pub mod app;
pub mod auth;
pub mod demo;
pub mod envelope;
pub mod error;
mod extract;
pub mod feed_client;
pub mod forward;
pub mod import;
pub mod metrics;
pub mod node_channel;
pub mod ops_cli;
pub mod rate_limit;
pub mod remote_feeds;
pub mod request_trace;
pub mod routes;
pub mod settings;
pub mod telemetry;
mod time_format;
pub mod unread_body;
pub mod websocket;

pub use app::{ApiContext, ApiParts, App};
pub use settings::Settings;
