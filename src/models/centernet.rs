//! MobileNetV3-CenterNet (COCO-80): letterboxed 512x512 input, a class heatmap and box distances at
//! stride 4. The tfjs export decoded its own output in-graph (peak picking + TopK); the converted
//! ONNX graph stops at the heads, and that decoding lives here, where thresholds are ours to set.

use anyhow::Result;
use image::RgbImage;
use ndarray::{Array4, ArrayView3};
use ort::value::TensorRef;
use serde::Deserialize;

use super::traits::{FeatureMap, ObjectDetector};
use crate::geometry::{BoundingBox, Detection};
use crate::models::manifest::PackEntry;
use crate::models::preprocess::resize_bilinear;
use crate::runtime::{first_in_batch, SessionPool};

#[derive(Debug, Clone, Deserialize)]
pub struct CenterNetFacts {
    pub input: String,
    pub input_size: u32,
    pub heatmap: String,
    pub box_distances: String,
    /// The tensor both heads read (128 channels at the heads' stride), when the file exposes it.
    #[serde(default)]
    pub features: Option<String>,
    pub stride: u32,
    pub max_detections: usize,
    pub labels: Vec<String>,
}

pub struct CenterNet {
    sessions: SessionPool,
    facts: CenterNetFacts,
}

/// The network input and how to map its coordinates back to the original image.
pub struct Letterboxed {
    pub tensor: Array4<f32>,
    pub scale_x: f32,
    pub scale_y: f32,
}

impl CenterNet {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        Ok(CenterNet {
            sessions,
            facts: entry.facts()?,
        })
    }
}

impl ObjectDetector for CenterNet {
    fn labels(&self) -> &[String] {
        &self.facts.labels
    }

    /// Detections in original-image pixels with score >= `min_score`, best first, before NMS.
    fn detect(&self, image: &RgbImage, min_score: f32) -> Result<Vec<Detection>> {
        let input = letterbox(image, self.facts.input_size)?;
        let facts = &self.facts;
        let inputs =
            ort::inputs![facts.input.as_str() => TensorRef::from_array_view(&input.tensor)?];
        let mut found = self.sessions.run(inputs, |outputs| {
            let heatmap = outputs[facts.heatmap.as_str()].try_extract_array::<f32>()?;
            let distances = outputs[facts.box_distances.as_str()].try_extract_array::<f32>()?;
            let (heatmap, distances) = (first_in_batch(heatmap)?, first_in_batch(distances)?);
            Ok(decode(
                heatmap,
                distances,
                facts.stride as f32,
                facts.max_detections,
                min_score,
            ))
        })?;
        for detection in &mut found {
            detection.bbox = detection.bbox.rescaled(
                input.scale_x,
                input.scale_y,
                image.width(),
                image.height(),
            );
        }
        found.retain(|d| {
            d.bbox.width() >= 1.0 && d.bbox.height() >= 1.0 && d.class < facts.labels.len()
        });
        Ok(found)
    }

    fn feature_map(&self, image: &RgbImage) -> Result<Option<FeatureMap>> {
        let facts = &self.facts;
        let Some(features) = &facts.features else {
            return Ok(None);
        };
        let input = letterbox(image, facts.input_size)?;
        let inputs =
            ort::inputs![facts.input.as_str() => TensorRef::from_array_view(&input.tensor)?];
        let (values, class_evidence) = self.sessions.run(inputs, |outputs| {
            let values: ndarray::ArrayView3<f32> =
                first_in_batch(outputs[features.as_str()].try_extract_array::<f32>()?)?;
            let heatmap = outputs[facts.heatmap.as_str()].try_extract_array::<f32>()?;
            let heatmap: ndarray::ArrayView3<f32> = first_in_batch(heatmap)?;
            let evidence = heatmap
                .outer_iter()
                .map(|plane| plane.iter().copied().fold(0.0f32, f32::max))
                .collect::<Vec<f32>>();
            Ok((values.to_owned(), evidence))
        })?;
        let stride = facts.stride as f32;
        let (rows, cols) = (values.dim().1, values.dim().2);
        let cells = |pixels: u32, scale: f32| {
            ((pixels as f32 / scale / stride).ceil() as usize).clamp(1, rows.max(cols))
        };
        let covered = (
            cells(image.height(), input.scale_y).min(rows),
            cells(image.width(), input.scale_x).min(cols),
        );
        Ok(Some(FeatureMap {
            values,
            stride,
            scale: (input.scale_x, input.scale_y),
            covered,
            class_evidence,
        }))
    }
}

