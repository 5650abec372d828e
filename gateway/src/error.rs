//! One error type for every route. Each variant maps to a status and a JSON body
//! `{"error": {"code": "sold_out", "message": "..."}}`; internal causes are logged, never
//! sent to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::time_format::format_rfc3339_ms;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request the framework could not even read (bad JSON, wrong content type, huge
    /// body, bad path or query parameter).
    #[error("{message}")]
    Rejected {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("this action needs another role")]
    Forbidden,
    #[error("{0}")]
    NotFound(String),
    #[error("sold out: {left} left")]
    SoldOut { left: u64 },
    #[error("per-user limit of {limit} reached ({held} held)")]
    LimitReached { limit: u32, held: u32 },
    #[error("the sale starts at {starts_at}")]
    SaleNotStarted { starts_at: String },
    #[error("the sale ended at {ended_at}")]
    SaleEnded { ended_at: String },
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Some lines of a checkout could not be reserved; nothing was. Each entry of `lines`
    /// names a product and why (`{productId, quantity, code, message}`).
    #[error("{message}")]
    LinesRefused {
        message: String,
        lines: Vec<serde_json::Value>,
    },
    #[error("too many requests for this product right now")]
    Overloaded,
    /// The caller used up its bucket of this class of request (`rate_limit.rs`).
    #[error("too many requests: try again in {} s", retry_after_secs(*wait))]
    RateLimited { wait: std::time::Duration },
    /// The engine could not make a decision durable. The cause goes to the log.
    #[error("the engine is temporarily unavailable")]
    Unavailable(String),
    /// A forwarded request reached a node that no longer serves the product's shard: the
    /// forwarding node reads the routes again and retries (`forward.rs`).
    #[error("shard {0} is served by another node now")]
    ShardMoved(u32),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The machine-readable code of this error, as in its JSON body.
    pub(crate) fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Rejected { status, code, .. } => (*status, code),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::SoldOut { .. } => (StatusCode::CONFLICT, "sold_out"),
            ApiError::LimitReached { .. } => (StatusCode::CONFLICT, "limit_reached"),
            ApiError::SaleNotStarted { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "sale_not_started")
            }
            ApiError::SaleEnded { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "sale_ended"),
            ApiError::IdempotencyKeyReused => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::LinesRefused { .. } => (StatusCode::CONFLICT, "lines_refused"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::ShardMoved(_) => (StatusCode::SERVICE_UNAVAILABLE, "shard_moved"),
        }
    }

    fn client_message(&self) -> String {
        match self {
            ApiError::Unavailable(_) => {
                "the engine could not confirm this request; retry with the same Idempotency-Key"
                    .into()
            }
            ApiError::Overloaded => {
                "too many requests for this product right now; retry shortly".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "answering 503"),
            ApiError::Overloaded | ApiError::RateLimited { .. } => crate::metrics::count_shed(code),
            ApiError::SoldOut { .. }
            | ApiError::LimitReached { .. }
            | ApiError::SaleNotStarted { .. }
            | ApiError::SaleEnded { .. }
            | ApiError::IdempotencyKeyReused => crate::metrics::count_refusal(code),
            _ => {}
        }
        let mut error = json!({ "code": code, "message": self.client_message() });
        match &self {
            ApiError::Invalid { field, .. } => error["field"] = json!(field),
            ApiError::LinesRefused { lines, .. } => error["lines"] = json!(lines),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if let ApiError::ShardMoved(shard) = &self {
            response
                .headers_mut()
                .insert(crate::forward::SHARD_MOVED, HeaderValue::from(*shard));
        }
        if let ApiError::RateLimited { wait } = &self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(*wait)),
            );
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            // Short on purpose: a flash sale is over in minutes.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<engine::product::Invalid> for ApiError {
    fn from(invalid: engine::product::Invalid) -> Self {
        ApiError::invalid(invalid.field, invalid.problem)
    }
}

/// Every reason a purchase is refused, as the engine names it: the one place it becomes
/// a status and a code (Buy Now and each line of a checkout).
impl From<actors::Refusal> for ApiError {
    fn from(refusal: actors::Refusal) -> Self {
        use actors::Refusal as R;
        match refusal {
            R::OutOfStock { left } => ApiError::SoldOut { left },
            R::LimitExceeded { limit, held } => ApiError::LimitReached { limit, held },
            R::SaleNotStarted { starts_at_ms } => ApiError::SaleNotStarted {
                starts_at: format_rfc3339_ms(starts_at_ms),
            },
            R::SaleEnded { ended_at_ms } => ApiError::SaleEnded {
                ended_at: format_rfc3339_ms(ended_at_ms),
            },
            R::KeyReused => ApiError::IdempotencyKeyReused,
        }
    }
}

