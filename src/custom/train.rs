//! Training a head on a labelled set, on the CPU (customization contract, section 10): every image
//! becomes features through the frozen shipped models (cached per dataset, so retraining and
//! evaluation skip them), a held-out part measures the head, and the head is refitted on everything.
//! Deterministic given the data: no random state but a hash of each image's bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use image::RgbImage;
use ndarray::{s, Array2, ArrayView2, Axis};
use sha2::{Digest, Sha256};

use super::coco::{LabelledImage, LabelledSet};
use super::linear::{fit_ridge, fit_softmax, SoftmaxFit};
use super::lock;
use super::metrics::{self, DetectionSample, Performance};
use crate::geometry::BoundingBox;
use crate::models::custom_head::{
    cell_features, feature_map, image_vector, pooled_features, scene_evidence, ClassifierHead,
    CustomHead, DetectorHead, FEATURE_RECIPE, MIN_BOX_SCORE,
};
use crate::models::traits::FeatureMap;
use crate::pipeline::decode::{DecodedImage, TRAINING};
use crate::pipeline::Pipeline;

/// What a model learns to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    Classifier,
    Detector,
}

/// Background cells sampled per view of a detection image: a third inside the boxes away from
/// their centres (they teach where a centre is), the rest anywhere away from a centre.
const NEGATIVES_PER_VIEW: usize = 240;
/// Positives count this much more than a background cell (contract, section 10: ~20x beat
/// "balanced" class weights).
const POSITIVE_WEIGHT: f32 = 20.0;
/// Ridge penalty of the box-size regression (on standardised features).
const SIZE_RIDGE: f64 = 10.0;
/// One image in this many of each class is held out to measure the head (about 20 %, as Azure did
/// without an evaluation dataset); a class needs at least `HOLD_OUT_FROM` images to give one.
const HOLD_OUT_EVERY: usize = 5;
const HOLD_OUT_FROM: usize = 3;

/// Where training stands, for the model's status and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Features,
    Fitting,
    Evaluating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub stage: Stage,
    pub done: usize,
    pub total: usize,
}

/// Why training or an evaluation failed, with Azure's failure codes.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training was cancelled")]
    Cancelled,
    #[error("training needed more than its budget of {0:?}")]
    NotEnoughBudget(Duration),
    #[error("{0}")]
    DatasetCorrupt(String),
    #[error("{0}")]
    DatasetNotFound(String),
    #[error("the fit did not converge: {0}")]
    Diverged(String),
    #[error("{0:#}")]
    Unknown(#[from] anyhow::Error),
}

impl TrainError {
    /// Azure's `error.code` for a failed model.
    pub fn code(&self) -> &'static str {
        match self {
            TrainError::Cancelled => "cancelled",
            TrainError::NotEnoughBudget(_) => "notEnoughBudget",
            TrainError::DatasetCorrupt(_) => "datasetCorrupt",
            TrainError::DatasetNotFound(_) => "datasetNotFound",
            TrainError::Diverged(_) => "diverged",
            TrainError::Unknown(_) => "unknown",
        }
    }
}

/// Fetches an image's bytes (a URL, or a file in the deployment's datasets folder).
pub trait ImageLoader: Sync {
    fn load(&self, image: &LabelledImage) -> Result<Vec<u8>, String>;
}

/// Keeps features per image (keyed by the image's content), so a second training skips the models.
pub trait FeatureCache: Sync {
    fn get(&self, key: &str) -> Option<Array2<f32>>;
    fn put(&self, key: &str, rows: &Array2<f32>);
}

/// Who follows a job: it hears the progress and may ask the job to stop.
pub trait Observer: Sync {
    fn report(&self, progress: Progress);
    fn stop_requested(&self) -> bool;
}

/// What a training or evaluation runs with.
pub struct Trainer<'a> {
    pub pipeline: &'a Pipeline,
    pub loader: &'a dyn ImageLoader,
    pub observer: &'a dyn Observer,
    /// Images whose features are computed at once.
    pub threads: usize,
    /// The most time the whole job may take.
    pub budget: Duration,
    pub started: Instant,
}

