//! PP-OCR text detection (DB, "differentiable binarisation"): the model paints a text-probability map;
//! each connected blob above the threshold becomes a rotated rectangle, grown by the unclip ratio
//! (the model is trained on shrunk text regions), and kept if the map is confident inside it.

use anyhow::Result;
use image::{GrayImage, RgbImage};
use imageproc::contours::{find_contours, BorderType};
use imageproc::geometry::min_area_rect;
use imageproc::point::Point;
use ndarray::{ArrayView2, Ix2};
use ort::value::TensorRef;
use serde::Deserialize;

use super::traits::TextRegionDetector;
use crate::geometry::Quad;
use crate::models::manifest::PackEntry;
use crate::models::preprocess::{resize_bilinear, to_nchw_bgr};
use crate::runtime::{first_in_batch, SessionPool};

#[derive(Debug, Clone, Deserialize)]
pub struct TextDetFacts {
    pub input: String,
    pub output: String,
    /// The longer side is scaled down to this (never up); sides are rounded to multiples of 32.
    pub max_side: u32,
    pub mean: f32,
    pub std: f32,
    pub threshold: f32,
    pub box_threshold: f32,
    pub unclip_ratio: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextRegion {
    pub quad: Quad,
    pub score: f32,
}

pub struct TextDetector {
    sessions: SessionPool,
    facts: TextDetFacts,
}

/// Blobs with a shorter side below this many map pixels are noise.
const MIN_SIDE: f32 = 3.0;

impl TextDetector {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        Ok(TextDetector {
            sessions,
            facts: entry.facts()?,
        })
    }
}

impl TextRegionDetector for TextDetector {
    fn detect(&self, image: &RgbImage) -> Result<Vec<TextRegion>> {
        self.detect_within(image, self.facts.max_side)
    }

    /// Detects on the image scaled to at most `max_side`: a smaller map is enough to tell whether
    /// there is text at all.
    fn detect_within(&self, image: &RgbImage, max_side: u32) -> Result<Vec<TextRegion>> {
        let facts = &self.facts;
        let (width, height) = image.dimensions();
        let (map_w, map_h) = input_size(width, height, max_side.min(facts.max_side));
        let pixels = resize_bilinear(image, map_w, map_h)?;
        let tensor = to_nchw_bgr(&pixels, map_w, map_h, |_, v| {
            (v as f32 / 255.0 - facts.mean) / facts.std
        });
        let inputs = ort::inputs![facts.input.as_str() => TensorRef::from_array_view(&tensor)?];
        let scale = (width as f32 / map_w as f32, height as f32 / map_h as f32);
        self.sessions.run(inputs, |outputs| {
            let map = first_in_batch::<ndarray::Ix3>(
                outputs[facts.output.as_str()].try_extract_array::<f32>()?,
            )?;
            let map = map
                .index_axis_move(ndarray::Axis(0), 0)
                .into_dimensionality::<Ix2>()
                .map_err(|e| ort::Error::new(format!("text map shape: {e}")))?;
            Ok(regions_from_map(map, facts, scale))
        })
    }
}

/// The model's input size: the longer side at most `max_side`, both sides multiples of 32.
fn input_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let ratio = (max_side as f32 / width.max(height) as f32).min(1.0);
    let round = |side: u32| (((side as f32 * ratio) / 32.0).round() as u32).max(1) * 32;
    (round(width), round(height))
}

/// Turns a probability map into text regions in image pixels (`scale` maps map pixels to image pixels).
fn regions_from_map(
    map: ArrayView2<'_, f32>,
    facts: &TextDetFacts,
    scale: (f32, f32),
) -> Vec<TextRegion> {
    let (rows, cols) = map.dim();
    let mut regions = Vec::new();
    for contour in find_contours::<i32>(&dilated_mask(map, facts.threshold)) {
        if contour.border_type != BorderType::Outer || contour.points.len() < 3 {
            continue;
        }
        let points: Vec<Point<f32>> = contour
            .points
            .iter()
            .map(|p| Point::new(p.x as f32, p.y as f32))
            .collect();
        let rect = Rect::around(&points);
        if rect.short_side() < MIN_SIDE {
            continue;
        }
        let score = mean_inside(map, &rect.corners());
        if score < facts.box_threshold {
            continue;
        }
        let grown = rect.unclipped(facts.unclip_ratio);
        if grown.short_side() < MIN_SIDE + 2.0 {
            continue;
        }
        let corners = grown.corners().map(|(x, y)| {
            (
                (x * scale.0).clamp(0.0, cols as f32 * scale.0),
                (y * scale.1).clamp(0.0, rows as f32 * scale.1),
            )
        });
        regions.push(TextRegion {
            quad: Quad(corners),
            score,
        });
    }
    regions
}

