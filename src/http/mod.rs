//! The HTTP side: one folder per protocol surface (`azure/`, `google/`, `aws/`) over the pieces they share:
//! request intake (`intake`), keys (`auth`), query parsing (`query`), the connection loop (`serve`,
//! `tls`), the application state, the probes and one log line per request. Handlers validate, read
//! the image, and hand the work to the pipeline through the bounded worker pool.

pub mod auth;
pub mod aws;
pub mod azure;
pub mod deepstack;
pub mod docs;
pub mod google;
pub mod intake;
pub mod query;
pub mod serve;
pub mod studio;
pub mod tls;
pub mod token;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};

use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use self::auth::{ApiKeys, Credentials};
use self::azure::error::ApiError;
use self::token::TokenVerifier;
use crate::fetch::UrlFetcher;
use crate::metrics;
use crate::models::NO_MODEL;
use crate::pipeline::workers::WorkerPool;
use crate::pipeline::Pipeline;
use crate::read_jobs::ReadJobs;

pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub workers: WorkerPool,
    pub fetcher: UrlFetcher,
    pub reads: ReadJobs,
    /// Datasets, training and trained models (customization).
    pub custom: Arc<crate::custom::service::Customization>,
    /// The bearer-token verifier, when tokens are configured (for `/ready`).
    pub tokens: Option<Arc<TokenVerifier>>,
    /// "https" when vista terminates TLS itself, else "http": the scheme of `Operation-Location`
    /// unless a proxy in front names another.
    pub scheme: &'static str,
    pub google: google::Settings,
    /// The AWS surface's settings, its access keys among them.
    pub aws: aws::Settings,
    /// The keys the DeepStack surface accepts (its `api_key` field or the Azure key header): the Azure
    /// keys; `None` with `--no-auth`.
    pub deepstack_keys: Option<ApiKeys>,
    /// Serve the browser studio at /studio (`--no-studio` turns it off).
    pub studio: bool,
}

/// Who may call each surface; keys of one surface do not open another.
pub struct SurfaceAuth {
    pub azure: Credentials,
    pub google: ApiKeys,
}

/// Builds the whole router. `auth: None` turns authentication off (`--no-auth`); the AWS surface
/// checks signatures itself, with the keys in `state.aws`.
pub fn router(state: Arc<AppState>, auth: Option<SurfaceAuth>) -> Router {
    let mut api = azure::routes();
    let mut google = google::routes();
    if let Some(auth) = auth {
        api = api.route_layer(middleware::from_fn_with_state(
            Arc::new(auth.azure),
            azure::authenticate,
        ));
        google = google.route_layer(middleware::from_fn_with_state(
            Arc::new(auth.google),
            google::authenticate,
        ));
    }
    let api = api
        .merge(google)
        .merge(aws::routes())
        .merge(deepstack::routes());
    let mut probes = Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route("/ready", get(ready))
        .route("/metrics", get(|| async { metrics::render() }))
        .merge(docs::routes());
    if state.studio {
        probes = probes.merge(studio::routes());
    }
    api.merge(probes)
        // A path no surface knows answers in the first surface's words.
        .fallback(|| async { ApiError::not_found() })
        .with_state(state)
        // Bodies are streamed with per-route caps (see intake), which answer in Azure's words.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(observe))
}

/// `/ready`: 200 once the detector is loaded and the operation store answers, 503 with each model's
/// state and the store's otherwise.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let models = state.pipeline.models();
    let store_reachable = state.reads.store_reachable().await;
    let status = if models.detector.is_some() && store_reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let missing: Vec<_> = NO_MODEL
        .iter()
        .map(|(what, why)| json!({"feature": what, "reason": why}))
        .collect();
    (
        status,
        Json(
            json!({"ready": status == StatusCode::OK, "models": models.status, "noModel": missing,
            "store": if store_reachable { "reachable" } else { "unreachable" },
            "tokens": state.tokens.as_ref().map(|t| {
                let (keys, error) = t.status();
                json!({"keys": keys, "jwksError": error})
            })}),
        ),
    )
        .into_response()
}

/// The id of a request: sent back as `apim-request-id` / `request-id`, and as `requestId` in 3.2 bodies.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Request ids, metrics and one log line per request. Neither bodies nor keys are logged.
async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let request_id = uuid::Uuid::new_v4().to_string();
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let mut response = azure::finish(next.run(request).await, &path, &request_id).await;
    let elapsed = started.elapsed().as_secs_f64();
    let status = response.status();
    metrics::HTTP_REQUESTS
        .with_label_values(&[&route, status.as_str()])
        .inc();
    metrics::HTTP_LATENCY
        .with_label_values(&[&route])
        .observe(elapsed);
    tracing::info!(%method, %route, status = status.as_u16(), ms = (elapsed * 1000.0).round(), %request_id, "request");
    let id = HeaderValue::from_str(&request_id).expect("a uuid is a valid header value");
    response.headers_mut().insert("request-id", id);
    response
}