pub struct Trained {
    pub head: CustomHead,
    pub performance: Performance,
}

/// A labelled set with the cache of its dataset.
pub struct Data<'a> {
    pub set: &'a LabelledSet,
    pub cache: &'a dyn FeatureCache,
}

impl Trainer<'_> {
    fn check(&self) -> Result<(), TrainError> {
        if self.observer.stop_requested() {
            return Err(TrainError::Cancelled);
        }
        if self.started.elapsed() > self.budget {
            return Err(TrainError::NotEnoughBudget(self.budget));
        }
        Ok(())
    }

    /// Trains a head of `kind` on `training`; measures it on `evaluation`, or without one on a
    /// held-out part of `training` before refitting on all of it.
    pub fn train(
        &self,
        kind: HeadKind,
        training: &Data,
        evaluation: Option<&Data>,
    ) -> Result<Trained, TrainError> {
        let rows = self.features(kind, training)?;
        let fit_on = |skip: &[usize]| -> Result<CustomHead, TrainError> {
            let kept = |i: &usize| !skip.contains(i);
            let chosen: Vec<&Array2<f32>> =
                (0..rows.len()).filter(kept).map(|i| &rows[i]).collect();
            let labels: Vec<usize> = (0..rows.len())
                .filter(kept)
                .map(|i| training.set.images[i].label.unwrap_or(0))
                .collect();
            self.fit(kind, &training.set.classes, &chosen, &labels)
        };
        let held_out = held_out(training.set, kind);
        let (head, performance) = match evaluation {
            Some(evaluation) => {
                let head = fit_on(&[])?;
                let performance = self.evaluate(&head, evaluation)?;
                (head, performance)
            }
            // Too few images to hold any out: measured on the training images themselves.
            None if held_out.is_empty() => {
                let head = fit_on(&[])?;
                let performance = self.measure(&head, training.set, &rows, &all(training.set))?;
                (head, performance)
            }
            None => {
                let measured = fit_on(&held_out)?;
                let performance = self.measure(&measured, training.set, &rows, &held_out)?;
                (fit_on(&[])?, performance)
            }
        };
        Ok(Trained { head, performance })
    }

    /// Measures `head` on every image of `data`.
    pub fn evaluate(&self, head: &CustomHead, data: &Data) -> Result<Performance, TrainError> {
        // A detector is measured on whole feature maps, computed as it goes: no rows are needed.
        let rows = match head {
            CustomHead::Classifier(_) => self.features(HeadKind::Classifier, data)?,
            CustomHead::Detector(_) => Vec::new(),
        };
        self.measure(head, data.set, &rows, &all(data.set))
    }

    /// Each image's feature rows, from the cache or the models, in the set's order.
    fn features(&self, kind: HeadKind, data: &Data) -> Result<Vec<Array2<f32>>, TrainError> {
        let images = &data.set.images;
        let total = images.len();
        self.observer.report(Progress {
            stage: Stage::Features,
            done: 0,
            total,
        });
        let next = AtomicUsize::new(0);
        let done = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Array2<f32>>>> = Mutex::new(vec![None; total]);
        let failure: Mutex<Option<TrainError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..self.threads.max(1) {
                scope.spawn(|| {
                    let _working = crate::cpu_budget::budget().working();
                    loop {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        if index >= total || lock(&failure).is_some() {
                            return;
                        }
                        let outcome = self
                            .check()
                            .and_then(|()| self.image_rows(kind, &images[index], data.cache));
                        match outcome {
                            Ok(rows) => lock(&results)[index] = Some(rows),
                            Err(error) => {
                                lock(&failure).get_or_insert(error);
                                return;
                            }
                        }
                        let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                        self.observer.report(Progress {
                            stage: Stage::Features,
                            done: finished,
                            total,
                        });
                    }
                });
            }
        });
        if let Some(error) = lock(&failure).take() {
            return Err(error);
        }
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        Ok(results.into_iter().flatten().collect())
    }

    /// One image's rows: loaded, hashed, looked up, and computed on a miss.
    fn image_rows(
        &self,
        kind: HeadKind,
        image: &LabelledImage,
        cache: &dyn FeatureCache,
    ) -> Result<Array2<f32>, TrainError> {
        let bytes = self.load(image)?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let tag = match kind {
            HeadKind::Classifier => "classifier",
            HeadKind::Detector => "detector",
        };
        // Detection rows carry the image's boxes: a changed annotation is another entry.
        let annotations = match kind {
            HeadKind::Classifier => String::new(),
            HeadKind::Detector => {
                let boxes = serde_json::to_vec(&image.boxes).unwrap_or_default();
                format!("-{}", &hex::encode(Sha256::digest(boxes))[..16])
            }
        };
        let key = format!("{FEATURE_RECIPE}-{tag}-{digest}{annotations}");
        if let Some(rows) = cache.get(&key) {
            return Ok(rows);
        }
        let decoded = self.decode(image, &bytes)?;
        let rows = match kind {
            HeadKind::Classifier => self.classifier_rows(&decoded.rgb)?,
            HeadKind::Detector => self.detector_rows(&decoded.rgb, image, seed(&digest))?,
        };
        cache.put(&key, &rows);
        Ok(rows)
    }

    /// The bytes of a dataset image; one that cannot be fetched makes the dataset corrupt.
    fn load(&self, image: &LabelledImage) -> Result<Vec<u8>, TrainError> {
        self.loader.load(image).map_err(|why| corrupt(image, why))
    }

    /// A dataset image decoded under the training limits; one that cannot be makes the dataset corrupt.
    fn decode(&self, image: &LabelledImage, bytes: &[u8]) -> Result<DecodedImage, TrainError> {
        self.pipeline
            .decode(bytes, &TRAINING)
            .map_err(|e| corrupt(image, e.to_string()))
    }

    /// The classifier's views of an image: itself, mirrored, its four corners and its centre at 80 %
    /// (each an extra training row; the first is the image as prediction sees it).
    fn classifier_rows(&self, image: &RgbImage) -> Result<Array2<f32>, TrainError> {
        let models = self.pipeline.models();
        let classifier = models.classifier.as_deref().ok_or_else(|| {
            TrainError::Unknown(anyhow::anyhow!(
                "the classifier (efficientnet-lite0) is not installed"
            ))
        })?;
        // The detector's evidence is about the whole scene: every view shares the image's.
        let evidence = scene_evidence(models.detector.as_deref(), image)?;
        let view_vector = |view: &RgbImage| -> Result<Vec<f32>, TrainError> {
            Ok(image_vector(
                &pooled_features(classifier, view)?,
                evidence.as_deref(),
            ))
        };
        let first = view_vector(image)?;
        let (w, h) = image.dimensions();
        let (cw, ch) = ((w * 4 / 5).max(1), (h * 4 / 5).max(1));
        let crop = |x: u32, y: u32| image::imageops::crop_imm(image, x, y, cw, ch).to_image();
        let views = [
            image::imageops::flip_horizontal(image),
            crop(0, 0),
            crop(w - cw, 0),
            crop(0, h - ch),
            crop(w - cw, h - ch),
            crop((w - cw) / 2, (h - ch) / 2),
        ];
        let mut rows = Array2::<f32>::zeros((views.len() + 1, first.len()));
        rows.row_mut(0).assign(&ndarray::ArrayView1::from(&first));
        for (i, view) in views.iter().enumerate() {
            let vector = view_vector(view)?;
            rows.row_mut(i + 1)
                .assign(&ndarray::ArrayView1::from(&vector));
        }
        Ok(rows)
    }

    /// The detector's rows of an image and of its mirror: `[label, log w, log h, features...]` for
    /// the cell at each box's centre (label = class + 1) and for sampled background cells (label 0).
    fn detector_rows(
        &self,
        image: &RgbImage,
        labelled: &LabelledImage,
        seed: u64,
    ) -> Result<Array2<f32>, TrainError> {
        let mirrored: Vec<(usize, [f32; 4])> = labelled
            .boxes
            .iter()
            .map(|&(class, [l, t, w, h])| (class, [1.0 - l - w, t, w, h]))
            .collect();
        let mut parts = Vec::new();
        for (view, boxes, seed) in [
            (image.clone(), labelled.boxes.clone(), seed),
            (
                image::imageops::flip_horizontal(image),
                mirrored,
                seed ^ 0x9e37_79b9,
            ),
        ] {
            let map = self.feature_map(&view)?;
            parts.push(sample_cells(&map, &boxes, view.dimensions(), seed));
        }
        let views: Vec<ArrayView2<f32>> = parts.iter().map(|p| p.view()).collect();
        Ok(ndarray::concatenate(Axis(0), &views).map_err(anyhow::Error::from)?)
    }

    fn feature_map(&self, image: &RgbImage) -> Result<FeatureMap, TrainError> {
        let detector = self.pipeline.models().detector.as_deref().ok_or_else(|| {
            TrainError::Unknown(anyhow::anyhow!(
                "the object detector (centernet) is not installed"
            ))
        })?;
        Ok(feature_map(detector, image)?)
    }

    /// Fits a head on the rows of the chosen images; `labels` are their classes (classification:
    /// every row of an image is labelled with it; detection rows carry their own labels).
    fn fit(
        &self,
        kind: HeadKind,
        classes: &[String],
        rows: &[&Array2<f32>],
        labels: &[usize],
    ) -> Result<CustomHead, TrainError> {
        self.check()?;
        self.observer.report(Progress {
            stage: Stage::Fitting,
            done: 0,
            total: 1,
        });
        let views: Vec<ArrayView2<f32>> = rows.iter().map(|r| r.view()).collect();
        let stacked = ndarray::concatenate(Axis(0), &views).map_err(anyhow::Error::from)?;
        let stop = || self.observer.stop_requested();
        let head = match kind {
            HeadKind::Classifier => {
                let labels: Vec<usize> = rows
                    .iter()
                    .zip(labels)
                    .flat_map(|(r, &label)| std::iter::repeat_n(label, r.nrows()))
                    .collect();
                let weights = vec![1.0; labels.len()];
                let layer = fit_softmax(
                    stacked.view(),
                    &labels,
                    &weights,
                    classes.len(),
                    SoftmaxFit::default(),
                    &stop,
                )?
                .ok_or(TrainError::Cancelled)?;
                CustomHead::Classifier(ClassifierHead {
                    recipe: FEATURE_RECIPE,
                    classes: classes.to_vec(),
                    layer,
                    evidence: self.pipeline.models().detector.is_some(),
                })
            }
            HeadKind::Detector => {
                let labels: Vec<usize> = stacked.column(0).iter().map(|&l| l as usize).collect();
                let features = stacked.slice(s![.., 3..]);
                let weights: Vec<f32> = labels
                    .iter()
                    .map(|&l| if l > 0 { POSITIVE_WEIGHT } else { 1.0 })
                    .collect();
                let layer = fit_softmax(
                    features,
                    &labels,
                    &weights,
                    classes.len() + 1,
                    SoftmaxFit::default(),
                    &stop,
                )?
                .ok_or(TrainError::Cancelled)?;
                let positive: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] > 0).collect();
                if positive.is_empty() {
                    return Err(TrainError::DatasetCorrupt(
                        "no box lies inside its image".into(),
                    ));
                }
                let positives = features.select(Axis(0), &positive);
                let sizes = stacked.slice(s![.., 1..3]).select(Axis(0), &positive);
                let size = fit_ridge(positives.view(), sizes.view(), SIZE_RIDGE)?;
                CustomHead::Detector(DetectorHead {
                    recipe: FEATURE_RECIPE,
                    classes: classes.to_vec(),
                    layer,
                    size,
                })
            }
        };
        let finite = match &head {
            CustomHead::Classifier(h) => h.layer.weights.iter().all(|w| w.is_finite()),
            CustomHead::Detector(h) => h.layer.weights.iter().chain(&h.size).all(|w| w.is_finite()),
        };
        if !finite {
            return Err(TrainError::Diverged("the weights are not finite".into()));
        }
        Ok(head)
    }

    /// `head`'s performance on the images `chosen` of `set` (their rows computed already; a detector
    /// runs over each image again, since boxes need the whole feature map).
    fn measure(
        &self,
        head: &CustomHead,
        set: &LabelledSet,
        rows: &[Array2<f32>],
        chosen: &[usize],
    ) -> Result<Performance, TrainError> {
        self.observer.report(Progress {
            stage: Stage::Evaluating,
            done: 0,
            total: chosen.len(),
        });
        match head {
            CustomHead::Classifier(head) => {
                let mut probabilities = Vec::new();
                let mut truth = Vec::new();
                for &i in chosen {
                    // The first row of an image is the image itself, as prediction sees it.
                    probabilities.push(head.probabilities(&rows[i].row(0).to_vec())?);
                    truth.push(set.images[i].label.unwrap_or(0));
                }
                Ok(metrics::classifier(&head.classes, &probabilities, &truth))
            }
            CustomHead::Detector(head) => {
                let mut samples = Vec::new();
                for (done, &i) in chosen.iter().enumerate() {
                    self.check()?;
                    let labelled = &set.images[i];
                    let decoded = self.decode(labelled, &self.load(labelled)?)?;
                    let (w, h) = decoded.rgb.dimensions();
                    let map = self.feature_map(&decoded.rgb)?;
                    let found = head.detect(&map, MIN_BOX_SCORE, (w, h))?;
                    samples.push(DetectionSample {
                        truth: labelled
                            .boxes
                            .iter()
                            .map(|&(class, b)| (class, pixel_box(b, w, h)))
                            .collect(),
                        found: found
                            .into_iter()
                            .map(|f| (f.class, f.score, f.bbox))
                            .collect(),
                    });
                    self.observer.report(Progress {
                        stage: Stage::Evaluating,
                        done: done + 1,
                        total: chosen.len(),
                    });
                }
                Ok(metrics::detector(&head.classes, &samples))
            }
        }
    }
}

