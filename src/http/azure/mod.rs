//! The Azure AI Vision surface: its routes per API family (Image Analysis 4.0 in `v4`, 3.2 in `v3`,
//! 3.2 `/ocr` in `ocr`, the asynchronous Read API in `read`, search vectors in `retrieval`,
//! background removal in `segment`), their JSON types, and Azure's error envelope in `error`.

pub mod custom;
pub mod error;
pub mod ocr;
pub mod products;
pub mod read;
pub mod retrieval;
pub mod segment;
pub mod v3;
pub mod v4;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use self::error::ApiError;
use super::auth::{Credentials, Offered, Presented, Verdict};
use super::query::QueryParams;
use super::AppState;

/// Azure's key header; the `subscription-key` query parameter (an APIM convention) works too.
pub const KEY_HEADER: &str = "ocp-apim-subscription-key";

/// Every route of the Azure surface.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/computervision/imageanalysis:analyze", post(v4::analyze))
        .route(
            "/computervision/imageanalysis:segment",
            post(segment::segment),
        )
        .route(
            "/computervision/retrieval:vectorizeImage",
            post(retrieval::vectorize_image),
        )
        .route(
            "/computervision/retrieval:vectorizeText",
            post(retrieval::vectorize_text),
        )
        .merge(v3::routes())
        .merge(ocr::routes())
        .merge(read::routes())
        .merge(custom::routes())
        .merge(products::routes())
}

/// The api-version of the query, if it is one of `versions` (as the caller may echo it); Azure's
/// errors when it is missing or another.
pub fn api_version(
    params: &QueryParams,
    versions: &[&'static str],
) -> Result<&'static str, ApiError> {
    match params.get("api-version") {
        Some(v) => versions.iter().find(|&&k| k == v).copied().ok_or_else(|| {
            ApiError::invalid(
                format!("The api-version '{v}' is not supported."),
                "UnsupportedApiVersion",
                format!("Supported api-versions: {}", versions.join(", ")),
            )
        }),
        None => Err(ApiError::invalid_request(format!(
            "The api-version query parameter is required; supported: {}",
            versions.join(", ")
        ))),
    }
}

/// Unix seconds as Azure writes its `createdDateTime`-style fields: RFC 3339 UTC with milliseconds.
pub fn timestamp(unix_seconds: f64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(unix_seconds.max(0.0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// Azure's finish of every response: the envelope on bare errors, the Read API's flat error fields
/// on its operations, and the `apim-request-id` header.
pub async fn finish(response: Response, path: &str, request_id: &str) -> Response {
    let mut response = with_envelope(response);
    if read::is_read_path(path) {
        response = read::with_flat_error(response, request_id).await;
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("apim-request-id", id);
    }
    response
}

/// Bodies of error responses made below the handlers (wrong method, a path no route has, an extractor's
/// refusal) are replaced by Azure's envelope, so every error a client sees has a code and a message.
fn with_envelope(response: Response) -> Response {
    let status = response.status();
    let has_body = response.headers().contains_key(CONTENT_TYPE);
    if !(status.is_client_error() || status.is_server_error()) || has_body {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "The HTTP method is not allowed for this resource.",
        StatusCode::NOT_FOUND => "Resource not found",
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.",
        _ => status.canonical_reason().unwrap_or("The request failed."),
    };
    let mut enveloped = ApiError::new(status, status.as_str(), message).into_response();
    for (name, value) in response.headers() {
        if !enveloped.headers().contains_key(name) && name != CONTENT_LENGTH {
            enveloped.headers_mut().insert(name, value.clone());
        }
    }
    enveloped
}

/// Middleware: rejects the request with Azure's 401 (403 for a token without the required role)
/// unless it carries an accepted key (`Ocp-Apim-Subscription-Key`, or the `subscription-key` query
/// parameter) or bearer token (`Authorization: Bearer`, what the SDKs send with a TokenCredential).
pub async fn authenticate(
    State(credentials): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    let offered = Offered::read(&request, KEY_HEADER, "subscription-key");
    let (key, bearer) = (offered.key.as_deref(), offered.bearer.as_deref());
    let presented = match (bearer, key) {
        (_, Some(key)) => Presented::Key(key),
        (Some(token), None) => Presented::Bearer(token),
        (None, None) => Presented::Nothing,
    };
    let verdict = credentials.check(presented);
    match verdict {
        Verdict::Accepted => next.run(request).await,
        Verdict::MissingCredential => ApiError::unauthorized(true).into_response(),
        Verdict::InvalidKey => ApiError::unauthorized(false).into_response(),
        Verdict::RefusedToken(refusal) => {
            tracing::info!(reason = %refusal, "bearer token refused");
            ApiError::token_refused(refusal.is_forbidden()).into_response()
        }
    }
}
