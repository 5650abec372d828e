//! A request answered before its body was read (401 from the token check, 413 from the
//! declared length, 429 from the rate limit...) says `Connection: close`.
//!
//! Why: hyper keeps a connection alive after such an answer only if the rest of the body is
//! already in its buffer; otherwise it closes the connection, silently. A client that sent
//! its headers and body in two writes then finds a broken pipe on its next request. Reading
//! the unread body to the end would cost the engine what the early answer saved (and let an
//! unauthenticated caller make it read); telling the client is free.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// Whether a request's body was read to its end, once the answer is ready.
pub struct BodyWatch(Option<Arc<AtomicBool>>);

/// Watches the body of `request`, if it has one.
pub fn watch(request: Request) -> (Request, BodyWatch) {
    if request.body().is_end_stream() {
        return (request, BodyWatch(None));
    }
    let read_to_end = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(Watched {
            inner: body,
            read_to_end: Arc::clone(&read_to_end),
        })
    });
    (request, BodyWatch(Some(read_to_end)))
}

impl BodyWatch {
    /// `Connection: close` on `response` if the body was left unread.
    pub fn finish(self, response: &mut Response) {
        if let Some(read_to_end) = self.0
            && !read_to_end.load(Ordering::Acquire)
        {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

/// `Connection: close` on an answer given without touching the request's body at all,
/// if it has one.
pub fn close_unread(request: &Request, response: &mut Response) {
    if !request.body().is_end_stream() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// A body that notes when it has been read to its end.
struct Watched {
    inner: Body,
    read_to_end: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.read_to_end.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
