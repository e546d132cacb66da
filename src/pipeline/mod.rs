//! The pipeline: decode the image once, run the requested features over it, and return plain results
//! (no HTTP types, no tensors). Every API family (4.0, 3.2, the CLI) goes through here.

pub mod adult;
pub mod budget;
pub mod caption;
pub mod categories;
pub mod color;
pub mod decode;
pub mod image_type;
pub mod language;
pub mod pdf;
pub mod read;
pub mod smart_crop;
pub mod tags;
pub mod vectors;
pub mod workers;

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use anyhow::Context;
use fast_image_resize::{FilterType, ResizeAlg};
use image::{DynamicImage, GrayImage, ImageFormat, RgbImage, RgbaImage};

use self::decode::{decode, DecodeError, DecodedImage, ImageLimits};
use self::smart_crop::{area_of_interest, best_crop, default_ratio, Importance, Subject, Weighted};
use crate::geometry::{nms_per_class, Detection, PixelRect};
use crate::models::e5::TextRole;
pub use crate::models::faceres::{FaceAttributes, Gender};
use crate::models::preprocess::{resize, resize_bilinear};
use crate::models::text_det::TextRegion;
use crate::models::u2net::SalienceMap;
use crate::models::ModelPack;

/// What a request can ask the pipeline for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    Caption,
    DenseCaptions,
    Objects,
    People,
    Read,
    SmartCrops,
    Tags,
    /// 3.2 `areaOfInterest`: one rectangle around what matters. Not a 4.0 feature name.
    AreaOfInterest,
    /// 3.2 `Faces`: face rectangles. Not a 4.0 feature name.
    Faces,
    /// 3.2 `Color`: dominant and accent colours. Not a 4.0 feature name.
    Color,
    /// 3.2 `ImageType`: clip art and line drawing. Not a 4.0 feature name.
    ImageType,
    /// 3.2 `Adult`: adult and racy scores. Not a 4.0 feature name.
    Adult,
    /// 3.2 `Categories`: the 86-category taxonomy. Not a 4.0 feature name.
    Categories,
    /// 3.2 `Description`: caption candidates and tag words. Not a 4.0 feature name.
    Description,
}

impl Feature {
    /// The Image Analysis 4.0 features, the ones clients can name.
    pub const ALL: [Feature; 7] = [
        Feature::Caption,
        Feature::DenseCaptions,
        Feature::Objects,
        Feature::People,
        Feature::Read,
        Feature::SmartCrops,
        Feature::Tags,
    ];

    /// The name used on the wire by Image Analysis 4.0.
    pub fn wire_name(self) -> &'static str {
        match self {
            Feature::Caption => "caption",
            Feature::DenseCaptions => "denseCaptions",
            Feature::Objects => "objects",
            Feature::People => "people",
            Feature::Read => "read",
            Feature::SmartCrops => "smartCrops",
            Feature::Tags => "tags",
            Feature::AreaOfInterest => "areaOfInterest",
            Feature::Faces => "faces",
            Feature::Color => "color",
            Feature::ImageType => "imageType",
            Feature::Adult => "adult",
            Feature::Categories => "categories",
            Feature::Description => "description",
        }
    }

    /// The manifest tasks of the models (and libraries) this feature's result comes from, evidence
    /// included: a one-shot command loads only these.
    pub fn model_tasks(self) -> &'static [&'static str] {
        // Tags, captions and categories weigh every model that can name something.
        const WORDS: &[&str] = &[
            "tags",
            "objects",
            "faces",
            "text-detection",
            "clip-visual",
            "clip-textual",
            "clip-vocabulary",
        ];
        match self {
            Feature::Objects | Feature::People => &["objects"],
            Feature::Read => &[
                "text-detection",
                "text-recognition",
                "text-line-orientation",
                "ocr-library",
                "pdf",
            ],
            Feature::SmartCrops | Feature::AreaOfInterest => &["salience", "faces", "objects"],
            Feature::Faces => &["faces", "face-attributes"],
            Feature::Color => &["salience"],
            Feature::ImageType => &[],
            Feature::Adult => &["adult"],
            Feature::Caption
            | Feature::DenseCaptions
            | Feature::Tags
            | Feature::Categories
            | Feature::Description => WORDS,
        }
    }

    /// Case-insensitive lookup by wire name.
    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL
            .into_iter()
            .find(|f| f.wire_name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// Tunables of the models' post-processing.
#[derive(Debug, Clone)]
pub struct DetectionSettings {
    /// Objects below this confidence are not reported.
    pub min_object_confidence: f32,
    /// Tags below this confidence are not reported.
    pub min_tag_confidence: f32,
    /// People below this confidence are not reported (Azure reports low-confidence people too).
    pub min_person_confidence: f32,
    /// Per-class NMS overlap above which the weaker box is dropped.
    pub nms_iou: f32,
    /// Faces below this confidence are not reported (nor used by smart crops).
    pub min_face_confidence: f32,
    /// Adult (Porn + Hentai) and racy scores from which `isAdultContent` / `isRacyContent` are true.
    pub adult_threshold: f32,
    pub racy_threshold: f32,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        DetectionSettings {
            min_object_confidence: 0.3,
            min_tag_confidence: 0.5,
            min_person_confidence: 0.2,
            nms_iou: 0.7,
            min_face_confidence: 0.5,
            adult_threshold: 0.5,
            racy_threshold: 0.5,
        }
    }
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct DetectedFace {
    pub rect: PixelRect,
    pub confidence: f32,
    /// Estimated age and gender, only where the optional model is installed.
    pub attributes: Option<FaceAttributes>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CropRegion {
    /// The ratio as requested, echoed exactly.
    pub ratio: f32,
    pub rect: PixelRect,
}

/// Per-request settings of the features.
#[derive(Debug, Clone, Default)]
pub struct AnalysisOptions {
    /// Width / height of each smart crop wanted; empty lets the pipeline choose one.
    pub smart_crop_ratios: Vec<f32>,
    /// How text is read (orientation, language, line order).
    pub read: read::ReadOptions,
}

/// One page of a document read by the Read API (pages are numbered from 1). Images are measured in
/// pixels, PDF pages in inches.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadPage {
    pub number: usize,
    pub width: f32,
    pub height: f32,
    pub in_inches: bool,
    pub text: read::PageText,
}

/// The results of one request; a feature that was not asked for stays `None`.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub width: u32,
    pub height: u32,
    pub format: ImageFormat,
    pub objects: Option<Vec<DetectedObject>>,
    pub people: Option<Vec<DetectedPerson>>,
    pub smart_crops: Option<Vec<CropRegion>>,
    pub area_of_interest: Option<PixelRect>,
    pub faces: Option<Vec<DetectedFace>>,
    pub color: Option<color::ColorInfo>,
    pub image_type: Option<image_type::ImageType>,
    pub adult: Option<adult::AdultRating>,
    pub text: Option<read::PageText>,
    pub tags: Option<Vec<tags::Tag>>,
    /// Caption candidates, the best first (4.0 `caption` uses the first).
    pub captions: Option<Vec<caption::Caption>>,
    pub dense_captions: Option<Vec<caption::DenseCaption>>,
    pub categories: Option<Vec<categories::Category>>,
}

