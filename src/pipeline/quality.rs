//! Pixel measurements of an image or a region of it: brightness, contrast and sharpness, each in
//! [0, 1]. Measurements, not a model: they say how the pixels are, not how a person would judge them.

use image::RgbImage;

use super::PipelineError;
use crate::geometry::PixelRect;
use crate::models::preprocess::resize_bilinear;

/// Regions larger than this are scaled down to it first (a photo's sharpness is judged at a size
/// where sensor noise does not count as detail); smaller ones, faces mostly, are measured as they
/// are, since enlarging would blur them.
const MEASURE_SIDE: u32 = 256;
/// The variance of the Laplacian at which sharpness reads 0.5: the usual blur threshold of the
/// variance-of-Laplacian focus measure (Pech-Pacheco et al., 2000) on 8-bit luma.
const HALF_SHARP_VARIANCE: f32 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Mean luma.
    pub brightness: f32,
    /// Standard deviation of luma, relative to its largest possible value (127.5).
    pub contrast: f32,
    /// The variance of the Laplacian of luma, squashed so that [`HALF_SHARP_VARIANCE`] reads 0.5.
    pub sharpness: f32,
}

/// Measures `rect` of `image` (the whole image when `None`).
pub fn measure(image: &RgbImage, rect: Option<PixelRect>) -> Result<Quality, PipelineError> {
    let rect = rect.unwrap_or(PixelRect {
        x: 0,
        y: 0,
        w: image.width(),
        h: image.height(),
    });
    let region = image::imageops::crop_imm(image, rect.x, rect.y, rect.w.max(1), rect.h.max(1));
    let region = region.to_image();
    let scale = (MEASURE_SIDE as f32 / region.width().max(region.height()) as f32).min(1.0);
    let (w, h) = (
        ((region.width() as f32 * scale).round() as u32).max(3),
        ((region.height() as f32 * scale).round() as u32).max(3),
    );
    let pixels = resize_bilinear(&region, w, h)?;
    let luma: Vec<f32> = pixels
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    Ok(from_luma(&luma, w as usize, h as usize))
}

fn from_luma(luma: &[f32], w: usize, h: usize) -> Quality {
    let (mean, variance) = mean_and_variance(luma.iter().copied());
    let laplacian = (1..h - 1).flat_map(|y| {
        (1..w - 1).map(move |x| {
            let at = |x: usize, y: usize| luma[y * w + x];
            at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * at(x, y)
        })
    });
    let (_, focus) = mean_and_variance(laplacian);
    Quality {
        brightness: mean / 255.0,
        contrast: (variance.sqrt() / 127.5).min(1.0),
        sharpness: focus / (focus + HALF_SHARP_VARIANCE),
    }
}

fn mean_and_variance(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let (mut n, mut sum, mut squares) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        n += 1.0;
        sum += v as f64;
        squares += (v as f64) * (v as f64);
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = sum / n;
    (mean as f32, (squares / n - mean * mean).max(0.0) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_grey_is_mid_bright_without_contrast_or_sharpness() {
        let grey = RgbImage::from_pixel(40, 30, image::Rgb([128, 128, 128]));
        let q = measure(&grey, None).unwrap();
        assert!((q.brightness - 128.0 / 255.0).abs() < 0.01, "{q:?}");
        assert!(q.contrast < 0.01 && q.sharpness < 0.01, "{q:?}");
    }

    #[test]
    fn a_checkerboard_is_sharp_and_contrasty_and_blurring_it_lowers_sharpness() {
        let board = RgbImage::from_fn(256, 256, |x, y| {
            let v = if (x / 4 + y / 4) % 2 == 0 { 0 } else { 255 };
            image::Rgb([v, v, v])
        });
        let sharp = measure(&board, None).unwrap();
        assert!(sharp.contrast > 0.9 && sharp.sharpness > 0.9, "{sharp:?}");
        let blurred = image::imageops::blur(&board, 4.0);
        let soft = measure(&blurred, None).unwrap();
        assert!(soft.sharpness < sharp.sharpness / 2.0, "{soft:?}");
        // A region is measured alone: the top-left quarter of a half-black image is black.
        let mut half = RgbImage::from_pixel(100, 100, image::Rgb([255, 255, 255]));
        for x in 0..50 {
            for y in 0..100 {
                half.put_pixel(x, y, image::Rgb([0, 0, 0]));
            }
        }
        let rect = PixelRect {
            x: 0,
            y: 0,
            w: 50,
            h: 50,
        };
        assert!(measure(&half, Some(rect)).unwrap().brightness < 0.01);
    }
}
