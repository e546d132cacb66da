//! Smart cropping: the largest window of a requested aspect ratio, slid along the image's free axis to
//! where the importance (salience, plus detected faces, people and objects) is greatest.

use super::scene::Scene;
use super::PipelineError;
use crate::geometry::{BoundingBox, PixelRect};
use crate::models::u2net::SalienceMap;

/// One smart crop: the window chosen for a ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct CropRegion {
    /// The ratio as requested, echoed exactly.
    pub ratio: f32,
    pub rect: PixelRect,
    /// The share of the image's importance (salience and weighted boxes) inside the window, in [0, 1].
    pub importance: f32,
}

/// The best window of each of `ratios` (width / height); empty `ratios` let the area of interest's
/// shape choose one.
pub fn smart_crops(scene: &Scene, ratios: &[f32]) -> Result<Vec<CropRegion>, PipelineError> {
    let (width, height) = scene.dimensions();
    let boxes = weighted_boxes(scene)?;
    let importance = Importance::new(scene.salience()?, width, height, &boxes);
    let ratios = if ratios.is_empty() {
        vec![default_ratio(interest_of(scene, &boxes)?)]
    } else {
        ratios.to_vec()
    };
    Ok(ratios
        .into_iter()
        .map(|ratio| {
            let rect = best_crop(&importance, width, height, ratio);
            CropRegion {
                ratio,
                rect,
                importance: importance.share(rect, width, height),
            }
        })
        .collect())
}

/// The rectangle around what matters (3.2 `areaOfInterest`).
pub fn interest(scene: &Scene) -> Result<PixelRect, PipelineError> {
    interest_of(scene, &weighted_boxes(scene)?)
}

/// The area of interest holds the salient subject, people and faces; other objects only weigh on
/// crops.
fn interest_of(scene: &Scene, boxes: &[Weighted]) -> Result<PixelRect, PipelineError> {
    let (width, height) = scene.dimensions();
    let min_person = scene.settings().min_person_confidence;
    let subjects: Vec<BoundingBox> = boxes
        .iter()
        .filter(|b| match b.subject {
            Subject::Face => true,
            Subject::Person => b.confidence >= min_person,
            Subject::Object => false,
        })
        .map(|b| b.bbox)
        .collect();
    Ok(area_of_interest(
        scene.salience()?,
        width,
        height,
        &subjects,
    ))
}

/// Every detection and face, weighed by what it shows.
fn weighted_boxes(scene: &Scene) -> Result<Vec<Weighted>, PipelineError> {
    let objects = scene.detections()?.iter().map(|d| Weighted {
        bbox: d.bbox,
        confidence: d.score,
        subject: if scene.is_person(d) {
            Subject::Person
        } else {
            Subject::Object
        },
    });
    let faces = scene.faces()?.iter().map(|f| Weighted {
        bbox: f.bbox,
        confidence: f.score,
        subject: Subject::Face,
    });
    Ok(objects.chain(faces).collect())
}

/// What a detected box shows, which sets how much it matters to a crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Face,
    Person,
    Object,
}

/// A detected box (image pixels) that should weigh on the crop.
#[derive(Debug, Clone, Copy)]
pub struct Weighted {
    pub bbox: BoundingBox,
    pub confidence: f32,
    pub subject: Subject,
}

/// Importance per cell of a square grid stretched over the image.
pub struct Importance {
    side: u32,
    values: Vec<f32>,
}

/// How much a detected box adds to the salience inside it, per unit of detection confidence.
const PERSON_WEIGHT: f32 = 1.0;
const OBJECT_WEIGHT: f32 = 0.3;
/// A face is what a crop must keep above all.
const FACE_WEIGHT: f32 = 8.0;
/// The top quarter of a person box, where the head usually is, counts this much more again: a crop
/// that keeps a body but cuts the head is the worst kind (until a face model gives real face boxes).
const HEAD_WEIGHT: f32 = 4.0;
const HEAD_SHARE: f32 = 0.25;
/// Salience above this counts as the subject when finding the area of interest.
const SUBJECT_THRESHOLD: f32 = 0.5;

