//! Product recognition (2023-04-01-preview): runs of a custom detector over a shelf photo (products,
//! and the gaps between them) and planogram matching. Microsoft's pretrained product detector has no
//! counterpart in any registry package, so its name is answered with an error that says so.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::custom::{json_body, page, versioned, Page};
use super::error::ApiError;
use super::timestamp;
use super::v4::{BoundingBox, DetectedTag};
use crate::custom::products::{gaps, match_planogram, Planogram, ProductResult, ShelfObject};
use crate::custom::records::RunRecord;
use crate::geometry::PixelRect;
use crate::http::intake::image_bytes;
use crate::http::query::QueryParams;
use crate::http::AppState;
use crate::models::custom_head::CustomHead;
use crate::pipeline::custom::CustomResult;
use crate::pipeline::decode::ANALYZE_V4;
use crate::pipeline::AnalysisOptions;

const VERSIONS: [&str; 1] = ["2023-04-01-preview"];
/// Microsoft's built-in product detector (it tells products from gaps without naming them).
pub const PRETRAINED: &str = "ms-pretrained-product-detection";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/computervision/productrecognition/{model}/runs",
            get(list_runs),
        )
        .route(
            "/computervision/productrecognition/{model}/runs/{run}",
            get(get_run).put(create_run).delete(delete_run),
        )
        .route(
            "/computervision/planogramcompliance:match",
            post(match_positions),
        )
}

