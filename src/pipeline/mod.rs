//! The pipeline: decode the image once, run the requested features over it, and return plain results
//! (no HTTP types, no tensors). Every API family (4.0, 3.2, the CLI) goes through here.

pub mod decode;
pub mod workers;

use std::fmt;

use crate::geometry::{nms_per_class, PixelRect};
use crate::models::ModelPack;
use self::decode::{decode, DecodeError, ImageLimits};

/// What a request can ask the pipeline for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    Caption,
    DenseCaptions,
    Objects,
    People,
    Read,
    SmartCrops,
    Tags,
}

impl Feature {
    pub const ALL: [Feature; 7] = [
        Feature::Caption,
        Feature::DenseCaptions,
        Feature::Objects,
        Feature::People,
        Feature::Read,
        Feature::SmartCrops,
        Feature::Tags,
    ];

    /// The name used on the wire by Image Analysis 4.0.
    pub fn wire_name(self) -> &'static str {
        match self {
            Feature::Caption => "caption",
            Feature::DenseCaptions => "denseCaptions",
            Feature::Objects => "objects",
            Feature::People => "people",
            Feature::Read => "read",
            Feature::SmartCrops => "smartCrops",
            Feature::Tags => "tags",
        }
    }

    /// Case-insensitive lookup by wire name.
    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.wire_name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// Tunables of the detector's post-processing.
#[derive(Debug, Clone)]
pub struct DetectionSettings {
    /// Objects below this confidence are not reported.
    pub min_object_confidence: f32,
    /// People below this confidence are not reported (Azure reports low-confidence people too).
    pub min_person_confidence: f32,
    /// Per-class NMS overlap above which the weaker box is dropped.
    pub nms_iou: f32,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        DetectionSettings { min_object_confidence: 0.3, min_person_confidence: 0.2, nms_iou: 0.7 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectedObject {
    pub rect: PixelRect,
    pub label: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectedPerson {
    pub rect: PixelRect,
    pub confidence: f32,
}

/// The results of one request; a feature that was not asked for stays `None`.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub width: u32,
    pub height: u32,
    pub objects: Option<Vec<DetectedObject>>,
    pub people: Option<Vec<DetectedPerson>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("feature '{feature}' is not available: {reason}")]
    Unavailable { feature: Feature, reason: String },
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub struct Pipeline {
    models: ModelPack,
    detection: DetectionSettings,
}

impl Pipeline {
    pub fn new(models: ModelPack, detection: DetectionSettings) -> Self {
        Pipeline { models, detection }
    }

    pub fn models(&self) -> &ModelPack {
        &self.models
    }

    /// Why `feature` cannot be served by this deployment, or `None` when it can.
    pub fn unavailable(&self, feature: Feature) -> Option<String> {
        match feature {
            Feature::Objects | Feature::People if self.models.detector.is_none() => {
                Some("the object detector (centernet) is not installed; run `vista models fetch`".into())
            }
            Feature::Objects | Feature::People => None,
            Feature::Caption | Feature::DenseCaptions => Some("no captioning model is installed in this vista build".into()),
            Feature::Tags => Some("no tagging model is installed in this vista build".into()),
            Feature::Read => Some("no OCR model is installed in this vista build".into()),
            Feature::SmartCrops => Some("no salience model is installed in this vista build".into()),
        }
    }

    /// Decodes `bytes` under `limits` and runs `features`. Call it from a worker: it is CPU-bound.
    pub fn analyze(&self, bytes: &[u8], limits: &ImageLimits, features: &[Feature]) -> Result<Analysis, PipelineError> {
        if let Some((feature, reason)) = features.iter().find_map(|f| self.unavailable(*f).map(|r| (*f, r))) {
            return Err(PipelineError::Unavailable { feature, reason });
        }
        let started = std::time::Instant::now();
        let image = decode(bytes, limits)?.rgb;
        let decoded = started.elapsed();
        let (width, height) = image.dimensions();
        let mut analysis = Analysis { width, height, ..Default::default() };

        let wants = |f: Feature| features.contains(&f);
        if wants(Feature::Objects) || wants(Feature::People) {
            let detector = self.models.detector.as_ref().expect("checked by unavailable()");
            let settings = &self.detection;
            let floor = settings.min_object_confidence.min(settings.min_person_confidence);
            let detections = nms_per_class(detector.detect(&image, floor)?, settings.nms_iou);
            let labels = detector.labels();
            if wants(Feature::Objects) {
                analysis.objects = Some(
                    detections
                        .iter()
                        .filter(|d| d.score >= settings.min_object_confidence)
                        .map(|d| DetectedObject {
                            rect: d.bbox.to_pixel_rect(width, height),
                            label: labels[d.class].clone(),
                            confidence: d.score,
                        })
                        .collect(),
                );
            }
            if wants(Feature::People) {
                analysis.people = Some(
                    detections
                        .iter()
                        .filter(|d| labels[d.class] == "person" && d.score >= settings.min_person_confidence)
                        .map(|d| DetectedPerson { rect: d.bbox.to_pixel_rect(width, height), confidence: d.score })
                        .collect(),
                );
            }
        }
        tracing::debug!(decode_ms = decoded.as_secs_f64() * 1e3, total_ms = started.elapsed().as_secs_f64() * 1e3, "analyzed");
        Ok(analysis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_parse_case_insensitively_and_round_trip() {
        for feature in Feature::ALL {
            assert_eq!(Feature::parse(feature.wire_name()), Some(feature));
            assert_eq!(Feature::parse(&feature.wire_name().to_uppercase()), Some(feature));
        }
        assert_eq!(Feature::parse("Objects "), Some(Feature::Objects));
        assert_eq!(Feature::parse("faces"), None);
    }

    #[test]
    fn a_pipeline_without_models_refuses_every_feature_with_a_reason() {
        let pipeline = Pipeline::new(ModelPack { detector: None, status: vec![] }, DetectionSettings::default());
        for feature in Feature::ALL {
            assert!(pipeline.unavailable(feature).is_some(), "{feature}");
        }
        let err = pipeline.analyze(b"irrelevant", &decode::ANALYZE_V4, &[Feature::Objects]).unwrap_err();
        assert!(matches!(err, PipelineError::Unavailable { feature: Feature::Objects, .. }));
    }
}
