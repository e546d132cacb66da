//! The palette: the image's dominant colours as exact RGB values with the share of the image each
//! covers (k-means on the statistics grid), for the APIs that report colours as numbers rather than
//! names. Each colour is also named with the twelve names of [`super::color`].

use image::RgbImage;

use super::color::{self, ColorName};
use super::scene::Scene;
use super::PipelineError;

/// Colours looked for: ten is what photo palettes usually report, and clusters below about 1 % of
/// the image are dropped anyway.
const CLUSTERS: usize = 10;
/// Lloyd iterations; on the 128x128 grid the assignment stops changing after about 8.
const ITERATIONS: usize = 12;
/// Clusters covering less than this share of the image are noise, not a dominant colour.
const MIN_SHARE: f32 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorShare {
    pub rgb: [u8; 3],
    pub name: ColorName,
    /// The share of the image's pixels nearest this colour, in [0, 1].
    pub fraction: f32,
}

/// The scene's dominant colours, the largest share first.
pub fn palette(scene: &Scene) -> Result<Vec<ColorShare>, PipelineError> {
    Ok(dominant_colors(scene.statistics_grid()?))
}

/// k-means in RGB, seeded by farthest points from the mean colour (deterministic: the same image
/// always gives the same palette).
pub fn dominant_colors(grid: &RgbImage) -> Vec<ColorShare> {
    let pixels: Vec<[f32; 3]> = grid
        .pixels()
        .map(|p| [p[0] as f32, p[1] as f32, p[2] as f32])
        .collect();
    if pixels.is_empty() {
        return Vec::new();
    }
    let distance = |a: &[f32; 3], b: &[f32; 3]| (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f32>();
    let nearest = |p: &[f32; 3], centres: &[[f32; 3]]| {
        (0..centres.len())
            .min_by(|&a, &b| distance(p, &centres[a]).total_cmp(&distance(p, &centres[b])))
            .unwrap_or(0)
    };
    let mean = mean_of(pixels.iter());
    let mut centres = vec![mean];
    while centres.len() < CLUSTERS {
        let farthest = pixels.iter().max_by(|a, b| {
            let d = |p: &[f32; 3]| distance(p, &centres[nearest(p, &centres)]);
            d(a).total_cmp(&d(b))
        });
        match farthest {
            Some(p) if distance(p, &centres[nearest(p, &centres)]) > 0.0 => centres.push(*p),
            _ => break, // fewer distinct colours than clusters
        }
    }
    let mut assignment = vec![0usize; pixels.len()];
    for _ in 0..ITERATIONS {
        for (slot, p) in assignment.iter_mut().zip(&pixels) {
            *slot = nearest(p, &centres);
        }
        for (k, centre) in centres.iter_mut().enumerate() {
            let members = pixels
                .iter()
                .zip(&assignment)
                .filter(|(_, &a)| a == k)
                .map(|(p, _)| p);
            if let Some(m) = mean_of_nonempty(members) {
                *centre = m;
            }
        }
    }
    let total = pixels.len() as f32;
    let mut shares: Vec<ColorShare> = centres
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let rgb = c.map(|v| v.round().clamp(0.0, 255.0) as u8);
            ColorShare {
                rgb,
                name: color::name(rgb),
                fraction: assignment.iter().filter(|&&a| a == k).count() as f32 / total,
            }
        })
        .filter(|s| s.fraction >= MIN_SHARE)
        .collect();
    shares.sort_by(|a, b| b.fraction.total_cmp(&a.fraction));
    shares
}

fn mean_of<'a>(pixels: impl Iterator<Item = &'a [f32; 3]>) -> [f32; 3] {
    mean_of_nonempty(pixels).unwrap_or([0.0; 3])
}

fn mean_of_nonempty<'a>(pixels: impl Iterator<Item = &'a [f32; 3]>) -> Option<[f32; 3]> {
    let (mut n, mut sum) = (0usize, [0f64; 3]);
    for p in pixels {
        n += 1;
        (0..3).for_each(|i| sum[i] += p[i] as f64);
    }
    (n > 0).then(|| sum.map(|s| (s / n as f64) as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_colour_image_gives_both_colours_with_their_shares() {
        let grid = RgbImage::from_fn(100, 100, |x, _| {
            if x < 75 {
                image::Rgb([200, 30, 30])
            } else {
                image::Rgb([20, 40, 220])
            }
        });
        let palette = dominant_colors(&grid);
        assert_eq!(palette.len(), 2, "{palette:?}");
        assert_eq!(palette[0].rgb, [200, 30, 30]);
        assert!((palette[0].fraction - 0.75).abs() < 1e-6);
        assert_eq!(palette[0].name, ColorName::Red);
        assert_eq!(palette[1].rgb, [20, 40, 220]);
        assert_eq!(palette[1].name, ColorName::Blue);
    }
}
