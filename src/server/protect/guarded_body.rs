//! A response body that holds something (a concurrency permit, an in-flight token) until the
//! body is finished or dropped.
//!
//! An MCP answer over Streamable HTTP is often an SSE stream: the handler returns headers at
//! once and the tool's result comes later in the body. Whatever must last as long as the
//! request (a pool slot, the drain's in-flight count) is therefore tied to the body, not to
//! the handler's future.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::Response;
use http_body::{Frame, SizeHint};

struct GuardedBody<G> {
    inner: Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> http_body::Body for GuardedBody<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `response` with `guard` dropped when its body ends or is dropped.
pub(crate) fn hold_until_body_ends<G: Send + Unpin + 'static>(
    response: Response<Body>,
    guard: G,
) -> Response<Body> {
    response.map(|inner| {
        Body::new(GuardedBody {
            inner,
            _guard: guard,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn the_guard_lives_until_the_body_is_consumed() {
        let dropped = Arc::new(AtomicBool::new(false));
        let response =
            hold_until_body_ends(Response::new(Body::from("hello")), Flag(dropped.clone()));
        assert!(
            !dropped.load(Ordering::SeqCst),
            "dropped before the body was read"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert!(dropped.load(Ordering::SeqCst));
    }
}