/// The map's pixels above `threshold` (255, else 0), dilated by a 2x2 kernel as PP-OCR does, so thin
/// strokes connect: a pixel is on when it or its left, upper or upper-left neighbour is above. Built a
/// row at a time from 0/1 flags, in loops the compiler vectorises: the same mask as testing the four
/// neighbours pixel by pixel, in a quarter of the time (1.7 ms instead of 6.8 for a receipt's 864x2000
/// map; 4.6 ms an image on average in the OCR bench before).
fn dilated_mask(map: ArrayView2<'_, f32>, threshold: f32) -> GrayImage {
    let (rows, cols) = map.dim();
    let mut mask = vec![0u8; rows * cols];
    let (mut above, mut here, mut either) = (vec![0u8; cols], vec![0u8; cols], vec![0u8; cols]);
    for (row, out) in map.outer_iter().zip(mask.chunks_exact_mut(cols.max(1))) {
        for (flag, &value) in here.iter_mut().zip(row.iter()) {
            *flag = u8::from(value > threshold);
        }
        for ((flag, &h), &a) in either.iter_mut().zip(&here).zip(&above) {
            *flag = h | a;
        }
        if let (Some(first), Some(&flag)) = (out.first_mut(), either.first()) {
            *first = flag * 255;
        }
        for (pixel, pair) in out.iter_mut().skip(1).zip(either.windows(2)) {
            *pixel = (pair[0] | pair[1]) * 255;
        }
        std::mem::swap(&mut above, &mut here);
    }
    GrayImage::from_raw(cols as u32, rows as u32, mask).unwrap_or_default()
}

/// A rotated rectangle: centre, unit axes along its top edge (`u`) and left edge (`v`), and half sides.
#[derive(Debug, Clone, Copy)]
struct Rect {
    centre: (f32, f32),
    u: (f32, f32),
    v: (f32, f32),
    half: (f32, f32),
}