impl Analysis {
    /// An analysis of a `width` x `height` image with no feature filled in yet.
    pub fn new(width: u32, height: u32, format: ImageFormat) -> Self {
        Analysis {
            width,
            height,
            format,
            objects: None,
            people: None,
            smart_crops: None,
            area_of_interest: None,
            faces: None,
            color: None,
            image_type: None,
            adult: None,
            text: None,
            tags: None,
            captions: None,
            dense_captions: None,
            categories: None,
        }
    }
}

/// What `segment` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentMode {
    /// The image with a transparent background, RGBA.
    BackgroundRemoval,
    /// The foreground's alpha matte alone, one channel, the input's size.
    ForegroundMatting,
}

impl SegmentMode {
    pub fn wire_name(self) -> &'static str {
        match self {
            SegmentMode::BackgroundRemoval => "backgroundRemoval",
            SegmentMode::ForegroundMatting => "foregroundMatting",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            SegmentMode::BackgroundRemoval,
            SegmentMode::ForegroundMatting,
        ]
        .into_iter()
        .find(|m| m.wire_name().eq_ignore_ascii_case(name.trim()))
    }
}

/// The features that name what an image shows: tags, captions and categories.
const NAMING_FEATURES: [Feature; 5] = [
    Feature::Caption,
    Feature::DenseCaptions,
    Feature::Tags,
    Feature::Categories,
    Feature::Description,
];

/// A name a CLIP scores zero-shot is evidence from this probability.
const MIN_ZERO_SHOT: f32 = 0.05;

/// The longer side of the copy the text detector looks at to tell whether an image has text.
const TEXT_PRESENCE_SIDE: u32 = 640;

/// A `side` x `side` copy for pixel statistics: nearest pixels, so flat colours stay exact.
fn statistics_grid(image: &RgbImage, side: u32) -> anyhow::Result<RgbImage> {
    resize(image, side, side, ResizeAlg::Nearest)
}

/// What the other models found, the evidence of tags, captions and categories.
struct Found<'a> {
    detections: &'a [Detection],
    faces: &'a [Detection],
    /// The text detector's regions on the image as text presence sees it, if `read` found them.
    text_regions: Option<Vec<TextRegion>>,
}

/// The mean colour of a statistics grid.
fn mean_colour(grid: &RgbImage) -> [u8; 3] {
    let n = (grid.width() * grid.height()).max(1) as u64;
    let sum = grid.pixels().fold([0u64; 3], |acc, p| {
        [0, 1, 2].map(|i| acc[i] + u64::from(p.0[i]))
    });
    sum.map(|total| (total / n) as u8)
}

