//! The DeepStack / CodeProject.AI surface that NVR and home-automation tools speak (Frigate, Blue Iris,
//! Home Assistant, Agent DVR): multipart `image` (and `min_confidence`, `api_key`) in;
//! `{"success", "predictions": [{label, confidence, x_min, y_min, x_max, y_max}]}` with the timing
//! fields CodeProject.AI adds. Face recognition and custom models need what vista does not have: they
//! answer `success: false` naming why.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::multipart::Field;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::azure::KEY_HEADER;
use super::intake::{field_capped, IntakeError};
use super::AppState;
use crate::geometry::{PixelRect, Quad};
use crate::pipeline::decode::ANY_SIDE;
use crate::pipeline::{Analysis, AnalysisOptions, Feature, PipelineError};

/// Text fields (`min_confidence`, `api_key`) are short; longer ones are refused.
const MAX_TEXT_FIELD: usize = 1024;
/// DeepStack's default `min_confidence`.
const DEFAULT_MIN_CONFIDENCE: f32 = 0.4;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/vision/detection", post(detection))
        .route("/v1/vision/face", post(face))
        .route("/v1/vision/scene", post(scene))
        .route("/v1/vision/ocr", post(ocr))
        .route("/v1/image/ocr", post(ocr))
        .route("/v1/vision/custom/{model}", post(custom))
        .route("/v1/vision/face/{action}", post(face_recognition))
}

/// An answer that is not a success: DeepStack's shape, with a status its clients treat as an error.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body =
            json!({"success": false, "error": self.1, "code": self.0.as_u16(), "duration": 0});
        (self.0, Json(body)).into_response()
    }
}

impl From<PipelineError> for Failure {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "analysis failed");
                Failure(StatusCode::INTERNAL_SERVER_ERROR, "Internal error".into())
            }
            PipelineError::Unavailable { .. } => {
                Failure(StatusCode::NOT_IMPLEMENTED, e.to_string())
            }
            other => Failure(StatusCode::BAD_REQUEST, format!("Invalid image: {other}")),
        }
    }
}

/// The multipart fields DeepStack's clients send.
struct Form {
    image: Bytes,
    min_confidence: f32,
}

/// A form field's bytes, read a chunk at a time under `max`, so an oversized upload is never
/// buffered whole.
async fn read_field(field: &mut Field<'_>, max: usize) -> Result<Bytes, Failure> {
    field_capped(field, max).await.map_err(|e| match e {
        IntakeError::InvalidByteSize { max } => Failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("A form field is larger than {max} bytes"),
        ),
        other => Failure(StatusCode::BAD_REQUEST, other.to_string()),
    })
}

/// Reads the form and checks the key: `api_key` (DeepStack's field) or vista's key header.
async fn form(
    state: &AppState,
    headers: &HeaderMap,
    mut multipart: Multipart,
) -> Result<Form, Failure> {
    let malformed = |e: axum::extract::multipart::MultipartError| {
        Failure(StatusCode::BAD_REQUEST, format!("Malformed form: {e}"))
    };
    let (mut image, mut min_confidence, mut api_key) = (None, DEFAULT_MIN_CONFIDENCE, None);
    let text = |bytes: Bytes| String::from_utf8_lossy(&bytes).into_owned();
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        match field.name().unwrap_or("") {
            "image" => image = Some(read_field(&mut field, ANY_SIDE.max_bytes).await?),
            "min_confidence" => {
                let text = text(read_field(&mut field, MAX_TEXT_FIELD).await?);
                min_confidence = text.trim().parse().map_err(|_| {
                    Failure(
                        StatusCode::BAD_REQUEST,
                        format!("min_confidence '{text}' is not a number"),
                    )
                })?;
            }
            "api_key" => api_key = Some(text(read_field(&mut field, MAX_TEXT_FIELD).await?)),
            _ => {}
        }
    }
    if let Some(keys) = &state.deepstack_keys {
        let header = headers.get(KEY_HEADER).and_then(|v| v.to_str().ok());
        if !header
            .or(api_key.as_deref())
            .is_some_and(|key| keys.accepts(key))
        {
            return Err(Failure(
                StatusCode::UNAUTHORIZED,
                "Incorrect api key".into(),
            ));
        }
    }
    let image = image.filter(|i| !i.is_empty()).ok_or_else(|| {
        Failure(
            StatusCode::BAD_REQUEST,
            "No valid image file was provided".into(),
        )
    })?;
    Ok(Form {
        image,
        min_confidence,
    })
}

