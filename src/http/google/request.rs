//! The JSON Google's clients send, read by proto3-JSON rules: lowerCamel or snake_case field names,
//! enums as names or numbers (the official REST clients send numbers), bytes in either base64
//! alphabet, unknown fields ignored.

use base64::Engine;
use serde::{Deserialize, Deserializer};

use super::error::Status;

/// `Feature.Type` by number, as the proto numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureType {
    Unspecified = 0,
    FaceDetection = 1,
    LandmarkDetection = 2,
    LogoDetection = 3,
    LabelDetection = 4,
    TextDetection = 5,
    SafeSearchDetection = 6,
    ImageProperties = 7,
    CropHints = 9,
    WebDetection = 10,
    DocumentTextDetection = 11,
    ProductSearch = 12,
    ObjectLocalization = 19,
}

const FEATURE_TYPES: [(FeatureType, &str); 13] = [
    (FeatureType::Unspecified, "TYPE_UNSPECIFIED"),
    (FeatureType::FaceDetection, "FACE_DETECTION"),
    (FeatureType::LandmarkDetection, "LANDMARK_DETECTION"),
    (FeatureType::LogoDetection, "LOGO_DETECTION"),
    (FeatureType::LabelDetection, "LABEL_DETECTION"),
    (FeatureType::TextDetection, "TEXT_DETECTION"),
    (FeatureType::SafeSearchDetection, "SAFE_SEARCH_DETECTION"),
    (FeatureType::ImageProperties, "IMAGE_PROPERTIES"),
    (FeatureType::CropHints, "CROP_HINTS"),
    (FeatureType::WebDetection, "WEB_DETECTION"),
    (
        FeatureType::DocumentTextDetection,
        "DOCUMENT_TEXT_DETECTION",
    ),
    (FeatureType::ProductSearch, "PRODUCT_SEARCH"),
    (FeatureType::ObjectLocalization, "OBJECT_LOCALIZATION"),
];

impl FeatureType {
    pub fn name(self) -> &'static str {
        FEATURE_TYPES
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("TYPE_UNSPECIFIED", |(_, n)| n)
    }
}

/// An enum value as sent: a known type, or a number or name this server does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent<T> {
    Known(T),
    Unknown(String),
}

impl<'de> Deserialize<'de> for Sent<FeatureType> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Name(String),
        }
        let known = |found: Option<&(FeatureType, &str)>| found.map(|(t, _)| Sent::Known(*t));
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Number(n) => known(FEATURE_TYPES.iter().find(|(t, _)| *t as i64 == n))
                .unwrap_or(Sent::Unknown(n.to_string())),
            Raw::Name(name) => {
                known(FEATURE_TYPES.iter().find(|(_, s)| *s == name)).unwrap_or(Sent::Unknown(name))
            }
        })
    }
}

impl Default for Sent<FeatureType> {
    fn default() -> Self {
        Sent::Known(FeatureType::Unspecified)
    }
}

/// Proto `bytes`: base64, standard or URL-safe, padded or not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Base64(pub Vec<u8>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        let text = String::deserialize(deserializer)?;
        let text = text.trim_end_matches('=');
        let engine = if text.contains(['-', '_']) {
            URL_SAFE_NO_PAD
        } else {
            STANDARD_NO_PAD
        };
        engine
            .decode(text)
            .map(Base64)
            .map_err(|e| serde::de::Error::custom(format!("invalid base64 bytes: {e}")))
    }
}

