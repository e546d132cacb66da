//! Heads a user trained (customization) on the frozen features of the shipped models: a classifier
//! on EfficientNet-Lite0's pooled features (plus CenterNet's per-class evidence), and a CenterNet-style
//! detector on CenterNet's own feature map. This file owns how an image becomes the numbers a head
//! reads (the same code at training and at prediction) and how a head's outputs become classes and
//! boxes; fitting lives in `custom::train`.

use anyhow::{bail, Result};
use image::RgbImage;
use ndarray::{Array2, Array3, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::efficientnet::softmax;
use super::traits::{FeatureMap, ImageClassifier, ObjectDetector};
use crate::geometry::{nms_per_class, BoundingBox, Scored};

/// Bumped whenever the numbers an image becomes change: cached features of another recipe are not
/// reused and heads of another recipe are refused.
pub const FEATURE_RECIPE: u32 = 1;
/// Box-mean neighbourhoods around a cell, in cells: a cell alone gave a detector drowned in false
/// positives (customization contract, section 10); its surroundings tell an object's centre from its edge.
const CONTEXT_SIDES: [usize; 2] = [5, 11];
/// A detector peak is the highest probability within this many cells.
const PEAK_SIDE: usize = 5;
/// Boxes are reported from this probability up (clients filter for themselves; the contract asks for
/// low-confidence boxes too), at most `MAX_BOXES` an image, after NMS per class at `NMS_IOU`.
pub const MIN_BOX_SCORE: f32 = 0.05;
const MAX_BOXES: usize = 100;
const NMS_IOU: f32 = 0.5;

/// The feature vector of one view of an image for the classifier head: EfficientNet's unit-length
/// pooled features, then the detector's class evidence (80 heats in 0..1) when it has any. The
/// evidence is worth having: on the development scene set, top-1 was 74.2 % with it and 67.7 %
/// without (bench/eval_custom.py). The fit standardises every column, so no weight between the two
/// parts is needed.
pub fn image_vector(pooled: &[f32], evidence: Option<&[f32]>) -> Vec<f32> {
    let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
    let mut vector: Vec<f32> = pooled.iter().map(|v| v / norm).collect();
    if let Some(evidence) = evidence {
        vector.extend_from_slice(evidence);
    }
    vector
}

/// The classifier's view of an image: its pooled features, and the detector's evidence.
pub fn classifier_vector(
    classifier: &dyn ImageClassifier,
    detector: Option<&dyn ObjectDetector>,
    image: &RgbImage,
) -> Result<Vec<f32>> {
    let evidence = scene_evidence(detector, image)?;
    Ok(image_vector(
        &pooled_features(classifier, image)?,
        evidence.as_deref(),
    ))
}

/// The classifier's pooled features of an image; an error when its model file does not expose them.
pub fn pooled_features(classifier: &dyn ImageClassifier, image: &RgbImage) -> Result<Vec<f32>> {
    match classifier.features(image)? {
        Some(pooled) => Ok(pooled),
        None => bail!(
            "the classifier model file does not expose its pooled features; run `vista models fetch`"
        ),
    }
}

/// Which of the detector's classes the image shows (its per-class heat); None without a detector or
/// when its model file exposes no features.
pub fn scene_evidence(
    detector: Option<&dyn ObjectDetector>,
    image: &RgbImage,
) -> Result<Option<Vec<f32>>> {
    match detector {
        Some(detector) => Ok(detector.feature_map(image)?.map(|m| m.class_evidence)),
        None => Ok(None),
    }
}

/// The detector's feature map of an image; an error when its model file does not expose it.
pub fn feature_map(detector: &dyn ObjectDetector, image: &RgbImage) -> Result<FeatureMap> {
    match detector.feature_map(image)? {
        Some(map) => Ok(map),
        None => {
            bail!("the detector model file does not expose its features; run `vista models fetch`")
        }
    }
}

/// A linear softmax layer: `classes` outputs over `inputs` numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    /// `[inputs, classes]`, row-major.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Linear {
    pub fn inputs(&self) -> usize {
        self.weights.len() / self.bias.len().max(1)
    }

    fn matrix(&self) -> Result<ArrayView2<'_, f32>> {
        Ok(ArrayView2::from_shape(
            (self.inputs(), self.bias.len()),
            &self.weights,
        )?)
    }

    /// Each row's logits.
    pub fn logits(&self, rows: ArrayView2<f32>) -> Result<Array2<f32>> {
        if rows.ncols() != self.inputs() {
            bail!(
                "the head reads {} numbers, the features have {}",
                self.inputs(),
                rows.ncols()
            );
        }
        let mut logits = rows.dot(&self.matrix()?);
        for mut row in logits.rows_mut() {
            row += &ndarray::ArrayView1::from(&self.bias);
        }
        Ok(logits)
    }
}