impl Importance {
    /// Salience plus the weighted boxes.
    pub fn new(salience: &SalienceMap, width: u32, height: u32, boxes: &[Weighted]) -> Self {
        let side = salience.side;
        let mut values = salience.values.clone();
        let (sx, sy) = (side as f32 / width as f32, side as f32 / height as f32);
        let mut add = |bbox: &BoundingBox, weight: f32| {
            let (x1, x2) = (
                (bbox.x1 * sx) as u32,
                ((bbox.x2 * sx).ceil() as u32).min(side),
            );
            let (y1, y2) = (
                (bbox.y1 * sy) as u32,
                ((bbox.y2 * sy).ceil() as u32).min(side),
            );
            for y in y1..y2 {
                for x in x1..x2 {
                    values[(y * side + x) as usize] += weight;
                }
            }
        };
        for Weighted {
            bbox,
            confidence,
            subject,
        } in boxes
        {
            match subject {
                Subject::Face => add(bbox, confidence * FACE_WEIGHT),
                Subject::Person => {
                    add(bbox, confidence * PERSON_WEIGHT);
                    let head = BoundingBox {
                        y2: bbox.y1 + HEAD_SHARE * bbox.height(),
                        ..*bbox
                    };
                    add(&head, confidence * HEAD_WEIGHT);
                }
                Subject::Object => add(bbox, confidence * OBJECT_WEIGHT),
            }
        }
        Importance { side, values }
    }

    /// The share of all importance inside `rect` of a `width` x `height` image (cells counted by
    /// their centres).
    pub fn share(&self, rect: PixelRect, width: u32, height: u32) -> f32 {
        let side = self.side as usize;
        let total: f32 = self.values.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let inside = |cell: usize, origin: u32, extent: u32, size: u32| {
            let centre = (cell as f32 + 0.5) * size as f32 / side as f32;
            centre >= origin as f32 && centre < (origin + extent) as f32
        };
        let kept: f32 = self
            .values
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                inside(i % side, rect.x, rect.w, width) && inside(i / side, rect.y, rect.h, height)
            })
            .map(|(_, v)| v)
            .sum();
        (kept / total).clamp(0.0, 1.0)
    }

    /// Importance summed over the grid's columns (`vertical == false`) or rows.
    fn profile(&self, along_x: bool) -> Vec<f32> {
        let side = self.side as usize;
        let mut profile = vec![0.0; side];
        for (index, value) in self.values.iter().enumerate() {
            profile[if along_x { index % side } else { index / side }] += value;
        }
        profile
    }
}

/// The largest `ratio` window, centred: the crop when nothing guides the choice.
pub fn centred_crop(width: u32, height: u32, ratio: f32) -> PixelRect {
    let (w, h) = window_size(width, height, ratio);
    PixelRect {
        x: (width - w) / 2,
        y: (height - h) / 2,
        w,
        h,
    }
}

/// The size of the largest `ratio` (width / height) window inside a `width` x `height` image.
fn window_size(width: u32, height: u32, ratio: f32) -> (u32, u32) {
    if width as f32 / height as f32 > ratio {
        (
            ((height as f32 * ratio).round() as u32).clamp(1, width),
            height,
        )
    } else {
        (
            width,
            ((width as f32 / ratio).round() as u32).clamp(1, height),
        )
    }
}

/// The largest `ratio` (width / height) window inside a `width` x `height` image, placed to hold the
/// most importance; ties go to the most central position.
pub fn best_crop(importance: &Importance, width: u32, height: u32, ratio: f32) -> PixelRect {
    let along_x = width as f32 / height as f32 > ratio;
    let (crop_w, crop_h) = window_size(width, height, ratio);
    let (extent, window) = if along_x {
        (width, crop_w)
    } else {
        (height, crop_h)
    };
    let offset = best_offset(&importance.profile(along_x), extent, window);
    if along_x {
        PixelRect {
            x: offset,
            y: 0,
            w: crop_w,
            h: crop_h,
        }
    } else {
        PixelRect {
            x: 0,
            y: offset,
            w: crop_w,
            h: crop_h,
        }
    }
}