fn version(query: &Option<String>) -> Result<QueryParams, ApiError> {
    versioned(query, &VERSIONS)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DetectedObjectView {
    id: String,
    bounding_box: BoundingBox,
    tags: Vec<DetectedTag>,
}

impl From<ShelfObject> for DetectedObjectView {
    fn from(o: ShelfObject) -> Self {
        DetectedObjectView {
            id: o.id,
            bounding_box: o.rect.into(),
            tags: o
                .tags
                .into_iter()
                .map(|(name, confidence)| DetectedTag { name, confidence })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct ImageMetadata {
    width: u32,
    height: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultView {
    image_metadata: ImageMetadata,
    products: Vec<DetectedObjectView>,
    gaps: Vec<DetectedObjectView>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunView {
    run_name: String,
    model_name: String,
    created_date_time: String,
    updated_date_time: String,
    /// Always `succeeded`: a run is computed before its PUT answers.
    status: &'static str,
    result: ResultView,
}

impl From<RunRecord> for RunView {
    fn from(r: RunRecord) -> Self {
        RunView {
            run_name: r.name,
            model_name: r.model,
            created_date_time: timestamp(r.created),
            updated_date_time: timestamp(r.created),
            status: "succeeded",
            result: ResultView {
                image_metadata: ImageMetadata {
                    width: r.result.width,
                    height: r.result.height,
                },
                products: r.result.products.into_iter().map(Into::into).collect(),
                gaps: r.result.gaps.into_iter().map(Into::into).collect(),
            },
        }
    }
}

/// The detector head of `model`, or why a run cannot use it.
async fn detector(state: &AppState, model: &str) -> Result<Arc<CustomHead>, ApiError> {
    if model == PRETRAINED {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "The model '{PRETRAINED}' is not available on this server: no registry package ships a \
                 pretrained product detector. Train a Product-Recognizer (or Generic-Detector) model on \
                 your own shelf photos and run it by its name."
            ),
        ));
    }
    let head = state.custom.trained_head(model).await?;
    match *head {
        CustomHead::Detector(_) => Ok(head),
        CustomHead::Classifier(_) => Err(ApiError::invalid_request(format!(
            "The model '{model}' is a classifier; product recognition needs a detector (Product-Recognizer or Generic-Detector)"
        ))),
    }
}

async fn create_run(
    State(state): State<Arc<AppState>>,
    Path((model, run)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    version(&query)?;
    let head = detector(&state, &model).await?;
    state.custom.check_new_run(&model, &run).await?;
    let bytes = image_bytes(request, &state.fetcher, ANALYZE_V4.max_bytes).await?;
    let pipeline = Arc::clone(&state.pipeline);
    let options = AnalysisOptions {
        custom: Some(head),
        ..AnalysisOptions::default()
    };
    let analysis = state
        .workers
        .run(move || pipeline.analyze(&bytes, &ANALYZE_V4, &[], &options))
        .await??;
    let products: Vec<ShelfObject> = match analysis.custom {
        Some(CustomResult::Objects(objects)) => objects
            .into_iter()
            .enumerate()
            .map(|(i, o)| ShelfObject {
                id: (i + 1).to_string(),
                rect: o.rect,
                tags: o
                    .ranked
                    .into_iter()
                    .map(|t| (t.name, t.confidence))
                    .collect(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let result = ProductResult {
        width: analysis.width,
        height: analysis.height,
        gaps: gaps(&products),
        products,
    };
    let record = state.custom.save_run(&model, &run, result).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

async fn get_run(
    State(state): State<Arc<AppState>>,
    Path((model, run)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<RunView>, ApiError> {
    version(&query)?;
    Ok(Json(state.custom.run(&model, &run).await?.into()))
}

async fn delete_run(
    State(state): State<Arc<AppState>>,
    Path((model, run)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<StatusCode, ApiError> {
    version(&query)?;
    state.custom.delete_run(&model, &run).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_runs(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Page<RunView>>, ApiError> {
    let params = version(&query)?;
    let runs = state.custom.runs(&model).await?;
    let path = format!("/computervision/productrecognition/{model}/runs");
    Ok(Json(page(
        runs,
        &params,
        &headers,
        &path,
        state.scheme,
        RunView::from,
    )?))
}

// ----- planogram matching (keys in any case, as everywhere in customization) -----

/// A tag as the spec writes it (`name`), or as the older shape did (`label`).
#[derive(Deserialize)]
struct TagBody {
    name: Option<String>,
    label: Option<String>,
    confidence: f32,
}

#[derive(Deserialize)]
struct ObjectBody {
    id: Option<String>,
    #[serde(rename = "boundingbox")]
    bounding_box: PixelRect,
    tags: Option<Vec<TagBody>>,
    classifications: Option<Vec<TagBody>>,
}

#[derive(Deserialize)]
struct MetadataBody {
    width: u32,
    height: u32,
}

#[derive(Deserialize)]
struct DetectedBody {
    #[serde(rename = "imagemetadata")]
    image_metadata: MetadataBody,
    #[serde(default)]
    products: Vec<ObjectBody>,
    #[serde(default)]
    gaps: Vec<ObjectBody>,
}

#[derive(Deserialize)]
struct PlannedProduct {
    id: String,
    w: f32,
    h: f32,
}

#[derive(Deserialize)]
struct Position {
    id: String,
    #[serde(rename = "productid")]
    product_id: String,
    x: f32,
    y: f32,
}

#[derive(Deserialize)]
struct PlanogramBody {
    width: f32,
    height: f32,
    products: Vec<PlannedProduct>,
    positions: Vec<Position>,
}

#[derive(Deserialize)]
struct MatchBody {
    #[serde(rename = "detectedproducts")]
    detected: DetectedBody,
    planogram: PlanogramBody,
}

/// The objects of a request, numbered from 1 where they carry no id.
fn shelf_objects(bodies: Vec<ObjectBody>) -> Vec<ShelfObject> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| ShelfObject {
            id: body.id.unwrap_or_else(|| (i + 1).to_string()),
            rect: body.bounding_box,
            tags: body
                .tags
                .or(body.classifications)
                .unwrap_or_default()
                .into_iter()
                .map(|t| (t.name.or(t.label).unwrap_or_default(), t.confidence))
                .collect(),
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PositionMatch {
    position_id: String,
    detected_object: DetectedObjectView,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MatchView {
    matching_result_per_position: Vec<PositionMatch>,
}

async fn match_positions(
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<MatchView>, ApiError> {
    version(&query)?;
    let body: MatchBody = json_body(request).await?;
    let detected = ProductResult {
        width: body.detected.image_metadata.width,
        height: body.detected.image_metadata.height,
        products: shelf_objects(body.detected.products),
        gaps: shelf_objects(body.detected.gaps),
    };
    let planogram = Planogram {
        width: body.planogram.width,
        height: body.planogram.height,
        products: body
            .planogram
            .products
            .into_iter()
            .map(|p| (p.id, p.w, p.h))
            .collect(),
        positions: body
            .planogram
            .positions
            .into_iter()
            .map(|p| (p.id, p.product_id, p.x, p.y))
            .collect(),
    };
    let matched = match_planogram(&planogram, &detected);
    Ok(Json(MatchView {
        matching_result_per_position: matched
            .into_iter()
            .map(|(position_id, object)| PositionMatch {
                position_id,
                detected_object: object.into(),
            })
            .collect(),
    }))
}