/// Why a dataset image is unusable, naming it.
fn corrupt(image: &LabelledImage, why: String) -> TrainError {
    TrainError::DatasetCorrupt(format!("image '{}': {why}", image.file_name))
}

fn all(set: &LabelledSet) -> Vec<usize> {
    (0..set.images.len()).collect()
}

/// A relative `[left, top, width, height]` in pixels of a `w` x `h` image.
pub fn pixel_box([l, t, bw, bh]: [f32; 4], w: u32, h: u32) -> BoundingBox {
    let (w, h) = (w as f32, h as f32);
    BoundingBox {
        x1: l * w,
        y1: t * h,
        x2: (l + bw) * w,
        y2: (t + bh) * h,
    }
}

/// The images held out of the fit to measure it: per class (a detection image's class is its first
/// box's), every fifth from the third, in the set's order.
fn held_out(set: &LabelledSet, kind: HeadKind) -> Vec<usize> {
    let stratum = |image: &LabelledImage| match kind {
        HeadKind::Classifier => image.label,
        HeadKind::Detector => image.boxes.first().map(|b| b.0),
    };
    let mut held = Vec::new();
    let groups: Vec<Option<usize>> = set.images.iter().map(stratum).collect();
    let mut distinct = groups.clone();
    distinct.sort();
    distinct.dedup();
    for group in distinct {
        let members: Vec<usize> = (0..groups.len()).filter(|&i| groups[i] == group).collect();
        if members.len() < HOLD_OUT_FROM {
            continue;
        }
        held.extend(
            members
                .iter()
                .enumerate()
                .filter(|(k, _)| k % HOLD_OUT_EVERY == 2)
                .map(|(_, &i)| i),
        );
    }
    held.sort_unstable();
    held
}