/// Where a window of `window` pixels over an `extent`-pixel axis collects the most of `profile`
/// (one value per grid cell spread evenly over the axis).
fn best_offset(profile: &[f32], extent: u32, window: u32) -> u32 {
    let free = extent - window;
    if free == 0 {
        return 0;
    }
    // cumulative[i] = importance in cells [0, i); fractional positions interpolate within a cell
    let mut cumulative = vec![0.0f64; profile.len() + 1];
    for (i, v) in profile.iter().enumerate() {
        cumulative[i + 1] = cumulative[i] + *v as f64;
    }
    let cells_per_pixel = profile.len() as f64 / extent as f64;
    let up_to = |pixel: f64| {
        let t = (pixel * cells_per_pixel).clamp(0.0, profile.len() as f64);
        let cell = (t.floor() as usize).min(profile.len() - 1);
        cumulative[cell] + (t - cell as f64) * profile[cell] as f64
    };
    let steps = free.min(4 * profile.len() as u32).max(1);
    let centre = free as f64 / 2.0;
    (0..=steps)
        .map(|s| (free as f64 * s as f64 / steps as f64).round())
        .map(|offset| (offset, up_to(offset + window as f64) - up_to(offset)))
        .max_by(|(oa, a), (ob, b)| {
            // Sums within a hair of each other are a tie: prefer the position nearer the centre.
            if (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1e-9) {
                (ob - centre).abs().total_cmp(&(oa - centre).abs())
            } else {
                a.total_cmp(b)
            }
        })
        .map_or(0, |(offset, _)| offset as u32)
}

/// The ratio to use when a request names none: the aspect of the area of interest, kept inside the
/// range Azure allows for requested ratios.
pub fn default_ratio(area: PixelRect) -> f32 {
    let ratio = (area.w as f32 / area.h as f32).clamp(0.75, 1.8);
    (ratio * 100.0).round() / 100.0
}