#[derive(Debug, Deserialize)]
pub struct BatchRequest<T> {
    #[serde(default = "Vec::new")]
    pub requests: Vec<T>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnnotateImageRequest {
    #[serde(default)]
    pub image: Option<Image>,
    #[serde(default)]
    pub features: Vec<FeatureRequest>,
    #[serde(default, alias = "image_context")]
    pub image_context: Option<ImageContext>,
}

#[derive(Debug, Deserialize, Default)]
pub struct Image {
    #[serde(default)]
    pub content: Option<Base64>,
    #[serde(default)]
    pub source: Option<ImageSource>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImageSource {
    #[serde(default, alias = "image_uri")]
    pub image_uri: Option<String>,
    #[serde(default, alias = "gcs_image_uri")]
    pub gcs_image_uri: Option<String>,
}

impl ImageSource {
    /// `imageUri` wins over the older `gcsImageUri` when both are set.
    pub fn uri(&self) -> Option<&str> {
        self.image_uri
            .as_deref()
            .filter(|u| !u.is_empty())
            .or(self.gcs_image_uri.as_deref().filter(|u| !u.is_empty()))
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FeatureRequest {
    #[serde(default, rename = "type")]
    pub kind: Sent<FeatureType>,
    #[serde(default, alias = "max_results")]
    pub max_results: Option<i32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImageContext {
    #[serde(default, alias = "language_hints")]
    pub language_hints: Vec<String>,
    #[serde(default, alias = "crop_hints_params")]
    pub crop_hints_params: Option<CropHintsParams>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CropHintsParams {
    #[serde(default, alias = "aspect_ratios")]
    pub aspect_ratios: Vec<f32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnnotateFileRequest {
    #[serde(default, alias = "input_config")]
    pub input_config: Option<InputConfig>,
    #[serde(default)]
    pub features: Vec<FeatureRequest>,
    #[serde(default, alias = "image_context")]
    pub image_context: Option<ImageContext>,
    #[serde(default)]
    pub pages: Vec<i32>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct InputConfig {
    #[serde(default)]
    pub content: Option<Base64>,
    #[serde(default, alias = "mime_type")]
    pub mime_type: String,
}

/// Parses a batch body, or the whole-call error naming what is wrong.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<BatchRequest<T>, Status> {
    serde_json::from_slice(body)
        .map_err(|e| Status::invalid(format!("Invalid JSON payload received. {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_snake_case_and_both_base64_alphabets_are_read() {
        let body = br#"{"requests": [
            {"image": {"content": "iVBORw"}, "features": [{"type": 4, "maxResults": 5}, {"type": "FACE_DETECTION"}],
             "imageContext": {"languageHints": ["en"], "cropHintsParams": {"aspectRatios": [1.0, 1.77]}}},
            {"image": {"content": "_-8"}, "features": [{"type": 99}, {"type": "NOPE"}],
             "image_context": {"crop_hints_params": {"aspect_ratios": [2.0]}}},
            {"image": {"source": {"gcsImageUri": "gs://b/old.jpg", "imageUri": "https://x/new.jpg"}}}]}"#;
        let batch: BatchRequest<AnnotateImageRequest> = parse(body).unwrap();
        let [first, second, third] = &batch.requests[..] else {
            panic!("three requests")
        };
        let image = first.image.as_ref().unwrap();
        assert_eq!(image.content.as_ref().unwrap().0, b"\x89PNG");
        assert_eq!(
            first.features[0].kind,
            Sent::Known(FeatureType::LabelDetection)
        );
        assert_eq!(first.features[0].max_results, Some(5));
        assert_eq!(
            first.features[1].kind,
            Sent::Known(FeatureType::FaceDetection)
        );
        let ratios = &first.image_context.as_ref().unwrap().crop_hints_params;
        assert_eq!(ratios.as_ref().unwrap().aspect_ratios, [1.0, 1.77]);
        assert_eq!(
            second.image.as_ref().unwrap().content.as_ref().unwrap().0,
            [0xff, 0xef]
        );
        assert_eq!(second.features[0].kind, Sent::Unknown("99".into()));
        assert_eq!(second.features[1].kind, Sent::Unknown("NOPE".into()));
        let snake = second
            .image_context
            .as_ref()
            .unwrap()
            .crop_hints_params
            .as_ref();
        assert_eq!(snake.unwrap().aspect_ratios, [2.0]);
        let source = third.image.as_ref().unwrap().source.as_ref().unwrap();
        assert_eq!(source.uri(), Some("https://x/new.jpg"));
        assert!(parse::<AnnotateImageRequest>(b"{not json").is_err());
    }
}
