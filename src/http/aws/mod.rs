//! The AWS Rekognition surface (JSON 1.1): `POST /` dispatched on `X-Amz-Target` to DetectLabels,
//! DetectFaces, DetectText and DetectModerationLabels, each request's SigV4 signature checked against
//! the configured access keys (`sigv4`), errors as AWS's exceptions (`error`). Boxes are ratios of the
//! image, confidences 0-100.

pub mod error;
pub mod sigv4;

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use image::ImageFormat;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::{json, Value};

use self::error::{AwsError, JSON_1_1};
use self::sigv4::{AwsCredentials, SignedRequest};
use super::google::cloud_name;
use super::intake::read_capped;
use super::{AppState, RequestId};
use crate::geometry::{BoundingBox, PixelRect, Quad};
use crate::pipeline::decode::{ImageLimits, ANALYZE_V4};
use crate::pipeline::palette::ColorShare;
use crate::pipeline::{Analysis, AnalysisOptions, Feature};

/// The largest image AWS accepts, decoded from base64.
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// A request body: a 5 MB image is about 7 MB as base64; above this the body cannot hold a valid image.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
const TARGET_PREFIX: &str = "RekognitionService.";
const LABEL_MODEL_VERSION: &str = "vista-labels-efficientnet-lite0-centernet-1";
const FACE_MODEL_VERSION: &str = "vista-faces-centerface-1";
const TEXT_MODEL_VERSION: &str = "vista-text-ppocr-1";
/// Says what the model covers: nudity and suggestive content only (decision D1).
const MODERATION_MODEL_VERSION: &str = "vista-nsfwjs-nudity-only-1";
/// `MinConfidence` when a request leaves it out: AWS's defaults.
const DEFAULT_LABEL_CONFIDENCE: f32 = 55.0;
const DEFAULT_MODERATION_CONFIDENCE: f32 = 50.0;
/// AWS reports at most the 100 largest faces.
const MAX_FACES: usize = 100;

/// The deployment's settings of this surface.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `None`: signatures are not checked (`--no-auth`).
    pub credentials: Option<AwsCredentials>,
    /// Answer DetectModerationLabels with AccessDeniedException (`--aws-moderation refuse`).
    pub refuse_moderation: bool,
    /// Accept every format vista decodes, not only PNG and JPEG (`--aws-lenient-formats`).
    pub lenient_formats: bool,
}

impl Settings {
    fn limits(&self) -> ImageLimits {
        ImageLimits {
            max_bytes: MAX_IMAGE_BYTES,
            min_side: 1,
            formats: if self.lenient_formats {
                ANALYZE_V4.formats
            } else {
                &[ImageFormat::Png, ImageFormat::Jpeg]
            },
            ..ANALYZE_V4
        }
    }
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/", post(rekognition))
}