/// A trained image classifier: every class's probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierHead {
    pub recipe: u32,
    pub classes: Vec<String>,
    pub layer: Linear,
    /// Whether its features end with the detector's evidence.
    pub evidence: bool,
}

impl ClassifierHead {
    /// Each class's probability, in the order of `classes`.
    pub fn probabilities(&self, vector: &[f32]) -> Result<Vec<f32>> {
        let rows = ArrayView2::from_shape((1, vector.len()), vector)?;
        let logits = self.layer.logits(rows)?;
        Ok(softmax(logits.row(0).as_slice().unwrap_or(&[])))
    }

    /// Every class with its probability, highest first.
    pub fn predict(&self, vector: &[f32]) -> Result<Vec<(String, f32)>> {
        let probabilities = self.probabilities(vector)?;
        let mut named: Vec<(String, f32)> =
            self.classes.iter().cloned().zip(probabilities).collect();
        named.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(named)
    }
}

/// Per covered cell of a feature map, the numbers the detector head reads: the cell's own channels,
/// then their means over each [`CONTEXT_SIDES`] square around it. Rows are cells in row-major order
/// over the covered area.
pub fn cell_features(map: &FeatureMap) -> Array2<f32> {
    let (channels, rows, cols) = map.values.dim();
    let (covered_rows, covered_cols) = map.covered;
    let integral = integral_images(&map.values);
    let mut out = Array2::<f32>::zeros((
        covered_rows * covered_cols,
        channels * (1 + CONTEXT_SIDES.len()),
    ));
    for y in 0..covered_rows {
        for x in 0..covered_cols {
            let mut row = out.row_mut(y * covered_cols + x);
            for c in 0..channels {
                row[c] = map.values[[c, y, x]];
            }
            for (k, side) in CONTEXT_SIDES.iter().enumerate() {
                let half = side / 2;
                let (y0, x0) = (y.saturating_sub(half), x.saturating_sub(half));
                let (y1, x1) = ((y + half + 1).min(rows), (x + half + 1).min(cols));
                let area = ((y1 - y0) * (x1 - x0)) as f32;
                for c in 0..channels {
                    let sum = integral[[c, y1, x1]] - integral[[c, y0, x1]] - integral[[c, y1, x0]]
                        + integral[[c, y0, x0]];
                    row[channels * (k + 1) + c] = sum / area;
                }
            }
        }
    }
    out
}

/// Summed-area tables per channel, one row and column larger than the map.
fn integral_images(values: &Array3<f32>) -> Array3<f32> {
    let (channels, rows, cols) = values.dim();
    let mut integral = Array3::<f32>::zeros((channels, rows + 1, cols + 1));
    for c in 0..channels {
        for y in 0..rows {
            let mut line = 0.0;
            for x in 0..cols {
                line += values[[c, y, x]];
                integral[[c, y + 1, x + 1]] = integral[[c, y, x + 1]] + line;
            }
        }
    }
    integral
}

/// A trained detector: a softmax over background (output 0) and the classes per cell, and a ridge
/// regression from the same features to the box's log width and height in input pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorHead {
    pub recipe: u32,
    pub classes: Vec<String>,
    pub layer: Linear,
    /// `[inputs + 1, 2]`: weights then bias, for log(width) and log(height).
    pub size: Vec<f32>,
}

/// One box a detector head found, in image pixels, with every class's probability at its centre.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundBox {
    pub class: usize,
    pub score: f32,
    pub bbox: BoundingBox,
    pub classes: Vec<f32>,
}

