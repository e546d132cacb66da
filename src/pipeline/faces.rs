//! Faces: the face detector's boxes, with age and gender where the optional model is installed.

use super::scene::Scene;
use super::PipelineError;
use crate::geometry::PixelRect;
pub use crate::models::faceres::{FaceAttributes, Gender};

#[derive(Debug, Clone, PartialEq)]
pub struct DetectedFace {
    pub rect: PixelRect,
    pub confidence: f32,
    /// Estimated age and gender, only where the optional model is installed.
    pub attributes: Option<FaceAttributes>,
}

pub fn faces(scene: &Scene) -> Result<Vec<DetectedFace>, PipelineError> {
    let (width, height) = scene.dimensions();
    let faces = scene.faces()?;
    let rects: Vec<PixelRect> = faces
        .iter()
        .map(|f| f.bbox.to_pixel_rect(width, height))
        .collect();
    let attributes = match &scene.models().face_attributes {
        Some(model) => model
            .estimate(scene.image(), &rects)?
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None; rects.len()],
    };
    Ok(rects
        .into_iter()
        .zip(faces.iter().zip(attributes))
        .map(|(rect, (f, attributes))| DetectedFace {
            rect,
            confidence: f.score,
            attributes,
        })
        .collect())
}
