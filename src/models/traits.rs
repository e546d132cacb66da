//! What the pipeline asks of a model, one trait per role. The model files implement them; the Scene
//! and the page reader hold them as trait objects, so unit tests drive the pipeline with fakes built in
//! code (no model pack), and another model can fill a role without the pipeline changing.

use anyhow::Result;
use image::RgbImage;

use super::text_det::TextRegion;
use super::text_rec::RecognizedLine;
use super::u2net::SalienceMap;
use crate::geometry::{Detection, FaceDetection};

/// Finds objects of named classes.
pub trait ObjectDetector: Send + Sync {
    /// The class names, indexed by [`Detection::class`].
    fn labels(&self) -> &[String];
    /// Boxes scoring at least `min_score`, best first, before NMS.
    fn detect(&self, image: &RgbImage, min_score: f32) -> Result<Vec<Detection>>;
    /// The features its heads read, per grid cell, for heads trained on them (customization); None
    /// when the model file does not expose them.
    fn feature_map(&self, _image: &RgbImage) -> Result<Option<FeatureMap>> {
        Ok(None)
    }
}

/// A detector's feature map over its letterboxed input, with how its cells map to image pixels.
#[derive(Debug, Clone)]
pub struct FeatureMap {
    /// `[channels, rows, cols]`, row-major.
    pub values: ndarray::Array3<f32>,
    /// Input pixels per cell.
    pub stride: f32,
    /// Image pixels per input pixel, across and down.
    pub scale: (f32, f32),
    /// The cells that cover the image (the letterbox pads below and to the right).
    pub covered: (usize, usize),
    /// Per class of the detector, its highest heat anywhere: which of its classes the image shows.
    pub class_evidence: Vec<f32>,
}

/// Finds faces (class 0).
pub trait FaceDetector: Send + Sync {
    fn detect(&self, image: &RgbImage, min_score: f32) -> Result<Vec<FaceDetection>>;
}

/// Tells, per pixel, how much it stands out as the foreground.
pub trait SalienceModel: Send + Sync {
    fn salience(&self, image: &RgbImage) -> Result<SalienceMap>;
}

/// Probabilities of the ImageNet-1k classes, in the order of the hierarchy's class names.
pub trait ImageClassifier: Send + Sync {
    fn classify(&self, image: &RgbImage) -> Result<Vec<f32>>;
    /// The pooled feature vector its class layer reads, for heads trained on it (customization);
    /// None when the model file does not expose it.
    fn features(&self, _image: &RgbImage) -> Result<Option<Vec<f32>>> {
        Ok(None)
    }
}

/// Finds the regions of text lines.
pub trait TextRegionDetector: Send + Sync {
    /// At the detector's own input size.
    fn detect(&self, image: &RgbImage) -> Result<Vec<TextRegion>>;
    /// On the image scaled to at most `max_side` (never upscaled).
    fn detect_within(&self, image: &RgbImage, max_side: u32) -> Result<Vec<TextRegion>>;
}

/// Reads line crops (upright, left to right), one reading per crop.
pub trait LineRecognizer: Send + Sync {
    fn recognize(&self, lines: &[RgbImage]) -> Result<Vec<RecognizedLine>>;
    /// Reads each group as `recognize` reads it alone (the same readings), in one go: a recogniser
    /// that batches can then read the groups' batches side by side.
    fn recognize_groups(&self, groups: &[&[RgbImage]]) -> Result<Vec<Vec<RecognizedLine>>> {
        groups.iter().map(|lines| self.recognize(lines)).collect()
    }
}

/// Tells upside-down line crops from upright ones.
pub trait LineOrientationClassifier: Send + Sync {
    /// The chance that each line is upside down.
    fn upside_down(&self, lines: &[RgbImage]) -> Result<Vec<f32>>;
}

/// Reads the scripts the line recognizer does not, one model per script ("traineddata"), and tells
/// which script a strip of lines is in.
pub trait ScriptReader: Send + Sync {
    /// Whether the model `traineddata` (e.g. "rus") is installed.
    fn has(&self, traineddata: &str) -> bool;
    fn recognize(&self, traineddata: &str, lines: &[RgbImage]) -> Result<Vec<RecognizedLine>>;
    /// The script's name as [`super::tesseract::script_named`] knows it, None when unsure.
    fn detect_script(&self, strip: &RgbImage) -> Result<Option<String>>;
}
