//! Image Analysis 4.0: `POST /computervision/imageanalysis:analyze`, its query rules and its JSON.

use std::sync::Arc;

use axum::extract::{RawQuery, Request, State};
use axum::Json;
use serde::Serialize;

use super::api_version;
use super::error::{ApiError, INVALID_QUERY};
use crate::custom::service::CustomError;
use crate::geometry::{PixelRect, Quad};
use crate::http::intake::image_bytes;
use crate::http::query::QueryParams;
use crate::http::AppState;
use crate::pipeline::custom::CustomResult;
use crate::pipeline::decode::ANALYZE_V4;
use crate::pipeline::language;
use crate::pipeline::read::PageText;
use crate::pipeline::{Analysis, AnalysisOptions, Feature, Pipeline};

/// The GA versions, and the previews that Microsoft's customization samples send with `model-name`
/// (customization contract, section 1: vista honours `model-name` on every one).
pub const API_VERSIONS: [&str; 4] = [
    "2023-10-01",
    "2024-02-01",
    "2023-02-01-preview",
    "2023-04-01-preview",
];
pub const MODEL_VERSION: &str = "2023-10-01";
const SMART_CROP_RATIOS: std::ops::RangeInclusive<f32> = 0.75..=1.8;

/// A validated analyze request.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeRequest {
    /// The api-version asked for (a custom model's result echoes it as its `modelVersion`).
    pub api_version: &'static str,
    pub features: Vec<Feature>,
    /// A model the user trained (`model-name`).
    pub model_name: Option<String>,
    pub language: String,
    pub gender_neutral_caption: bool,
    pub smart_crop_ratios: Vec<f32>,
}

