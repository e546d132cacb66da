//! What the models found about what an image shows, fused into scored names: the shared evidence of
//! tags, captions, categories and description. The classifier's classes, the detector's things (with
//! their parents), a face where a person was seen, text presence, and a CLIP's zero-shot names.

use image::RgbImage;

use super::caption::{TextCoverage, Thing};
use super::scene::{required, Scene};
use super::tags::{detection_confidence, TagEvidence, TagScores};
use super::PipelineError;
use crate::models::text_det::TextRegion;
use crate::models::traits::TextRegionDetector;

/// A name a CLIP scores zero-shot is evidence from this probability.
const MIN_ZERO_SHOT: f32 = 0.05;

/// The longer side of the copy the text detector looks at to tell whether an image has text.
const TEXT_PRESENCE_SIDE: u32 = 640;

/// How sure it is that the image shows text, and how much of it text covers.
#[derive(Debug, Clone, Copy)]
pub struct TextPresence {
    pub score: f32,
    pub coverage: TextCoverage,
}

/// The fused evidence.
#[derive(Debug, Clone)]
pub struct Names {
    /// The detections the deployment's tag rules allow, with the chance that each is right (not the
    /// detector's score).
    pub things: Vec<Thing>,
    /// Every candidate name with its fused confidence.
    pub scores: TagScores,
}

/// Gathers and fuses the evidence of a scene. Needs the classifier and the WordNet names (checked
/// before a scene is made).
pub fn gather(scene: &Scene) -> Result<Names, PipelineError> {
    let (width, height) = scene.dimensions();
    let filter = scene.tag_filter();
    let hierarchy = required(scene.models().hierarchy.as_ref(), "the WordNet names")?;
    let detections = scene.detections()?;
    let things: Vec<Thing> = detections
        .iter()
        .filter(|d| filter.permits(scene.label(d)))
        .map(|d| Thing {
            label: scene.label(d).to_string(),
            rect: d.bbox.to_pixel_rect(width, height),
            confidence: detection_confidence(d.score),
        })
        .collect();
    let parents: Vec<Vec<String>> = things.iter().map(|t| scene.parents(&t.label)).collect();
    // "human face" is said only where the detector saw a person.
    let min_person = scene.settings().min_person_confidence;
    let person_seen = detections
        .iter()
        .any(|d| scene.is_person(d) && d.score >= min_person);
    let face = if person_seen {
        scene.faces()?.iter().map(|f| f.score).reduce(f32::max)
    } else {
        None
    };
    let zero_shot = match (scene.clip_embedding()?, &scene.models().clip) {
        (Some(embedding), Some(clip)) => clip.zero_shot(embedding, MIN_ZERO_SHOT),
        _ => Vec::new(),
    };
    let evidence = TagEvidence {
        classes: Some((scene.class_probabilities()?, hierarchy.imagenet())),
        objects: things
            .iter()
            .zip(&parents)
            .map(|(t, parents)| (t.label.as_str(), t.confidence, parents.as_slice()))
            .collect(),
        face,
        text: scene.text_presence()?.map(|p| p.score),
        zero_shot,
    };
    let scores = TagScores::fuse(&evidence, filter);
    Ok(Names { things, scores })
}

/// The text detector's surest region on a small copy, weighed by how many regions it found, and how
/// much text covers. Always measured on the same copy, so a tag's confidence does not depend on
/// whether `read` ran too: an image no larger than that copy shares `read`'s regions (the detector
/// never upscales, so both see the same input). None without the text detector.
pub fn text_presence(scene: &Scene) -> Result<Option<TextPresence>, PipelineError> {
    let Some(detector) = &scene.models().text_detector else {
        return Ok(None);
    };
    let image = scene.image();
    if shares_read_regions(image) {
        Ok(Some(presence(scene.text_regions()?, image.dimensions())))
    } else {
        Ok(Some(presence_on_copy(detector.as_ref(), image)?))
    }
}

/// Whether text presence looks at `read`'s own regions: the image is no larger than its copy.
pub fn shares_read_regions(image: &RgbImage) -> bool {
    image.width().max(image.height()) <= TEXT_PRESENCE_SIDE
}

/// Text presence measured on a copy at most [`TEXT_PRESENCE_SIDE`] long.
pub fn presence_on_copy(
    detector: &dyn TextRegionDetector,
    image: &RgbImage,
) -> anyhow::Result<TextPresence> {
    let regions = detector.detect_within(image, TEXT_PRESENCE_SIDE)?;
    Ok(presence(&regions, image.dimensions()))
}

fn presence(regions: &[TextRegion], (width, height): (u32, u32)) -> TextPresence {
    // One region may be a stray stroke; a few make text.
    let support = (regions.len() as f32 / 3.0).min(1.0);
    let score = regions.iter().map(|r| r.score).fold(0.0, f32::max) * support;
    let covered: f32 = regions.iter().map(|r| r.quad.area()).sum();
    TextPresence {
        score,
        coverage: TextCoverage {
            regions: regions.len(),
            share: covered / (width as f32 * height as f32).max(1.0),
        },
    }
}
