//! Conversions shared by the SQL backends: databases store signed 64-bit integers, the
//! engine counts in unsigned ones; every value the engine stores is bounded far below
//! `i64::MAX`, so a failure here means corrupt data or a bug, reported as such.

use std::str::FromStr;

use engine::IdempotencyKey;
use engine::order::OrderStatus;
use engine::stock::LineState;

use crate::error::StoreError;

pub fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{value} does not fit a BIGINT")))
}

pub fn uint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Decode(format!("negative value {value}")))
}

pub fn small(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Decode(format!("{what} {value} is out of range")))
}

pub fn status(text: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::from_str(text).map_err(|_| StoreError::Decode(format!("order status {text}")))
}

pub fn idempotency_key(text: &str) -> Result<IdempotencyKey, StoreError> {
    IdempotencyKey::parse_stored(text).map_err(|error| StoreError::Decode(error.to_string()))
}

/// Where an order's units are, as the stock state machine sees it.
pub fn line_state(status: OrderStatus) -> LineState {
    if status.holds_reservation() {
        LineState::Reserved
    } else if status.is_sold() {
        LineState::Sold
    } else {
        LineState::Released
    }
}