impl Scored for FoundBox {
    fn bbox(&self) -> &BoundingBox {
        &self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn class(&self) -> usize {
        self.class
    }
}

impl FoundBox {
    /// Its class first, then the others by probability, at most `most`: (class, probability).
    pub fn ranked(&self, most: usize) -> Vec<(usize, f32)> {
        let mut others: Vec<(usize, f32)> = (0..self.classes.len())
            .filter(|&c| c != self.class)
            .map(|c| (c, self.classes[c]))
            .collect();
        others.sort_by(|a, b| b.1.total_cmp(&a.1));
        std::iter::once((self.class, self.score))
            .chain(others)
            .take(most)
            .collect()
    }
}

impl DetectorHead {
    /// Every class's probability per covered cell, `[cells, classes]` (background dropped).
    pub fn cell_probabilities(&self, features: ArrayView2<f32>) -> Result<Array2<f32>> {
        let mut logits = self.layer.logits(features)?;
        for mut row in logits.rows_mut() {
            let p = softmax(row.as_slice().unwrap_or(&[]));
            row.assign(&ndarray::Array1::from(p));
        }
        Ok(logits.slice_move(ndarray::s![.., 1..]))
    }

    /// The box size (width, height in input pixels) the regression gives a cell.
    pub fn box_size(&self, cell: ndarray::ArrayView1<f32>) -> (f32, f32) {
        let inputs = cell.len();
        let predict = |output: usize| {
            let weight = |i: usize| self.size[i * 2 + output];
            cell.iter()
                .enumerate()
                .map(|(i, v)| v * weight(i))
                .sum::<f32>()
                + weight(inputs)
        };
        (
            predict(0).clamp(-2.0, 9.0).exp(),
            predict(1).clamp(-2.0, 9.0).exp(),
        )
    }

    /// The boxes in `map`: per class, cells that are the highest within [`PEAK_SIDE`] and reach
    /// `min_score`, sized by the regression, mapped back through the letterbox; NMS per class.
    pub fn detect(
        &self,
        map: &FeatureMap,
        min_score: f32,
        image: (u32, u32),
    ) -> Result<Vec<FoundBox>> {
        if self.size.len() != (self.layer.inputs() + 1) * 2 {
            bail!("the detector head's size regression does not match its features");
        }
        let features = cell_features(map);
        let probabilities = self.cell_probabilities(features.view())?;
        let (rows, cols) = map.covered;
        let half = PEAK_SIDE / 2;
        let mut found = Vec::new();
        for (class, plane) in probabilities.axis_iter(Axis(1)).enumerate() {
            for y in 0..rows {
                for x in 0..cols {
                    let score = plane[y * cols + x];
                    if score < min_score {
                        continue;
                    }
                    let is_peak = (y.saturating_sub(half)..(y + half + 1).min(rows)).all(|ny| {
                        (x.saturating_sub(half)..(x + half + 1).min(cols))
                            .all(|nx| plane[ny * cols + nx] <= score)
                    });
                    if !is_peak {
                        continue;
                    }
                    let (w, h) = self.box_size(features.row(y * cols + x));
                    let (cx, cy) = (x as f32 * map.stride, y as f32 * map.stride);
                    let bbox = BoundingBox {
                        x1: cx - w / 2.0,
                        y1: cy - h / 2.0,
                        x2: cx + w / 2.0,
                        y2: cy + h / 2.0,
                    }
                    .rescaled(map.scale.0, map.scale.1, image.0, image.1);
                    let classes = probabilities.row(y * cols + x).to_vec();
                    found.push(FoundBox {
                        class,
                        score,
                        bbox,
                        classes,
                    });
                }
            }
        }
        found.retain(|d| d.bbox.width() >= 1.0 && d.bbox.height() >= 1.0);
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept = nms_per_class(found, NMS_IOU);
        kept.truncate(MAX_BOXES);
        Ok(kept)
    }
}

/// A trained head of either kind, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum CustomHead {
    Classifier(ClassifierHead),
    Detector(DetectorHead),
}

