//! The Read API's routes (3.2, and 3.0 and 3.1, whose shapes are the same): `POST .../read/analyze`
//! checks a document (an image, a multi-page TIFF, a PDF) and its parameters and hands it to the
//! [`crate::read_jobs`], answering `202` with an `Operation-Location`; `GET .../read/analyzeResults/{id}`
//! renders the operation (`notStarted`, `running`, `succeeded` with Azure's `analyzeResult`, or
//! `failed`); `POST .../read/syncAnalyze` (the Read container's) reads the document while the client
//! waits and answers with the succeeded operation.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::{CONTENT_LENGTH, FORWARDED, HOST, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::error::ApiError;
use super::timestamp;
use crate::geometry::Quad;
use crate::http::intake::image_bytes;
use crate::http::query::QueryParams;
use crate::http::AppState;
use crate::pipeline::decode::{DecodeError, READ};
use crate::pipeline::{PipelineError, ReadPage};
use crate::read_jobs::{JobError, PageRanges, ReadRequest, MAX_PAGES};
use crate::store::{self, Status};

/// What the Read API's `modelVersion` says; vista has one reading model.
pub const READ_MODEL_VERSION: &str = "2022-04-30";
const READ_MODEL_VERSIONS: [&str; 3] = ["latest", "2021-04-12", "2022-04-30"];
/// What a client is told to wait when the store is unreachable or the backlog is full.
const RETRY_AFTER_SECONDS: u64 = 5;

// Read errors carry their fine code as the outer `code` (Ocr.json), unlike the rest of 3.2: hence
// `ApiError::new` without an inner error throughout.

/// The Read API versions served: 3.0 and 3.1 have 3.2's parameters and result graph.
pub const READ_VERSIONS: [&str; 3] = ["v3.0", "v3.1", "v3.2"];

pub fn routes() -> Router<Arc<AppState>> {
    READ_VERSIONS.iter().fold(Router::new(), |router, version| {
        router
            .route(&format!("/vision/{version}/read/analyze"), post(analyze))
            .route(
                &format!("/vision/{version}/read/syncAnalyze"),
                post(sync_analyze),
            )
            .route(
                &format!("/vision/{version}/read/analyzeResults/{{id}}"),
                get(results),
            )
    })
}

/// Whether `path` is one of the Read API's.
pub fn is_read_path(path: &str) -> bool {
    READ_VERSIONS
        .iter()
        .any(|v| path.starts_with(&format!("/vision/{v}/read/")))
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        match error {
            JobError::BacklogFull => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "429",
                format!(
                    "Too many documents are waiting to be read. Try again in {RETRY_AFTER_SECONDS} \
                     seconds."
                ),
            ),
            JobError::StoreUnavailable(e) => {
                tracing::error!("the read operation store failed: {e:#}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The operation store is unavailable; try again later.",
                )
            }
        }
        .retry_after(RETRY_AFTER_SECONDS)
    }
}

/// An error of the Read API: the fine code as the outer `code`, as Read's `Ocr.json` has it (a URL
/// that cannot be fetched: `InvalidImageUrl`).
fn read_error(error: ApiError) -> ApiError {
    match error.inner.clone() {
        Some((code, message)) => ApiError::new(error.status, &code, message),
        None => error,
    }
}

/// Why a document cannot be accepted, in Read's codes: `InvalidImageFormat`, `InvalidImageDimension`
/// (sides or pixels), `InvalidImageSize` (bytes), `InvalidImage` (a damaged or encrypted PDF).
fn document_error(error: PipelineError) -> ApiError {
    let code = match &error {
        PipelineError::Decode(DecodeError::InvalidFormat) => "InvalidImageFormat",
        PipelineError::Decode(
            DecodeError::InvalidSize { .. } | DecodeError::TooManyPixels { .. },
        ) => "InvalidImageDimension",
        PipelineError::Decode(DecodeError::InvalidByteSize { .. }) => "InvalidImageSize",
        PipelineError::Pdf(_) => "InvalidImage",
        PipelineError::Unavailable { .. }
        | PipelineError::Internal(_)
        | PipelineError::TimedOut { .. } => return error.into(),
    };
    ApiError::new(StatusCode::BAD_REQUEST, code, error.to_string())
}

