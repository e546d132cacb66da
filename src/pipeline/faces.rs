//! Faces: the face detector's boxes and five landmarks, the head pose the landmarks imply, the face's
//! pixel quality, and age and gender where the optional model is installed.

use super::quality::{self, Quality};
use super::scene::Scene;
use super::PipelineError;
use crate::geometry::{FaceLandmarks, PixelRect};
pub use crate::models::faceres::{FaceAttributes, Gender};

/// How far the nose tip stands in front of the eyes, relative to the distance between the eyes
/// (about 2.5 cm against 6.3 cm in adult anthropometry): turns the nose's sideways shift into yaw.
const NOSE_DEPTH: f32 = 0.4;
/// The same depth relative to the eye-to-mouth distance (about 2.5 cm against 7 cm).
const NOSE_DEPTH_VERTICAL: f32 = 0.36;
/// Where the nose tip sits between the eye line and the mouth line in a face seen level.
const LEVEL_NOSE_HEIGHT: f32 = 0.5;

#[derive(Debug, Clone, PartialEq)]
pub struct DetectedFace {
    pub rect: PixelRect,
    pub confidence: f32,
    pub landmarks: FaceLandmarks,
    pub pose: Pose,
    /// The face region's brightness, contrast and sharpness.
    pub quality: Quality,
    /// Estimated age and gender, only where the optional model is installed.
    pub attributes: Option<FaceAttributes>,
}

/// Head pose in degrees. Roll is measured (the eye line's tilt, positive clockwise in the image);
/// yaw and pitch are geometric estimates from five points (positive when the face turns toward the
/// image's right, and up), good to perhaps 15 degrees, not a pose model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub roll: f32,
    pub yaw: f32,
    pub pitch: f32,
}

pub fn faces(scene: &Scene) -> Result<Vec<DetectedFace>, PipelineError> {
    let (width, height) = scene.dimensions();
    let faces = scene.faces()?;
    let rects: Vec<PixelRect> = faces
        .iter()
        .map(|f| f.bbox.to_pixel_rect(width, height))
        .collect();
    let attributes = match &scene.models().face_attributes {
        Some(model) => model
            .estimate(scene.image(), &rects)?
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None; rects.len()],
    };
    rects
        .into_iter()
        .zip(faces.iter().zip(attributes))
        .map(|(rect, (f, attributes))| {
            Ok(DetectedFace {
                rect,
                confidence: f.score,
                landmarks: f.landmarks,
                pose: pose(&f.landmarks),
                quality: quality::measure(scene.image(), Some(rect))?,
                attributes,
            })
        })
        .collect()
}

/// The pose five landmarks imply: roll from the eye line; then, in the frame where the eyes are level,
/// yaw from the nose tip's shift off the eyes' midpoint and pitch from its height between eyes and mouth.
pub fn pose(landmarks: &FaceLandmarks) -> Pose {
    let ((lx, ly), (rx, ry)) = (landmarks.left_eye, landmarks.right_eye);
    let roll = (ry - ly).atan2(rx - lx);
    let (mid_x, mid_y) = ((lx + rx) / 2.0, (ly + ry) / 2.0);
    // Undo the roll around the eyes' midpoint.
    let (sin, cos) = (-roll).sin_cos();
    let level = |(x, y): (f32, f32)| {
        let (dx, dy) = (x - mid_x, y - mid_y);
        (dx * cos - dy * sin, dx * sin + dy * cos)
    };
    let eye_distance = (rx - lx).hypot(ry - ly).max(1e-3);
    let nose = level(landmarks.nose);
    let mouth = {
        let (a, b) = (level(landmarks.mouth_left), level(landmarks.mouth_right));
        ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0)
    };
    let yaw = (nose.0 / eye_distance / NOSE_DEPTH).atan();
    let nose_height = nose.1 / mouth.1.max(1e-3);
    let pitch = ((LEVEL_NOSE_HEIGHT - nose_height) / NOSE_DEPTH_VERTICAL).atan();
    Pose {
        roll: roll.to_degrees(),
        yaw: yaw.to_degrees(),
        pitch: pitch.to_degrees(),
    }
}

impl DetectedFace {
    /// A level, frontal face filling `rect`, for surfaces' tests.
    #[cfg(test)]
    pub fn example(rect: PixelRect) -> Self {
        let (x, y, w, h) = (rect.x as f32, rect.y as f32, rect.w as f32, rect.h as f32);
        let at = |fx: f32, fy: f32| (x + fx * w, y + fy * h);
        let landmarks = FaceLandmarks {
            left_eye: at(0.3, 0.4),
            right_eye: at(0.7, 0.4),
            nose: at(0.5, 0.55),
            mouth_left: at(0.35, 0.7),
            mouth_right: at(0.65, 0.7),
        };
        DetectedFace {
            rect,
            confidence: 0.9,
            pose: pose(&landmarks),
            landmarks,
            quality: Quality {
                brightness: 0.5,
                contrast: 0.4,
                sharpness: 0.8,
            },
            attributes: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(nose: (f32, f32)) -> FaceLandmarks {
        FaceLandmarks {
            left_eye: (40.0, 50.0),
            right_eye: (60.0, 50.0),
            nose,
            mouth_left: (42.0, 70.0),
            mouth_right: (58.0, 70.0),
        }
    }

    #[test]
    fn a_level_frontal_face_has_no_pose_and_a_turned_one_does() {
        let level = pose(&face((50.0, 60.0)));
        assert!(
            level.roll.abs() < 0.01 && level.yaw.abs() < 0.01,
            "{level:?}"
        );
        assert!(level.pitch.abs() < 0.01, "{level:?}");
        let turned = pose(&face((56.0, 60.0)));
        assert!(
            turned.yaw > 20.0,
            "nose shifted to the image's right: {turned:?}"
        );
        let up = pose(&face((50.0, 56.0)));
        assert!(up.pitch > 10.0, "nose high between eyes and mouth: {up:?}");
        // The same face turned 30 degrees clockwise in the image: only roll changes.
        let (sin, cos) = 30f32.to_radians().sin_cos();
        let rotated = face((50.0, 60.0)).map(|(x, y)| {
            let (dx, dy) = (x - 50.0, y - 50.0);
            (50.0 + dx * cos - dy * sin, 50.0 + dx * sin + dy * cos)
        });
        let rolled = pose(&rotated);
        assert!((rolled.roll - 30.0).abs() < 0.01, "{rolled:?}");
        assert!(
            rolled.yaw.abs() < 0.01 && rolled.pitch.abs() < 0.01,
            "{rolled:?}"
        );
    }
}
