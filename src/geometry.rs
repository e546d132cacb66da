//! Boxes in pixel space and the per-class non-maximum suppression that every detector shares.

/// An axis-aligned box with corners in (fractional) pixels, origin top-left.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundingBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// An integer rectangle inside an image, the way the Azure APIs report boxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl PixelRect {
    pub fn to_box(&self) -> BoundingBox {
        BoundingBox {
            x1: self.x as f32,
            y1: self.y as f32,
            x2: self.x as f32 + self.w as f32,
            y2: self.y as f32 + self.h as f32,
        }
    }
}

/// A text region: four corners, clockwise from the text's own top-left, in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quad(pub [(f32, f32); 4]);

impl Quad {
    /// The corners rounded to whole pixels inside a `width` x `height` image.
    pub fn pixel_corners(&self, width: u32, height: u32) -> [(u32, u32); 4] {
        self.0.map(|(x, y)| {
            (
                x.round().clamp(0.0, width as f32) as u32,
                y.round().clamp(0.0, height as f32) as u32,
            )
        })
    }

    /// The area it encloses (the shoelace formula).
    pub fn area(&self) -> f32 {
        let p = self.0;
        let twice: f32 = (0..4)
            .map(|i| {
                let (a, b) = (p[i], p[(i + 1) % 4]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum();
        twice.abs() / 2.0
    }
}

/// A detector's raw finding: a box, its score and the index of its class.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub bbox: BoundingBox,
    pub score: f32,
    pub class: usize,
}

impl BoundingBox {
    /// The upright box around `points` (an empty box at the origin when there are none).
    pub fn around(points: impl IntoIterator<Item = (f32, f32)>) -> Self {
        let mut points = points.into_iter().peekable();
        let Some(&(x, y)) = points.peek() else {
            return BoundingBox {
                x1: 0.0,
                y1: 0.0,
                x2: 0.0,
                y2: 0.0,
            };
        };
        points.fold(
            BoundingBox {
                x1: x,
                y1: y,
                x2: x,
                y2: y,
            },
            |b, (x, y)| BoundingBox {
                x1: b.x1.min(x),
                y1: b.y1.min(y),
                x2: b.x2.max(x),
                y2: b.y2.max(y),
            },
        )
    }

    /// Its corners as a quad, clockwise from the top-left.
    pub fn quad(&self) -> Quad {
        Quad([
            (self.x1, self.y1),
            (self.x2, self.y1),
            (self.x2, self.y2),
            (self.x1, self.y2),
        ])
    }

    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn iou(&self, other: &Self) -> f32 {
        let overlap = BoundingBox {
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
            x2: self.x2.min(other.x2),
            y2: self.y2.min(other.y2),
        }
        .area();
        let union = self.area() + other.area() - overlap;
        if union <= 0.0 {
            0.0
        } else {
            overlap / union
        }
    }

    /// Maps a box from a resized image back to the original by per-axis factors, clipped to it.
    pub fn rescaled(&self, scale_x: f32, scale_y: f32, width: u32, height: u32) -> Self {
        let (w, h) = (width as f32, height as f32);
        BoundingBox {
            x1: (self.x1 * scale_x).clamp(0.0, w),
            y1: (self.y1 * scale_y).clamp(0.0, h),
            x2: (self.x2 * scale_x).clamp(0.0, w),
            y2: (self.y2 * scale_y).clamp(0.0, h),
        }
    }

    /// Rounds to whole pixels that stay inside a `width` x `height` image.
    pub fn to_pixel_rect(&self, width: u32, height: u32) -> PixelRect {
        let x = (self.x1.round().max(0.0) as u32).min(width.saturating_sub(1));
        let y = (self.y1.round().max(0.0) as u32).min(height.saturating_sub(1));
        let x2 = (self.x2.round().max(0.0) as u32).clamp(x + 1, width.max(x + 1));
        let y2 = (self.y2.round().max(0.0) as u32).clamp(y + 1, height.max(y + 1));
        PixelRect {
            x,
            y,
            w: x2 - x,
            h: y2 - y,
        }
    }
}

/// A face the face detector found: its box, its score, and five landmarks in image pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceDetection {
    pub bbox: BoundingBox,
    pub score: f32,
    pub landmarks: FaceLandmarks,
}

/// Five points of a face, in image pixels. "Left" and "right" are the viewer's: `left_eye` is the eye
/// nearer the image's left edge in an upright face.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceLandmarks {
    pub left_eye: (f32, f32),
    pub right_eye: (f32, f32),
    pub nose: (f32, f32),
    pub mouth_left: (f32, f32),
    pub mouth_right: (f32, f32),
}

