//! The Google Cloud Vision v1 REST surface: `images:annotate` and `files:annotate` (and their
//! `projects/*` and `projects/*/locations/*` forms), Google's API-key auth, and its error shapes.
//! Each image of a batch runs the pipeline once for all its features; a bad image or a feature with
//! no model gets a per-image `error` while the rest of the batch (and the image's other features)
//! is answered.

pub mod error;
pub mod operations;
pub mod render;
pub mod request;
pub mod storage;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use self::error::{Code, Status};
use self::render::{PageUnits, Wire};
use self::request::{
    AnnotateFileRequest, AnnotateImageRequest, FeatureRequest, FeatureType, ImageContext, Sent,
};
use super::auth::{ApiKeys, Offered};
use super::intake::read_capped;
use super::AppState;
use crate::pipeline::decode::{ImageLimits, ANY_SIDE};
use crate::pipeline::read::ReadOptions;
use crate::pipeline::{Analysis, AnalysisOptions, Feature, Pipeline, ReadPage};

/// Images per `images:annotate` call, as Google allows.
const MAX_IMAGES: usize = 16;
/// Pages per `files:annotate` file, as Google allows.
const MAX_FILE_PAGES: usize = 5;
/// A request body: 16 images' base64 would exceed Google's own 10 MB; this admits one 20 MB image
/// (27 MB as base64) or several smaller ones.
const MAX_BODY_BYTES: usize = 40 * 1024 * 1024;
/// Labels returned when `maxResults` is not set (about what Google returns).
const DEFAULT_MAX_LABELS: usize = 10;

/// Google's image rules: 20 MB a file, no smallest side, the formats Image Analysis 4.0 takes
/// (Google's documented JPEG, PNG, GIF, BMP, WEBP and ICO, and TIFF).
pub const GOOGLE_IMAGES: ImageLimits = ANY_SIDE;

/// The deployment's settings of this surface.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Score limits of the Likelihood buckets.
    pub likelihood: [f32; 4],
    /// `gs://BUCKET/PATH` is read from `ROOT/BUCKET/PATH` when set.
    pub storage_root: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            likelihood: render::LIKELIHOOD_LIMITS,
            storage_root: None,
        }
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    let mut router = Router::new();
    for prefix in [
        "/v1",
        "/v1/projects/{project}",
        "/v1/projects/{project}/locations/{location}",
    ] {
        router = router
            .route(&format!("{prefix}/images:annotate"), post(annotate_images))
            .route(&format!("{prefix}/files:annotate"), post(annotate_files))
            .route(
                &format!("{prefix}/files:asyncBatchAnnotate"),
                post(operations::annotate_files_async),
            )
            .route(
                &format!("{prefix}/operations/{{id}}"),
                get(operations::get_operation),
            );
    }
    router.route(
        "/v1/locations/{location}/operations/{id}",
        get(operations::get_operation),
    )
}