impl CustomHead {
    pub fn recipe(&self) -> u32 {
        match self {
            CustomHead::Classifier(head) => head.recipe,
            CustomHead::Detector(head) => head.recipe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(values: Array3<f32>) -> FeatureMap {
        let (_, rows, cols) = values.dim();
        FeatureMap {
            values,
            stride: 4.0,
            scale: (1.0, 1.0),
            covered: (rows, cols),
            class_evidence: vec![],
        }
    }

    #[test]
    fn cell_features_are_the_cell_then_its_neighbourhood_means() {
        let mut values = Array3::<f32>::zeros((1, 12, 12));
        values[[0, 6, 6]] = 25.0;
        let features = cell_features(&map(values));
        assert_eq!(features.dim(), (144, 3));
        let centre = features.row(6 * 12 + 6);
        assert_eq!(centre[0], 25.0);
        assert!((centre[1] - 1.0).abs() < 1e-5, "5x5 mean {}", centre[1]);
        assert!(
            (centre[2] - 25.0 / 121.0).abs() < 1e-5,
            "11x11 mean {}",
            centre[2]
        );
        // A cell near the corner averages over the part of its square inside the map (7x7 of 11x11).
        let near_corner = features.row(12 + 1);
        assert_eq!((near_corner[0], near_corner[1]), (0.0, 0.0));
        assert!(
            (near_corner[2] - 25.0 / 49.0).abs() < 1e-5,
            "{}",
            near_corner[2]
        );
    }

    #[test]
    fn a_detector_head_finds_its_peak_sized_by_the_regression() {
        // One channel that is high at (3, 5); logits: background 0, class = 10 * value - 5.
        let mut values = Array3::<f32>::zeros((1, 8, 8));
        values[[0, 3, 5]] = 1.0;
        let inputs = 3;
        let mut weights = vec![0.0; inputs * 2];
        weights[1] = 10.0; // input 0 (the cell itself) -> class 1
        let head = DetectorHead {
            recipe: FEATURE_RECIPE,
            classes: vec!["logo".into()],
            layer: Linear {
                weights,
                bias: vec![0.0, -5.0],
            },
            // log size 2 (e^2 = 7.39 pixels) wide and 3 high, whatever the features.
            size: vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 3.0],
        };
        let found = head.detect(&map(values), 0.5, (32, 32)).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let (cx, cy) = (
            found[0].bbox.x1 + found[0].bbox.width() / 2.0,
            found[0].bbox.y1 + found[0].bbox.height() / 2.0,
        );
        assert_eq!((cx.round(), cy.round()), (20.0, 12.0));
        assert!((found[0].bbox.width() - 2f32.exp()).abs() < 0.01);
        assert!(found[0].score > 0.99);
    }

    #[test]
    fn a_box_ranks_its_own_class_first_then_the_likeliest_others() {
        let found = FoundBox {
            class: 2,
            score: 0.3,
            bbox: BoundingBox {
                x1: 0.0,
                y1: 0.0,
                x2: 1.0,
                y2: 1.0,
            },
            classes: vec![0.1, 0.5, 0.3, 0.05],
        };
        assert_eq!(found.ranked(3), vec![(2, 0.3), (1, 0.5), (0, 0.1)]);
    }

    #[test]
    fn a_classifier_head_ranks_every_class() {
        let head = ClassifierHead {
            recipe: FEATURE_RECIPE,
            classes: vec!["kitchen".into(), "street".into()],
            layer: Linear {
                weights: vec![2.0, -2.0, -1.0, 1.0],
                bias: vec![0.0, 0.0],
            },
            evidence: false,
        };
        let ranked = head.predict(&[0.0, 1.0]).unwrap();
        assert_eq!(ranked[0].0, "street");
        assert!((ranked.iter().map(|r| r.1).sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(
            head.predict(&[1.0]).is_err(),
            "a vector of the wrong length"
        );
    }

    #[test]
    fn image_vectors_are_unit_length_before_the_evidence() {
        let v = image_vector(&[3.0, 4.0], Some(&[1.0]));
        assert_eq!(v, vec![0.6, 0.8, 1.0]);
    }
}