/// Mean brightness, 0..1, from a sparse grid of pixels.
fn brightness(image: &RgbImage) -> f32 {
    let (w, h) = image.dimensions();
    let step = (w.max(h) / 64).max(1) as usize;
    let (mut sum, mut n) = (0.0, 0);
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            let [r, g, b] = image.get_pixel(x, y).0;
            sum += (0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32) / 255.0;
            n += 1;
        }
    }
    sum / n.max(1) as f32
}

/// Background removal returns at most this many pixels (Azure's cap), same aspect ratio.
pub const MAX_CUTOUT_PIXELS: u64 = 16_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// `feature` names what was asked for, as the caller spelled it (a feature, a mode).
    #[error("'{feature}' is not available: {reason}")]
    Unavailable {
        feature: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Pdf(#[from] pdf::PdfError),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

pub struct Pipeline {
    models: ModelPack,
    detection: DetectionSettings,
    tag_filter: tags::TagFilter,
    pdf: Option<pdf::PdfReader>,
    budget: Arc<budget::PixelBudget>,
}

/// Decoded megapixels all requests may hold at once unless the deployment says otherwise: one
/// 16000x8000 image, or a dozen 10-megapixel photos. A 16000x16000 PNG peaked at 4.5 GiB resident
/// (about 17 bytes a pixel through the whole analysis), so this keeps a 2-core, 4 GiB machine safe.
pub const DEFAULT_DECODE_MEGAPIXELS: u64 = 128;

impl Pipeline {
    pub fn new(models: ModelPack, detection: DetectionSettings) -> Self {
        let pdf = models.pdfium_library.as_deref().and_then(|library| {
            pdf::PdfReader::open(library)
                .map_err(|e| tracing::warn!("PDF input is not available: {e:#}"))
                .ok()
        });
        Pipeline {
            models,
            detection,
            tag_filter: tags::TagFilter::default(),
            pdf,
            budget: budget::PixelBudget::new(DEFAULT_DECODE_MEGAPIXELS * 1_000_000),
        }
    }

    /// Bounds the pixels all requests may hold decoded at once (see [`budget`]).
    pub fn with_decode_megapixels(mut self, megapixels: u64) -> Self {
        self.budget = budget::PixelBudget::new(megapixels.max(1) * 1_000_000);
        self
    }

    /// How many pages a document has, from its headers, after checking its format and page sides:
    /// what the Read API checks before accepting it.
    pub fn count_pages(&self, bytes: &[u8]) -> Result<usize, PipelineError> {
        if bytes.starts_with(b"%PDF") {
            return self.pdf_page_count(bytes);
        }
        Ok(decode::count_pages(bytes, &decode::READ)?)
    }

    /// Applies the deployment's allow-list and block-list to every name derived from tags.
    pub fn with_tag_filter(mut self, filter: tags::TagFilter) -> Self {
        self.tag_filter = filter;
        self
    }

    /// Checks a PDF before it is accepted: its pages, or why it cannot be read.
    pub fn pdf_page_count(&self, bytes: &[u8]) -> Result<usize, PipelineError> {
        self.pdf_reader()?
            .page_count(bytes)
            .map_err(PipelineError::Pdf)
    }

    fn pdf_reader(&self) -> Result<&pdf::PdfReader, PipelineError> {
        self.pdf.as_ref().ok_or_else(|| PipelineError::Unavailable {
            feature: "PDF input",
            reason: "PDFium (pdfium) is not installed; run `vista models fetch`".into(),
        })
    }

    pub fn models(&self) -> &ModelPack {
        &self.models
    }

    /// Why `feature` cannot be served by this deployment, or `None` when it can.
    pub fn unavailable(&self, feature: Feature) -> Option<String> {
        match feature {
            Feature::Objects | Feature::People if self.models.detector.is_none() => Some(
                "the object detector (centernet) is not installed; run `vista models fetch`".into(),
            ),
            Feature::SmartCrops | Feature::AreaOfInterest | Feature::Color
                if self.models.salience.is_none() =>
            {
                Some(
                    "the salience model (u2netp) is not installed; run `vista models fetch`".into(),
                )
            }
            Feature::Adult if self.models.nsfw.is_none() => Some(
                "the adult-content classifier (nsfw) is not installed; run `vista models fetch`"
                    .into(),
            ),
            Feature::Faces if self.models.faces.is_none() => Some(
                "the face detector (centerface) is not installed; run `vista models fetch`".into(),
            ),
            Feature::Objects
            | Feature::People
            | Feature::SmartCrops
            | Feature::AreaOfInterest
            | Feature::Faces
            | Feature::Color
            | Feature::ImageType
            | Feature::Adult => None,
            Feature::Caption
            | Feature::DenseCaptions
            | Feature::Tags
            | Feature::Categories
            | Feature::Description => self.unable_to_name_things(),
            Feature::Read if self.models.text_detector.is_none() || self.models.text_recognizer.is_none() => Some(
                "the OCR models (ppocr-det, ppocr-rec) are not installed; run `vista models fetch`".into(),
            ),
            Feature::Read => None,
        }
    }

    /// Why tags, captions and categories cannot be made here: they need the classifier, the detector
    /// and WordNet's names.
    fn unable_to_name_things(&self) -> Option<String> {
        let models = &self.models;
        let missing: Vec<&str> = [
            (
                models.classifier.is_none(),
                "the classifier (efficientnet-lite0)",
            ),
            (models.detector.is_none(), "the object detector (centernet)"),
            (
                models.hierarchy.is_none(),
                "the WordNet names (wordnet, wordtree)",
            ),
        ]
        .into_iter()
        .filter_map(|(missing, what)| missing.then_some(what))
        .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "{} not installed; run `vista models fetch`",
                missing.join(" and ") + if missing.len() > 1 { " are" } else { " is" }
            )
        })
    }

    /// Whether text in `language` can be read here (see [`language::check_reading`]).
    pub fn check_reading(&self, language: &str) -> Result<(), language::Unsupported> {
        language::check_reading(language, self.models.tesseract.as_ref())
    }

    /// An error naming the first of `features` this deployment cannot serve.
    pub fn check_available(&self, features: &[Feature]) -> Result<(), PipelineError> {
        match features
            .iter()
            .find_map(|f| self.unavailable(*f).map(|reason| (f.wire_name(), reason)))
        {
            Some((feature, reason)) => Err(PipelineError::Unavailable { feature, reason }),
            None => Ok(()),
        }
    }

    /// Decodes `bytes` under `limits` and runs `features`. Call it from a worker: it is CPU-bound.
    pub fn analyze(
        &self,
        bytes: &[u8],
        limits: &ImageLimits,
        features: &[Feature],
        options: &AnalysisOptions,
    ) -> Result<Analysis, PipelineError> {
        self.check_available(features)?;
        let started = std::time::Instant::now();
        let image = decode(bytes, limits, &self.budget)?;
        tracing::debug!(decode_ms = started.elapsed().as_secs_f64() * 1e3, "decoded");
        self.run_features(&image, features, options)
    }

    /// Runs `features` (already checked available) on a decoded image.
    fn run_features(
        &self,
        decoded: &DecodedImage,
        features: &[Feature],
        options: &AnalysisOptions,
    ) -> Result<Analysis, PipelineError> {
        let (image, format) = (&decoded.rgb, decoded.format);
        let (width, height) = image.dimensions();
        let mut analysis = Analysis::new(width, height, format);

        let wants = |f: Feature| features.contains(&f);
        let settings = &self.detection;
        let naming = NAMING_FEATURES.iter().any(|f| wants(*f));
        // Smart crops, the area of interest, tags and captions weigh people and objects too: one
        // detector run serves all.
        let detections = match &self.models.detector {
            Some(detector)
                if naming
                    || [
                        Feature::Objects,
                        Feature::People,
                        Feature::SmartCrops,
                        Feature::AreaOfInterest,
                    ]
                    .iter()
                    .any(|f| wants(*f)) =>
            {
                let floor = settings
                    .min_object_confidence
                    .min(settings.min_person_confidence);
                nms_per_class(detector.detect(image, floor)?, settings.nms_iou)
            }
            _ => Vec::new(),
        };
        let is_person = |d: &Detection| self.label(d) == "person";
        if wants(Feature::Objects) {
            analysis.objects = Some(
                detections
                    .iter()
                    .filter(|d| d.score >= settings.min_object_confidence)
                    .filter(|d| self.tag_filter.permits(self.label(d)))
                    .map(|d| {
                        let label = self.label(d);
                        DetectedObject {
                            rect: d.bbox.to_pixel_rect(width, height),
                            label: label.to_string(),
                            confidence: d.score,
                            parents: self.parents(label),
                        }
                    })
                    .collect(),
            );
        }
        if wants(Feature::People) {
            analysis.people = Some(
                detections
                    .iter()
                    .filter(|d| is_person(d) && d.score >= settings.min_person_confidence)
                    .map(|d| DetectedPerson {
                        rect: d.bbox.to_pixel_rect(width, height),
                        confidence: d.score,
                    })
                    .collect(),
            );
        }
        // `read`'s text detection serves the text presence of tags and captions too when the image is
        // no larger than the presence size: the detector never upscales, so both see the same input.
        let mut shared_text_regions = None;
        if let (true, Some(models)) = (wants(Feature::Read), self.text_models()) {
            let regions = models.detector.detect(image)?;
            if image.width().max(image.height()) <= TEXT_PRESENCE_SIDE {
                shared_text_regions = Some(regions.clone());
            }
            analysis.text = Some(read::read_regions(models, image, regions, &options.read)?);
        }
        if let (true, Some(model)) = (wants(Feature::Adult), &self.models.nsfw) {
            analysis.adult = Some(adult::rate(
                &model.classify(image)?,
                settings.adult_threshold,
                settings.racy_threshold,
            ));
        }
        if wants(Feature::ImageType) {
            let grid = statistics_grid(image, image_type::GRID)?;
            analysis.image_type = Some(image_type::classify(&image_type::signals(&grid)));
        }
        let cropping = wants(Feature::SmartCrops) || wants(Feature::AreaOfInterest);
        // Faces serve the Faces feature and, when the model is there, weigh most on crops.
        // Tags say "human face" only where the detector saw a person.
        let tagging_people = (wants(Feature::Tags) || wants(Feature::Description))
            && detections
                .iter()
                .any(|d| is_person(d) && d.score >= settings.min_person_confidence);
        let faces = match &self.models.faces {
            Some(model) if wants(Feature::Faces) || cropping || tagging_people => {
                model.detect(image, settings.min_face_confidence)?
            }
            _ => Vec::new(),
        };
        if wants(Feature::Faces) {
            let rects: Vec<PixelRect> = faces
                .iter()
                .map(|f| f.bbox.to_pixel_rect(width, height))
                .collect();
            let attributes = match &self.models.face_attributes {
                Some(model) => model
                    .estimate(image, &rects)?
                    .into_iter()
                    .map(Some)
                    .collect(),
                None => vec![None; rects.len()],
            };
            analysis.faces = Some(
                rects
                    .into_iter()
                    .zip(faces.iter().zip(attributes))
                    .map(|(rect, (f, attributes))| DetectedFace {
                        rect,
                        confidence: f.score,
                        attributes,
                    })
                    .collect(),
            );
        }
        let salience = if cropping || wants(Feature::Color) {
            Some(self.salience(image)?)
        } else {
            None
        };
        if let (true, Some(salience)) = (wants(Feature::Color), &salience) {
            let grid = statistics_grid(image, color::GRID)?;
            analysis.color = Some(color::analyze(&grid, salience));
        }
        if let (true, Some(salience)) = (cropping, &salience) {
            let subject_of = |d: &Detection| {
                if is_person(d) {
                    Subject::Person
                } else {
                    Subject::Object
                }
            };
            let boxes: Vec<Weighted> = detections
                .iter()
                .map(|d| Weighted {
                    bbox: d.bbox,
                    confidence: d.score,
                    subject: subject_of(d),
                })
                .chain(faces.iter().map(|f| Weighted {
                    bbox: f.bbox,
                    confidence: f.score,
                    subject: Subject::Face,
                }))
                .collect();
            // People and faces belong in the area of interest; other objects only weigh on crops.
            let subjects: Vec<_> = boxes
                .iter()
                .filter(|b| match b.subject {
                    Subject::Face => true,
                    Subject::Person => b.confidence >= settings.min_person_confidence,
                    Subject::Object => false,
                })
                .map(|b| b.bbox)
                .collect();
            let area = area_of_interest(salience, width, height, &subjects);
            if wants(Feature::AreaOfInterest) {
                analysis.area_of_interest = Some(area);
            }
            if wants(Feature::SmartCrops) {
                let importance = Importance::new(salience, width, height, &boxes);
                let ratios = if options.smart_crop_ratios.is_empty() {
                    vec![default_ratio(area)]
                } else {
                    options.smart_crop_ratios.clone()
                };
                analysis.smart_crops = Some(
                    ratios
                        .into_iter()
                        .map(|ratio| CropRegion {
                            ratio,
                            rect: best_crop(&importance, width, height, ratio),
                        })
                        .collect(),
                );
            }
        }
        if naming {
            let found = Found {
                detections: &detections,
                faces: &faces,
                text_regions: shared_text_regions,
            };
            self.name_things(image, found, features, &mut analysis)?;
        }
        Ok(analysis)
    }

    /// Tags, captions, dense captions and categories, from the classifier and what the other models
    /// already `found`.
    fn name_things(
        &self,
        image: &RgbImage,
        found: Found,
        features: &[Feature],
        analysis: &mut Analysis,
    ) -> Result<(), PipelineError> {
        let Found {
            detections,
            faces,
            text_regions,
        } = found;
        let wants = |f: Feature| features.contains(&f);
        let (Some(classifier), Some(hierarchy)) = (&self.models.classifier, &self.models.hierarchy)
        else {
            unreachable!("checked by check_available()");
        };
        let (width, height) = image.dimensions();
        let settings = &self.detection;
        let filter = &self.tag_filter;
        let probabilities = classifier.classify(image)?;
        // Words about detections carry the chance that they are right, not the detector's score.
        let things: Vec<caption::Thing> = detections
            .iter()
            .filter(|d| filter.permits(self.label(d)))
            .map(|d| caption::Thing {
                label: self.label(d).to_string(),
                rect: d.bbox.to_pixel_rect(width, height),
                confidence: tags::detection_confidence(d.score),
            })
            .collect();
        let parents: Vec<Vec<String>> = things.iter().map(|t| self.parents(&t.label)).collect();
        let captioning = [
            Feature::Caption,
            Feature::DenseCaptions,
            Feature::Description,
        ]
        .iter()
        .any(|f| wants(*f));
        let text = if wants(Feature::Tags) || wants(Feature::Categories) || captioning {
            self.text_presence(image, text_regions)?
        } else {
            None
        };
        let evidence = tags::TagEvidence {
            classes: Some((&probabilities, hierarchy.imagenet())),
            objects: things
                .iter()
                .zip(&parents)
                .map(|(t, parents)| (t.label.as_str(), t.confidence, parents.as_slice()))
                .collect(),
            face: faces.iter().map(|f| f.score).reduce(f32::max),
            text: text.map(|(score, _)| score),
            zero_shot: match &self.models.clip {
                Some(clip) => clip.zero_shot(&clip.embed_image(image)?, MIN_ZERO_SHOT),
                None => Vec::new(),
            },
        };
        let scores = tags::TagScores::fuse(&evidence, filter);
        if wants(Feature::Tags) || wants(Feature::Description) {
            analysis.tags = Some(scores.tags(settings.min_tag_confidence));
        }
        if wants(Feature::Categories) {
            let people: Vec<&caption::Thing> = things
                .iter()
                .filter(|t| t.label == "person" && t.confidence >= caption::MIN_CAPTION_CONFIDENCE)
                .collect();
            let image_area = (width as f32 * height as f32).max(1.0);
            let counted = categories::People {
                count: people.len(),
                confidence: people.iter().map(|p| p.confidence).fold(0.0, f32::max),
                largest_share: people
                    .iter()
                    .map(|p| p.rect.w as f32 * p.rect.h as f32 / image_area)
                    .fold(0.0, f32::max),
            };
            analysis.categories = Some(categories::categorize(
                |name| scores.score(name),
                &counted,
                brightness(image),
            ));
        }
        if captioning {
            let class = probabilities
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, p)| (hierarchy.imagenet()[i].name.clone(), *p))
                .filter(|(name, _)| filter.permits(name));
            let top_tag = scores
                .tags(0.0)
                .into_iter()
                .find(|t| t.name != "text" && t.name != "human face")
                .map(|t| (t.name, t.confidence));
            let grid = statistics_grid(image, image_type::GRID)?;
            let look = caption::look(
                &image_type::signals(&grid),
                mean_colour(&grid),
                text.map(|(_, coverage)| coverage).unwrap_or_default(),
            );
            let facts = caption::Facts {
                width,
                height,
                things,
                class,
                top_tag,
                look,
            };
            let captions = caption::captions(&facts);
            if wants(Feature::DenseCaptions) {
                analysis.dense_captions =
                    Some(caption::dense_captions(image, &facts, &captions[0]));
            }
            analysis.captions = Some(captions);
        }
        Ok(())
    }

    /// How sure it is that the image shows text (the text detector's surest region on a small copy,
    /// weighed by how many regions it found), and how much text covers. Always measured this way, so a
    /// tag's confidence does not depend on whether `read` ran too. None without the text detector.
    /// `found` are the regions of that very detection when it ran already.
    fn text_presence(
        &self,
        image: &RgbImage,
        found: Option<Vec<TextRegion>>,
    ) -> Result<Option<(f32, caption::TextCoverage)>, PipelineError> {
        let Some(detector) = &self.models.text_detector else {
            return Ok(None);
        };
        let regions = match found {
            Some(regions) => regions,
            None => detector.detect_within(image, TEXT_PRESENCE_SIDE)?,
        };
        // One region may be a stray stroke; a few make text.
        let support = (regions.len() as f32 / 3.0).min(1.0);
        let score = regions.iter().map(|r| r.score).fold(0.0, f32::max) * support;
        let (width, height) = image.dimensions();
        let covered: f32 = regions.iter().map(|r| r.quad.area()).sum();
        let coverage = caption::TextCoverage {
            regions: regions.len(),
            share: covered / (width as f32 * height as f32).max(1.0),
        };
        Ok(Some((score, coverage)))
    }

    /// The readable parents of a detector label that the deployment's tag rules allow.
    fn parents(&self, label: &str) -> Vec<String> {
        let parents = self.models.hierarchy.as_ref().map(|h| h.parents(label));
        parents
            .unwrap_or_default()
            .iter()
            .filter(|p| self.tag_filter.permits(p))
            .cloned()
            .collect()
    }

    /// The name of the model behind the search vectors (vectors of different models do not compare).
    pub fn vector_model(&self) -> String {
        match (&self.models.clip, &self.models.text_encoder) {
            (Some(clip), _) => format!("vista-clip-{}", clip.name),
            (None, Some(e5)) if !e5.is_centred() => vectors::E5_UNCENTRED_MODEL_VERSION.to_string(),
            (None, _) => vectors::E5_MODEL_VERSION.to_string(),
        }
    }

    /// The search vector of an image. With a CLIP, CLIP's; otherwise what the image shows put in
    /// words (its caption and tags), embedded as an e5 passage, so that text queries in any language
    /// e5 knows find it.
    pub fn vectorize_image(
        &self,
        bytes: &[u8],
        limits: &ImageLimits,
    ) -> Result<Vec<f32>, PipelineError> {
        self.check_vectors()?;
        let words = vectors::IMAGE_WORDS;
        if self.models.clip.is_none() {
            self.check_available(&words)?;
        }
        let image = decode(bytes, limits, &self.budget)?;
        if let Some(clip) = &self.models.clip {
            return Ok(clip.embed_image(&image.rgb)?);
        }
        let analysis = self.run_features(&image, &words, &AnalysisOptions::default())?;
        let passage = vectors::image_passage(&analysis);
        tracing::debug!(%passage, "image passage");
        self.embed(&passage, TextRole::Passage)
    }

    /// The search vector of a text query.
    pub fn vectorize_text(&self, text: &str) -> Result<Vec<f32>, PipelineError> {
        self.check_vectors()?;
        if let Some(clip) = &self.models.clip {
            return Ok(clip.embed_text(text)?);
        }
        self.embed(text, TextRole::Query)
    }

    /// An error when search vectors cannot be made here (no CLIP and no text encoder).
    pub fn check_vectors(&self) -> Result<(), PipelineError> {
        if self.models.clip.is_some() || self.models.text_encoder.is_some() {
            return Ok(());
        }
        Err(PipelineError::Unavailable {
            feature: "vectorize",
            reason: "the text encoder (e5-small) is not installed; run `vista models fetch`".into(),
        })
    }

    fn embed(&self, text: &str, role: TextRole) -> Result<Vec<f32>, PipelineError> {
        let encoder = self
            .models
            .text_encoder
            .as_ref()
            .expect("checked by check_vectors()");
        Ok(encoder.embed(text, role)?)
    }

    /// The text models, when the pack has the two that reading needs.
    fn text_models(&self) -> Option<read::TextModels<'_>> {
        Some(read::TextModels {
            detector: self.models.text_detector.as_ref()?,
            recognizer: self.models.text_recognizer.as_ref()?,
            line_classifier: self.models.text_line_classifier.as_ref(),
            tesseract: self.models.tesseract.as_ref(),
        })
    }

    /// Reads the text of every selected page of a document (an image, a multi-page TIFF or a PDF).
    pub fn read_document(
        &self,
        bytes: &[u8],
        selected: &dyn Fn(usize) -> bool,
        max_pages: usize,
        options: &read::ReadOptions,
    ) -> Result<Vec<ReadPage>, PipelineError> {
        self.check_available(&[Feature::Read])?;
        let models = self.text_models().expect("checked by check_available()");
        let mut read = Vec::new();
        if bytes.starts_with(b"%PDF") {
            self.pdf_reader()?.for_each_page(
                bytes,
                (selected, max_pages),
                &self.budget,
                |number, page| {
                    let (width, height, text) = match page {
                        pdf::PdfPage::Text {
                            width,
                            height,
                            text,
                        } => (width, height, text),
                        pdf::PdfPage::Scan {
                            width,
                            height,
                            image,
                            dpi,
                        } => {
                            let text = read::read_page(models, &image, options)?;
                            (width, height, text.scaled(1.0 / dpi))
                        }
                    };
                    read.push(ReadPage {
                        number,
                        width,
                        height,
                        in_inches: true,
                        text,
                    });
                    Ok::<_, PipelineError>(())
                },
            )?;
            return Ok(read);
        }
        decode::for_each_page(
            bytes,
            &decode::READ,
            (selected, max_pages),
            &self.budget,
            |number, page| {
                read.push(ReadPage {
                    number,
                    width: page.width() as f32,
                    height: page.height() as f32,
                    in_inches: false,
                    text: read::read_page(models, page, options)?,
                });
                Ok::<_, PipelineError>(())
            },
        )?;
        Ok(read)
    }

    /// Separates the foreground: a PNG with the background transparent, or the alpha matte alone.
    pub fn segment(
        &self,
        bytes: &[u8],
        limits: &ImageLimits,
        mode: SegmentMode,
    ) -> Result<Vec<u8>, PipelineError> {
        if let Some(reason) = self.unavailable(Feature::SmartCrops) {
            return Err(PipelineError::Unavailable {
                feature: mode.wire_name(),
                reason,
            });
        }
        let decoded = decode(bytes, limits, &self.budget)?;
        let image = &decoded.rgb;
        let salience = self.salience(image)?;
        let output = match mode {
            SegmentMode::ForegroundMatting => {
                DynamicImage::ImageLuma8(salience.to_mask(image.width(), image.height())?)
            }
            SegmentMode::BackgroundRemoval => DynamicImage::ImageRgba8(cutout(image, &salience)?),
        };
        let mut png = Cursor::new(Vec::new());
        output
            .write_to(&mut png, ImageFormat::Png)
            .context("encoding the PNG")?;
        Ok(png.into_inner())
    }

    /// A `width` x `height` thumbnail in the input's format: the window of that aspect ratio chosen by
    /// smart cropping (or the centred one), scaled to size.
    pub fn thumbnail(
        &self,
        bytes: &[u8],
        limits: &ImageLimits,
        width: u32,
        height: u32,
        smart: bool,
    ) -> Result<(Vec<u8>, ImageFormat), PipelineError> {
        if smart {
            self.check_available(&[Feature::SmartCrops])?;
        }
        let ratio = width as f32 / height as f32;
        let decoded = decode(bytes, limits, &self.budget)?;
        let (w, h) = decoded.rgb.dimensions();
        let window = if smart {
            let options = AnalysisOptions {
                smart_crop_ratios: vec![ratio],
                ..AnalysisOptions::default()
            };
            let analysis = self.run_features(&decoded, &[Feature::SmartCrops], &options)?;
            analysis
                .smart_crops
                .and_then(|c| c.into_iter().next())
                .expect("one ratio asked, one crop")
                .rect
        } else {
            smart_crop::centred_crop(w, h, ratio)
        };
        let (image, format) = (decoded.rgb, decoded.format);
        let cropped =
            image::imageops::crop_imm(&image, window.x, window.y, window.w, window.h).to_image();
        let thumbnail = resize(
            &cropped,
            width,
            height,
            ResizeAlg::Convolution(FilterType::Lanczos3),
        )?;
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(thumbnail)
            .write_to(&mut out, format)
            .context("encoding the thumbnail")?;
        Ok((out.into_inner(), format))
    }

    fn salience(&self, image: &RgbImage) -> Result<SalienceMap, PipelineError> {
        Ok(self
            .models
            .salience
            .as_ref()
            .expect("checked by unavailable()")
            .salience(image)?)
    }

    fn label(&self, detection: &Detection) -> &str {
        self.models
            .detector
            .as_ref()
            .map_or("", |d| d.labels()[detection.class].as_str())
    }
}

