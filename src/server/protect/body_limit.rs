//! The request body limit: a body declared (`Content-Length`) above the limit is refused with
//! 413 without being kept: what the client is still sending is read and thrown away (up to
//! [`DISCARD_CAP`] bytes and [`DISCARD_TIME`], as nginx's lingering close does), so that it
//! gets to read the 413 instead of a connection reset in the middle of its upload. A chunked
//! body that grows past the limit is cut off while streaming by rmcp's own limit (set to the
//! same value in `http.rs`), or by [`super::classify`] when it buffers; both answer 413, and
//! the pipeline logs those too.

use axum::extract::Request;
use axum::http::{StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::json;

use super::human_bytes;
use super::reject::Rejection;

/// The most of a refused body read (and dropped) before answering.
pub(crate) const DISCARD_CAP: u64 = 64 << 20;
/// The longest a refused upload is read before answering: a slow sender gets no more.
pub(crate) const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The 413 for a body of `size` bytes (or "more than the limit" when unknown).
pub(crate) fn too_large(size: Option<u64>, max: usize) -> Rejection {
    let what = match size {
        Some(n) => format!("{n} bytes"),
        None => format!("more than {max} bytes"),
    };
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        "body_limit",
        format!(
            "request body too large: {what}; this server accepts at most {} ({max} bytes); \
             send less, or start the server with a larger --max-body",
            human_bytes(max)
        ),
    )
    .data(json!({ "max_body_bytes": max, "body_bytes": size }))
}

pub(crate) fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Reads `body` to its end, keeping nothing.
pub(crate) async fn discard(mut body: axum::body::Body) {
    while let Some(Ok(_)) = body.frame().await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_sizes_and_the_flag() {
        let r = too_large(Some(50 * 1024 * 1024), 4 * 1024 * 1024);
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(r.message.contains("52428800 bytes"), "{}", r.message);
        assert!(r.message.contains("4 MiB"), "{}", r.message);
        assert!(r.message.contains("--max-body"), "{}", r.message);
        assert_eq!(r.body()["error"]["data"]["max_body_bytes"], 4 * 1024 * 1024);
    }
}