impl From<actors::BuyNowError> for ApiError {
    fn from(error: actors::BuyNowError) -> Self {
        match error {
            actors::BuyNowError::UnknownProduct(id) => {
                ApiError::NotFound(format!("no product {id}"))
            }
            actors::BuyNowError::Overloaded(_) => ApiError::Overloaded,
        }
    }
}

/// Why one line of a checkout was refused: its code and message.
pub(crate) fn line_problem(reason: &actors::PrepareRefused) -> (&'static str, String) {
    use actors::PrepareRefused as P;
    match reason {
        P::UnknownProduct => ("not_found", "the product no longer exists".into()),
        P::Refused(refusal) => {
            let error = ApiError::from(refusal.clone());
            (error.code(), error.to_string())
        }
        P::Stock(error) => ("unavailable", error.to_string()),
        P::Unavailable(cause) => ("unavailable", cause.clone()),
    }
}

impl From<actors::CheckoutError> for ApiError {
    fn from(error: actors::CheckoutError) -> Self {
        use actors::CheckoutError as E;
        let field = match error {
            E::InvalidAddress => "addressId",
            E::InvalidPaymentMethod => "paymentMethod",
            E::Empty
            | E::TooManyLines
            | E::RepeatedProduct(_)
            | E::ZeroQuantity(_)
            | E::QuantityTooLarge(_)
            | E::TotalTooLarge => "cart",
        };
        ApiError::invalid(field, error.to_string())
    }
}

impl From<actors::CartError> for ApiError {
    fn from(error: actors::CartError) -> Self {
        use actors::CartError as E;
        match error {
            E::UnknownProduct(_) | E::NotInCart(_) => ApiError::NotFound(error.to_string()),
            E::InvalidQuantity { .. } | E::OverLimit { .. } => {
                ApiError::invalid("quantity", error.to_string())
            }
            E::TooManyProducts => ApiError::invalid("productId", error.to_string()),
            E::InsufficientStock { .. } => ApiError::Conflict {
                code: "insufficient_stock",
                message: error.to_string(),
            },
            E::Unavailable(cause) => ApiError::Unavailable(cause),
        }
    }
}

impl From<actors::WishlistError> for ApiError {
    fn from(error: actors::WishlistError) -> Self {
        use actors::WishlistError as E;
        match error {
            E::UnknownProduct(_) | E::NotListed(_) => ApiError::NotFound(error.to_string()),
            E::Full { .. } => ApiError::invalid("productId", error.to_string()),
            E::Unavailable(cause) => ApiError::Unavailable(cause),
        }
    }
}

impl From<actors::ReviewError> for ApiError {
    fn from(error: actors::ReviewError) -> Self {
        use actors::ReviewError as E;
        match error {
            E::UnknownProduct(_) => ApiError::NotFound(error.to_string()),
            E::Invalid(invalid) => invalid.into(),
            E::NotReceived(_) => ApiError::Rejected {
                status: StatusCode::FORBIDDEN,
                code: "not_received",
                message: error.to_string(),
            },
            E::AlreadyReviewed(_) => ApiError::Conflict {
                code: "already_reviewed",
                message: error.to_string(),
            },
            E::Unavailable(cause) => ApiError::Unavailable(cause),
        }
    }
}

impl From<actors::AdminError> for ApiError {
    fn from(error: actors::AdminError) -> Self {
        use actors::AdminError as E;
        match error {
            E::Invalid(invalid) => invalid.into(),
            E::UnknownProduct(id) => ApiError::NotFound(format!("no product {id}")),
            E::UnknownSale(id) => ApiError::NotFound(format!("no sale {id} scheduled or live")),
            E::ProductExists(id) => ApiError::Conflict {
                code: "product_exists",
                message: format!("product {id} already exists"),
            },
            E::SaleRefused(refused) => ApiError::Conflict {
                code: "sale_refused",
                message: refused.to_string(),
            },
            E::Unavailable(cause) => ApiError::Unavailable(cause),
            E::Moved(shard) => ApiError::ShardMoved(shard),
        }
    }
}

impl From<actors::OrderError> for ApiError {
    fn from(error: actors::OrderError) -> Self {
        use actors::OrderError as E;
        match error {
            E::NotFound(id) => ApiError::NotFound(format!("no order {id}")),
            E::Illegal(illegal) => ApiError::Conflict {
                code: "illegal_transition",
                message: illegal.to_string(),
            },
            E::NotInTransit(status) => ApiError::Conflict {
                code: "not_in_transit",
                message: format!("the order is {status}, not on its way"),
            },
            E::Unavailable(cause) => ApiError::Unavailable(cause),
            E::Moved(shard) => ApiError::ShardMoved(shard),
        }
    }
}

/// Whole seconds, rounded up and at least one: a client that waits `Retry-After` must find
/// a token in its bucket.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    u64::try_from(wait.as_millis().div_ceil(1_000))
        .unwrap_or(u64::MAX)
        .max(1)
}
