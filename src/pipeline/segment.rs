//! Segmentation: the foreground separated by the salience map, as a cut-out or as its matte.

use image::{DynamicImage, GrayImage, RgbImage, RgbaImage};

use crate::models::preprocess::resize_bilinear;
use crate::models::u2net::SalienceMap;

/// Background removal returns at most this many pixels (Azure's cap), same aspect ratio.
pub const MAX_CUTOUT_PIXELS: u64 = 16_000_000;

/// What segmentation produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentMode {
    /// The image with a transparent background, RGBA.
    BackgroundRemoval,
    /// The foreground's alpha matte alone, one channel, the input's size.
    ForegroundMatting,
}

/// The image segmented by its salience.
pub fn segment(
    image: &RgbImage,
    salience: &SalienceMap,
    mode: SegmentMode,
) -> anyhow::Result<DynamicImage> {
    Ok(match mode {
        SegmentMode::ForegroundMatting => {
            DynamicImage::ImageLuma8(salience.to_mask(image.width(), image.height())?)
        }
        SegmentMode::BackgroundRemoval => DynamicImage::ImageRgba8(cutout(image, salience)?),
    })
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
