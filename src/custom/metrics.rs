//! How good a trained head is, in the fields of Azure's `modelPerformance`: top-1 and top-5 accuracy,
//! average precision and calibration error for classifiers; mean average precision at IoU 0.3, 0.5 and
//! 0.75 for detectors; and per class, accuracy or AP@0.5.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::geometry::BoundingBox;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassPerformance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_precision50: Option<f32>,
}

/// Azure's `ModelPerformance`: the classifier or the detector fields, and per class (by name).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Performance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_top1: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_top5: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_precision: Option<f32>,
    #[serde(rename = "calibrationECE", skip_serializing_if = "Option::is_none")]
    pub calibration_ece: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_average_precision30: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_average_precision50: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_average_precision75: Option<f32>,
    pub tag_performance: BTreeMap<String, ClassPerformance>,
}

/// Area under the precision/recall curve of `scored` (score, is it a true positive) with `positives`
/// in all, interpolated at every recall (the VOC 2010+ rule).
fn average_precision(mut scored: Vec<(f32, bool)>, positives: usize) -> f32 {
    if positives == 0 {
        return 0.0;
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut points = Vec::with_capacity(scored.len());
    let (mut hits, mut seen) = (0usize, 0usize);
    for (_, hit) in scored {
        seen += 1;
        hits += usize::from(hit);
        points.push((hits as f32 / positives as f32, hits as f32 / seen as f32));
    }
    let mut area = 0.0;
    let mut last_recall = 0.0;
    for i in 0..points.len() {
        let best_after = points[i..].iter().map(|p| p.1).fold(0.0f32, f32::max);
        area += (points[i].0 - last_recall) * best_after;
        last_recall = points[i].0;
    }
    area
}

/// A classifier's performance: `probabilities[i]` are image i's class probabilities, `truth[i]` its class.
pub fn classifier(classes: &[String], probabilities: &[Vec<f32>], truth: &[usize]) -> Performance {
    let n = truth.len().max(1) as f32;
    let rank_of = |p: &[f32], class: usize| p.iter().filter(|&&v| v > p[class]).count();
    let top = |k: usize| {
        probabilities
            .iter()
            .zip(truth)
            .filter(|(p, &t)| rank_of(p, t) < k)
            .count() as f32
            / n
    };
    let mut tag_performance = BTreeMap::new();
    let mut precisions = Vec::new();
    for (class, name) in classes.iter().enumerate() {
        let members = truth.iter().filter(|&&t| t == class).count();
        let right = probabilities
            .iter()
            .zip(truth)
            .filter(|(p, &t)| t == class && rank_of(p, t) == 0)
            .count();
        if members > 0 {
            let scored = probabilities
                .iter()
                .zip(truth)
                .map(|(p, &t)| (p[class], t == class))
                .collect();
            precisions.push(average_precision(scored, members));
        }
        tag_performance.insert(
            name.clone(),
            ClassPerformance {
                accuracy: Some(if members > 0 {
                    right as f32 / members as f32
                } else {
                    0.0
                }),
                average_precision50: None,
            },
        );
    }
    Performance {
        accuracy_top1: Some(top(1)),
        accuracy_top5: Some(top(5)),
        average_precision: Some(mean(&precisions)),
        calibration_ece: Some(calibration_error(probabilities, truth)),
        tag_performance,
        ..Performance::default()
    }
}

fn mean(values: &[f32]) -> f32 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f32>() / values.len() as f32
    }
}

/// Expected calibration error of the top-1 confidence over ten equal-width bins.
fn calibration_error(probabilities: &[Vec<f32>], truth: &[usize]) -> f32 {
    const BINS: usize = 10;
    let mut bins = [(0.0f32, 0.0f32, 0usize); BINS];
    for (p, &t) in probabilities.iter().zip(truth) {
        let Some((best, &confidence)) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))
        else {
            continue;
        };
        let bin = &mut bins[((confidence * BINS as f32) as usize).min(BINS - 1)];
        bin.0 += confidence;
        bin.1 += f32::from(u8::from(best == t));
        bin.2 += 1;
    }
    let n = truth.len().max(1) as f32;
    bins.iter()
        .map(|(confidence, right, _)| (confidence - right).abs() / n)
        .sum()
}

/// One image's ground truth and predictions for a detector: (class, box) and (class, score, box).
pub struct DetectionSample {
    pub truth: Vec<(usize, BoundingBox)>,
    pub found: Vec<(usize, f32, BoundingBox)>,
}