async fn analyze(
    state: &AppState,
    image: Bytes,
    features: Vec<Feature>,
) -> Result<(Analysis, f64), Failure> {
    state.pipeline.check_available(&features)?;
    let pipeline = Arc::clone(&state.pipeline);
    let started = Instant::now();
    let analysis = state
        .workers
        .run(move || pipeline.analyze(&image, &ANY_SIDE, &features, &AnalysisOptions::default()))
        .await
        .map_err(|_| {
            Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is busy; retry".into(),
            )
        })??;
    Ok((analysis, started.elapsed().as_secs_f64() * 1000.0))
}

/// A success with CodeProject.AI's fields around `fields`.
fn success(command: &str, mut fields: Value, inference_ms: f64, started: Instant) -> Json<Value> {
    let round_trip = (started.elapsed().as_secs_f64() * 1000.0).round();
    let extra = json!({"success": true, "message": "", "command": command, "moduleId": "vista",
        "moduleName": "vista", "code": 200, "inferenceMs": inference_ms.round(), "processMs": inference_ms.round(),
        "analysisRoundTripMs": round_trip, "duration": round_trip});
    if let (Some(map), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        map.extend(extra);
    }
    Json(fields)
}

fn corners(rect: &PixelRect) -> Value {
    json!({"x_min": rect.x, "y_min": rect.y, "x_max": rect.x + rect.w, "y_max": rect.y + rect.h})
}

/// Predictions from `min_confidence` up, the surest first (Frigate stops reading at the first one
/// under its own floor).
fn predictions(mut found: Vec<(f32, Value)>, min_confidence: f32) -> Value {
    found.retain(|(confidence, _)| *confidence >= min_confidence);
    found.sort_by(|a, b| b.0.total_cmp(&a.0));
    let list: Vec<Value> = found.into_iter().map(|(_, p)| p).collect();
    json!({"count": list.len(), "predictions": list})
}

fn with_confidence(confidence: f32, mut prediction: Value) -> (f32, Value) {
    prediction["confidence"] = json!(confidence);
    (confidence, prediction)
}

/// One request: the form read and checked, `feature` run, and `fields` made of the analysis and the
/// request's `min_confidence`.
async fn answer(
    state: &AppState,
    (headers, multipart): (HeaderMap, Multipart),
    feature: Feature,
    command: &str,
    fields: impl FnOnce(Analysis, f32) -> Value,
) -> Result<Json<Value>, Failure> {
    let started = Instant::now();
    let Form {
        image,
        min_confidence,
    } = form(state, &headers, multipart).await?;
    let (analysis, ms) = analyze(state, image, vec![feature]).await?;
    Ok(success(
        command,
        fields(analysis, min_confidence),
        ms,
        started,
    ))
}

