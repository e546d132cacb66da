//! One analysis: the requested features run over one scene, each filling its field of the result.
//! A feature's wiring and result type live in its own file; this is only the list of calls.

use image::ImageFormat;

use super::adult::AdultRating;
use super::caption::{Caption, DenseCaption};
use super::categories::Category;
use super::color::ColorInfo;
use super::custom::CustomResult;
use super::faces::DetectedFace;
use super::image_type::ImageType;
use super::objects::{DetectedObject, DetectedPerson};
use super::palette::ColorShare;
use super::quality::Quality;
use super::read::{PageText, ReadOptions};
use super::scene::Scene;
use super::smart_crop::CropRegion;
use super::tags::Tag;
use super::{
    adult, caption, categories, color, custom, faces, image_type, objects, palette, quality, read,
    smart_crop, tags, Feature, PipelineError,
};
use crate::geometry::PixelRect;
use crate::models::custom_head::CustomHead;

/// Per-request settings of the features.
#[derive(Debug, Clone, Default)]
pub struct AnalysisOptions {
    /// Width / height of each smart crop wanted; empty lets the pipeline choose one.
    pub smart_crop_ratios: Vec<f32>,
    /// How text is read (orientation, language, line order).
    pub read: ReadOptions,
    /// A head the user trained, to run as well (`model-name`).
    pub custom: Option<std::sync::Arc<CustomHead>>,
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
    pub color: Option<ColorInfo>,
    pub image_type: Option<ImageType>,
    pub adult: Option<AdultRating>,
    pub text: Option<PageText>,
    pub tags: Option<Vec<Tag>>,
    /// Caption candidates, the best first (4.0 `caption` uses the first; 3.2 `description` all).
    pub captions: Option<Vec<Caption>>,
    pub dense_captions: Option<Vec<DenseCaption>>,
    pub categories: Option<Vec<Category>>,
    pub palette: Option<Vec<ColorShare>>,
    pub quality: Option<Quality>,
    pub custom: Option<CustomResult>,
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
            palette: None,
            quality: None,
            custom: None,
        }
    }
}

/// Runs `features` (already checked available) on a scene.
pub fn run(
    scene: &Scene,
    format: ImageFormat,
    features: &[Feature],
    options: &AnalysisOptions,
) -> Result<Analysis, PipelineError> {
    let (width, height) = scene.dimensions();
    let mut analysis = Analysis::new(width, height, format);
    scene.prefetch(features);
    for feature in features {
        match feature {
            Feature::Objects => analysis.objects = Some(objects::objects(scene)?),
            Feature::People => analysis.people = Some(objects::people(scene)?),
            Feature::Read => analysis.text = Some(read::read(scene, &options.read)?),
            Feature::SmartCrops => {
                let ratios = &options.smart_crop_ratios;
                analysis.smart_crops = Some(smart_crop::smart_crops(scene, ratios)?)
            }
            Feature::AreaOfInterest => {
                analysis.area_of_interest = Some(smart_crop::interest(scene)?)
            }
            Feature::Faces => analysis.faces = Some(faces::faces(scene)?),
            Feature::Color => analysis.color = Some(color::color(scene)?),
            Feature::ImageType => analysis.image_type = Some(image_type::image_type(scene)?),
            Feature::Adult => analysis.adult = Some(adult::adult(scene)?),
            Feature::Tags => analysis.tags = Some(tags::tags(scene)?),
            Feature::Categories => analysis.categories = Some(categories::categories(scene)?),
            Feature::Caption => analysis.captions = Some(caption::captions(scene)?),
            Feature::DenseCaptions => {
                analysis.dense_captions = Some(caption::dense_captions(scene)?)
            }
            Feature::Palette => analysis.palette = Some(palette::palette(scene)?),
            Feature::Quality => analysis.quality = Some(quality::measure(scene.image(), None)?),
            // 3.2's description: caption candidates and the tag words.
            Feature::Description => {
                analysis.captions = Some(caption::captions(scene)?);
                analysis.tags = Some(tags::tags(scene)?);
            }
        }
    }
    if let Some(head) = &options.custom {
        analysis.custom = Some(custom::custom(scene, head)?);
    }
    Ok(analysis)
}