/// The smallest rectangle holding the salient subject (and any person or face given), or the whole
/// image when nothing stands out.
pub fn area_of_interest(
    salience: &SalienceMap,
    width: u32,
    height: u32,
    subjects: &[BoundingBox],
) -> PixelRect {
    let side = salience.side;
    let mut bounds: Option<BoundingBox> = None;
    let mut grow = |b: BoundingBox| {
        bounds = Some(match bounds {
            None => b,
            Some(a) => BoundingBox {
                x1: a.x1.min(b.x1),
                y1: a.y1.min(b.y1),
                x2: a.x2.max(b.x2),
                y2: a.y2.max(b.y2),
            },
        })
    };
    let (cell_w, cell_h) = (width as f32 / side as f32, height as f32 / side as f32);
    for y in 0..side {
        for x in 0..side {
            if salience.at(x, y) >= SUBJECT_THRESHOLD {
                let (fx, fy) = (x as f32 * cell_w, y as f32 * cell_h);
                grow(BoundingBox {
                    x1: fx,
                    y1: fy,
                    x2: fx + cell_w,
                    y2: fy + cell_h,
                });
            }
        }
    }
    subjects.iter().copied().for_each(&mut grow);
    bounds.map_or(
        PixelRect {
            x: 0,
            y: 0,
            w: width,
            h: height,
        },
        |b| b.to_pixel_rect(width, height),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_keeps_the_share_of_importance_inside_it() {
        // The bright square fills the left half of a 16-cell grid's middle rows.
        let importance = Importance::new(&blob(16, 0, 8, 4, 12), 160, 160, &[]);
        let left = PixelRect {
            x: 0,
            y: 0,
            w: 80,
            h: 160,
        };
        let right = PixelRect {
            x: 80,
            y: 0,
            w: 80,
            h: 160,
        };
        let whole = PixelRect {
            x: 0,
            y: 0,
            w: 160,
            h: 160,
        };
        let (l, r) = (
            importance.share(left, 160, 160),
            importance.share(right, 160, 160),
        );
        assert!(
            l > 0.95 && r < 0.05 && (l + r - 1.0).abs() < 1e-5,
            "{l} {r}"
        );
        assert!((importance.share(whole, 160, 160) - 1.0).abs() < 1e-6);
    }

    /// A salience map with one bright square (grid cells [x0, x1) x [y0, y1)).
    fn blob(side: u32, x0: u32, x1: u32, y0: u32, y1: u32) -> SalienceMap {
        let values = (0..side * side)
            .map(|i| {
                if (x0..x1).contains(&(i % side)) && (y0..y1).contains(&(i / side)) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        SalienceMap { side, values }
    }

    #[test]
    fn the_crop_follows_the_salient_subject_and_keeps_the_ratio() {
        // Subject on the right third of a wide image.
        let map = blob(30, 22, 28, 5, 25);
        let crop = best_crop(&Importance::new(&map, 900, 300, &[]), 900, 300, 1.0);
        assert_eq!((crop.w, crop.h, crop.y), (300, 300, 0));
        assert!(
            crop.x >= 900 * 28 / 30 - 300 && crop.x <= 900 * 22 / 30,
            "{crop:?}"
        );
        // A tall crop of a wide image slides vertically (here it cannot: the height is full).
        let tall = best_crop(&Importance::new(&map, 900, 300, &[]), 900, 300, 0.75);
        assert_eq!((tall.w, tall.h), (225, 300));
    }

    #[test]
    fn without_salience_the_crop_is_centred_and_people_pull_it() {
        let empty = SalienceMap {
            side: 20,
            values: vec![0.0; 400],
        };
        let centred = best_crop(&Importance::new(&empty, 400, 1000, &[]), 400, 1000, 1.0);
        assert_eq!(
            centred,
            PixelRect {
                x: 0,
                y: 300,
                w: 400,
                h: 400
            }
        );
        let person = BoundingBox {
            x1: 50.0,
            y1: 0.0,
            x2: 350.0,
            y2: 300.0,
        };
        let weighted = |bbox, subject| Weighted {
            bbox,
            confidence: 0.9,
            subject,
        };
        let pulled = best_crop(
            &Importance::new(&empty, 400, 1000, &[weighted(person, Subject::Person)]),
            400,
            1000,
            1.0,
        );
        assert_eq!(pulled.y, 0, "{pulled:?}");
        // A person taller than the crop: the crop keeps the head end.
        let standing = BoundingBox {
            x1: 0.0,
            y1: 200.0,
            x2: 400.0,
            y2: 1000.0,
        };
        let head_first = best_crop(
            &Importance::new(&empty, 400, 1000, &[weighted(standing, Subject::Person)]),
            400,
            1000,
            1.0,
        );
        assert!(head_first.y <= 200, "{head_first:?}");
        // A face outweighs a larger object elsewhere.
        let face = BoundingBox {
            x1: 150.0,
            y1: 900.0,
            x2: 250.0,
            y2: 1000.0,
        };
        let object = BoundingBox {
            x1: 0.0,
            y1: 0.0,
            x2: 400.0,
            y2: 400.0,
        };
        let boxes = [
            weighted(face, Subject::Face),
            weighted(object, Subject::Object),
        ];
        assert_eq!(
            best_crop(&Importance::new(&empty, 400, 1000, &boxes), 400, 1000, 1.0).y,
            600
        );
    }

    #[test]
    fn centred_crops_keep_the_ratio() {
        assert_eq!(
            centred_crop(400, 100, 1.0),
            PixelRect {
                x: 150,
                y: 0,
                w: 100,
                h: 100
            }
        );
        assert_eq!(
            centred_crop(100, 400, 2.0),
            PixelRect {
                x: 0,
                y: 175,
                w: 100,
                h: 50
            }
        );
    }

    #[test]
    fn area_of_interest_bounds_the_subject_and_people() {
        let map = blob(10, 2, 4, 3, 6);
        assert_eq!(
            area_of_interest(&map, 100, 100, &[]),
            PixelRect {
                x: 20,
                y: 30,
                w: 20,
                h: 30
            }
        );
        let person = BoundingBox {
            x1: 60.0,
            y1: 10.0,
            x2: 90.0,
            y2: 50.0,
        };
        assert_eq!(
            area_of_interest(&map, 100, 100, &[person]),
            PixelRect {
                x: 20,
                y: 10,
                w: 70,
                h: 50
            }
        );
        let empty = SalienceMap {
            side: 10,
            values: vec![0.0; 100],
        };
        assert_eq!(
            area_of_interest(&empty, 80, 60, &[]),
            PixelRect {
                x: 0,
                y: 0,
                w: 80,
                h: 60
            }
        );
    }

    #[test]
    fn default_ratios_stay_in_azures_range() {
        assert_eq!(
            default_ratio(PixelRect {
                x: 0,
                y: 0,
                w: 100,
                h: 400
            }),
            0.75
        );
        assert_eq!(
            default_ratio(PixelRect {
                x: 0,
                y: 0,
                w: 400,
                h: 100
            }),
            1.8
        );
        assert_eq!(
            default_ratio(PixelRect {
                x: 0,
                y: 0,
                w: 130,
                h: 100
            }),
            1.3
        );
    }
}