/// `/v1/vision/detection`: the detector's objects under their COCO names.
async fn detection(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Json<Value>, Failure> {
    answer(
        &state,
        (headers, multipart),
        Feature::Objects,
        "detect",
        |analysis, min| {
            let found = analysis.objects.unwrap_or_default().into_iter().map(|o| {
                let mut prediction = corners(&o.rect);
                prediction["label"] = json!(o.label);
                with_confidence(o.confidence, prediction)
            });
            predictions(found.collect(), min)
        },
    )
    .await
}

/// `/v1/vision/face`: face boxes.
async fn face(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Json<Value>, Failure> {
    answer(
        &state,
        (headers, multipart),
        Feature::Faces,
        "detect",
        |analysis, min| {
            let faces = analysis.faces.unwrap_or_default().into_iter();
            let found = faces.map(|f| with_confidence(f.confidence, corners(&f.rect)));
            predictions(found.collect(), min)
        },
    )
    .await
}

/// `/v1/vision/scene`: vista has no Places365 scene model; the answer is the best category of its
/// 86-category taxonomy (`outdoor_street`, `indoor_kitchen`...), named as the taxonomy names it.
async fn scene(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Json<Value>, Failure> {
    answer(
        &state,
        (headers, multipart),
        Feature::Categories,
        "scene",
        |analysis, _| {
            let categories = analysis.categories.unwrap_or_default().into_iter();
            let best = categories.max_by(|a, b| a.score.total_cmp(&b.score));
            // The taxonomy always names one (`others_` at least); were it ever empty, null, not a guess.
            json!({"label": best.as_ref().map(|c| c.name), "confidence": best.map(|c| c.score)})
        },
    )
    .await
}

/// `/v1/vision/ocr` (CodeProject.AI's route; `/v1/image/ocr` too): every line of text, in reading
/// order, one prediction each.
async fn ocr(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Json<Value>, Failure> {
    answer(
        &state,
        (headers, multipart),
        Feature::Read,
        "ocr",
        |analysis, _| {
            let (width, height) = (analysis.width, analysis.height);
            let lines = analysis.text.map(|page| page.lines).unwrap_or_default();
            let list: Vec<Value> = lines
                .into_iter()
                .map(|line| {
                    let words = line.words.len().max(1) as f32;
                    let confidence = line.words.iter().map(|w| w.confidence).sum::<f32>() / words;
                    let mut prediction = corners(&upright(&line.polygon, width, height));
                    prediction["label"] = json!(line.text);
                    with_confidence(confidence, prediction).1
                })
                .collect();
            json!({"count": list.len(), "predictions": list})
        },
    )
    .await
}

/// The upright rectangle around a quad, in whole pixels inside the image.
fn upright(quad: &Quad, width: u32, height: u32) -> PixelRect {
    let corners = quad.pixel_corners(width, height);
    let (x1, y1) = corners
        .iter()
        .fold((u32::MAX, u32::MAX), |(x, y), c| (x.min(c.0), y.min(c.1)));
    let (x2, y2) = corners
        .iter()
        .fold((0, 0), |(x, y), c| (x.max(c.0), y.max(c.1)));
    PixelRect {
        x: x1,
        y: y1,
        w: x2.saturating_sub(x1),
        h: y2.saturating_sub(y1),
    }
}

/// `/v1/vision/custom/{model}`: models a user trains arrive with customization.
async fn custom(Path(model): Path<String>) -> Failure {
    Failure(StatusCode::BAD_REQUEST, format!(
        "No custom model named '{model}': vista serves models trained through its customization API, which this server does not offer yet"
    ))
}

/// `/v1/vision/face/{register,recognize,list,delete,match}`: these need a face-embedding model.
async fn face_recognition(Path(action): Path<String>) -> Failure {
    Failure(StatusCode::NOT_IMPLEMENTED, format!(
        "face/{action} needs a face-recognition (embedding) model, which no registry ships and vista does not have; /v1/vision/face detects faces"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_keep_the_sure_ones_surest_first() {
        let found = vec![
            (0.5, json!({"label": "b"})),
            (0.9, json!({"label": "a"})),
            (0.3, json!({"label": "c"})),
        ];
        let kept = predictions(found, 0.4);
        assert_eq!(kept["count"], 2);
        assert_eq!(kept["predictions"][0]["label"], "a");
        assert_eq!(kept["predictions"][1]["label"], "b");
    }

    #[test]
    fn a_turned_line_gets_the_upright_box_around_it() {
        let quad = Quad([(10.0, 20.0), (50.0, 10.0), (55.0, 30.0), (15.0, 40.0)]);
        let rect = upright(&quad, 100, 100);
        assert_eq!(
            corners(&rect),
            json!({"x_min": 10, "y_min": 10, "x_max": 55, "y_max": 40})
        );
    }
}
