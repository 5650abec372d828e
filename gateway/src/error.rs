//! One error type for every route. Each variant maps to a status and a JSON body
//! `{"error": {"code": "sold_out", "message": "..."}}`; internal causes are logged, never
//! sent to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
    /// The engine could not make a decision durable. The cause goes to the log.
    #[error("the engine is temporarily unavailable")]
    Unavailable(String),
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
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
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
        if let ApiError::Unavailable(cause) = &self {
            tracing::warn!(%cause, "answering 503");
        }
        let mut error = json!({ "code": code, "message": self.client_message() });
        match &self {
            ApiError::Invalid { field, .. } => error["field"] = json!(field),
            ApiError::LinesRefused { lines, .. } => error["lines"] = json!(lines),
            _ => {}
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
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

impl From<actors::AdminError> for ApiError {
    fn from(error: actors::AdminError) -> Self {
        use actors::AdminError as E;
        match error {
            E::Invalid(invalid) => invalid.into(),
            E::UnknownProduct(id) => ApiError::NotFound(format!("no product {id}")),
            E::ProductExists(id) => ApiError::Conflict {
                code: "product_exists",
                message: format!("product {id} already exists"),
            },
            E::SaleRefused(refused) => ApiError::Conflict {
                code: "sale_refused",
                message: refused.to_string(),
            },
            E::Unavailable(cause) => ApiError::Unavailable(cause),
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
        }
    }
}
