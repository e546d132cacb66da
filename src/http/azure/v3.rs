//! Image Analysis 3.2 (`/vision/v3.2/...`): analyze, describe, tag, detect, areaOfInterest,
//! generateThumbnail, models.
//! The same pipeline as 4.0 behind 3.2's shapes: `requestId`, `metadata.format`, string-free rectangles,
//! and 3.2's input rules (JPEG, PNG, GIF, BMP under 4 MB). Features with no model answer with an
//! error that names the missing model; nothing returns an empty list that pretends to be a result.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json, Router};
use image::ImageFormat;
use serde::Serialize;

use super::error::{ApiError, INVALID_QUERY};
use crate::geometry::PixelRect;
use crate::http::intake::image_bytes;
use crate::http::query::QueryParams;
use crate::http::{AppState, RequestId};
use crate::pipeline::color::ColorInfo;
use crate::pipeline::decode::ANALYZE_V32;
use crate::pipeline::language;
use crate::pipeline::{Analysis, AnalysisOptions, DetectedFace, DetectedObject, Feature, Gender};

pub const MODEL_VERSION: &str = "2021-05-01";
const MODEL_VERSIONS: [&str; 3] = ["latest", "2021-04-01", "2021-05-01"];
const THUMBNAIL_SIDES: std::ops::RangeInclusive<u32> = 1..=1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/vision/v3.2/analyze", post(analyze))
        .route("/vision/v3.2/detect", fixed_feature(Feature::Objects))
        .route(
            "/vision/v3.2/areaOfInterest",
            fixed_feature(Feature::AreaOfInterest),
        )
        .route("/vision/v3.2/generateThumbnail", post(generate_thumbnail))
        .route("/vision/v3.2/models", get(list_models))
        .route("/vision/v3.2/models/{model}/analyze", post(domain_model))
        .route("/vision/v3.2/describe", post(describe))
        .route("/vision/v3.2/tag", fixed_feature(Feature::Tags))
}

/// The language codes 3.2 takes for tags, descriptions and categories; which of them vista answers
/// in is the language policy's to say.
const LANGUAGES: [&str; 5] = ["en", "es", "ja", "pt", "zh"];

fn check_language(params: &QueryParams, features: &[Feature]) -> Result<(), ApiError> {
    let language = params.get("language").unwrap_or("en");
    let refused = |reason: String| ApiError::invalid(INVALID_QUERY, "NotSupportedLanguage", reason);
    if !LANGUAGES.iter().any(|l| l.eq_ignore_ascii_case(language)) {
        return Err(refused(format!(
            "The input language '{language}' is not supported; 3.2 takes {}",
            LANGUAGES.join(", ")
        )));
    }
    language::check_words(language, features).map_err(|e| refused(e.0))
}

/// 3.2 visual features and what serves each; `None` means no model for it in this deployment.
fn visual_feature(name: &str) -> Result<Option<Feature>, ApiError> {
    match name.to_ascii_lowercase().as_str() {
        "objects" => Ok(Some(Feature::Objects)),
        "faces" => Ok(Some(Feature::Faces)),
        "color" => Ok(Some(Feature::Color)),
        "imagetype" => Ok(Some(Feature::ImageType)),
        "adult" => Ok(Some(Feature::Adult)),
        "categories" => Ok(Some(Feature::Categories)),
        "tags" => Ok(Some(Feature::Tags)),
        "description" => Ok(Some(Feature::Description)),
        "brands" => Ok(None),
        _ => Err(ApiError::invalid(
            INVALID_QUERY,
            "NotSupportedVisualFeature",
            format!("Specified visual feature '{name}' is not valid"),
        )),
    }
}

pub(super) fn check_model_version(params: &QueryParams) -> Result<(), ApiError> {
    match params.get("model-version") {
        Some(v) if !MODEL_VERSIONS.contains(&v) => Err(ApiError::invalid(
            format!("Model version '{v}' is not available."),
            "InvalidModel",
            format!("Available model versions: {}", MODEL_VERSIONS.join(", ")),
        )),
        _ => Ok(()),
    }
}

