//! The pipeline's front door: decode an image once into a [`Scene`](scene::Scene), run the requested
//! features over it, and return plain, protocol-neutral results (no HTTP types, no tensors). Every
//! surface (Azure 4.0 and 3.2, the Read API, the CLI) comes through here.
//!
//! Each feature owns its wiring and its result type in its own file and asks the scene for the shared
//! intermediates it needs; [`analysis::run`] is the list of calls.

pub mod adult;
pub mod analysis;
pub mod budget;
pub mod caption;
pub mod categories;
pub mod color;
pub mod custom;
pub mod decode;
pub mod evidence;
pub mod faces;
pub mod feature;
pub mod image_type;
pub mod language;
pub mod objects;
pub mod palette;
pub mod pdf;
pub mod quality;
pub mod read;
pub mod scene;
pub mod segment;
pub mod smart_crop;
pub mod tags;
pub mod vectors;
pub mod workers;

use std::io::Cursor;
use std::sync::Arc;

use anyhow::Context;
use fast_image_resize::{FilterType, ResizeAlg};
use image::{DynamicImage, ImageFormat};

pub use self::analysis::{Analysis, AnalysisOptions};
use self::decode::{decode, DecodeError, ImageLimits};
pub use self::faces::{DetectedFace, FaceAttributes, Gender};
pub use self::feature::Feature;
pub use self::objects::{DetectedObject, DetectedPerson};
pub use self::read::ReadPage;
use self::read::Readers;
use self::scene::{required, Scene};
pub use self::segment::SegmentMode;
pub use self::smart_crop::CropRegion;
use crate::models::e5::TextRole;
use crate::models::preprocess::resize;
use crate::models::ModelPack;

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
    /// The document was still being read when its time ran out.
    #[error("reading the document took longer than the {} this server allows", humantime::format_duration(*.0))]
    TimedOut(std::time::Duration),
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
        feature.unavailable(&self.models)
    }

    /// Whether text in `language` can be read here (see [`language::check_reading`]).
    pub fn check_reading(&self, language: &str) -> Result<(), language::Unsupported> {
        language::check_reading(language, self.models.tesseract.as_deref())
    }

    /// An error naming the first of `features` this deployment cannot serve.
    pub fn check_available(&self, features: &[Feature]) -> Result<(), PipelineError> {
        match features
            .iter()
            .find_map(|f| self.unavailable(*f).map(|reason| (f.name(), reason)))
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
        analysis::run(
            &Scene::new(self, &image.rgb),
            image.format,
            features,
            options,
        )
    }

    /// Decodes an image under `limits`, holding its pixels in the decode budget (for callers that
    /// run models on it themselves: training).
    pub fn decode(
        &self,
        bytes: &[u8],
        limits: &ImageLimits,
    ) -> Result<decode::DecodedImage, PipelineError> {
        Ok(decode(bytes, limits, &self.budget)?)
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
        let scene = Scene::new(self, &image.rgb);
        let analysis = analysis::run(&scene, image.format, &words, &AnalysisOptions::default())?;
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

    /// The models that read the lines of a page (the recognizer is checked by `check_available`).
    fn readers(&self) -> Result<Readers<'_>, PipelineError> {
        Ok(Readers {
            recognizer: required(
                self.models.text_recognizer.as_deref(),
                "the text recognizer",
            )?,
            line_classifier: self.models.text_line_classifier.as_deref(),
            scripts: self.models.tesseract.as_deref(),
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
        let detector = required(self.models.text_detector.as_deref(), "the text detector")?;
        let readers = self.readers()?;
        let mut read = Vec::new();
        let started = std::time::Instant::now();
        let in_time = || match options.deadline {
            Some(deadline) if std::time::Instant::now() > deadline => Err(PipelineError::TimedOut(
                deadline.saturating_duration_since(started),
            )),
            _ => Ok(()),
        };
        if bytes.starts_with(b"%PDF") {
            self.pdf_reader()?.for_each_page(
                bytes,
                (selected, max_pages),
                &self.budget,
                |number, page| {
                    in_time()?;
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
                            let text = read::read_page(detector, &readers, &image, options)?;
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
                in_time()?;
                read.push(ReadPage {
                    number,
                    width: page.width() as f32,
                    height: page.height() as f32,
                    in_inches: false,
                    text: read::read_page(detector, &readers, page, options)?,
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
                feature: "segment",
                reason,
            });
        }
        let decoded = decode(bytes, limits, &self.budget)?;
        let scene = Scene::new(self, &decoded.rgb);
        let output = segment::segment(scene.image(), scene.salience()?, mode)?;
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
        let centred = smart_crop::centred_crop(w, h, ratio);
        let window = if smart {
            let crops = smart_crop::smart_crops(&Scene::new(self, &decoded.rgb), &[ratio])?;
            crops.first().map_or(centred, |crop| crop.rect)
        } else {
            centred
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
                feature: "segment",
                ..
            }
        ));
    }
}