/// Resizes to fit `size` x `size` keeping the aspect ratio, placed top-left on black, as NCHW floats 0..255.
pub fn letterbox(image: &RgbImage, size: u32) -> Result<Letterboxed> {
    let (width, height) = image.dimensions();
    let scale = size as f32 / width.max(height) as f32;
    let fit_w = ((width as f32 * scale).round() as u32).clamp(1, size);
    let fit_h = ((height as f32 * scale).round() as u32).clamp(1, size);
    let pixels = resize_bilinear(image, fit_w, fit_h)?;

    let side = size as usize;
    let mut tensor = Array4::<f32>::zeros((1, 3, side, side));
    let planes = tensor.as_slice_mut().expect("a new array is contiguous");
    let (red, rest) = planes.split_at_mut(side * side);
    let (green, blue) = rest.split_at_mut(side * side);
    for (row, pixels) in pixels.chunks_exact(fit_w as usize * 3).enumerate() {
        let start = row * side;
        let (r, g, b) = (&mut red[start..], &mut green[start..], &mut blue[start..]);
        for (x, pixel) in pixels.chunks_exact(3).enumerate() {
            r[x] = pixel[0] as f32;
            g[x] = pixel[1] as f32;
            b[x] = pixel[2] as f32;
        }
    }
    Ok(Letterboxed {
        tensor,
        scale_x: width as f32 / fit_w as f32,
        scale_y: height as f32 / fit_h as f32,
    })
}

/// CenterNet decoding: a cell is a detection when its class score is a local maximum of its 3x3
/// neighbourhood (the model's own max-pool "NMS") and reaches `min_score`; its box extends by the
/// four predicted distances (left, top, right, bottom, in input pixels) around the cell centre.
/// `heatmap` is [classes, H, W], `distances` [4, H, W]; boxes come out in network-input pixels.
pub fn decode(
    heatmap: ArrayView3<f32>,
    distances: ArrayView3<f32>,
    stride: f32,
    max_detections: usize,
    min_score: f32,
) -> Vec<Detection> {
    let (_, rows, cols) = heatmap.dim();
    let standard = heatmap.as_standard_layout();
    let cells = standard.as_slice().expect("standard layout is contiguous");
    let mut found = Vec::new();
    // A tight pass over the whole buffer: almost every cell is below the threshold.
    for (index, &score) in cells.iter().enumerate() {
        if score < min_score {
            continue;
        }
        let (class, y, x) = (index / (rows * cols), index / cols % rows, index % cols);
        let plane = &cells[class * rows * cols..(class + 1) * rows * cols];
        let is_peak = (y.saturating_sub(1)..(y + 2).min(rows)).all(|ny| {
            (x.saturating_sub(1)..(x + 2).min(cols)).all(|nx| plane[ny * cols + nx] <= score)
        });
        if !is_peak {
            continue;
        }
        let (cx, cy) = (x as f32 * stride, y as f32 * stride);
        let bbox = BoundingBox {
            x1: cx - distances[[0, y, x]],
            y1: cy - distances[[1, y, x]],
            x2: cx + distances[[2, y, x]],
            y2: cy + distances[[3, y, x]],
        };
        found.push(Detection { bbox, score, class });
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    found.truncate(max_detections);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn decode_keeps_local_peaks_above_threshold_and_builds_boxes_from_distances() {
        let mut heatmap = Array3::<f32>::zeros((2, 8, 8));
        heatmap[[0, 2, 3]] = 0.9; // peak
        heatmap[[0, 2, 4]] = 0.8; // neighbour of a higher peak: not a detection
        heatmap[[1, 6, 6]] = 0.4; // peak of another class
        heatmap[[1, 0, 0]] = 0.05; // below threshold
        let mut distances = Array3::<f32>::zeros((4, 8, 8));
        for (channel, value) in [1.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
            distances[[channel, 2, 3]] = value;
        }
        let found = decode(heatmap.view(), distances.view(), 4.0, 100, 0.1);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].class, found[0].score), (0, 0.9));
        assert_eq!(
            found[0].bbox,
            BoundingBox {
                x1: 11.0,
                y1: 6.0,
                x2: 15.0,
                y2: 12.0
            }
        );
        assert_eq!((found[1].class, found[1].score), (1, 0.4));
    }

    #[test]
    fn decode_keeps_only_the_best_max_detections() {
        let mut heatmap = Array3::<f32>::zeros((1, 10, 10));
        for i in 0..5 {
            heatmap[[0, i * 2, 0]] = 0.5 + i as f32 * 0.1;
        }
        let found = decode(
            heatmap.view(),
            Array3::zeros((4, 10, 10)).view(),
            4.0,
            3,
            0.1,
        );
        let scores: Vec<f32> = found.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.8, 0.7]);
    }

    #[test]
    fn letterbox_fits_the_long_side_and_maps_back() {
        let image = RgbImage::from_pixel(200, 100, image::Rgb([10, 20, 30]));
        let boxed = letterbox(&image, 64).unwrap();
        assert_eq!(boxed.tensor.dim(), (1, 3, 64, 64));
        assert_eq!((boxed.scale_x, boxed.scale_y), (200.0 / 64.0, 100.0 / 32.0));
        assert_eq!(boxed.tensor[[0, 2, 10, 10]], 30.0);
        assert_eq!(
            boxed.tensor[[0, 0, 40, 10]],
            0.0,
            "padding below the image is black"
        );
    }
}