/// A document accepted for reading: what to read of it, and the bytes.
struct Accepted {
    request: ReadRequest,
    document: bytes::Bytes,
}

/// Checks the parameters and the document (format, sides, pages; a damaged or encrypted PDF) the
/// way both the asynchronous and the synchronous routes need.
async fn accept(
    state: &AppState,
    query: Option<&str>,
    request: Request,
) -> Result<Accepted, ApiError> {
    let params = QueryParams::parse(query);
    if let Some(version) = params.get("model-version").or(params.get("modelVersion")) {
        if !READ_MODEL_VERSIONS.contains(&version) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidModelVersion",
                format!("Model version '{version}' is not available."),
            ));
        }
    }
    let pages = params.get("pages").unwrap_or("");
    let Some(selection) = PageRanges::parse(pages) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidPageRange",
            format!("The page range '{pages}' is not valid."),
        ));
    };
    let reading_order = params.get("readingOrder").map(str::to_ascii_lowercase);
    match reading_order.as_deref() {
        None | Some("basic") | Some("natural") => {}
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidReadingOrder",
                format!("Reading order '{other}' is not valid; use basic or natural."),
            ))
        }
    }
    if let Some(language) = params.get("language") {
        state
            .pipeline
            .check_reading(language)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "NotSupportedLanguage", e.0))?;
    }
    state
        .pipeline
        .check_available(&[crate::pipeline::Feature::Read])?;
    let document = image_bytes(request, &state.fetcher, READ.max_bytes)
        .await
        .map_err(|e| read_error(e.into()))?;
    // The document is checked now, not accepted to fail later.
    let (pipeline, checked) = (Arc::clone(&state.pipeline), document.clone());
    let page_count = tokio::task::spawn_blocking(move || pipeline.count_pages(&checked))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(document_error)?;
    if !(1..=page_count.min(MAX_PAGES)).any(|page| selection.contains(page)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidPageRange",
            format!("The page range '{pages}' selects none of the document's {page_count} pages."),
        ));
    }
    let request = ReadRequest {
        pages: selection,
        language: params.get("language").map(str::to_owned),
        natural_order: reading_order.as_deref() == Some("natural"),
        surface: None,
    };
    Ok(Accepted { request, document })
}

/// The version prefix of a Read path (`/vision/v3.1`), for the `Operation-Location` it answers with.
fn version_prefix(path: &str) -> &str {
    path.find("/read/").map_or("/vision/v3.2", |at| &path[..at])
}

async fn analyze(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let base = public_base(request.headers(), state.scheme);
    let prefix = version_prefix(request.uri().path()).to_string();
    let Accepted { request, document } = accept(&state, query.as_deref(), request).await?;
    let id = state.reads.submit(document, &request).await?;
    let location = format!("{base}{prefix}/read/analyzeResults/{id}");
    let mut response = StatusCode::ACCEPTED.into_response();
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("operation-location"),
        HeaderValue::from_str(&location).map_err(|_| ApiError::internal())?,
    );
    headers.insert(
        LOCATION,
        HeaderValue::from_str(&location).map_err(|_| ApiError::internal())?,
    );
    Ok(response)
}

