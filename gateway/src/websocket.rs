//! How the live feeds' WebSockets are sized, on both ends (`routes/stock_feed.rs`,
//! `routes/tracking.rs`, and `feed_client.rs` for the node-to-node relays).
//!
//! Why this is set and not left to the defaults: tungstenite zero-fills its whole read
//! buffer (128 KiB by default) before every read attempt, and a feed's connection attempts
//! a read each time it wakes to send a frame (it watches for the client's close in the same
//! `select!`). With 1,000 screens of one product, that was 10,000 memsets of 128 KiB a
//! second: the engine spent ~50 µs per frame, most of it in `memset` (issue 14, the
//! `stock_feed` bench). What a feed reads is tiny (a ping, a close, a token), so a small
//! buffer loses nothing; it grows for a larger frame, up to the limits below.

use axum::extract::ws::WebSocketUpgrade;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read buffer of a feed's connection, on either end.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The largest message a feed's client may send: its token (`/ws/orders/{id}`), a ping or
/// a close. Anything larger closes the connection instead of buffering up to the default
/// 64 MiB.
pub const CLIENT_MESSAGE_MAX_BYTES: usize = 16 * 1024;

/// The server end of a feed.
pub fn feed_upgrade(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(CLIENT_MESSAGE_MAX_BYTES)
        .max_frame_size(CLIENT_MESSAGE_MAX_BYTES)
}

/// The client end of a feed (a node relaying another node's feed, a tool, a bench).
pub fn feed_client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES)
}