/// `POST /`: checks the signature over the buffered body, runs the operation, and answers with
/// `x-amzn-RequestId`.
async fn rekognition(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let mut response = match handle(&state, request).await {
        Ok(body) => {
            let mut response = body.to_string().into_response();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
            response
        }
        Err(error) => error.into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

async fn handle(state: &Arc<AppState>, request: Request) -> Result<Value, AwsError> {
    let (parts, body) = request.into_parts();
    let body = read_capped(body, MAX_BODY_BYTES).await?;
    if let Some(credentials) = &state.aws.credentials {
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
        };
        if let Err(refusal) = sigv4::verify(credentials, "rekognition", &signed, SystemTime::now())
        {
            tracing::info!(reason = %refusal, "AWS signature refused");
            return Err(refusal.into());
        }
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    match operation {
        "DetectLabels" => detect_labels(state, input(&body)?).await,
        "DetectFaces" => detect_faces(state, input(&body)?).await,
        "DetectText" => detect_text(state, input(&body)?).await,
        "DetectModerationLabels" => detect_moderation(state, input(&body)?).await,
        other => Err(AwsError::new(
            "UnknownOperationException",
            format!("vista does not offer the operation '{other}'"),
        )),
    }
}

/// An operation's input, parsed once: a body that is not JSON is a `SerializationException`, JSON of
/// the wrong shape an `InvalidParameterException`.
fn input<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        Category::Data => AwsError::invalid(e.to_string()),
        _ => AwsError::new("SerializationException", e.to_string()),
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ImageInput {
    bytes: Option<String>,
    s3_object: Option<Value>,
}

impl ImageInput {
    /// The image bytes: base64 `Bytes`, at most 5 MB decoded; S3 objects are refused (no bucket map).
    fn bytes(&self) -> Result<Vec<u8>, AwsError> {
        if self.s3_object.is_some() {
            return Err(AwsError::invalid(
                "vista reads images from Image.Bytes only: S3Object needs Amazon S3, which this server does not reach",
            ));
        }
        let text = self
            .bytes
            .as_deref()
            .ok_or_else(|| AwsError::invalid("Image.Bytes is required"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| AwsError::invalid("Image.Bytes is not valid base64"))?;
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(AwsError::new(
                "ImageTooLargeException",
                "Image size is too large.",
            ));
        }
        if bytes.is_empty() {
            return Err(AwsError::invalid("Image.Bytes is empty"));
        }
        Ok(bytes)
    }
}

async fn analyze(
    state: &Arc<AppState>,
    image: &ImageInput,
    features: Vec<Feature>,
) -> Result<Analysis, AwsError> {
    let bytes = image.bytes()?;
    state.pipeline.check_available(&features)?;
    let pipeline = Arc::clone(&state.pipeline);
    let limits = state.aws.limits();
    let analysis = state
        .workers
        .run(move || pipeline.analyze(&bytes, &limits, &features, &AnalysisOptions::default()))
        .await?;
    Ok(analysis?)
}

fn ratio_box(r: &PixelRect, (w, h): (u32, u32)) -> Value {
    let (w, h) = (w as f32, h as f32);
    json!({"Width": r.w as f32 / w, "Height": r.h as f32 / h, "Left": r.x as f32 / w, "Top": r.y as f32 / h})
}

fn percent(p: f32) -> f32 {
    (p * 100.0).clamp(0.0, 100.0)
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DetectLabelsRequest {
    #[serde(default)]
    image: ImageInput,
    max_labels: Option<usize>,
    min_confidence: Option<f32>,
    #[serde(default)]
    features: Vec<String>,
    #[serde(default)]
    settings: LabelSettings,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct LabelSettings {
    #[serde(default)]
    general_labels: LabelFilters,
    #[serde(default)]
    image_properties: ImagePropertiesSettings,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct LabelFilters {
    #[serde(default)]
    label_inclusion_filters: Vec<String>,
    #[serde(default)]
    label_exclusion_filters: Vec<String>,
    #[serde(default)]
    label_category_inclusion_filters: Vec<String>,
    #[serde(default)]
    label_category_exclusion_filters: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ImagePropertiesSettings {
    max_dominant_colors: Option<usize>,
}

/// Rekognition's category of a label, from the label or its first ancestor in this table (decision
/// D6: a small fixed map from vista's everyday names to the category names AWS uses).
const CATEGORIES: &[(&str, &str)] = &[
    ("Animal", "Animals and Pets"),
    ("Person", "Person Description"),
    ("Human face", "Person Description"),
    ("Vehicle", "Vehicles and Automotive"),
    ("Land vehicle", "Vehicles and Automotive"),
    ("Food", "Food and Beverage"),
    ("Drink", "Food and Beverage"),
    ("Fruit", "Food and Beverage"),
    ("Furniture", "Furniture and Furnishings"),
    ("Plant", "Plants and Flowers"),
    ("Flower", "Plants and Flowers"),
    ("Text", "Text and Documents"),
    ("Sports equipment", "Sports"),
    ("Ball", "Sports"),
    ("Clothing", "Apparel and Accessories"),
    ("Fashion accessory", "Apparel and Accessories"),
    ("Building", "Buildings and Architecture"),
    ("Tool", "Tools and Machinery"),
    ("Kitchen appliance", "Home and Indoors"),
    ("Home appliance", "Home and Indoors"),
    ("Tableware", "Home and Indoors"),
    ("Electronic device", "Technology and Computing"),
    ("Computer", "Technology and Computing"),
    ("Mobile phone", "Technology and Computing"),
    ("Television", "Technology and Computing"),
];

fn category(names: &[String]) -> Option<&'static str> {
    names.iter().find_map(|n| {
        CATEGORIES
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, c)| *c)
    })
}

fn colors(palette: &[ColorShare], max: usize) -> Vec<Value> {
    palette
        .iter()
        .take(max)
        .map(|c| {
            let [r, g, b] = c.rgb;
            json!({"Red": r, "Green": g, "Blue": b, "HexCode": format!("#{r:02x}{g:02x}{b:02x}"),
                   "SimplifiedColor": c.name.as_str().to_lowercase(), "PixelPercent": percent(c.fraction)})
        })
        .collect()
}

async fn detect_labels(
    state: &Arc<AppState>,
    request: DetectLabelsRequest,
) -> Result<Value, AwsError> {
    let mut general = request.features.is_empty();
    let mut properties = false;
    for feature in &request.features {
        match feature.as_str() {
            "GENERAL_LABELS" => general = true,
            "IMAGE_PROPERTIES" => properties = true,
            other => {
                return Err(AwsError::invalid(format!(
                    "Features: '{other}' is not one of GENERAL_LABELS, IMAGE_PROPERTIES"
                )))
            }
        }
    }
    let min_confidence = request.min_confidence.unwrap_or(DEFAULT_LABEL_CONFIDENCE);
    if !(0.0..=100.0).contains(&min_confidence) {
        return Err(AwsError::invalid("MinConfidence must be between 0 and 100"));
    }
    let max_labels = request.max_labels.unwrap_or(1000);
    let mut features = Vec::new();
    if general {
        features.extend([Feature::Tags, Feature::Objects]);
    }
    if properties {
        features.extend([Feature::Palette, Feature::Quality]);
    }
    let analysis = analyze(state, &request.image, features).await?;
    let pipeline = &state.pipeline;
    let size = (analysis.width, analysis.height);
    let mut response = json!({"LabelModelVersion": LABEL_MODEL_VERSION});
    if general {
        let filters = &request.settings.general_labels;
        let objects = analysis.objects.as_deref().unwrap_or_default();
        let tags = analysis.tags.as_deref().unwrap_or_default();
        let labels: Vec<Value> = tags
            .iter()
            .filter(|t| percent(t.confidence) >= min_confidence)
            .filter_map(|tag| {
                let name = cloud_name(pipeline, &tag.name);
                let parents: Vec<String> = pipeline
                    .models()
                    .hierarchy
                    .as_ref()
                    .map(|h| {
                        h.ancestors(&tag.name)
                            .iter()
                            .map(|p| cloud_name(pipeline, p))
                            .collect()
                    })
                    .unwrap_or_default();
                let lineage: Vec<String> = std::iter::once(name.clone()).chain(parents.iter().cloned()).collect();
                let category = category(&lineage);
                let allowed = |list: &[String], value: &str| list.iter().any(|l| l.eq_ignore_ascii_case(value));
                let by_name = (filters.label_inclusion_filters.is_empty() || allowed(&filters.label_inclusion_filters, &name))
                    && !allowed(&filters.label_exclusion_filters, &name);
                let by_category = match category {
                    Some(c) => (filters.label_category_inclusion_filters.is_empty()
                        || allowed(&filters.label_category_inclusion_filters, c))
                        && !allowed(&filters.label_category_exclusion_filters, c),
                    None => filters.label_category_inclusion_filters.is_empty(),
                };
                if !(by_name && by_category) {
                    return None;
                }
                let instances: Vec<Value> = objects
                    .iter()
                    .filter(|o| cloud_name(pipeline, &o.label) == name)
                    .map(|o| json!({"BoundingBox": ratio_box(&o.rect, size), "Confidence": percent(o.confidence)}))
                    .collect();
                let mut label = json!({"Name": name, "Confidence": percent(tag.confidence), "Instances": instances,
                    "Parents": parents.iter().map(|p| json!({"Name": p})).collect::<Vec<_>>()});
                // A label the table has no category for gets none, not an empty list.
                if let Some(category) = category {
                    label["Categories"] = json!([{"Name": category}]);
                }
                Some(label)
            })
            .take(max_labels)
            .collect();
        response["Labels"] = json!(labels);
    }
    if properties {
        let max_colors = request
            .settings
            .image_properties
            .max_dominant_colors
            .unwrap_or(10);
        let palette = analysis.palette.as_deref().unwrap_or_default();
        let mut props = json!({"DominantColors": colors(palette, max_colors)});
        if let Some(q) = analysis.quality {
            props["Quality"] = json!({"Brightness": percent(q.brightness), "Sharpness": percent(q.sharpness),
                                      "Contrast": percent(q.contrast)});
        }
        response["ImageProperties"] = props;
    }
    Ok(response)
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DetectFacesRequest {
    #[serde(default)]
    image: ImageInput,
    #[serde(default)]
    attributes: Vec<String>,
}

/// Face attributes AWS defines that vista has no model for (decision D3: omitted under ALL, refused
/// when named).
const NO_MODEL_ATTRIBUTES: [&str; 10] = [
    "BEARD",
    "EMOTIONS",
    "EYE_DIRECTION",
    "EYEGLASSES",
    "EYES_OPEN",
    "MOUTH_OPEN",
    "MUSTACHE",
    "FACE_OCCLUDED",
    "SMILE",
    "SUNGLASSES",
];

async fn detect_faces(
    state: &Arc<AppState>,
    request: DetectFacesRequest,
) -> Result<Value, AwsError> {
    let has_attribute_model = state.pipeline.models().face_attributes.is_some();
    let (mut age, mut gender) = (false, false);
    for attribute in &request.attributes {
        match attribute.as_str() {
            "DEFAULT" => {}
            "ALL" => (age, gender) = (has_attribute_model, has_attribute_model),
            "AGE_RANGE" | "GENDER" if !has_attribute_model => {
                return Err(AwsError::invalid(format!(
                    "Attributes: {attribute} needs the face-attribute model (faceres), which is not installed"
                )))
            }
            "AGE_RANGE" => age = true,
            "GENDER" => gender = true,
            a if NO_MODEL_ATTRIBUTES.contains(&a) => {
                return Err(AwsError::invalid(format!("Attributes: vista has no model for {a}")))
            }
            other => return Err(AwsError::invalid(format!("Attributes: '{other}' is not a face attribute"))),
        }
    }
    let analysis = analyze(state, &request.image, vec![Feature::Faces]).await?;
    let size = (analysis.width, analysis.height);
    let (w, h) = (size.0 as f32, size.1 as f32);
    let mut faces = analysis.faces.unwrap_or_default();
    faces.sort_by_key(|f| std::cmp::Reverse(f.rect.w as u64 * f.rect.h as u64));
    let details: Vec<Value> = faces
        .iter()
        .take(MAX_FACES)
        .map(|f| {
            let l = &f.landmarks;
            let point = |kind: &str, (x, y): (f32, f32)| json!({"Type": kind, "X": x / w, "Y": y / h});
            let mut detail = json!({
                "BoundingBox": ratio_box(&f.rect, size),
                "Landmarks": [point("eyeLeft", l.left_eye), point("eyeRight", l.right_eye), point("nose", l.nose),
                              point("mouthLeft", l.mouth_left), point("mouthRight", l.mouth_right)],
                "Pose": {"Roll": f.pose.roll, "Yaw": f.pose.yaw, "Pitch": f.pose.pitch},
                "Quality": {"Brightness": percent(f.quality.brightness), "Sharpness": percent(f.quality.sharpness)},
                "Confidence": percent(f.confidence),
            });
            if let Some(attributes) = &f.attributes {
                if age {
                    // The model gives an expected age; the range is its typical error around it.
                    let spread = 3.0 + 0.15 * attributes.age;
                    detail["AgeRange"] = json!({"Low": (attributes.age - spread).max(0.0).round() as u32,
                                                "High": (attributes.age + spread).round() as u32});
                }
                if gender {
                    detail["Gender"] = json!({"Value": format!("{:?}", attributes.gender)});
                }
            }
            detail
        })
        .collect();
    Ok(json!({"FaceDetails": details, "FaceModelVersion": FACE_MODEL_VERSION}))
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DetectTextRequest {
    #[serde(default)]
    image: ImageInput,
    #[serde(default)]
    filters: TextFilters,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct TextFilters {
    #[serde(default)]
    word_filter: WordFilter,
    #[serde(default)]
    regions_of_interest: Vec<RegionOfInterest>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct WordFilter {
    #[serde(default)]
    min_confidence: f32,
    #[serde(default)]
    min_bounding_box_height: f32,
    #[serde(default)]
    min_bounding_box_width: f32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegionOfInterest {
    bounding_box: Option<RatioBox>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RatioBox {
    width: f32,
    height: f32,
    left: f32,
    top: f32,
}

/// A quad as AWS geometry: the upright box and the four corners, as ratios of the image.
fn geometry(q: &Quad, (w, h): (f32, f32)) -> (Value, (f32, f32, f32, f32)) {
    let corners = q.0.map(|(x, y)| (x / w, y / h));
    let BoundingBox { x1, y1, x2, y2 } = BoundingBox::around(corners);
    let polygon: Vec<Value> = corners
        .iter()
        .map(|(x, y)| json!({"X": x, "Y": y}))
        .collect();
    (
        json!({"BoundingBox": {"Width": x2 - x1, "Height": y2 - y1, "Left": x1, "Top": y1}, "Polygon": polygon}),
        (x1, y1, x2 - x1, y2 - y1),
    )
}

async fn detect_text(state: &Arc<AppState>, request: DetectTextRequest) -> Result<Value, AwsError> {
    let analysis = analyze(state, &request.image, vec![Feature::Read]).await?;
    let size = (analysis.width as f32, analysis.height as f32);
    let filter = &request.filters.word_filter;
    let regions = &request.filters.regions_of_interest;
    let keep = |(x, y, w, h): (f32, f32, f32, f32), confidence: f32| {
        let (cx, cy) = (x + w / 2.0, y + h / 2.0);
        percent(confidence) >= filter.min_confidence
            && h >= filter.min_bounding_box_height
            && w >= filter.min_bounding_box_width
            && (regions.is_empty()
                || regions
                    .iter()
                    .filter_map(|r| r.bounding_box.as_ref())
                    .any(|r| {
                        cx >= r.left
                            && cx <= r.left + r.width
                            && cy >= r.top
                            && cy <= r.top + r.height
                    }))
    };
    let page = analysis
        .text
        .unwrap_or_else(|| crate::pipeline::read::PageText {
            lines: Vec::new(),
            orientation: None,
            angle: 0.0,
        });
    // Lines that keep a word after the filters, each with its kept words.
    let mut kept_lines: Vec<(Value, Vec<Value>)> = Vec::new();
    for line in &page.lines {
        let words: Vec<Value> = line
            .words
            .iter()
            .filter_map(|word| {
                let (geometry, bounds) = geometry(&word.polygon, size);
                keep(bounds, word.confidence).then(|| {
                    json!({"DetectedText": word.text, "Type": "WORD",
                           "Confidence": percent(word.confidence), "Geometry": geometry})
                })
            })
            .collect();
        if words.is_empty() {
            continue;
        }
        let confidence =
            line.words.iter().map(|w| w.confidence).sum::<f32>() / line.words.len() as f32;
        let (geometry, _) = geometry(&line.polygon, size);
        let line = json!({"DetectedText": line.text, "Type": "LINE", "Confidence": percent(confidence),
                          "Geometry": geometry});
        kept_lines.push((line, words));
    }
    // Ids: the lines 0..n first, then the words, each naming its line as parent.
    let mut detections = Vec::new();
    let mut words = Vec::new();
    for (id, (mut line, line_words)) in kept_lines.into_iter().enumerate() {
        line["Id"] = json!(id);
        detections.push(line);
        words.extend(line_words.into_iter().map(|mut w| {
            w["ParentId"] = json!(id);
            w
        }));
    }
    let first_word = detections.len();
    for (i, mut word) in words.into_iter().enumerate() {
        word["Id"] = json!(first_word + i);
        detections.push(word);
    }
    Ok(json!({"TextDetections": detections, "TextModelVersion": TEXT_MODEL_VERSION}))
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DetectModerationRequest {
    #[serde(default)]
    image: ImageInput,
    min_confidence: Option<f32>,
    human_loop_config: Option<Value>,
    project_version: Option<Value>,
}

async fn detect_moderation(
    state: &Arc<AppState>,
    request: DetectModerationRequest,
) -> Result<Value, AwsError> {
    if state.aws.refuse_moderation {
        return Err(AwsError::new(
            "AccessDeniedException",
            "vista's moderation model covers nudity and suggestive content only; this server is configured to refuse DetectModerationLabels (--aws-moderation refuse)",
        ));
    }
    if request.human_loop_config.is_some() || request.project_version.is_some() {
        return Err(AwsError::invalid(
            "HumanLoopConfig and ProjectVersion need AWS services vista does not offer",
        ));
    }
    let min_confidence = request
        .min_confidence
        .unwrap_or(DEFAULT_MODERATION_CONFIDENCE);
    let analysis = analyze(state, &request.image, vec![Feature::Adult]).await?;
    let Some(rating) = analysis.adult else {
        return Err(AwsError::new(
            "InternalServerError",
            "Internal server error",
        ));
    };
    let c = rating.classes;
    // nsfwjs Porn and Hentai are explicit; Sexy is v6 "Suggestive", whose two v7 successors both get it.
    let candidates = [
        ("Explicit", c.porn + c.hentai),
        ("Non-Explicit Nudity of Intimate parts and Kissing", c.sexy),
        ("Swimwear or Underwear", c.sexy),
    ];
    let labels: Vec<Value> = candidates
        .iter()
        .filter(|(_, p)| percent(*p) >= min_confidence)
        .map(|(name, p)| json!({"Name": name, "ParentName": "", "TaxonomyLevel": 1, "Confidence": percent(*p)}))
        .collect();
    let illustrated = c.drawing + c.hentai;
    let content_types: Vec<Value> = (percent(illustrated) >= min_confidence)
        .then(|| json!({"Name": "Illustrated", "Confidence": percent(illustrated)}))
        .into_iter()
        .collect();
    Ok(
        json!({"ModerationLabels": labels, "ModerationModelVersion": MODERATION_MODEL_VERSION,
              "ContentTypes": content_types}),
    )
}