fn no_model(what: &str) -> ApiError {
    ApiError::invalid(
        INVALID_QUERY,
        "NotSupportedVisualFeature",
        format!("'{what}' is not supported by this server: no model for it is installed in this vista build"),
    )
}

/// What 3.2 calls the input format.
fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "Jpeg",
        ImageFormat::Png => "Png",
        ImageFormat::Gif => "Gif",
        ImageFormat::Bmp => "Bmp",
        _ => "Unknown",
    }
}

fn content_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::Gif => "image/gif",
        ImageFormat::Bmp => "image/bmp",
        _ => "application/octet-stream",
    }
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Rectangle {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

#[derive(Debug, Serialize)]
pub struct Object {
    pub rectangle: Rectangle,
    pub object: String,
    pub confidence: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ObjectHierarchy>>,
}

/// A broader category of an object and, nested, its own. Its confidence is the object's: anything
/// that is a cat is a mammal, so the object's confidence is a lower bound for each parent.
#[derive(Debug, Serialize)]
pub struct ObjectHierarchy {
    pub object: String,
    pub confidence: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ObjectHierarchy>>,
}

/// 3.2 face boxes use left/top/width/height.
#[derive(Debug, Serialize)]
pub struct FaceRectangle {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Face {
    /// Age and gender only where the deployment installed the optional FaceRes model: Azure removed
    /// these attributes, so by default a face is its rectangle alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<&'static str>,
    pub face_rectangle: FaceRectangle,
}

impl From<DetectedFace> for Face {
    fn from(f: DetectedFace) -> Self {
        let r = f.rect;
        Face {
            age: f.attributes.map(|a| a.age.round() as u32),
            gender: f.attributes.map(|a| match a.gender {
                Gender::Female => "Female",
                Gender::Male => "Male",
            }),
            face_rectangle: FaceRectangle {
                left: r.x,
                top: r.y,
                width: r.w,
                height: r.h,
            },
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Color {
    pub dominant_color_foreground: &'static str,
    pub dominant_color_background: &'static str,
    pub dominant_colors: Vec<&'static str>,
    pub accent_color: String,
    /// Azure sends both spellings.
    #[serde(rename = "isBWImg")]
    pub is_bw_img_upper: bool,
    pub is_bw_img: bool,
}

impl From<ColorInfo> for Color {
    fn from(c: ColorInfo) -> Self {
        Color {
            dominant_color_foreground: c.foreground.as_str(),
            dominant_color_background: c.background.as_str(),
            dominant_colors: c.dominant.into_iter().map(|n| n.as_str()).collect(),
            accent_color: c.accent,
            is_bw_img_upper: c.is_black_and_white,
            is_bw_img: c.is_black_and_white,
        }
    }
}

/// `isGoryContent` and `goreScore` are left out: there is no gore model, and a made-up score would be
/// worse than none (the 3.2 SDK reads them as None).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Adult {
    pub is_adult_content: bool,
    pub is_racy_content: bool,
    pub adult_score: f32,
    pub racy_score: f32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageTypeJson {
    pub clip_art_type: u8,
    pub line_drawing_type: u8,
}

#[derive(Debug, Serialize)]
pub struct CategoryJson {
    pub name: &'static str,
    pub score: f32,
}

#[derive(Debug, Serialize)]
pub struct TagJson {
    pub name: String,
    pub confidence: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CaptionJson {
    pub text: String,
    pub confidence: f32,
}

#[derive(Debug, Serialize)]
pub struct Description {
    pub tags: Vec<String>,
    pub captions: Vec<CaptionJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyzeResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<CategoryJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adult: Option<Adult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagJson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_type: Option<ImageTypeJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faces: Option<Vec<Face>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<Object>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area_of_interest: Option<Rectangle>,
    pub request_id: String,
    pub metadata: Metadata,
    pub model_version: &'static str,
}

impl From<PixelRect> for Rectangle {
    fn from(r: PixelRect) -> Self {
        Rectangle {
            x: r.x,
            y: r.y,
            w: r.w,
            h: r.h,
        }
    }
}

impl From<DetectedObject> for Object {
    fn from(o: DetectedObject) -> Self {
        let parent = o.parents.into_iter().rev().fold(None, |parent, object| {
            Some(Box::new(ObjectHierarchy {
                object,
                confidence: o.confidence,
                parent,
            }))
        });
        Object {
            rectangle: o.rect.into(),
            object: o.label,
            confidence: o.confidence,
            parent,
        }
    }
}

impl AnalyzeResponse {
    /// The response for `features`; `max_captions` caps the description's captions.
    fn new(
        analysis: Analysis,
        request_id: RequestId,
        features: &[Feature],
        max_captions: usize,
    ) -> Self {
        let wants = |f: Feature| features.contains(&f);
        let tags = analysis.tags.unwrap_or_default();
        // Most confident first, as Azure lists them: the first is the same whatever maxCandidates is.
        let mut captions: Vec<CaptionJson> = analysis
            .captions
            .unwrap_or_default()
            .into_iter()
            .map(|c| CaptionJson {
                text: c.text,
                confidence: c.confidence,
            })
            .collect();
        captions.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        captions.truncate(max_captions);
        let description = wants(Feature::Description).then(|| Description {
            tags: tags.iter().map(|t| t.name.clone()).collect(),
            captions,
        });
        AnalyzeResponse {
            categories: analysis.categories.map(|categories| {
                categories
                    .into_iter()
                    .map(|c| CategoryJson {
                        name: c.name,
                        score: c.score,
                    })
                    .collect()
            }),
            tags: wants(Feature::Tags).then(|| {
                tags.into_iter()
                    .map(|t| TagJson {
                        name: t.name,
                        confidence: t.confidence,
                        hint: t.hint,
                    })
                    .collect()
            }),
            description,
            adult: analysis.adult.map(|a| Adult {
                is_adult_content: a.is_adult,
                is_racy_content: a.is_racy,
                adult_score: a.adult_score,
                racy_score: a.racy_score,
            }),
            color: analysis.color.map(Color::from),
            image_type: analysis.image_type.map(|t| ImageTypeJson {
                clip_art_type: t.clip_art,
                line_drawing_type: t.line_drawing,
            }),
            faces: analysis
                .faces
                .map(|faces| faces.into_iter().map(Face::from).collect()),
            objects: analysis
                .objects
                .map(|objects| objects.into_iter().map(Object::from).collect()),
            area_of_interest: analysis.area_of_interest.map(Rectangle::from),
            request_id: request_id.0,
            metadata: Metadata {
                width: analysis.width,
                height: analysis.height,
                format: format_name(analysis.format),
            },
            model_version: MODEL_VERSION,
        }
    }
}

/// Reads the image and runs `features` on a worker.
pub(super) async fn run(
    state: &AppState,
    request: Request,
    features: Vec<Feature>,
    options: AnalysisOptions,
) -> Result<Analysis, ApiError> {
    state.pipeline.check_available(&features)?;
    let bytes = image_bytes(request, &state.fetcher, ANALYZE_V32.max_bytes)
        .await
        .map_err(|e| v32_size_error(e.into()))?;
    let pipeline = Arc::clone(&state.pipeline);
    // A URL's image is capped by the fetcher at 4.0's size; the pipeline applies 3.2's, in 3.2's words.
    let analysis = state
        .workers
        .run(move || pipeline.analyze(&bytes, &ANALYZE_V32, &features, &options))
        .await?;
    analysis.map_err(|e| v32_size_error(e.into()))
}

/// 3.2 words an oversized body the way its SDK recording shows.
fn v32_size_error(error: ApiError) -> ApiError {
    if error.message.starts_with("The image size is not allowed") {
        ApiError::invalid(
            "Input image is too large.",
            "InvalidImageSize",
            "Input image is too large.",
        )
    } else {
        error
    }
}

async fn analyze(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<AnalyzeResponse>, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    check_model_version(&params)?;
    if let Some(details) = params.list("details").filter(|d| !d.is_empty()) {
        return Err(ApiError::invalid(
            INVALID_QUERY,
            "InvalidDetails",
            format!(
                "details={} needs a domain model (celebrities, landmarks); none is installed",
                details.join(",")
            ),
        ));
    }
    let names = params
        .list("visualfeatures")
        .filter(|f| !f.is_empty())
        // Azure's default is categories only.
        .unwrap_or_else(|| vec!["Categories"]);
    let mut features = Vec::new();
    for name in names {
        match visual_feature(name)? {
            Some(feature) => features.push(feature),
            None => return Err(no_model(name)),
        }
    }
    check_language(&params, &features)?;
    let analysis = run(
        &state,
        request,
        features.clone(),
        AnalysisOptions::default(),
    )
    .await?;
    Ok(Json(AnalyzeResponse::new(analysis, id, &features, 1)))
}

async fn describe(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<AnalyzeResponse>, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    let max_candidates = match params.get("maxCandidates") {
        None => 1,
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid(
                INVALID_QUERY,
                "BadArgument",
                format!("'maxCandidates' must be a whole number from 1, not '{v}'"),
            )
        })?,
    };
    single_feature(
        &state,
        id,
        params,
        request,
        Feature::Description,
        max_candidates,
    )
    .await
}

/// The route of an operation that is one fixed feature (`/tag`, `/detect`, `/areaOfInterest`).
fn fixed_feature(feature: Feature) -> MethodRouter<Arc<AppState>> {
    post(
        move |State(state): State<Arc<AppState>>,
              Extension(id): Extension<RequestId>,
              RawQuery(query): RawQuery,
              request: Request| async move {
            let params = QueryParams::parse(query.as_deref());
            single_feature(&state, id, params, request, feature, 1).await
        },
    )
}

/// Runs one feature (`/describe` and the fixed-feature operations).
async fn single_feature(
    state: &AppState,
    id: RequestId,
    params: QueryParams,
    request: Request,
    feature: Feature,
    max_captions: usize,
) -> Result<Json<AnalyzeResponse>, ApiError> {
    check_model_version(&params)?;
    check_language(&params, &[feature])?;
    let analysis = run(state, request, vec![feature], AnalysisOptions::default()).await?;
    Ok(Json(AnalyzeResponse::new(
        analysis,
        id,
        &[feature],
        max_captions,
    )))
}

fn thumbnail_side(params: &QueryParams, name: &str) -> Result<u32, ApiError> {
    params
        .get(name)
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|v| THUMBNAIL_SIDES.contains(v))
        .ok_or_else(|| {
            ApiError::invalid(
                "Thumbnail size is invalid.",
                "InvalidThumbnailSize",
                format!("'{name}' must be a whole number of pixels from 1 to 1024"),
            )
        })
}

async fn generate_thumbnail(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    check_model_version(&params)?;
    let (width, height) = (
        thumbnail_side(&params, "width")?,
        thumbnail_side(&params, "height")?,
    );
    let smart = params
        .get("smartcropping")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if smart {
        state.pipeline.check_available(&[Feature::SmartCrops])?;
    }
    let bytes = image_bytes(request, &state.fetcher, ANALYZE_V32.max_bytes)
        .await
        .map_err(|e| v32_size_error(e.into()))?;
    let pipeline = Arc::clone(&state.pipeline);
    let (thumbnail, format) = state
        .workers
        .run(move || pipeline.thumbnail(&bytes, &ANALYZE_V32, width, height, smart))
        .await?
        .map_err(|e| v32_size_error(e.into()))?;
    Ok(([(CONTENT_TYPE, content_type(format))], thumbnail).into_response())
}

/// No domain model (celebrities, landmarks) is installed, so the list is empty: it is the truth, not a
/// stand-in for a result.
async fn list_models(Extension(id): Extension<RequestId>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"models": [], "requestId": id.0}))
}