/// Per class AP at `iou`, for the classes that have ground truth.
fn class_precisions(samples: &[DetectionSample], classes: usize, iou: f32) -> Vec<Option<f32>> {
    (0..classes)
        .map(|class| {
            let positives: usize = samples
                .iter()
                .map(|s| s.truth.iter().filter(|t| t.0 == class).count())
                .sum();
            if positives == 0 {
                return None;
            }
            let mut scored = Vec::new();
            for sample in samples {
                let truths: Vec<&BoundingBox> = sample
                    .truth
                    .iter()
                    .filter(|t| t.0 == class)
                    .map(|t| &t.1)
                    .collect();
                let mut taken = vec![false; truths.len()];
                let mut found: Vec<_> = sample.found.iter().filter(|f| f.0 == class).collect();
                found.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (_, score, bbox) in found {
                    let best = truths
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !taken[*i])
                        .map(|(i, t)| (i, t.iou(bbox)))
                        .max_by(|a, b| a.1.total_cmp(&b.1));
                    let hit = match best {
                        Some((i, overlap)) if overlap >= iou => {
                            taken[i] = true;
                            true
                        }
                        _ => false,
                    };
                    scored.push((*score, hit));
                }
            }
            Some(average_precision(scored, positives))
        })
        .collect()
}

/// A detector's performance on `samples`.
pub fn detector(classes: &[String], samples: &[DetectionSample]) -> Performance {
    let map = |iou: f32| {
        let found: Vec<f32> = class_precisions(samples, classes.len(), iou)
            .into_iter()
            .flatten()
            .collect();
        mean(&found)
    };
    let at_50 = class_precisions(samples, classes.len(), 0.5);
    let tag_performance = classes
        .iter()
        .zip(at_50)
        .map(|(name, ap)| {
            (
                name.clone(),
                ClassPerformance {
                    accuracy: None,
                    average_precision50: Some(ap.unwrap_or(0.0)),
                },
            )
        })
        .collect();
    Performance {
        mean_average_precision30: Some(map(0.3)),
        mean_average_precision50: Some(map(0.5)),
        mean_average_precision75: Some(map(0.75)),
        tag_performance,
        ..Performance::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(x: f32, y: f32) -> BoundingBox {
        BoundingBox {
            x1: x,
            y1: y,
            x2: x + 10.0,
            y2: y + 10.0,
        }
    }

    #[test]
    fn classifier_metrics_count_ranks_and_calibration() {
        let classes = vec!["a".to_string(), "b".to_string()];
        let probabilities = vec![
            vec![0.9, 0.1],
            vec![0.2, 0.8],
            vec![0.6, 0.4],
            vec![0.7, 0.3],
        ];
        let truth = [0, 1, 1, 0];
        let p = classifier(&classes, &probabilities, &truth);
        assert_eq!(p.accuracy_top1, Some(0.75));
        assert_eq!(p.accuracy_top5, Some(1.0));
        assert_eq!(p.tag_performance["b"].accuracy, Some(0.5));
        // Confidences 0.9, 0.8, 0.6, 0.7 with one miss (0.6): bins 9, 8, 6, 7 each hold one image.
        let ece = p.calibration_ece.unwrap();
        assert!((ece - (0.1 + 0.2 + 0.6 + 0.3) / 4.0).abs() < 1e-5, "{ece}");
    }

    #[test]
    fn detector_ap_rewards_ranked_hits_and_punishes_duplicates() {
        let classes = vec!["logo".to_string()];
        let perfect = DetectionSample {
            truth: vec![(0, boxed(0.0, 0.0)), (0, boxed(50.0, 50.0))],
            found: vec![(0, 0.9, boxed(1.0, 0.0)), (0, 0.8, boxed(50.0, 51.0))],
        };
        assert_eq!(
            detector(&classes, &[perfect]).mean_average_precision50,
            Some(1.0)
        );
        let duplicate_first = DetectionSample {
            truth: vec![(0, boxed(0.0, 0.0))],
            found: vec![(0, 0.9, boxed(30.0, 30.0)), (0, 0.5, boxed(0.0, 0.0))],
        };
        let p = detector(&classes, &[duplicate_first]);
        assert_eq!(p.mean_average_precision50, Some(0.5));
        assert_eq!(p.tag_performance["logo"].average_precision50, Some(0.5));
        // A looser IoU accepts a shifted box that 0.75 does not.
        let shifted = DetectionSample {
            truth: vec![(0, boxed(0.0, 0.0))],
            found: vec![(0, 0.9, boxed(3.0, 0.0))],
        };
        let p = detector(&classes, &[shifted]);
        assert_eq!(
            (p.mean_average_precision30, p.mean_average_precision75),
            (Some(1.0), Some(0.0))
        );
    }
}
