//! U²-Net-p: a salient-object map at 320x320, stretched over the whole image. It drives background
//! removal (the map is the alpha matte) and smart cropping (the map says what matters). Pre- and
//! post-processing follow rembg's, so masks match what that tool produces with the same weights.

use anyhow::{anyhow, Result};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage};
use ndarray::Array4;
use ort::value::TensorRef;
use serde::Deserialize;

use super::traits::SalienceModel;
use crate::models::manifest::PackEntry;
use crate::models::preprocess::{resize, to_nchw};
use crate::runtime::SessionPool;

#[derive(Debug, Clone, Deserialize)]
pub struct U2NetFacts {
    pub input: String,
    pub input_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub output_index: usize,
}

pub struct U2Net {
    sessions: SessionPool,
    facts: U2NetFacts,
}

/// Per-pixel salience in 0..=1 on a square grid that covers the whole image (stretched).
#[derive(Debug, Clone, PartialEq)]
pub struct SalienceMap {
    pub side: u32,
    pub values: Vec<f32>,
}

impl U2Net {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        Ok(U2Net {
            sessions,
            facts: entry.facts()?,
        })
    }
}

impl SalienceModel for U2Net {
    fn salience(&self, image: &RgbImage) -> Result<SalienceMap> {
        let facts = &self.facts;
        let side = facts.input_size;
        let small = resize(
            image,
            side,
            side,
            ResizeAlg::Convolution(FilterType::Lanczos3),
        )?;
        let tensor = normalize(&small, side, facts);
        let inputs = ort::inputs![facts.input.as_str() => TensorRef::from_array_view(&tensor)?];
        let raw = self.sessions.run(inputs, |outputs| {
            let map = outputs[facts.output_index].try_extract_array::<f32>()?;
            Ok(map.iter().copied().collect::<Vec<f32>>())
        })?;
        if raw.len() != (side * side) as usize {
            return Err(anyhow!(
                "u2netp returned {} values, expected {}",
                raw.len(),
                side * side
            ));
        }
        Ok(SalienceMap {
            side,
            values: min_max_normalized(raw),
        })
    }
}

/// rembg's input: RGB divided by the image's maximum value, then ImageNet mean/std, as NCHW.
fn normalize(pixels: &[u8], side: u32, facts: &U2NetFacts) -> Array4<f32> {
    let peak = pixels.iter().copied().max().unwrap_or(0).max(1) as f32;
    to_nchw(pixels, side, side, |channel, v| {
        (v as f32 / peak - facts.mean[channel]) / facts.std[channel]
    })
}

/// Stretches the values to 0..=1; a flat map becomes all zeros (nothing stands out).
fn min_max_normalized(mut values: Vec<f32>) -> Vec<f32> {
    let (low, high) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let range = high - low;
    for v in &mut values {
        *v = if range > f32::EPSILON {
            (*v - low) / range
        } else {
            0.0
        };
    }
    values
}

impl SalienceMap {
    /// The map as an 8-bit matte of `width` x `height` pixels.
    pub fn to_mask(&self, width: u32, height: u32) -> Result<GrayImage> {
        let bytes: Vec<u8> = self
            .values
            .iter()
            .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect();
        let source = ImageRef::new(self.side, self.side, &bytes, PixelType::U8)
            .map_err(|e| anyhow!("{e}"))?;
        let mut mask = Image::new(width, height, PixelType::U8);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        Resizer::new()
            .resize(&source, &mut mask, &options)
            .map_err(|e| anyhow!("{e}"))?;
        GrayImage::from_raw(width, height, mask.into_vec())
            .ok_or_else(|| anyhow!("mask buffer size"))
    }

    /// Salience at grid cell (`x`, `y`).
    pub fn at(&self, x: u32, y: u32) -> f32 {
        self.values[(y * self.side + x) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_divides_by_the_peak_then_applies_mean_and_std() {
        let facts = U2NetFacts {
            input: "x".into(),
            input_size: 2,
            mean: [0.5, 0.5, 0.5],
            std: [0.25, 0.5, 1.0],
            output_index: 0,
        };
        let pixels = [100, 100, 100, 200, 0, 50, 0, 0, 0, 0, 0, 0];
        let t = normalize(&pixels, 2, &facts);
        assert_eq!(t[[0, 0, 0, 0]], (0.5 - 0.5) / 0.25);
        assert_eq!(t[[0, 0, 0, 1]], (1.0 - 0.5) / 0.25);
        assert_eq!(t[[0, 1, 0, 1]], (0.0 - 0.5) / 0.5);
        assert_eq!(t[[0, 2, 0, 1]], (0.25 - 0.5) / 1.0);
    }

    #[test]
    fn maps_are_stretched_to_the_unit_range_and_flat_maps_are_empty() {
        assert_eq!(min_max_normalized(vec![2.0, 4.0, 3.0]), vec![0.0, 1.0, 0.5]);
        assert_eq!(min_max_normalized(vec![0.7; 4]), vec![0.0; 4]);
    }

    #[test]
    fn masks_resize_to_the_requested_size() {
        let map = SalienceMap {
            side: 2,
            values: vec![1.0, 0.0, 0.0, 1.0],
        };
        let mask = map.to_mask(64, 32).unwrap();
        assert_eq!(mask.dimensions(), (64, 32));
        assert!(mask.get_pixel(2, 2)[0] > 200 && mask.get_pixel(61, 2)[0] < 50);
    }
}