impl Rect {
    /// The minimum-area rectangle around `points`. imageproc finds its orientation but rounds the
    /// corners to whole pixels, which on a line a few pixels tall skews the short edges by degrees
    /// (and grew boxes by a fifth); so the angle is taken from the longer edge and the extents are
    /// measured by projecting every point on the two perpendicular axes.
    fn around(points: &[Point<f32>]) -> Rect {
        let [tl, tr, _, bl] = min_area_rect(points).map(|p| (p.x, p.y));
        let (top, left) = ((tr.0 - tl.0, tr.1 - tl.1), (bl.0 - tl.0, bl.1 - tl.1));
        let length = |d: (f32, f32)| d.0.hypot(d.1);
        let u = if length(top) >= length(left) && length(top) > 0.0 {
            (top.0 / length(top), top.1 / length(top))
        } else if length(left) > 0.0 {
            // The top edge's direction is the left edge's turned a quarter counter-clockwise.
            (left.1 / length(left), -left.0 / length(left))
        } else {
            (1.0, 0.0)
        };
        let v = (-u.1, u.0);
        let (mut s0, mut s1, mut t0, mut t1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in points {
            let (s, t) = (p.x * u.0 + p.y * u.1, p.x * v.0 + p.y * v.1);
            (s0, s1, t0, t1) = (s0.min(s), s1.max(s), t0.min(t), t1.max(t));
        }
        let (s, t) = ((s0 + s1) / 2.0, (t0 + t1) / 2.0);
        Rect {
            centre: (s * u.0 + t * v.0, s * u.1 + t * v.1),
            u,
            v,
            half: ((s1 - s0) / 2.0, (t1 - t0) / 2.0),
        }
    }

    fn short_side(&self) -> f32 {
        2.0 * self.half.0.min(self.half.1)
    }

    /// Grown on every side by area × ratio / perimeter, the offset pyclipper applies in PP-OCR.
    fn unclipped(&self, ratio: f32) -> Rect {
        let (w, h) = (2.0 * self.half.0, 2.0 * self.half.1);
        let distance = w * h * ratio / (2.0 * (w + h));
        Rect {
            half: (self.half.0 + distance, self.half.1 + distance),
            ..*self
        }
    }

    /// Top-left, top-right, bottom-right, bottom-left.
    fn corners(&self) -> [(f32, f32); 4] {
        let at = |su: f32, sv: f32| {
            (
                self.centre.0 + su * self.half.0 * self.u.0 + sv * self.half.1 * self.v.0,
                self.centre.1 + su * self.half.0 * self.u.1 + sv * self.half.1 * self.v.1,
            )
        };
        [at(-1.0, -1.0), at(1.0, -1.0), at(1.0, 1.0), at(-1.0, 1.0)]
    }
}

/// The mean of the map over the pixels inside a convex quadrilateral.
fn mean_inside(map: ArrayView2<'_, f32>, quad: &[(f32, f32); 4]) -> f32 {
    let (rows, cols) = map.dim();
    let clamp = |v: f32, limit: usize| (v.max(0.0) as usize).min(limit - 1);
    let x0 = clamp(
        quad.iter().map(|p| p.0).fold(f32::MAX, f32::min).floor(),
        cols,
    );
    let x1 = clamp(
        quad.iter().map(|p| p.0).fold(f32::MIN, f32::max).ceil(),
        cols,
    );
    let y0 = clamp(
        quad.iter().map(|p| p.1).fold(f32::MAX, f32::min).floor(),
        rows,
    );
    let y1 = clamp(
        quad.iter().map(|p| p.1).fold(f32::MIN, f32::max).ceil(),
        rows,
    );
    let (mut sum, mut count) = (0.0, 0usize);
    for y in y0..=y1 {
        for x in x0..=x1 {
            if inside_convex(quad, (x as f32, y as f32)) {
                sum += map[[y, x]];
                count += 1;
            }
        }
    }
    if count == 0 {
        0.0
    } else {
        sum / count as f32
    }
}

/// Whether `p` lies inside (or on) a convex polygon given in either winding order.
fn inside_convex(polygon: &[(f32, f32); 4], p: (f32, f32)) -> bool {
    let side = |a: (f32, f32), b: (f32, f32)| (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
    let signs: [f32; 4] = std::array::from_fn(|i| side(polygon[i], polygon[(i + 1) % 4]));
    signs.iter().all(|&s| s >= -1e-3) || signs.iter().all(|&s| s <= 1e-3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn facts() -> TextDetFacts {
        TextDetFacts {
            input: "x".into(),
            output: "y".into(),
            max_side: 960,
            mean: 0.5,
            std: 0.5,
            threshold: 0.3,
            box_threshold: 0.5,
            unclip_ratio: 1.6,
        }
    }

    #[test]
    fn input_sides_are_multiples_of_32_and_never_upscaled_past_the_limit() {
        assert_eq!(input_size(640, 240, 960), (640, 256));
        assert_eq!(input_size(1920, 1080, 960), (960, 544));
        assert_eq!(input_size(50, 10, 960), (64, 32));
    }

    #[test]
    fn a_blob_becomes_a_grown_rectangle_in_image_pixels() {
        // A 40x10 block of text probability 0.9 at (20, 30) in a 100x60 map.
        let mut map = Array2::<f32>::zeros((60, 100));
        map.slice_mut(ndarray::s![30..40, 20..60]).fill(0.9);
        let regions = regions_from_map(map.view(), &facts(), (2.0, 2.0));
        assert_eq!(regions.len(), 1);
        let TextRegion {
            quad: Quad([tl, tr, br, bl]),
            score,
        } = regions[0];
        // The dilated blob is 41x11, so its mean is 0.9 × 400/451 ≈ 0.80.
        assert!((score - 0.8).abs() < 0.02, "score {score}");
        // The rectangle is the block (dilated by one pixel), grown by w·h·1.6 / (2(w+h)) ≈ 6.4 px, times 2.
        assert!(
            (tl.0 - 2.0 * (20.0 - 1.0 - 6.4)).abs() < 3.0
                && (tl.1 - 2.0 * (30.0 - 1.0 - 6.4)).abs() < 3.0,
            "{tl:?}"
        );
        assert!(
            (br.0 - 2.0 * (59.0 + 6.4)).abs() < 3.0 && (br.1 - 2.0 * (39.0 + 6.4)).abs() < 3.0,
            "{br:?}"
        );
        assert!(
            tr.0 > tl.0 && (tr.1 - tl.1).abs() < 1.0 && bl.1 > tl.1 && (bl.0 - tl.0).abs() < 1.0
        );
    }

    #[test]
    fn faint_and_tiny_blobs_are_dropped() {
        let mut map = Array2::<f32>::zeros((60, 100));
        map.slice_mut(ndarray::s![5..15, 5..50]).fill(0.35); // above the pixel threshold, below the box threshold
        map.slice_mut(ndarray::s![40..41, 60..90]).fill(0.9); // one pixel tall
        assert!(regions_from_map(map.view(), &facts(), (1.0, 1.0)).is_empty());
    }

    #[test]
    fn a_thin_slightly_tilted_line_keeps_its_height() {
        // 121 x 7 px, tilted 1.6 degrees: PP-OCR's own post-processing makes it 20 px tall.
        let map = Array2::from_shape_fn((64, 200), |(y, x)| {
            let top = 20.0 + 0.028 * x as f32;
            if (30..151).contains(&x) && (top..top + 7.0).contains(&(y as f32)) {
                0.9
            } else {
                0.0
            }
        });
        let regions = regions_from_map(map.view(), &facts(), (1.0, 1.0));
        let [tl, _, _, bl] = regions[0].quad.0;
        let height = (bl.0 - tl.0).hypot(bl.1 - tl.1);
        assert!((19.0..22.0).contains(&height), "height {height}");
    }

    #[test]
    fn a_rotated_blob_keeps_its_angle() {
        // A diagonal band: its rectangle's top edge must slope like the band (about 20 degrees).
        let map = Array2::from_shape_fn((120, 200), |(y, x)| {
            let along = x as f32 * 20f32.to_radians().cos() + y as f32 * 20f32.to_radians().sin();
            let across =
                -(x as f32) * 20f32.to_radians().sin() + y as f32 * 20f32.to_radians().cos();
            if (40.0..160.0).contains(&along) && (10.0..24.0).contains(&across) {
                0.95
            } else {
                0.0
            }
        });
        let regions = regions_from_map(map.view(), &facts(), (1.0, 1.0));
        assert_eq!(regions.len(), 1);
        let Quad([tl, tr, ..]) = regions[0].quad;
        let angle = (tr.1 - tl.1).atan2(tr.0 - tl.0).to_degrees();
        assert!((angle - 20.0).abs() < 3.0, "angle {angle}");
    }

    #[test]
    fn the_mask_holds_each_pixel_above_the_threshold_and_its_right_and_lower_neighbours() {
        let map = Array2::from_shape_fn((5, 6), |(y, x)| match (y, x) {
            (0, 0) | (2, 3) | (4, 5) => 0.9,
            (1, 1) => 0.3, // at the threshold: off
            _ => 0.1,
        });
        let mask = dilated_mask(map.view(), 0.3);
        let on: Vec<(u32, u32)> = mask
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0[0] == 255)
            .map(|(x, y, _)| (x, y))
            .collect();
        let expected = [
            (0, 0),
            (1, 0),
            (0, 1),
            (1, 1),
            (3, 2),
            (4, 2),
            (3, 3),
            (4, 3),
            (5, 4),
        ];
        assert_eq!(on.len(), expected.len());
        assert!(expected.iter().all(|p| on.contains(p)), "{on:?}");
        assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    }
}