/// `POST .../read/syncAnalyze`: the same checks and result graph, read while the client waits on the
/// interactive workers (so the bounded queue applies: 429 when full).
async fn sync_analyze(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<ReadOperation>, ApiError> {
    let Accepted { request, document } = accept(&state, query.as_deref(), request).await?;
    let started = store::now();
    let language = request.language.clone();
    let (pipeline, max_running) = (Arc::clone(&state.pipeline), state.reads.max_running());
    let pages = state
        .workers
        .run(move || {
            let selected = |page| request.pages.contains(page);
            let options = request.options(max_running);
            pipeline.read_document(&document, &selected, MAX_PAGES, &options)
        })
        .await?
        .map_err(document_error)?;
    Ok(Json(ReadOperation {
        status: Status::Succeeded,
        created_date_time: timestamp(started),
        last_updated_date_time: timestamp(store::now()),
        analyze_result: Some(analyze_result(pages, language.as_deref())),
        error: None,
    }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadOperation {
    status: Status,
    created_date_time: String,
    last_updated_date_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    analyze_result: Option<serde_json::Value>,
    /// Why a `failed` operation failed (the SDK keeps it in the raw response).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<FailureJson>,
}

#[derive(Debug, Serialize)]
struct FailureJson {
    code: &'static str,
    message: String,
}

async fn results(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ReadOperation>, ApiError> {
    // Another surface's operations are not Read API operations.
    let operation = state.reads.operation(id).await?;
    let operation = operation.filter(|o| o.request.surface.is_none());
    let operation = operation.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Operation ID is not found.",
        )
    })?;
    let language = operation.request.language.as_deref();
    Ok(Json(ReadOperation {
        status: operation.status,
        created_date_time: timestamp(operation.created),
        last_updated_date_time: timestamp(operation.updated),
        analyze_result: operation.pages.map(|pages| analyze_result(pages, language)),
        error: operation.error.map(|message| FailureJson {
            code: "InvalidImage",
            message,
        }),
    }))
}

/// An f32 as the f64 JSON numbers are made of, with the shortest decimal that reads back as the same
/// f32 (0.685, not 0.6850000023841858 as a widened f32 prints).
fn decimal(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// The 8-number box of 3.2 Read: four corners, clockwise from the text's top-left; whole pixels, or
/// inches to four decimals.
fn box_of(quad: &Quad, in_inches: bool) -> [f64; 8] {
    let round = |v: f32| {
        decimal(if in_inches {
            (v.max(0.0) * 1e4).round() / 1e4
        } else {
            v.max(0.0).round()
        })
    };
    let [a, b, c, d] = quad.0.map(|(x, y)| (round(x), round(y)));
    [a.0, a.1, b.0, b.1, c.0, c.1, d.0, d.1]
}

fn analyze_result(pages: Vec<ReadPage>, language: Option<&str>) -> serde_json::Value {
    let read_results: Vec<serde_json::Value> = pages
        .into_iter()
        .map(|page| {
            let lines: Vec<serde_json::Value> = page
                .text
                .lines
                .iter()
                .map(|line| {
                    json!({
                        "boundingBox": box_of(&line.polygon, page.in_inches),
                        "text": line.text,
                        "appearance": {"style": {"name": "other", "confidence": 1.0}},
                        "words": line.words.iter().map(|w| json!({
                            "boundingBox": box_of(&w.polygon, page.in_inches), "text": w.text, "confidence": decimal(w.confidence),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let mut result = json!({
                "page": page.number,
                "angle": decimal(page.text.angle),
                "width": decimal(page.width),
                "height": decimal(page.height),
                "unit": if page.in_inches { "inch" } else { "pixel" },
                "lines": lines,
            });
            if let Some(language) = language {
                result["language"] = json!(language);
            }
            result
        })
        .collect();
    json!({"version": "3.2.0", "modelVersion": READ_MODEL_VERSION, "readResults": read_results})
}

/// The scheme and host the client reached us by, for `Operation-Location`: what a TLS-terminating
/// proxy in front says (`Forwarded`, else `X-Forwarded-Proto` / `X-Forwarded-Host`), else `Host` and
/// our own `scheme`.
fn public_base(headers: &HeaderMap, scheme: &str) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The first proxy's element of `Forwarded: for=...;proto=https;host=example.com, for=...`.
    let forwarded = |key: &str| {
        header(FORWARDED.as_str())?
            .split(',')
            .next()?
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim_matches('"').to_string())
    };
    let first = |name: &str| {
        header(name)
            .and_then(|v| v.split(',').next())
            .map(str::trim)
    };
    let scheme = forwarded("proto")
        .or_else(|| first("x-forwarded-proto").map(str::to_string))
        .filter(|s| s == "https" || s == "http")
        .unwrap_or_else(|| scheme.to_string());
    let host = forwarded("host")
        .or_else(|| first("x-forwarded-host").map(str::to_string))
        .or_else(|| header(HOST.as_str()).map(str::to_string))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{scheme}://{host}")
}

/// The Read operations' errors as the 3.2 SDK reads them: besides Azure's envelope, the error's `code`,
/// `message` and `requestId` at the top level (msrest deserialises these operations' errors as the flat
/// `ComputerVisionOcrError` and otherwise shows only "Operation returned an invalid status code").
pub async fn with_flat_error(response: Response, request_id: &str) -> Response {
    if response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return ApiError::internal().into_response();
    };
    let mut json: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(json @ serde_json::Value::Object(_)) => json,
        _ => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    for field in ["code", "message"] {
        json[field] = json["error"][field].clone();
    }
    json["requestId"] = json!(request_id);
    let mut parts = parts;
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(json.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_location_follows_what_a_proxy_in_front_says() {
        let base = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            public_base(&headers, "http")
        };
        assert_eq!(base(&[("host", "10.0.0.5:5000")]), "http://10.0.0.5:5000");
        assert_eq!(
            base(&[("host", "10.0.0.5:5000"), ("x-forwarded-proto", "https")]),
            "https://10.0.0.5:5000"
        );
        assert_eq!(
            base(&[
                ("host", "10.0.0.5:5000"),
                ("x-forwarded-proto", "https, http"),
                ("x-forwarded-host", "vision.example.com")
            ]),
            "https://vision.example.com"
        );
        assert_eq!(
            base(&[
                ("host", "10.0.0.5:5000"),
                (
                    "forwarded",
                    "for=1.2.3.4;Proto=https;host=\"ocr.example.com\", for=5.6.7.8"
                )
            ]),
            "https://ocr.example.com"
        );
        // Only http and https are schemes a client can poll.
        assert_eq!(
            base(&[("host", "a:1"), ("x-forwarded-proto", "javascript")]),
            "http://a:1"
        );
        let direct_tls = HeaderMap::from_iter([(HOST, HeaderValue::from_static("a:1"))]);
        assert_eq!(public_base(&direct_tls, "https"), "https://a:1");
    }

    #[test]
    fn results_use_eight_number_boxes_and_pixel_units() {
        use crate::pipeline::read::{Orientation, PageText, TextLine, TextWord};
        let polygon = Quad([(1.2, 2.0), (50.0, 2.0), (50.0, 12.0), (1.2, 12.0)]);
        let line = TextLine {
            text: "Hi there".into(),
            polygon,
            words: vec![TextWord {
                text: "Hi".into(),
                polygon,
                confidence: 0.9,
            }],
        };
        let page = ReadPage {
            number: 2,
            width: 60.0,
            height: 20.0,
            in_inches: false,
            text: PageText {
                lines: vec![line],
                orientation: Some(Orientation::Up),
                angle: 0.5,
            },
        };
        let json = analyze_result(vec![page], Some("en"));
        let first = &json["readResults"][0];
        assert_eq!(
            (
                first["page"].as_u64(),
                first["unit"].as_str(),
                first["language"].as_str()
            ),
            (Some(2), Some("pixel"), Some("en"))
        );
        assert_eq!(
            first["lines"][0]["boundingBox"],
            json!([1.0, 2.0, 50.0, 2.0, 50.0, 12.0, 1.0, 12.0])
        );
        assert_eq!(first["lines"][0]["appearance"]["style"]["name"], "other");
        assert_eq!(first["lines"][0]["words"][0]["text"], "Hi");
        assert_eq!(timestamp(0.0), "1970-01-01T00:00:00.000Z");
        // Numbers print as their shortest f32 decimal, not the widened f64's digits.
        let inches = Quad([(0.685, 1.1), (8.5, 1.1), (8.5, 1.3), (0.685, 1.3)]);
        let text = serde_json::to_string(&box_of(&inches, true)).unwrap();
        assert_eq!(text, "[0.685,1.1,8.5,1.1,8.5,1.3,0.685,1.3]");
        assert_eq!(serde_json::to_string(&json!(decimal(0.9))).unwrap(), "0.9");
    }
}
