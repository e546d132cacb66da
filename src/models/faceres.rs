//! HSE FaceRes (optional): estimated age and gender of a detected face. A square crop around the face,
//! stretched to 224x224, RGB 0..255 → a softmax over ages 0..99 and a sigmoid that is male above 0.5.
//! Azure removed these attributes from its face API; a deployment has them only if it installs this
//! model (`vista models fetch --include faceres`).

use anyhow::{anyhow, Result};
use image::RgbImage;
use ndarray::{concatenate, Array4, Axis};
use ort::value::TensorRef;
use serde::Deserialize;

use crate::geometry::PixelRect;
use crate::models::manifest::PackEntry;
use crate::models::preprocess::stretched_nchw;
use crate::runtime::SessionPool;

#[derive(Debug, Clone, Deserialize)]
pub struct FaceResFacts {
    pub input: String,
    pub input_size: u32,
    pub age: String,
    pub gender: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Female,
    Male,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceAttributes {
    /// The expected value of the age distribution, in years.
    pub age: f32,
    pub gender: Gender,
}

pub struct FaceRes {
    sessions: SessionPool,
    facts: FaceResFacts,
}

impl FaceRes {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        Ok(FaceRes {
            sessions,
            facts: entry.facts()?,
        })
    }

    /// Attributes of each face, in the order given; all faces go through the model in one batch.
    pub fn estimate(&self, image: &RgbImage, faces: &[PixelRect]) -> Result<Vec<FaceAttributes>> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let facts = &self.facts;
        let side = facts.input_size;
        let crops = faces
            .iter()
            .map(|face| {
                let (x, y, w, h) = square_around(*face, image.width(), image.height());
                let crop = image::imageops::crop_imm(image, x, y, w, h).to_image();
                stretched_nchw(&crop, side, |_, v| v as f32)
            })
            .collect::<Result<Vec<Array4<f32>>>>()?;
        let views: Vec<_> = crops.iter().map(|c| c.view()).collect();
        let batch = concatenate(Axis(0), &views)?;
        let inputs = ort::inputs![facts.input.as_str() => TensorRef::from_array_view(&batch)?];
        let (ages, genders) = self.sessions.run(inputs, |outputs| {
            let ages = outputs[facts.age.as_str()]
                .try_extract_array::<f32>()?
                .to_owned();
            let genders = outputs[facts.gender.as_str()]
                .try_extract_array::<f32>()?
                .to_owned();
            Ok((ages, genders))
        })?;
        if ages.shape().first() != Some(&faces.len()) || genders.len() != faces.len() {
            return Err(anyhow!(
                "faceres returned {:?} ages and {} genders",
                ages.shape(),
                genders.len()
            ));
        }
        Ok(ages
            .outer_iter()
            .zip(genders.iter())
            .map(|(age, &male)| FaceAttributes {
                age: expected_age(age.iter().copied()),
                gender: if male > 0.5 {
                    Gender::Male
                } else {
                    Gender::Female
                },
            })
            .collect())
    }
}

/// The square of side max(w, h) centred on the face, shifted (and if need be shrunk) to fit the image.
fn square_around(face: PixelRect, width: u32, height: u32) -> (u32, u32, u32, u32) {
    let side = face.w.max(face.h).min(width).min(height).max(1);
    let centre = |start: u32, length: u32, limit: u32| {
        let ideal = (start + length / 2).saturating_sub(side / 2);
        ideal.min(limit - side)
    };
    (
        centre(face.x, face.w, width),
        centre(face.y, face.h, height),
        side,
        side,
    )
}

/// Σ p(age) · age over the model's age classes 0, 1, 2, ...
fn expected_age(probabilities: impl Iterator<Item = f32>) -> f32 {
    probabilities
        .enumerate()
        .map(|(age, p)| age as f32 * p)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_squares_centred_on_the_face_and_inside_the_image() {
        let face = PixelRect {
            x: 40,
            y: 10,
            w: 20,
            h: 30,
        };
        assert_eq!(square_around(face, 100, 100), (35, 10, 30, 30));
        // Near the right edge the square shifts left instead of leaving the image.
        assert_eq!(
            square_around(
                PixelRect {
                    x: 90,
                    y: 0,
                    w: 10,
                    h: 20
                },
                100,
                50
            ),
            (80, 0, 20, 20)
        );
        // A face box taller than the image shrinks to the image's side.
        assert_eq!(
            square_around(
                PixelRect {
                    x: 0,
                    y: 0,
                    w: 10,
                    h: 80
                },
                100,
                50
            ),
            (0, 0, 50, 50)
        );
    }

    #[test]
    fn age_is_the_expected_value_of_the_distribution() {
        let mut p = vec![0.0; 100];
        p[30] = 0.5;
        p[40] = 0.5;
        assert!((expected_age(p.into_iter()) - 35.0).abs() < 1e-4);
    }
}
