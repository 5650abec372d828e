//! axum's `Json`, `Path` and `Query`, with rejections in our error format instead of
//! axum's plain-text bodies.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use engine::IdempotencyKey;
use serde::de::DeserializeOwned;

use crate::app::ApiContext;
use crate::error::ApiError;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let (status, code) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (status, "payload_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (status, "unsupported_media_type"),
        // Well-formed JSON of the wrong shape: missing field, unknown field, wrong type.
        StatusCode::UNPROCESSABLE_ENTITY => (status, "invalid_body"),
        _ => (StatusCode::BAD_REQUEST, "malformed_json"),
    };
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a body with `Content-Type: application/json`".to_owned()
        }
        _ => rejection.body_text(),
    };
    ApiError::Rejected {
        status,
        code,
        message,
    }
}

pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    ApiError::Rejected {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_path",
        message: rejection.body_text(),
    }
}

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::Rejected {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_query",
        message: rejection.body_text(),
    }
}

/// The `Idempotency-Key` header as sent, checked by the handler with [`Self::key`] once the
/// caller's role is (so the answers' order does not change). Taken alone because an axum
/// `HeaderMap` extractor copies every header of every Buy Now.
pub struct IdempotencyKeyHeader(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.headers.get("idempotency-key").cloned()))
    }
}

impl IdempotencyKeyHeader {
    /// The key, required and well-formed.
    pub fn key(&self) -> Result<IdempotencyKey, ApiError> {
        let value = self.0.as_ref().ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "this header is required: a unique id per purchase attempt, reused on retries",
            )
        })?;
        let text = value
            .to_str()
            .map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?;
        IdempotencyKey::parse(text)
            .map_err(|error| ApiError::invalid("Idempotency-Key", error.to_string()))
    }
}

/// The request's headers, for a handler that may forward the request to another node
/// (`forward.rs`). Copied only on a cluster node: a node alone never forwards, and its Buy
/// Now does not pay for copying every header.
pub struct ForwardableHeaders(pub HeaderMap);

impl FromRequestParts<ApiContext> for ForwardableHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiContext,
    ) -> Result<Self, Self::Rejection> {
        if state.forwarder.is_some() {
            Ok(Self(parts.headers.clone()))
        } else {
            Ok(Self(HeaderMap::new()))
        }
    }
}
