//! vista studio: a page served by vista itself to try every feature on one's own images, in the
//! browser, against vista's own API (so keys, limits and errors are the real ones). Its files are
//! embedded in the binary, so it works offline and air-gapped; a strict Content-Security-Policy allows
//! only vista's own scripts, styles and API, and the page's `blob:`/`data:` images.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// `default-src 'self'`, and `blob:`/`data:` images for the user's own pictures and the cut-outs.
const POLICY: &str =
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; \
                      frame-ancestors 'none'; form-action 'none'";

/// (name, content type, body) of each embedded file.
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "studio.js",
        "text/javascript; charset=utf-8",
        include_str!("studio.js"),
    ),
    (
        "studio.css",
        "text/css; charset=utf-8",
        include_str!("studio.css"),
    ),
    ("favicon.svg", "image/svg+xml", include_str!("favicon.svg")),
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("index.html"),
    ),
];

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/studio", get(|| async { asset("index.html") }))
        .route("/studio/", get(|| async { asset("index.html") }))
        .route(
            "/studio/{name}",
            get(|Path(name): Path<String>| async move { asset(&name) }),
        )
}

fn asset(name: &str) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such studio file").into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