/// Middleware: an API key in `x-goog-api-key`, `?key=` or `Authorization: Bearer`, checked against
/// the Google keys. No key: 403 PERMISSION_DENIED; a wrong key: 400 with reason API_KEY_INVALID, as
/// Google answers.
pub async fn authenticate(
    State(keys): State<Arc<ApiKeys>>,
    request: Request,
    next: Next,
) -> Response {
    let Offered { key, bearer } = Offered::read(&request, "x-goog-api-key", "key");
    match (key, bearer) {
        (Some(key), _) if keys.accepts(&key) => next.run(request).await,
        (None, Some(token)) if keys.accepts(&token) => next.run(request).await,
        (Some(_), _) => Status {
            reason: Some("API_KEY_INVALID"),
            ..Status::invalid("API key not valid. Please pass a valid API key.")
        }
        .into_response(),
        (None, Some(_)) => Status::new(
            Code::Unauthenticated,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
        .into_response(),
        (None, None) => Status::new(
            Code::PermissionDenied,
            "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        )
        .into_response(),
    }
}

/// Enums as numbers when the query carries `$alt=json;enum-encoding=int` (percent-encoded or not).
pub(super) fn wire(query: Option<&str>, settings: &Settings) -> Wire {
    let decoded = percent_encoding::percent_decode_str(query.unwrap_or("")).decode_utf8_lossy();
    Wire {
        ints: decoded.contains("enum-encoding=int"),
        likelihood: settings.likelihood,
    }
}

/// What one image asked for, checked: the pipeline features to run and the sections to render.
struct Plan {
    features: Vec<Feature>,
    /// (feature type, max results) of each answerable section.
    sections: Vec<(FeatureType, usize)>,
    /// Why requested features are not answered (per-image error, code 12), or a bad argument (code 3).
    refused: Vec<String>,
    invalid: Option<String>,
    options: AnalysisOptions,
    language: Option<String>,
}

fn plan(features: &[FeatureRequest], context: Option<&ImageContext>, pipeline: &Pipeline) -> Plan {
    let mut plan = Plan {
        features: Vec::new(),
        sections: Vec::new(),
        refused: Vec::new(),
        invalid: None,
        options: AnalysisOptions::default(),
        language: None,
    };
    let hints = context
        .map(|c| c.language_hints.as_slice())
        .unwrap_or_default();
    plan.language = hints.first().cloned();
    plan.options.read.language = plan.language.clone();
    if let Some(ratios) = context.and_then(|c| c.crop_hints_params.as_ref()) {
        plan.options.smart_crop_ratios = ratios.aspect_ratios.iter().take(16).copied().collect();
        if plan
            .options
            .smart_crop_ratios
            .iter()
            .any(|r| !(r.is_finite() && *r > 0.0))
        {
            plan.invalid = Some("cropHintsParams.aspectRatios must be positive".into());
        }
    }
    if features.is_empty() {
        plan.invalid = Some(
            "image-annotator::Malformed request.: Arguments must specify image and features!"
                .into(),
        );
    }
    for requested in features {
        let kind = match &requested.kind {
            Sent::Known(FeatureType::Unspecified) | Sent::Unknown(_) => {
                let sent = match &requested.kind {
                    Sent::Unknown(v) => v.clone(),
                    _ => "TYPE_UNSPECIFIED".into(),
                };
                plan.invalid = Some(format!("Invalid feature type: {sent}"));
                continue;
            }
            Sent::Known(kind) => *kind,
        };
        let needs: &[Feature] = match kind {
            FeatureType::LabelDetection => &[Feature::Tags],
            FeatureType::ObjectLocalization => &[Feature::Objects],
            FeatureType::FaceDetection => &[Feature::Faces],
            FeatureType::TextDetection | FeatureType::DocumentTextDetection => &[Feature::Read],
            FeatureType::SafeSearchDetection => &[Feature::Adult],
            FeatureType::ImageProperties => &[Feature::Palette],
            FeatureType::CropHints => &[Feature::SmartCrops],
            _ => {
                plan.refused.push(format!(
                    "vista: {} needs a model that is not installed",
                    kind.name()
                ));
                continue;
            }
        };
        if let Some(reason) = needs.iter().find_map(|f| pipeline.unavailable(*f)) {
            plan.refused
                .push(format!("vista: {} is not available: {reason}", kind.name()));
            continue;
        }
        if kind == FeatureType::TextDetection || kind == FeatureType::DocumentTextDetection {
            if let Some(unreadable) = hints.iter().find_map(|h| pipeline.check_reading(h).err()) {
                plan.invalid = Some(format!("Invalid language hint: {unreadable}"));
                continue;
            }
        }
        let max = requested.max_results.filter(|m| *m > 0).map(|m| m as usize);
        let max = max.unwrap_or(match kind {
            FeatureType::LabelDetection => DEFAULT_MAX_LABELS,
            _ => usize::MAX,
        });
        for feature in needs {
            if !plan.features.contains(feature) {
                plan.features.push(*feature);
            }
        }
        // The two OCR features render the same sections: one is enough.
        let same = |k: FeatureType| k == kind || (is_text(k) && is_text(kind));
        if !plan.sections.iter().any(|(k, _)| same(*k)) {
            plan.sections.push((kind, max));
        }
    }
    plan
}

/// The sections of one image's response from its analysis.
fn sections(
    analysis: &Analysis,
    plan: &Plan,
    wire: &Wire,
    pipeline: &Pipeline,
) -> Map<String, Value> {
    let name = |word: &str| cloud_name(pipeline, word);
    let size = (analysis.width, analysis.height);
    let mut out = Map::new();
    for &(kind, max) in &plan.sections {
        match kind {
            FeatureType::LabelDetection => {
                let tags = analysis.tags.as_deref().unwrap_or_default();
                out.insert("labelAnnotations".into(), render::labels(tags, max, name));
            }
            FeatureType::ObjectLocalization => {
                let objects = analysis.objects.as_deref().unwrap_or_default();
                out.insert(
                    "localizedObjectAnnotations".into(),
                    render::objects(objects, size, max, name),
                );
            }
            FeatureType::FaceDetection => {
                let faces = analysis.faces.as_deref().unwrap_or_default();
                out.insert("faceAnnotations".into(), render::faces(faces, max, wire));
            }
            FeatureType::TextDetection | FeatureType::DocumentTextDetection => {
                if let Some(page) = &analysis.text {
                    let units = PageUnits::Pixels {
                        width: size.0,
                        height: size.1,
                    };
                    let text = render::text(page, units, plan.language.as_deref(), wire);
                    out.insert("textAnnotations".into(), text.annotations);
                    out.insert("fullTextAnnotation".into(), text.full);
                }
            }
            FeatureType::SafeSearchDetection => {
                if let Some(rating) = &analysis.adult {
                    out.insert(
                        "safeSearchAnnotation".into(),
                        render::safe_search(rating, wire),
                    );
                }
            }
            FeatureType::ImageProperties => {
                let palette = analysis.palette.as_deref().unwrap_or_default();
                out.insert(
                    "imagePropertiesAnnotation".into(),
                    render::image_properties(palette),
                );
            }
            FeatureType::CropHints => {
                let crops = analysis.smart_crops.as_deref().unwrap_or_default();
                out.insert("cropHintsAnnotation".into(), render::crop_hints(crops));
            }
            _ => {}
        }
    }
    out
}

/// A word as Google and AWS write names: the everyday (Open Images) spelling where the vocabulary has
/// one ("cell phone" → "Mobile phone"), else the word with a capital first letter.
pub fn cloud_name(pipeline: &Pipeline, word: &str) -> String {
    let everyday = pipeline
        .models()
        .hierarchy
        .as_ref()
        .and_then(|h| h.everyday_name(word));
    match everyday {
        Some(name) => name.to_string(),
        None => {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        }
    }
}

/// The bytes of one image: inline content, an http(s) URL (through the URL guard) or a `gs://` path
/// under the storage root.
async fn image_bytes(state: &AppState, image: Option<&request::Image>) -> Result<Bytes, Status> {
    let missing = || {
        Status::invalid(
            "image-annotator::Malformed request.: Arguments must specify image and features!",
        )
    };
    let image = image.ok_or_else(missing)?;
    if let Some(content) = image.content.as_ref().filter(|c| !c.0.is_empty()) {
        return Ok(Bytes::from(content.0.clone()));
    }
    let uri = image
        .source
        .as_ref()
        .and_then(|s| s.uri())
        .ok_or_else(missing)?;
    if uri.starts_with("gs://") {
        let path = storage::mapped(state.google.storage_root.as_deref(), uri)?;
        return storage::read_object(&path, GOOGLE_IMAGES.max_bytes, uri).await;
    }
    Ok(state.fetcher.fetch(uri, GOOGLE_IMAGES.max_bytes).await?)
}

/// One image of a batch: its response object, or a whole-call error (overload).
async fn annotate_one(
    state: &Arc<AppState>,
    request: &AnnotateImageRequest,
    wire: &Wire,
) -> Result<Value, Status> {
    let plan = plan(
        &request.features,
        request.image_context.as_ref(),
        &state.pipeline,
    );
    let per_image = |status: Status| Ok(json!({"error": status.to_json()}));
    if let Some(message) = &plan.invalid {
        return per_image(Status::invalid(message.clone()));
    }
    let bytes = match image_bytes(state, request.image.as_ref()).await {
        Ok(bytes) => bytes,
        Err(status) => return per_image(status),
    };
    let mut response = Map::new();
    if !plan.features.is_empty() {
        let pipeline = Arc::clone(&state.pipeline);
        let (features, options) = (plan.features.clone(), plan.options.clone());
        let analysis = state
            .workers
            .run(move || pipeline.analyze(&bytes, &GOOGLE_IMAGES, &features, &options))
            .await?;
        match analysis {
            Ok(analysis) => response = sections(&analysis, &plan, wire, &state.pipeline),
            Err(e) => return per_image(e.into()),
        }
    }
    if !plan.refused.is_empty() {
        let status = Status::new(Code::Unimplemented, plan.refused.join("; "));
        response.insert("error".into(), status.to_json());
    }
    Ok(render::without_defaults(Value::Object(response)))
}

pub(super) async fn body_of(request: Request) -> Result<Bytes, Status> {
    Ok(read_capped(request.into_body(), MAX_BODY_BYTES).await?)
}

/// `POST /v1/images:annotate`: up to 16 images, answered in order.
async fn annotate_images(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<Value>, Status> {
    let wire = wire(query.as_deref(), &state.google);
    let batch = request::parse::<AnnotateImageRequest>(&body_of(request).await?)?;
    if batch.requests.is_empty() || batch.requests.len() > MAX_IMAGES {
        return Err(Status::invalid(format!(
            "A request must hold 1 to {MAX_IMAGES} images; it holds {}.",
            batch.requests.len()
        )));
    }
    let mut responses = Vec::with_capacity(batch.requests.len());
    for image in &batch.requests {
        responses.push(annotate_one(&state, image, &wire).await?);
    }
    Ok(Json(json!({ "responses": responses })))
}

/// The 1-based pages `requested` names among `total` (negative counts from the end), at most 5;
/// none named: the first 5.
fn file_pages(requested: &[i32], total: usize) -> Result<Vec<usize>, Status> {
    if requested.is_empty() {
        return Ok((1..=total.min(MAX_FILE_PAGES)).collect());
    }
    if requested.len() > MAX_FILE_PAGES {
        return Err(Status::invalid(format!(
            "At most {MAX_FILE_PAGES} pages can be requested."
        )));
    }
    requested
        .iter()
        .map(|&p| {
            let page = if p < 0 {
                total as i64 + 1 + p as i64
            } else {
                p as i64
            };
            if page >= 1 && page <= total as i64 {
                Ok(page as usize)
            } else {
                Err(Status::invalid(format!(
                    "Invalid page number {p}: the file has {total} pages."
                )))
            }
        })
        .collect()
}

/// `POST /v1/files:annotate`: one PDF, TIFF or GIF, up to 5 pages, text features per page.
async fn annotate_files(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<Value>, Status> {
    let wire = wire(query.as_deref(), &state.google);
    let batch = request::parse::<AnnotateFileRequest>(&body_of(request).await?)?;
    let [file] = &batch.requests[..] else {
        return Err(Status::invalid(
            "Exactly one file is supported per request.",
        ));
    };
    let config = file.input_config.clone().unwrap_or_default();
    let file_error = |status: Status| {
        Ok(Json(
            json!({"responses": [{"inputConfig": {"mimeType": config.mime_type}, "error": status.to_json()}]}),
        ))
    };
    if !["application/pdf", "image/tiff", "image/gif"].contains(&config.mime_type.as_str()) {
        return file_error(Status::invalid(
            "mimeType must be application/pdf, image/tiff or image/gif.",
        ));
    }
    let Some(content) = config.content.clone().filter(|c| !c.0.is_empty()) else {
        return file_error(Status::invalid(
            "inputConfig.content is required (gcsSource is for the asynchronous methods).",
        ));
    };
    let mut plan = plan(&file.features, file.image_context.as_ref(), &state.pipeline);
    if let Some(message) = plan.invalid.take() {
        return file_error(Status::invalid(message));
    }
    // Files are read for text; the other features are answered for images only.
    for (kind, _) in plan.sections.iter().filter(|(k, _)| !is_text(*k)) {
        plan.refused.push(format!(
            "vista: {} is answered for images, not files",
            kind.name()
        ));
    }
    plan.sections.retain(|(k, _)| is_text(*k));
    let pipeline = Arc::clone(&state.pipeline);
    let (requested, read, wants_text) = (
        file.pages.clone(),
        plan.options.read.clone(),
        !plan.sections.is_empty(),
    );
    let outcome = state
        .workers
        .run(move || read_file(&pipeline, &content.0, &requested, &read, wants_text))
        .await?;
    let (total, pages) = match outcome {
        Ok(found) => found,
        Err(status) => return file_error(status),
    };
    let refused = (!plan.refused.is_empty())
        .then(|| Status::new(Code::Unimplemented, plan.refused.join("; ")));
    let responses: Vec<Value> = pages
        .into_iter()
        .map(|(number, page)| {
            let mut response = Map::new();
            if let Some(page) = page {
                let text = render::text(&page.text, page.units, plan.language.as_deref(), &wire);
                response.insert("textAnnotations".into(), text.annotations);
                response.insert("fullTextAnnotation".into(), text.full);
            }
            if let Some(status) = &refused {
                response.insert("error".into(), status.to_json());
            }
            response.insert("context".into(), json!({"pageNumber": number}));
            render::without_defaults(Value::Object(response))
        })
        .collect();
    Ok(Json(
        json!({"responses": [{"inputConfig": {"mimeType": config.mime_type},
        "responses": responses, "totalPages": total}]}),
    ))
}

/// Whether `kind` is one of the two OCR features.
pub(super) fn is_text(kind: FeatureType) -> bool {
    matches!(
        kind,
        FeatureType::TextDetection | FeatureType::DocumentTextDetection
    )
}

/// A page of a file read for text, in Google's units.
pub(super) struct FilePage {
    pub text: crate::pipeline::read::PageText,
    pub units: PageUnits,
}

/// A page read by the pipeline in Google's units: PDF pages in points (Read reports inches), images
/// in pixels.
pub(super) fn file_page(page: ReadPage) -> FilePage {
    if page.in_inches {
        let points = |v: f32| v * 72.0;
        let units = PageUnits::Document {
            width: points(page.width),
            height: points(page.height),
        };
        FilePage {
            text: page.text.scaled(72.0),
            units,
        }
    } else {
        let units = PageUnits::Pixels {
            width: page.width as u32,
            height: page.height as u32,
        };
        FilePage {
            text: page.text,
            units,
        }
    }
}

type FilePages = (usize, Vec<(usize, Option<FilePage>)>);

/// Counts the file's pages, picks the requested ones and reads them (when text was asked for).
fn read_file(
    pipeline: &Pipeline,
    bytes: &[u8],
    requested: &[i32],
    read: &ReadOptions,
    wants_text: bool,
) -> Result<FilePages, Status> {
    let total = pipeline.count_pages(bytes).map_err(Status::from)?;
    let pages = file_pages(requested, total)?;
    if !wants_text {
        return Ok((total, pages.into_iter().map(|n| (n, None)).collect()));
    }
    let selected = |n: usize| pages.contains(&n);
    let last = pages.iter().copied().max().unwrap_or(0);
    let read = pipeline
        .read_document(bytes, &selected, last, read)
        .map_err(Status::from)?;
    let pages = read
        .into_iter()
        .map(|page| (page.number, Some(file_page(page))))
        .collect();
    Ok((total, pages))
}
