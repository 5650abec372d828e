//! Every request gets an id and a span: `X-Request-Id` from the caller (NGINX sets one) or a
//! fresh one, returned in the answer, and carried by every log line written while the
//! request is served, in the product actor's turn too (`actors::protocol::Waiter`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

use crate::app::ApiContext;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-given id kept; longer or odd ones are replaced, not trusted into logs.
const REQUEST_ID_MAX: usize = 128;

/// The middleware: the request's span, its id both ways, and the access log line if asked.
pub async fn trace_request(
    State(ctx): State<ApiContext>,
    mut request: Request,
    next: Next,
) -> Response {
    let id = match request.headers().get(&REQUEST_ID) {
        Some(given) if acceptable(given) => given.clone(),
        _ => {
            let generated = HeaderValue::try_from(uuid::Uuid::now_v7().simple().to_string())
                .unwrap_or(HeaderValue::from_static("unknown"));
            // Forwarded to the product's node with the request (`forward.rs`), so both
            // nodes log the same id.
            request.headers_mut().insert(REQUEST_ID, generated.clone());
            generated
        }
    };
    // Method and route, when something will show them (an exported span, the access log).
    let details = (ctx.limits.spans_exported || ctx.limits.access_log).then(|| {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str)
            .to_owned();
        (request.method().clone(), route)
    });
    // Only the id is formatted into the span when it opens: the log layer formats every
    // field of every span it sees, once per request. The rest is recorded only for a
    // collector.
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = tracing::field::Empty,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    if let Some((method, route)) = &details
        && ctx.limits.spans_exported
    {
        span.record("method", method.as_str());
        span.record("route", route.as_str());
    }
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    if ctx.limits.spans_exported {
        span.record("status", status);
    }
    if let Some((method, route)) = &details
        && ctx.limits.access_log
    {
        span.in_scope(|| {
            tracing::info!(
                method = %method,
                route = %route,
                status,
                elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0,
                "answered"
            );
        });
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// Short, printable, no spaces: safe to put in every log line.
fn acceptable(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= REQUEST_ID_MAX
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:/+=".contains(byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_printable_ids_are_taken_from_callers() {
        let ok = |text: &str| acceptable(&HeaderValue::from_str(text).expect("header"));
        assert!(ok("nginx-3f2a9c"));
        assert!(ok("0b1e7d2c-8a9f-4c1e-9d3b-5a6f7e8d9c0b"));
        assert!(!ok(""));
        assert!(!ok("has space"));
        assert!(!ok("quote\"inside"));
        assert!(!ok(&"x".repeat(REQUEST_ID_MAX + 1)));
    }
}