/// A seed from an image's digest: the same image samples the same cells.
fn seed(digest: &str) -> u64 {
    u64::from_str_radix(&digest[..16], 16).unwrap_or(0x5eed)
}

/// xorshift64*: a small deterministic sampler.
struct Sampler(u64);

impl Sampler {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// The training rows of one view: positives at box centres, then background cells.
fn sample_cells(
    map: &FeatureMap,
    boxes: &[(usize, [f32; 4])],
    (width, height): (u32, u32),
    seed: u64,
) -> Array2<f32> {
    let cells = cell_features(map);
    let (rows, cols) = map.covered;
    let stride = map.stride;
    // Each box in input pixels, and its centre cell.
    let placed: Vec<(usize, f32, f32, usize, usize)> = boxes
        .iter()
        .map(|&(class, b)| {
            let p = pixel_box(b, width, height);
            let (w_in, h_in) = (p.width() / map.scale.0, p.height() / map.scale.1);
            let cx = (p.x1 + p.width() / 2.0) / map.scale.0;
            let cy = (p.y1 + p.height() / 2.0) / map.scale.1;
            let x = ((cx / stride).round() as usize).min(cols - 1);
            let y = ((cy / stride).round() as usize).min(rows - 1);
            (class, w_in.max(1.0), h_in.max(1.0), x, y)
        })
        .collect();
    let near_centre = |x: usize, y: usize| {
        placed.iter().any(|&(_, w, h, cx, cy)| {
            let reach = (0.15 * w.min(h) / stride).max(1.0);
            (x as f32 - cx as f32).abs() <= reach && (y as f32 - cy as f32).abs() <= reach
        })
    };
    let mut chosen: Vec<(usize, f32, f32, f32)> = placed
        .iter()
        .map(|&(class, w, h, x, y)| (y * cols + x, (class + 1) as f32, w.ln(), h.ln()))
        .collect();
    let mut sampler = Sampler(seed | 1);
    let inside = NEGATIVES_PER_VIEW / 3;
    let mut tries = 0;
    while chosen.len() < placed.len() + NEGATIVES_PER_VIEW && tries < NEGATIVES_PER_VIEW * 20 {
        tries += 1;
        let negatives = chosen.len() - placed.len();
        let (x, y) = match placed.get(sampler.below(placed.len())) {
            // Inside a box: a cell of its extent.
            Some(&(_, w, h, cx, cy)) if negatives < inside => {
                let (half_w, half_h) = ((w / stride / 2.0) as usize, (h / stride / 2.0) as usize);
                let x = cx.saturating_sub(half_w) + sampler.below(2 * half_w + 1);
                let y = cy.saturating_sub(half_h) + sampler.below(2 * half_h + 1);
                (x.min(cols - 1), y.min(rows - 1))
            }
            _ => (sampler.below(cols), sampler.below(rows)),
        };
        if !near_centre(x, y) {
            chosen.push((y * cols + x, 0.0, 0.0, 0.0));
        }
    }
    let mut out = Array2::<f32>::zeros((chosen.len(), 3 + cells.ncols()));
    for (row, &(cell, label, log_w, log_h)) in chosen.iter().enumerate() {
        let mut target = out.row_mut(row);
        target[0] = label;
        target[1] = log_w;
        target[2] = log_h;
        target.slice_mut(s![3..]).assign(&cells.row(cell));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Cursor;

    use image::{ImageFormat, Rgb};
    use ndarray::Array3;

    use super::*;
    use crate::geometry::Detection;
    use crate::models::traits::{ImageClassifier, ObjectDetector};
    use crate::models::ModelPack;
    use crate::pipeline::DetectionSettings;

    /// Pooled features: each colour channel's mean, and a constant.
    struct MeanColour;

    impl ImageClassifier for MeanColour {
        fn classify(&self, _: &RgbImage) -> anyhow::Result<Vec<f32>> {
            Ok(vec![1.0])
        }

        fn features(&self, image: &RgbImage) -> anyhow::Result<Option<Vec<f32>>> {
            let n = (image.width() * image.height()) as f32;
            let mut sums = [0f32; 3];
            for pixel in image.pixels() {
                for c in 0..3 {
                    sums[c] += pixel[c] as f32 / 255.0;
                }
            }
            Ok(Some(vec![sums[0] / n, sums[1] / n, sums[2] / n, 1.0]))
        }
    }

    /// A feature map at stride 4 over the image as it is (scale 1): per cell, its redness and its
    /// blueness; no evidence.
    struct ColourCells;

    impl ObjectDetector for ColourCells {
        fn labels(&self) -> &[String] {
            &[]
        }

        fn detect(&self, _: &RgbImage, _: f32) -> anyhow::Result<Vec<Detection>> {
            Ok(Vec::new())
        }

        fn feature_map(&self, image: &RgbImage) -> anyhow::Result<Option<FeatureMap>> {
            let (rows, cols) = ((image.height() / 4) as usize, (image.width() / 4) as usize);
            let mut values = Array3::<f32>::zeros((2, rows, cols));
            for y in 0..rows {
                for x in 0..cols {
                    let p = image.get_pixel(x as u32 * 4 + 2, y as u32 * 4 + 2);
                    values[[0, y, x]] = f32::from(p[0]) / 255.0 - f32::from(p[1]) / 255.0;
                    values[[1, y, x]] = f32::from(p[2]) / 255.0;
                }
            }
            Ok(Some(FeatureMap {
                values,
                stride: 4.0,
                scale: (1.0, 1.0),
                covered: (rows, cols),
                class_evidence: Vec::new(),
            }))
        }
    }

    struct Files(HashMap<String, Vec<u8>>);

    impl ImageLoader for Files {
        fn load(&self, image: &LabelledImage) -> Result<Vec<u8>, String> {
            self.0
                .get(&image.location)
                .cloned()
                .ok_or_else(|| "no such file".into())
        }
    }

    struct NoCache;

    impl FeatureCache for NoCache {
        fn get(&self, _: &str) -> Option<Array2<f32>> {
            None
        }
        fn put(&self, _: &str, _: &Array2<f32>) {}
    }

    struct Quiet;

    impl Observer for Quiet {
        fn report(&self, _: Progress) {}
        fn stop_requested(&self) -> bool {
            false
        }
    }

    fn png(image: &RgbImage) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    fn pipeline() -> Pipeline {
        let pack = ModelPack {
            classifier: Some(Box::new(MeanColour)),
            detector: Some(Box::new(ColourCells)),
            ..ModelPack::default()
        };
        Pipeline::new(pack, DetectionSettings::default())
    }

    /// A grey 96x64 image with red squares (side 16) at `squares`; their relative boxes.
    fn with_squares(squares: &[(u32, u32)]) -> (RgbImage, Vec<(usize, [f32; 4])>) {
        let mut image = RgbImage::from_pixel(96, 64, Rgb([90, 90, 90]));
        for &(x0, y0) in squares {
            for y in y0..y0 + 16 {
                for x in x0..x0 + 16 {
                    image.put_pixel(x, y, Rgb([230, 20, 20]));
                }
            }
        }
        let boxes = squares
            .iter()
            .map(|&(x, y)| {
                (
                    0,
                    [x as f32 / 96.0, y as f32 / 64.0, 16.0 / 96.0, 16.0 / 64.0],
                )
            })
            .collect();
        (image, boxes)
    }

    fn train_on(set: &LabelledSet, files: &Files, kind: HeadKind) -> Trained {
        let pipeline = pipeline();
        let trainer = Trainer {
            pipeline: &pipeline,
            loader: files,
            observer: &Quiet,
            threads: 2,
            budget: Duration::from_secs(600),
            started: Instant::now(),
        };
        let data = Data {
            set,
            cache: &NoCache,
        };
        trainer
            .train(kind, &data, None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_classifier_learns_colours_and_is_the_same_every_time() {
        let mut files = HashMap::new();
        let mut set = LabelledSet {
            classes: vec!["red".into(), "blue".into()],
            images: Vec::new(),
        };
        for k in 0..10u8 {
            let class = usize::from(k % 2);
            let colour = if class == 0 {
                [200 + k, 30, 40]
            } else {
                [30, 40 + k, 210]
            };
            let name = format!("{k}.png");
            files.insert(
                name.clone(),
                png(&RgbImage::from_pixel(32, 24, Rgb(colour))),
            );
            set.images.push(LabelledImage {
                location: name.clone(),
                file_name: name,
                label: Some(class),
                boxes: Vec::new(),
            });
        }
        let files = Files(files);
        let trained = train_on(&set, &files, HeadKind::Classifier);
        assert_eq!(
            trained.performance.accuracy_top1,
            Some(1.0),
            "{:?}",
            trained.performance
        );
        let CustomHead::Classifier(head) = &trained.head else {
            panic!("a classifier was asked for")
        };
        let ranked = head
            .predict(&image_vector(&[0.1, 0.15, 0.85, 1.0], None))
            .unwrap();
        assert_eq!(ranked[0].0, "blue");
        assert_eq!(
            train_on(&set, &files, HeadKind::Classifier).head,
            trained.head,
            "deterministic"
        );
    }

    #[test]
    fn a_detector_finds_squares_where_they_are() {
        let places = [
            vec![(8, 8)],
            vec![(60, 30), (20, 40)],
            vec![(40, 4)],
            vec![(72, 44), (4, 40)],
            vec![(30, 20)],
            vec![(64, 8)],
        ];
        let mut files = HashMap::new();
        let mut set = LabelledSet {
            classes: vec!["square".into()],
            images: Vec::new(),
        };
        for (k, squares) in places.iter().enumerate() {
            let (image, boxes) = with_squares(squares);
            let name = format!("{k}.png");
            files.insert(name.clone(), png(&image));
            set.images.push(LabelledImage {
                location: name.clone(),
                file_name: name,
                label: None,
                boxes,
            });
        }
        let trained = train_on(&set, &Files(files), HeadKind::Detector);
        let CustomHead::Detector(head) = &trained.head else {
            panic!("a detector was asked for")
        };
        let (image, _) = with_squares(&[(48, 24)]);
        let map = ColourCells.feature_map(&image).unwrap().unwrap();
        let found = head.detect(&map, 0.5, image.dimensions()).unwrap();
        assert!(!found.is_empty(), "nothing found");
        let truth = BoundingBox {
            x1: 48.0,
            y1: 24.0,
            x2: 64.0,
            y2: 40.0,
        };
        assert!(found[0].bbox.iou(&truth) >= 0.5, "{found:?}");
        assert!(trained.performance.mean_average_precision50.is_some());
    }

    #[test]
    fn an_unreadable_image_fails_training_naming_it() {
        let set = LabelledSet {
            classes: vec!["a".into(), "b".into()],
            images: vec![LabelledImage {
                location: "gone.png".into(),
                file_name: "gone.png".into(),
                label: Some(0),
                boxes: Vec::new(),
            }],
        };
        let pipeline = pipeline();
        let files = Files(HashMap::new());
        let trainer = Trainer {
            pipeline: &pipeline,
            loader: &files,
            observer: &Quiet,
            threads: 1,
            budget: Duration::from_secs(600),
            started: Instant::now(),
        };
        let error = trainer
            .train(
                HeadKind::Classifier,
                &Data {
                    set: &set,
                    cache: &NoCache,
                },
                None,
            )
            .err()
            .expect("the image cannot be loaded");
        assert_eq!(error.code(), "datasetCorrupt");
        assert!(error.to_string().contains("gone.png"), "{error}");
    }
}