/// The image with the matte as its alpha channel, scaled down to at most `MAX_CUTOUT_PIXELS`.
fn cutout(image: &RgbImage, salience: &SalienceMap) -> anyhow::Result<RgbaImage> {
    let (width, height) = image.dimensions();
    let pixels = width as u64 * height as u64;
    let scaled;
    let image = if pixels > MAX_CUTOUT_PIXELS {
        let factor = (MAX_CUTOUT_PIXELS as f64 / pixels as f64).sqrt();
        let (w, h) = (
            ((width as f64 * factor) as u32).max(1),
            ((height as f64 * factor) as u32).max(1),
        );
        scaled = resize_bilinear(image, w, h)?;
        &scaled
    } else {
        image
    };
    let matte: GrayImage = salience.to_mask(image.width(), image.height())?;
    Ok(RgbaImage::from_fn(image.width(), image.height(), |x, y| {
        let [r, g, b] = image.get_pixel(x, y).0;
        image::Rgba([r, g, b, matte.get_pixel(x, y)[0]])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_parse_case_insensitively_and_round_trip() {
        for feature in Feature::ALL {
            assert_eq!(Feature::parse(feature.wire_name()), Some(feature));
            assert_eq!(
                Feature::parse(&feature.wire_name().to_uppercase()),
                Some(feature)
            );
        }
        assert_eq!(Feature::parse("Objects "), Some(Feature::Objects));
        assert_eq!(Feature::parse("faces"), None);
    }

    #[test]
    fn a_pipeline_without_models_refuses_every_feature_with_a_reason() {
        let pipeline = Pipeline::new(ModelPack::default(), DetectionSettings::default());
        for feature in Feature::ALL {
            assert!(pipeline.unavailable(feature).is_some(), "{feature}");
        }
        let russian = pipeline
            .check_reading("ru")
            .expect_err("no Tesseract in an empty pack");
        assert!(russian.0.contains("'rus'"), "{russian}");
        assert_eq!(pipeline.check_reading("en"), Ok(()), "PP-OCR's language");
        let options = AnalysisOptions::default();
        let err = pipeline
            .analyze(
                b"irrelevant",
                &decode::ANALYZE_V4,
                &[Feature::Objects],
                &options,
            )
            .unwrap_err();
        assert!(matches!(
            err,
            PipelineError::Unavailable {
                feature: "objects",
                ..
            }
        ));
        let err = pipeline
            .segment(
                b"irrelevant",
                &decode::ANALYZE_V4,
                SegmentMode::ForegroundMatting,
            )
            .unwrap_err();
        assert!(matches!(
            err,
            PipelineError::Unavailable {
                feature: "foregroundMatting",
                ..
            }
        ));
    }
}
