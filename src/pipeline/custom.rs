//! Analyze with a model the user trained (`model-name`): the head's answer over the scene, in plain
//! types: every class ranked (a classifier) or the boxes found (a detector).

use super::scene::{required, Scene};
use super::PipelineError;
use crate::geometry::PixelRect;
use crate::models::custom_head::{classifier_vector, feature_map, CustomHead, MIN_BOX_SCORE};

#[derive(Debug, Clone, PartialEq)]
pub struct CustomTag {
    pub name: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomObject {
    pub rect: PixelRect,
    pub name: String,
    pub confidence: f32,
    /// Its class, then the likeliest others at its centre (at most [`RANKED`]).
    pub ranked: Vec<CustomTag>,
}

/// Classes kept per box besides its own, as Microsoft's product-recognition results list them (five).
pub const RANKED: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub enum CustomResult {
    /// Every class, the most likely first.
    Tags(Vec<CustomTag>),
    /// Boxes from [`MIN_BOX_SCORE`] up, best first (clients filter for themselves).
    Objects(Vec<CustomObject>),
}

/// What `head` finds in the scene's image.
pub fn custom(scene: &Scene, head: &CustomHead) -> Result<CustomResult, PipelineError> {
    let models = scene.models();
    let image = scene.image();
    match head {
        CustomHead::Classifier(head) => {
            let classifier = required(models.classifier.as_deref(), "the classifier")?;
            let detector = models.detector.as_deref().filter(|_| head.evidence);
            let vector = classifier_vector(classifier, detector, image)?;
            let ranked = head.predict(&vector)?;
            Ok(CustomResult::Tags(
                ranked
                    .into_iter()
                    .map(|(name, confidence)| CustomTag { name, confidence })
                    .collect(),
            ))
        }
        CustomHead::Detector(head) => {
            let detector = required(models.detector.as_deref(), "the object detector")?;
            let map = feature_map(detector, image)?;
            let (width, height) = scene.dimensions();
            let found = head.detect(&map, MIN_BOX_SCORE, (width, height))?;
            Ok(CustomResult::Objects(
                found
                    .into_iter()
                    .map(|f| CustomObject {
                        rect: f.bbox.to_pixel_rect(width, height),
                        name: head.classes[f.class].clone(),
                        confidence: f.score,
                        ranked: f
                            .ranked(RANKED)
                            .into_iter()
                            .map(|(class, confidence)| CustomTag {
                                name: head.classes[class].clone(),
                                confidence,
                            })
                            .collect(),
                    })
                    .collect(),
            ))
        }
    }
}