impl AnalyzeRequest {
    /// Validates the query the way Azure does; features this deployment cannot serve are refused
    /// here, before the body is read.
    pub fn from_query(params: &QueryParams, pipeline: &Pipeline) -> Result<Self, ApiError> {
        let api_version = api_version(params, &API_VERSIONS)?;
        let model_name = params
            .get("model-name")
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        let names = match params.list("features").filter(|f| !f.is_empty()) {
            Some(names) => names,
            None if model_name.is_some() => Vec::new(),
            None => return Err(ApiError::invalid_request(
                "Either 'features' or 'model-name' needs to be specified in the query parameter",
            )),
        };
        let mut features = Vec::new();
        for name in names {
            let feature = Feature::parse(name).ok_or_else(|| {
                ApiError::invalid(
                    INVALID_QUERY,
                    "NotSupportedVisualFeature",
                    format!("Specified feature type is not valid: '{name}'"),
                )
            })?;
            if !features.contains(&feature) {
                features.push(feature);
            }
        }
        let language = params.get("language").unwrap_or("en").to_string();
        if language.len() < 2 {
            return Err(ApiError::invalid(
                INVALID_QUERY,
                "NotSupportedLanguage",
                "The input language is not supported",
            ));
        }
        language::check_words(&language, &features)
            .map_err(|e| ApiError::invalid(INVALID_QUERY, "NotSupportedLanguage", e.0))?;
        let gender_neutral_caption = params
            .flag("gender-neutral-caption", false)
            .map_err(ApiError::bad_argument)?;
        let smart_crop_ratios = params
            .list("smartcrops-aspect-ratios")
            .unwrap_or_default()
            .into_iter()
            .map(|r| match r.parse::<f32>() {
                Ok(ratio) if SMART_CROP_RATIOS.contains(&ratio) => Ok(ratio),
                _ => Err(ApiError::bad_argument(
                    "'smartcrops-aspect-ratios' aspect ratio is not in allowed range [0.75 to 1.8]",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(version) = params.get("model-version") {
            if version != "latest" && version != MODEL_VERSION {
                return Err(ApiError::bad_argument(format!(
                    "'model-version' '{version}' is not available; this server has 'latest' ({MODEL_VERSION})"
                )));
            }
        }
        pipeline.check_available(&features)?;
        Ok(AnalyzeRequest {
            api_version,
            features,
            model_name,
            language,
            gender_neutral_caption,
            smart_crop_ratios,
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalyzeResponse {
    pub model_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_model_result: Option<CustomModelResult>,
    pub metadata: Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption_result: Option<CaptionResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense_captions_result: Option<Values<DenseCaption>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags_result: Option<Values<DetectedTag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects_result: Option<Values<DetectedObject>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub people_result: Option<Values<DetectedPerson>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_result: Option<ReadResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart_crops_result: Option<Values<CropRegion>>,
}

/// What a model the user trained found: `tagsResult` (a classifier) or `objectsResult` (a detector).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomModelResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags_result: Option<Values<DetectedTag>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects_result: Option<Values<DetectedObject>>,
}

impl From<CustomResult> for CustomModelResult {
    fn from(result: CustomResult) -> Self {
        match result {
            CustomResult::Tags(tags) => CustomModelResult {
                tags_result: Some(Values {
                    values: tags.into_iter().map(DetectedTag::from).collect(),
                }),
                objects_result: None,
            },
            CustomResult::Objects(objects) => CustomModelResult {
                tags_result: None,
                objects_result: Some(Values {
                    values: objects
                        .into_iter()
                        .map(|o| DetectedObject {
                            bounding_box: o.rect.into(),
                            tags: vec![DetectedTag {
                                name: o.name,
                                confidence: o.confidence,
                            }],
                        })
                        .collect(),
                }),
            },
        }
    }
}

/// All text in one block, as Azure sends it; a page without text has one block with no lines.
#[derive(Debug, Serialize)]
pub struct ReadResult {
    pub blocks: Vec<ReadBlock>,
}

#[derive(Debug, Serialize)]
pub struct ReadBlock {
    pub lines: Vec<ReadLine>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadLine {
    pub text: String,
    pub bounding_polygon: [ImagePoint; 4],
    pub words: Vec<ReadWord>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadWord {
    pub text: String,
    pub bounding_polygon: [ImagePoint; 4],
    pub confidence: f32,
}

#[derive(Debug, Serialize)]
pub struct ImagePoint {
    pub x: u32,
    pub y: u32,
}

fn polygon(quad: &Quad, width: u32, height: u32) -> [ImagePoint; 4] {
    quad.pixel_corners(width, height)
        .map(|(x, y)| ImagePoint { x, y })
}

impl ReadResult {
    fn new(page: PageText, width: u32, height: u32) -> Self {
        let lines = page
            .lines
            .into_iter()
            .map(|line| ReadLine {
                text: line.text,
                bounding_polygon: polygon(&line.polygon, width, height),
                words: line
                    .words
                    .into_iter()
                    .map(|w| ReadWord {
                        text: w.text,
                        bounding_polygon: polygon(&w.polygon, width, height),
                        confidence: w.confidence,
                    })
                    .collect(),
            })
            .collect();
        ReadResult {
            blocks: vec![ReadBlock { lines }],
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Serialize)]
pub struct Values<T> {
    pub values: Vec<T>,
}

#[derive(Debug, Serialize)]
pub struct BoundingBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectedObject {
    pub bounding_box: BoundingBox,
    pub tags: Vec<DetectedTag>,
}

#[derive(Debug, Serialize)]
pub struct DetectedTag {
    pub name: String,
    pub confidence: f32,
}

#[derive(Debug, Serialize)]
pub struct CaptionResult {
    pub text: String,
    pub confidence: f32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DenseCaption {
    pub text: String,
    pub confidence: f32,
    pub bounding_box: BoundingBox,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectedPerson {
    pub bounding_box: BoundingBox,
    pub confidence: f32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CropRegion {
    pub aspect_ratio: f32,
    pub bounding_box: BoundingBox,
}

impl From<crate::pipeline::tags::Tag> for DetectedTag {
    fn from(t: crate::pipeline::tags::Tag) -> Self {
        DetectedTag {
            name: t.name,
            confidence: t.confidence,
        }
    }
}

impl From<crate::pipeline::custom::CustomTag> for DetectedTag {
    fn from(t: crate::pipeline::custom::CustomTag) -> Self {
        DetectedTag {
            name: t.name,
            confidence: t.confidence,
        }
    }
}

impl From<PixelRect> for BoundingBox {
    fn from(r: PixelRect) -> Self {
        BoundingBox {
            x: r.x,
            y: r.y,
            w: r.w,
            h: r.h,
        }
    }
}

impl AnalyzeResponse {
    /// The results of `features` (dense captions compute the caption, but only a requested caption
    /// is sent).
    pub fn new(analysis: Analysis, request: &AnalyzeRequest) -> Self {
        let features = &request.features;
        let custom = analysis.custom.map(CustomModelResult::from);
        AnalyzeResponse {
            // A custom model's answer carries the api-version it was asked with (contract, section 8).
            model_version: if custom.is_some() {
                request.api_version
            } else {
                MODEL_VERSION
            },
            custom_model_result: custom,
            metadata: Metadata {
                width: analysis.width,
                height: analysis.height,
            },
            caption_result: analysis
                .captions
                .and_then(|c| c.into_iter().next())
                .filter(|_| features.contains(&Feature::Caption))
                .map(|c| CaptionResult {
                    text: c.text,
                    confidence: c.confidence,
                }),
            dense_captions_result: analysis.dense_captions.map(|regions| Values {
                values: regions
                    .into_iter()
                    .map(|r| DenseCaption {
                        text: r.text,
                        confidence: r.confidence,
                        bounding_box: r.rect.into(),
                    })
                    .collect(),
            }),
            tags_result: analysis.tags.map(|tags| Values {
                values: tags.into_iter().map(DetectedTag::from).collect(),
            }),
            objects_result: analysis.objects.map(|objects| Values {
                values: objects
                    .into_iter()
                    .map(|o| DetectedObject {
                        bounding_box: o.rect.into(),
                        tags: vec![DetectedTag {
                            name: o.label,
                            confidence: o.confidence,
                        }],
                    })
                    .collect(),
            }),
            people_result: analysis.people.map(|people| Values {
                values: people
                    .into_iter()
                    .map(|p| DetectedPerson {
                        bounding_box: p.rect.into(),
                        confidence: p.confidence,
                    })
                    .collect(),
            }),
            read_result: analysis
                .text
                .map(|page| ReadResult::new(page, analysis.width, analysis.height)),
            smart_crops_result: analysis.smart_crops.map(|crops| Values {
                values: crops
                    .into_iter()
                    .map(|c| CropRegion {
                        aspect_ratio: c.ratio,
                        bounding_box: c.rect.into(),
                    })
                    .collect(),
            }),
        }
    }
}

pub async fn analyze(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<AnalyzeResponse>, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    let analyze = AnalyzeRequest::from_query(&params, &state.pipeline)?;
    let custom = match &analyze.model_name {
        Some(name) => Some(state.custom.trained_head(name).await.map_err(|e| match e {
            CustomError::NotFound(_) => ApiError::not_found(),
            other => other.into(),
        })?),
        None => None,
    };
    let bytes = image_bytes(request, &state.fetcher, ANALYZE_V4.max_bytes).await?;
    let pipeline = Arc::clone(&state.pipeline);
    let options = AnalysisOptions {
        smart_crop_ratios: analyze.smart_crop_ratios.clone(),
        custom,
        ..AnalysisOptions::default()
    };
    let features = analyze.features.clone();
    let analysis = state
        .workers
        .run(move || pipeline.analyze(&bytes, &ANALYZE_V4, &features, &options))
        .await??;
    Ok(Json(AnalyzeResponse::new(analysis, &analyze)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelPack;
    use crate::pipeline::{DetectedObject as Object, DetectionSettings};

    fn pipeline() -> Pipeline {
        Pipeline::new(ModelPack::default(), DetectionSettings::default())
    }

    fn inner_code(query: &str) -> Option<String> {
        let err =
            AnalyzeRequest::from_query(&QueryParams::parse(Some(query)), &pipeline()).unwrap_err();
        err.inner.map(|(code, _)| code)
    }

    #[test]
    fn model_name_stands_in_for_features_on_every_version() {
        for version in API_VERSIONS {
            let query = format!("api-version={version}&model-name=pets");
            let request =
                AnalyzeRequest::from_query(&QueryParams::parse(Some(&query)), &pipeline()).unwrap();
            assert_eq!(request.features, []);
            assert_eq!(
                (request.model_name.as_deref(), request.api_version),
                (Some("pets"), version)
            );
        }
        let err = AnalyzeRequest::from_query(
            &QueryParams::parse(Some("api-version=2023-10-01")),
            &pipeline(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("Either 'features' or 'model-name'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn query_errors_use_azure_codes() {
        let v = "api-version=2023-10-01";
        assert_eq!(
            inner_code(&format!(
                "{v}&features=objects&smartcrops-aspect-ratios=2.5"
            ))
            .as_deref(),
            Some("BadArgument")
        );
        assert_eq!(
            inner_code(&format!(
                "{v}&features=smartCrops&smartcrops-aspect-ratios=0.5"
            ))
            .as_deref(),
            Some("BadArgument")
        );
        assert_eq!(
            inner_code(&format!("{v}&features=faces")).as_deref(),
            Some("NotSupportedVisualFeature")
        );
        assert_eq!(
            inner_code(&format!("{v}&features=caption")).as_deref(),
            Some("NotSupportedVisualFeature")
        );
        assert_eq!(
            inner_code(&format!("{v}&features=smartCrops")).as_deref(),
            Some("NotSupportedVisualFeature")
        );
        assert_eq!(
            inner_code(&format!(
                "{v}&features=objects&gender-neutral-caption=maybe"
            ))
            .as_deref(),
            Some("BadArgument")
        );
        assert_eq!(
            inner_code(&format!("{v}&features=objects&model-version=2021-01-01")).as_deref(),
            Some("BadArgument")
        );
        assert_eq!(
            inner_code(&format!("{v}&features=objects&language=e")).as_deref(),
            Some("NotSupportedLanguage")
        );
        assert_eq!(inner_code(v), None, "missing features has no inner error");
        assert_eq!(inner_code("features=objects"), None, "missing api-version");
        // Without a detector installed, objects is refused, and the message says why.
        let err = AnalyzeRequest::from_query(
            &QueryParams::parse(Some(&format!("{v}&features=objects"))),
            &pipeline(),
        )
        .unwrap_err();
        assert!(err.inner.unwrap().1.contains("vista models fetch"));
    }

    #[test]
    fn only_requested_sections_are_serialized() {
        let mut analysis = Analysis::new(640, 480, image::ImageFormat::Jpeg);
        analysis.objects = Some(vec![Object {
            rect: PixelRect {
                x: 1,
                y: 2,
                w: 3,
                h: 4,
            },
            label: "cat".into(),
            confidence: 0.5,
            parents: vec!["animal".into()],
        }]);
        analysis.smart_crops = Some(vec![crate::pipeline::CropRegion {
            importance: 0.5,
            ratio: 0.9,
            rect: PixelRect {
                x: 0,
                y: 5,
                w: 9,
                h: 10,
            },
        }]);
        // Dense captions compute the caption too; it is sent only when asked for.
        let caption = crate::pipeline::caption::Caption {
            text: "a cat".into(),
            confidence: 0.5,
        };
        analysis.captions = Some(vec![caption]);
        analysis.dense_captions = Some(vec![crate::pipeline::caption::DenseCaption {
            text: "a cat".into(),
            confidence: 0.5,
            rect: PixelRect {
                x: 0,
                y: 0,
                w: 640,
                h: 480,
            },
        }]);
        let request = AnalyzeRequest {
            api_version: MODEL_VERSION,
            features: vec![
                Feature::Objects,
                Feature::SmartCrops,
                Feature::DenseCaptions,
            ],
            model_name: None,
            language: "en".into(),
            gender_neutral_caption: false,
            smart_crop_ratios: vec![0.9],
        };
        // Through the wire text, as clients see it: f32 ratios must read back exactly as requested.
        let wire = serde_json::to_string(&AnalyzeResponse::new(analysis, &request)).unwrap();
        assert!(wire.contains(r#""aspectRatio":0.9,"#), "{wire}");
        let json: serde_json::Value = serde_json::from_str(&wire).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"modelVersion": "2023-10-01", "metadata": {"width": 640, "height": 480},
                "objectsResult": {"values": [{"boundingBox": {"x": 1, "y": 2, "w": 3, "h": 4},
                                              "tags": [{"name": "cat", "confidence": 0.5}]}]},
                "smartCropsResult": {"values": [{"aspectRatio": 0.9, "boundingBox": {"x": 0, "y": 5, "w": 9, "h": 10}}]},
                "denseCaptionsResult": {"values": [{"text": "a cat", "confidence": 0.5,
                                                    "boundingBox": {"x": 0, "y": 0, "w": 640, "h": 480}}]}})
        );
    }
}
