//! Image pre-processing: resizing RGB images (for model inputs, thumbnails, cutouts and statistics
//! grids alike) and laying pixels out as an NCHW tensor.

use anyhow::{anyhow, Context, Result};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use ndarray::Array4;

/// `image` resized (stretched) to `width` x `height` with `algorithm`.
pub fn resize(image: &RgbImage, width: u32, height: u32, algorithm: ResizeAlg) -> Result<RgbImage> {
    if image.dimensions() == (width, height) {
        return Ok(image.clone());
    }
    let source = ImageRef::new(
        image.width(),
        image.height(),
        image.as_raw(),
        PixelType::U8x3,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let mut target = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(algorithm);
    Resizer::new()
        .resize(&source, &mut target, &options)
        .map_err(|e| anyhow!("{e}"))?;
    RgbImage::from_raw(width, height, target.into_vec()).context("resized buffer size")
}

/// `image` stretched to `width` x `height` with a bilinear filter: how the models' inputs are scaled.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> Result<RgbImage> {
    resize(
        image,
        width,
        height,
        ResizeAlg::Convolution(FilterType::Bilinear),
    )
}

/// Packed RGB bytes of a `width` x `height` image as a [1, 3, height, width] tensor, each value mapped
/// by `value(channel, byte)`.
pub fn to_nchw(
    pixels: &[u8],
    width: u32,
    height: u32,
    value: impl Fn(usize, u8) -> f32,
) -> Array4<f32> {
    planes(pixels, width, height, [0, 1, 2], value)
}

/// The image stretched (bilinear) to a `side` x `side` square, as a [1, 3, side, side] RGB tensor
/// with each value mapped by `value(channel, byte)`: how whole-image classifiers see a picture.
pub fn stretched_nchw(
    image: &RgbImage,
    side: u32,
    value: impl Fn(usize, u8) -> f32,
) -> Result<Array4<f32>> {
    let pixels = resize_bilinear(image, side, side)?;
    Ok(to_nchw(&pixels, side, side, value))
}

/// The same with the planes in blue, green, red order: PP-OCR's models were trained on OpenCV's BGR
/// images.
pub fn to_nchw_bgr(
    pixels: &[u8],
    width: u32,
    height: u32,
    value: impl Fn(usize, u8) -> f32,
) -> Array4<f32> {
    planes(pixels, width, height, [2, 1, 0], value)
}

/// Plane `p` of the tensor holds source channel `order[p]`.
fn planes(
    pixels: &[u8],
    width: u32,
    height: u32,
    order: [usize; 3],
    value: impl Fn(usize, u8) -> f32,
) -> Array4<f32> {
    let plane = (width * height) as usize;
    let mut tensor = Array4::<f32>::zeros((1, 3, height as usize, width as usize));
    let data = tensor.as_slice_mut().expect("a new array is contiguous");
    for (index, pixel) in pixels.chunks_exact(3).enumerate() {
        for (p, &channel) in order.iter().enumerate() {
            data[p * plane + index] = value(p, pixel[channel]);
        }
    }
    tensor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_land_in_their_channel_planes() {
        let pixels = [1, 2, 3, 4, 5, 6];
        let t = to_nchw(&pixels, 2, 1, |channel, v| v as f32 * 10.0 + channel as f32);
        assert_eq!(t.shape(), &[1, 3, 1, 2]);
        assert_eq!(
            (t[[0, 0, 0, 0]], t[[0, 1, 0, 0]], t[[0, 2, 0, 1]]),
            (10.0, 21.0, 62.0)
        );
        let bgr = to_nchw_bgr(&pixels, 2, 1, |_, v| v as f32);
        assert_eq!((bgr[[0, 0, 0, 0]], bgr[[0, 2, 0, 1]]), (3.0, 4.0));
    }

    #[test]
    fn resizing_to_the_same_size_is_a_copy() {
        let image = RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let bilinear = ResizeAlg::Convolution(fast_image_resize::FilterType::Bilinear);
        assert_eq!(resize(&image, 4, 3, bilinear).unwrap(), image);
        assert_eq!(resize(&image, 2, 2, bilinear).unwrap().dimensions(), (2, 2));
        // Nearest keeps exact source colours (the statistics grids rely on it).
        let nearest = resize(&image, 2, 3, ResizeAlg::Nearest).unwrap();
        assert!(nearest.pixels().all(|p| image.pixels().any(|q| q == p)));
    }
}
