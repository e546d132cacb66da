//! 3.2 `ImageType`: is the image clip art (0 none, 1 ambiguous, 2 normal, 3 good) or a line drawing
//! (0/1)? Decided from measurable signals on a small copy: how few colours cover the image, how much
//! of it is flat, and, for line drawings, a light ground crossed by few dark strokes and little else.

use std::collections::HashMap;

use image::RgbImage;

use super::scene::Scene;
use super::PipelineError;

pub const GRID: u32 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageType {
    pub clip_art: u8,
    pub line_drawing: u8,
}

/// The signals, exposed for tests and tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signals {
    /// Share of pixels covered by the 8 commonest colours (5 bits per channel: coarser bins let a
    /// grayscale photo's few grey levels pass for clip art).
    pub top_colors_share: f32,
    /// Share of horizontally adjacent pixel pairs that are identical up to compression noise (<= 2).
    pub flat_share: f32,
    /// Shares of light (luma > 200), dark (< 90) and colourful (saturation > 0.25) pixels.
    pub light_share: f32,
    pub dark_share: f32,
    pub colorful_share: f32,
}

fn luma([r, g, b]: [u8; 3]) -> f32 {
    0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32
}

pub fn signals(grid: &RgbImage) -> Signals {
    let total = (grid.width() * grid.height()) as f32;
    let mut bins: HashMap<[u8; 3], u32> = HashMap::new();
    for p in grid.pixels() {
        *bins.entry(p.0.map(|c| c >> 3)).or_default() += 1;
    }
    let mut counts: Vec<u32> = bins.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top_colors_share = counts.iter().take(8).sum::<u32>() as f32 / total;
    let mut flat = 0u32;
    for row in grid.rows() {
        let row: Vec<[u8; 3]> = row.map(|p| p.0).collect();
        flat += row
            .windows(2)
            .filter(|w| (0..3).all(|i| w[0][i].abs_diff(w[1][i]) <= 2))
            .count() as u32;
    }
    let flat_share = flat as f32 / ((grid.width() - 1) * grid.height()) as f32;
    let share =
        |keep: &dyn Fn([u8; 3]) -> bool| grid.pixels().filter(|p| keep(p.0)).count() as f32 / total;
    Signals {
        top_colors_share,
        flat_share,
        light_share: share(&|c| luma(c) > 200.0),
        dark_share: share(&|c| luma(c) < 90.0),
        colorful_share: share(&|c| super::color::hsv(c).1 > 0.25),
    }
}

/// Clip art and line drawing, from the scene's statistics grid.
pub fn image_type(scene: &Scene) -> Result<ImageType, PipelineError> {
    Ok(classify(&signals(scene.statistics_grid()?)))
}

pub fn classify(s: &Signals) -> ImageType {
    let clip_art = match (s.top_colors_share, s.flat_share) {
        (c, f) if c >= 0.9 && f >= 0.8 => 3,
        (c, f) if c >= 0.8 && f >= 0.7 => 2,
        (c, f) if c >= 0.7 && f >= 0.6 => 1,
        _ => 0,
    };
    let line_drawing = (s.light_share >= 0.7
        && (0.005..0.3).contains(&s.dark_share)
        && s.light_share + s.dark_share >= 0.9
        && s.colorful_share < 0.1) as u8;
    ImageType {
        clip_art,
        line_drawing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn clip_art() -> RgbImage {
        RgbImage::from_fn(GRID, GRID, |x, y| match (x / 32, y / 32) {
            (0, _) => Rgb([250, 200, 0]),
            (1, 1) | (2, 2) => Rgb([0, 120, 220]),
            _ if (x as i32 - 80).pow(2) + (y as i32 - 80).pow(2) < 400 => Rgb([220, 30, 30]),
            _ => Rgb([255, 255, 255]),
        })
    }

    fn line_drawing() -> RgbImage {
        RgbImage::from_fn(GRID, GRID, |x, y| {
            let on_line = x % 32 == 0 || y % 40 == 0 || (x as i32 - y as i32).abs() < 2;
            if on_line {
                Rgb([20, 20, 20])
            } else {
                Rgb([250, 250, 250])
            }
        })
    }

    /// A photo-like image: smooth shading plus pixel noise.
    fn photo_like() -> RgbImage {
        let mut state = 12345u32;
        RgbImage::from_fn(GRID, GRID, |x, y| {
            state = state.wrapping_mul(1103515245).wrapping_add(12345);
            let noise = (state >> 16) % 40;
            Rgb([
                (x + noise) as u8,
                (y + noise) as u8,
                ((x + y) / 2 + noise) as u8,
            ])
        })
    }

    #[test]
    fn flat_few_colour_images_are_clip_art() {
        let t = classify(&signals(&clip_art()));
        assert!(t.clip_art >= 2, "{t:?} {:?}", signals(&clip_art()));
        assert_eq!(t.line_drawing, 0);
    }

    #[test]
    fn dark_strokes_on_a_light_ground_are_a_line_drawing() {
        assert_eq!(
            classify(&signals(&line_drawing())).line_drawing,
            1,
            "{:?}",
            signals(&line_drawing())
        );
    }

    #[test]
    fn noisy_shaded_images_are_neither() {
        assert_eq!(
            classify(&signals(&photo_like())),
            ImageType {
                clip_art: 0,
                line_drawing: 0
            }
        );
    }
}
