//! The explorer: a page app served at `/`, its script and style sheet embedded in the binary.
//! It reads the same `/v1` API as every other client. Everything it shows is attacker-chosen
//! text (program names, labels, error messages), so it builds the page from text nodes only and
//! runs under a Content-Security-Policy that allows no inline script or style, no other origin
//! and no framing.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../explorer/index.html");
const APP: &str = include_str!("../explorer/app.js");
const STYLE: &str = include_str!("../explorer/style.css");

/// What a page of the explorer may do: load its own script and style, call this API, nothing
/// else.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                       form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The explorer's routes (pages, not API: they are not in the OpenAPI document).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/explorer/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP) }))
        .route("/explorer/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
}
