//! EfficientNet-Lite0: ImageNet-1k class probabilities for the whole image, the classifier behind
//! tags, captions and categories. The image is stretched to 224x224 and scaled as EfficientNet-Lite's
//! TensorFlow training did, (v - 127) / 128.

use anyhow::{bail, Result};
use image::RgbImage;
use serde::Deserialize;

use super::traits::ImageClassifier;
use crate::models::manifest::PackEntry;
use crate::models::preprocess::stretched_nchw;
use crate::runtime::SessionPool;

#[derive(Debug, Clone, Deserialize)]
pub struct ClassifierFacts {
    pub input: String,
    pub output: String,
    pub input_size: u32,
    /// How many classes the logits have (ImageNet-1k: 1000).
    pub classes: usize,
    /// The pooled features (1280 numbers) the logits are made from, when the file exposes them.
    #[serde(default)]
    pub features: Option<String>,
}

pub struct EfficientNet {
    sessions: SessionPool,
    facts: ClassifierFacts,
}

impl EfficientNet {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        Ok(EfficientNet {
            sessions,
            facts: entry.facts()?,
        })
    }

    pub fn classes(&self) -> usize {
        self.facts.classes
    }

    fn input(&self, image: &RgbImage) -> Result<ndarray::Array4<f32>> {
        stretched_nchw(image, self.facts.input_size, |_, v| {
            (v as f32 - 127.0) / 128.0
        })
    }
}

impl ImageClassifier for EfficientNet {
    /// The probability of each class (softmax of the logits).
    fn classify(&self, image: &RgbImage) -> Result<Vec<f32>> {
        let facts = &self.facts;
        let tensor = self.input(image)?;
        let logits = self
            .sessions
            .run_flat(&facts.input, &tensor, &facts.output)?;
        if logits.len() != facts.classes {
            bail!(
                "the classifier gave {} logits, expected {}",
                logits.len(),
                facts.classes
            );
        }
        Ok(softmax(&logits))
    }

    fn features(&self, image: &RgbImage) -> Result<Option<Vec<f32>>> {
        let Some(output) = &self.facts.features else {
            return Ok(None);
        };
        let tensor = self.input(image)?;
        Ok(Some(self.sessions.run_flat(
            &self.facts.input,
            &tensor,
            output,
        )?))
    }
}

pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_the_order() {
        let p = softmax(&[1.0, 3.0, 2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0]);
        // Large logits do not overflow.
        let p = softmax(&[1000.0, 0.0]);
        assert!(p[0] > 0.99 && p[0].is_finite());
    }
}
