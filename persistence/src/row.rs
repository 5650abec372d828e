//! Reading rows the same way from both databases, so each concern decodes its rows once.
//!
//! The databases store the same values in different column types: PostgreSQL has `INT4`,
//! `INT2`, `REAL` and `uuid` columns where SQLite has one integer type, one real type and
//! text. [`StoredRow`] reads a column as the widest of its kind (`i64`, `f64`, a `Uuid`),
//! whatever the column's type, and the provided methods turn those into the engine's
//! types. Databases store signed 64-bit integers while the engine counts in unsigned ones;
//! every value the engine stores is bounded far below `i64::MAX`, so a failed conversion
//! means corrupt data or a bug, and is reported as such.

use std::str::FromStr;

use engine::order::OrderStatus;
use engine::stock::LineState;
use engine::{IdempotencyKey, Money, OrderId, ProductId, SaleId, UserId};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::error::StoreError;

/// One row, from either database.
pub(crate) trait StoredRow {
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn real(&self, column: &str) -> Result<Option<f64>, StoreError>;
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError>;

    fn uint(&self, column: &str) -> Result<u64, StoreError> {
        uint(self.int(column)?)
    }

    fn opt_uint(&self, column: &str) -> Result<Option<u64>, StoreError> {
        self.opt_int(column)?.map(uint).transpose()
    }

    /// A count that fits a `u32` (quantities, limits).
    fn units(&self, column: &str) -> Result<u32, StoreError> {
        let value = self.int(column)?;
        u32::try_from(value)
            .map_err(|_| StoreError::Decode(format!("{column} {value} is out of range")))
    }

    fn money(&self, column: &str) -> Result<Money, StoreError> {
        self.uint(column).map(Money)
    }

    fn product_id(&self, column: &str) -> Result<ProductId, StoreError> {
        self.uint(column).map(ProductId)
    }

    fn user_id(&self, column: &str) -> Result<UserId, StoreError> {
        self.uint(column).map(UserId)
    }

    fn sale_id(&self, column: &str) -> Result<Option<SaleId>, StoreError> {
        Ok(self.opt_uint(column)?.map(SaleId))
    }

    fn order_id(&self, column: &str) -> Result<OrderId, StoreError> {
        self.opt_order_id(column)?
            .ok_or_else(|| StoreError::Decode(format!("{column} is NULL")))
    }

    fn opt_order_id(&self, column: &str) -> Result<Option<OrderId>, StoreError> {
        Ok(self.opt_uuid(column)?.map(OrderId))
    }

    fn status(&self, column: &str) -> Result<OrderStatus, StoreError> {
        let text = self.text(column)?;
        OrderStatus::from_str(&text).map_err(|_| StoreError::Decode(format!("order status {text}")))
    }

    fn idempotency_key(&self, column: &str) -> Result<IdempotencyKey, StoreError> {
        IdempotencyKey::parse_stored(&self.text(column)?)
            .map_err(|error| StoreError::Decode(error.to_string()))
    }
}

impl StoredRow for SqliteRow {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn real(&self, column: &str) -> Result<Option<f64>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        let text: Option<String> = self.try_get(column)?;
        text.map(|text| {
            Uuid::from_str(&text)
                .map_err(|error| StoreError::Decode(format!("{column} {text}: {error}")))
        })
        .transpose()
    }
}

impl StoredRow for PgRow {
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| StoreError::Decode(format!("{column} is NULL")))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        // The narrower integer columns (quantities, limits, ratings) read as i64 too.
        if let Ok(value) = self.try_get::<Option<i64>, _>(column) {
            return Ok(value);
        }
        if let Ok(value) = self.try_get::<Option<i32>, _>(column) {
            return Ok(value.map(i64::from));
        }
        Ok(self.try_get::<Option<i16>, _>(column)?.map(i64::from))
    }

    fn real(&self, column: &str) -> Result<Option<f64>, StoreError> {
        if let Ok(value) = self.try_get::<Option<f64>, _>(column) {
            return Ok(value);
        }
        Ok(self.try_get::<Option<f32>, _>(column)?.map(f64::from))
    }

    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.try_get(column)?)
    }
}

/// An engine count as a database integer.
pub(crate) fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{value} does not fit a BIGINT")))
}

pub(crate) fn uint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Decode(format!("negative value {value}")))
}

/// Where an order's units are, as the stock state machine sees it.
pub(crate) fn line_state(status: OrderStatus) -> LineState {
    if status.holds_reservation() {
        LineState::Reserved
    } else if status.is_sold() {
        LineState::Sold
    } else {
        LineState::Released
    }
}