async fn domain_model(Path(model): Path<String>) -> ApiError {
    ApiError::invalid(
        format!("Model '{model}' is not available."),
        "InvalidModel",
        format!("The domain model '{model}' (celebrities, landmarks) needs a model that is not installed in this vista build"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::FaceAttributes;

    #[test]
    fn visual_features_are_served_refused_or_invalid() {
        assert_eq!(visual_feature("Objects").unwrap(), Some(Feature::Objects));
        assert_eq!(visual_feature("faces").unwrap(), Some(Feature::Faces));
        assert_eq!(visual_feature("color").unwrap(), Some(Feature::Color));
        assert_eq!(visual_feature("adult").unwrap(), Some(Feature::Adult));
        assert_eq!(visual_feature("brands").unwrap(), None);
        assert_eq!(
            visual_feature("Categories").unwrap(),
            Some(Feature::Categories)
        );
        assert_eq!(
            visual_feature("smell").unwrap_err().inner.unwrap().0,
            "NotSupportedVisualFeature"
        );
    }

    #[test]
    fn categories_are_served_in_every_listed_language_and_words_only_in_english() {
        let check = |q: &str, features: &[Feature]| {
            check_language(&QueryParams::parse(Some(q)), features).is_ok()
        };
        for language in LANGUAGES {
            let query = format!("language={language}");
            assert!(check(&query, &[Feature::Categories]), "{language}");
            assert_eq!(check(&query, &[Feature::Tags]), language == "en");
            assert_eq!(
                check(&query, &[Feature::Categories, Feature::Description]),
                language == "en"
            );
        }
        assert!(!check("language=de", &[Feature::Categories]));
    }

    #[test]
    fn described_captions_are_listed_most_confident_first() {
        let mut analysis = Analysis::new(10, 20, ImageFormat::Png);
        analysis.captions = Some(
            [
                ("a person with a dog on a sofa", 0.4),
                ("a person", 0.9),
                ("a dog", 0.6),
            ]
            .map(|(text, confidence)| crate::pipeline::caption::Caption {
                text: text.into(),
                confidence,
            })
            .to_vec(),
        );
        let json = serde_json::to_value(AnalyzeResponse::new(
            analysis,
            RequestId("id".into()),
            &[Feature::Description],
            2,
        ))
        .unwrap();
        let texts: Vec<_> = json["description"]["captions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["a person", "a dog"]);
    }

    #[test]
    fn thumbnail_sides_must_be_1_to_1024() {
        let params = QueryParams::parse(Some("width=1024&height=0&w2=abc"));
        assert_eq!(thumbnail_side(&params, "width").unwrap(), 1024);
        assert_eq!(
            thumbnail_side(&params, "height")
                .unwrap_err()
                .inner
                .unwrap()
                .0,
            "InvalidThumbnailSize"
        );
        assert!(thumbnail_side(&params, "w2").is_err());
        assert!(thumbnail_side(&params, "missing").is_err());
    }

    #[test]
    fn responses_carry_request_id_metadata_format_and_rectangles() {
        let mut analysis = Analysis::new(10, 20, ImageFormat::Png);
        analysis.objects = Some(vec![DetectedObject {
            rect: PixelRect {
                x: 1,
                y: 2,
                w: 3,
                h: 4,
            },
            label: "cat".into(),
            confidence: 0.5,
            parents: vec!["mammal".into(), "animal".into()],
        }]);
        let json = serde_json::to_value(AnalyzeResponse::new(
            analysis,
            RequestId("id-1".into()),
            &[Feature::Objects],
            1,
        ))
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"objects": [{"rectangle": {"x": 1, "y": 2, "w": 3, "h": 4}, "object": "cat", "confidence": 0.5,
                    "parent": {"object": "mammal", "confidence": 0.5, "parent": {"object": "animal", "confidence": 0.5}}}],
                "requestId": "id-1", "metadata": {"width": 10, "height": 20, "format": "Png"}, "modelVersion": "2021-05-01"})
        );
    }

    #[test]
    fn faces_carry_age_and_gender_only_when_estimated() {
        let rect = PixelRect {
            x: 1,
            y: 2,
            w: 3,
            h: 4,
        };
        let plain = DetectedFace::example(rect);
        let attributes = Some(FaceAttributes {
            age: 41.6,
            gender: Gender::Female,
        });
        let estimated = DetectedFace {
            attributes,
            ..plain.clone()
        };
        assert_eq!(
            serde_json::to_value(Face::from(plain)).unwrap(),
            serde_json::json!({"faceRectangle": {"left": 1, "top": 2, "width": 3, "height": 4}})
        );
        assert_eq!(
            serde_json::to_value(Face::from(estimated)).unwrap(),
            serde_json::json!({"age": 42, "gender": "Female", "faceRectangle": {"left": 1, "top": 2, "width": 3, "height": 4}})
        );
    }
}
