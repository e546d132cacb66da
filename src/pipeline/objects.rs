//! Objects and people: the detector's boxes above the deployment's floors, objects named with their
//! broader categories (cat → mammal → animal) and held to the deployment's tag rules.

use super::scene::Scene;
use super::PipelineError;
use crate::geometry::PixelRect;

#[derive(Debug, Clone, PartialEq)]
pub struct DetectedObject {
    pub rect: PixelRect,
    pub label: String,
    pub confidence: f32,
    /// Broader categories, nearest first (cat → mammal → animal); empty without the hierarchy data.
    pub parents: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectedPerson {
    pub rect: PixelRect,
    pub confidence: f32,
}

pub fn objects(scene: &Scene) -> Result<Vec<DetectedObject>, PipelineError> {
    let (width, height) = scene.dimensions();
    let min_confidence = scene.settings().min_object_confidence;
    Ok(scene
        .detections()?
        .iter()
        .filter(|d| d.score >= min_confidence)
        .filter(|d| scene.tag_filter().permits(scene.label(d)))
        .map(|d| {
            let label = scene.label(d);
            DetectedObject {
                rect: d.bbox.to_pixel_rect(width, height),
                label: label.to_string(),
                confidence: d.score,
                parents: scene.parents(label),
            }
        })
        .collect())
}

pub fn people(scene: &Scene) -> Result<Vec<DetectedPerson>, PipelineError> {
    let (width, height) = scene.dimensions();
    let min_confidence = scene.settings().min_person_confidence;
    Ok(scene
        .detections()?
        .iter()
        .filter(|d| scene.is_person(d) && d.score >= min_confidence)
        .map(|d| DetectedPerson {
            rect: d.bbox.to_pixel_rect(width, height),
            confidence: d.score,
        })
        .collect())
}
