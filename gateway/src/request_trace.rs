//! Every request gets an id and a span: `X-Request-Id` from the caller (NGINX sets one) or a
//! fresh one, returned in the answer, and carried by every log line written while the
//! request is served, in the product actor's turn too (`actors::protocol::Waiter`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;

use crate::app::Limits;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-given id kept; longer or odd ones are replaced, not trusted into logs.
const REQUEST_ID_MAX: usize = 128;

/// One request's trace: its id, its span, and what the access log line says.
pub struct RequestTrace {
    id: HeaderValue,
    pub span: tracing::Span,
    details: Option<(Method, String)>,
    started: Instant,
}

/// The request's id (the caller's, else a new one, set on the request so a forwarding node
/// passes it on) and its span.
pub fn begin(limits: &Limits, request: &mut Request) -> RequestTrace {
    let id = match request.headers().get(&REQUEST_ID) {
        Some(given) if acceptable(given) => given.clone(),
        _ => {
            let generated = new_id();
            request.headers_mut().insert(REQUEST_ID, generated.clone());
            generated
        }
    };
    // Method and route, when something will show them (an exported span, the access log).
    let details = (limits.spans_exported || limits.access_log).then(|| {
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
        && limits.spans_exported
    {
        span.record("method", method.as_str());
        span.record("route", route.as_str());
    }
    RequestTrace {
        id,
        span,
        details,
        started: Instant::now(),
    }
}

impl RequestTrace {
    /// The id on the answer; its status on the span and in the access log.
    pub fn finish(self, limits: &Limits, response: &mut Response) {
        let status = response.status().as_u16();
        if limits.spans_exported {
            self.span.record("status", status);
        }
        if let Some((method, route)) = &self.details
            && limits.access_log
        {
            self.span.in_scope(|| {
                tracing::info!(
                    method = %method,
                    route = %route,
                    status,
                    elapsed_ms = self.started.elapsed().as_secs_f64() * 1_000.0,
                    "answered"
                );
            });
        }
        response.headers_mut().insert(REQUEST_ID, self.id);
    }
}

/// A new request id: this process's random prefix and a counter, 32 hex digits. Unique
/// across nodes and restarts in practice, and no clock or random read per request.
fn new_id() -> HeaderValue {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| uuid::Uuid::now_v7().as_u64_pair().1);
    let sequence = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::try_from(format!("{prefix:016x}{sequence:016x}"))
        .unwrap_or(HeaderValue::from_static("unknown"))
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
