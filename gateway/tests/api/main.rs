//! The HTTP API against the real app (`App::build`, the production wiring) on the real
//! embedded store, one fresh data directory per test.

mod helpers;

mod abandoned_carts;
mod bad_input;
mod buy_now;
mod campaigns;
mod cart;
mod checkout;
mod cluster;
mod connections;
mod identity_provider;
mod import;
mod lifecycle;
mod manifests;
mod metrics;
mod nginx;
mod openapi;
mod outages;
mod payments;
mod payouts;
mod products;
mod rate_limits;
mod recommendations;
mod restart;
mod reviews;
mod sale_changes;
mod search;
mod stock_feed;
mod tracing;
mod tracking;
mod wishlist;
mod workflow;