impl FaceLandmarks {
    pub fn points(&self) -> [(f32, f32); 5] {
        [
            self.left_eye,
            self.right_eye,
            self.nose,
            self.mouth_left,
            self.mouth_right,
        ]
    }

    /// The same points moved by `map`.
    pub fn map(&self, map: impl Fn((f32, f32)) -> (f32, f32)) -> Self {
        FaceLandmarks {
            left_eye: map(self.left_eye),
            right_eye: map(self.right_eye),
            nose: map(self.nose),
            mouth_left: map(self.mouth_left),
            mouth_right: map(self.mouth_right),
        }
    }
}

/// What non-maximum suppression needs of a finding.
pub trait Scored {
    fn bbox(&self) -> &BoundingBox;
    fn score(&self) -> f32;
    fn class(&self) -> usize;
}

impl Scored for Detection {
    fn bbox(&self) -> &BoundingBox {
        &self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn class(&self) -> usize {
        self.class
    }
}

impl Scored for FaceDetection {
    fn bbox(&self) -> &BoundingBox {
        &self.bbox
    }
    fn score(&self) -> f32 {
        self.score
    }
    fn class(&self) -> usize {
        0
    }
}

/// Greedy non-maximum suppression within each class: keeps the best-scoring box of every cluster
/// whose members overlap it by more than `iou_threshold`. The result is sorted by descending score.
pub fn nms_per_class<T: Scored>(mut detections: Vec<T>, iou_threshold: f32) -> Vec<T> {
    detections.sort_by(|a, b| b.score().total_cmp(&a.score()));
    let mut kept: Vec<T> = Vec::with_capacity(detections.len());
    for candidate in detections {
        let suppressed = kept.iter().any(|k| {
            k.class() == candidate.class() && k.bbox().iou(candidate.bbox()) > iou_threshold
        });
        if !suppressed {
            kept.push(candidate);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bbox(x1: f32, y1: f32, x2: f32, y2: f32) -> BoundingBox {
        BoundingBox { x1, y1, x2, y2 }
    }

    #[test]
    fn the_box_around_points_holds_them_all() {
        let turned = Quad([(10.0, 20.0), (50.0, 10.0), (55.0, 30.0), (15.0, 40.0)]);
        let around = BoundingBox::around(turned.0);
        assert_eq!(around, bbox(10.0, 10.0, 55.0, 40.0));
        assert_eq!(
            around.quad().0,
            [(10.0, 10.0), (55.0, 10.0), (55.0, 40.0), (10.0, 40.0)]
        );
        assert_eq!(BoundingBox::around([]), bbox(0.0, 0.0, 0.0, 0.0));
    }

    fn det(b: BoundingBox, score: f32, class: usize) -> Detection {
        Detection {
            bbox: b,
            score,
            class,
        }
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = bbox(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&bbox(20.0, 20.0, 30.0, 30.0)), 0.0);
        // overlap 50, union 150
        assert!((a.iou(&bbox(5.0, 0.0, 15.0, 10.0)) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn nms_suppresses_overlaps_only_within_a_class() {
        let kept = nms_per_class(
            vec![
                det(bbox(0.0, 0.0, 10.0, 10.0), 0.6, 0),
                det(bbox(1.0, 0.0, 11.0, 10.0), 0.9, 0),
                det(bbox(1.0, 0.0, 11.0, 10.0), 0.8, 1),
                det(bbox(50.0, 50.0, 60.0, 60.0), 0.5, 0),
            ],
            0.5,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.8, 0.5]);
    }

    #[test]
    fn rescaling_clips_to_the_image() {
        let b = bbox(-4.0, 10.0, 300.0, 50.0).rescaled(2.0, 0.5, 500, 100);
        assert_eq!(b, bbox(0.0, 5.0, 500.0, 25.0));
    }

    #[test]
    fn pixel_rects_stay_inside_the_image_and_are_never_empty() {
        assert_eq!(
            bbox(10.4, 20.6, 30.5, 40.0).to_pixel_rect(100, 100),
            PixelRect {
                x: 10,
                y: 21,
                w: 21,
                h: 19
            }
        );
        let edge = bbox(99.8, 99.9, 100.0, 100.0).to_pixel_rect(100, 100);
        assert_eq!(
            edge,
            PixelRect {
                x: 99,
                y: 99,
                w: 1,
                h: 1
            }
        );
    }
}
