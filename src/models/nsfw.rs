//! nsfwjs MobileNetV2: five class probabilities (Drawing, Hentai, Neutral, Porn, Sexy) for the whole
//! image, stretched to 224x224 and scaled to 0..1, as nsfwjs feeds it.

use anyhow::{anyhow, Result};
use image::RgbImage;
use serde::Deserialize;

use crate::models::manifest::PackEntry;
use crate::models::preprocess::stretched_nchw;
use crate::runtime::SessionPool;

#[derive(Debug, Clone, Deserialize)]
pub struct NsfwFacts {
    pub input: String,
    pub output: String,
    pub input_size: u32,
    pub classes: Vec<String>,
}

/// The model's class probabilities, by name.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NsfwScores {
    pub drawing: f32,
    pub hentai: f32,
    pub neutral: f32,
    pub porn: f32,
    pub sexy: f32,
}

pub struct Nsfw {
    sessions: SessionPool,
    facts: NsfwFacts,
}

impl Nsfw {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        let facts: NsfwFacts = entry.facts()?;
        for class in ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"] {
            if !facts.classes.iter().any(|c| c == class) {
                return Err(anyhow!("model '{}' lacks the class {class}", entry.id));
            }
        }
        Ok(Nsfw { sessions, facts })
    }

    pub fn classify(&self, image: &RgbImage) -> Result<NsfwScores> {
        let facts = &self.facts;
        let tensor = stretched_nchw(image, facts.input_size, |_, v| v as f32 / 255.0)?;
        let probabilities = self
            .sessions
            .run_flat(&facts.input, &tensor, &facts.output)?;
        Ok(scores_by_name(&facts.classes, &probabilities))
    }
}

fn scores_by_name(classes: &[String], probabilities: &[f32]) -> NsfwScores {
    let of = |name: &str| {
        classes
            .iter()
            .position(|c| c == name)
            .and_then(|i| probabilities.get(i))
            .copied()
            .unwrap_or(0.0)
    };
    NsfwScores {
        drawing: of("Drawing"),
        hentai: of("Hentai"),
        neutral: of("Neutral"),
        porn: of("Porn"),
        sexy: of("Sexy"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_are_matched_to_classes_by_name() {
        let classes: Vec<String> = ["Neutral", "Drawing", "Sexy", "Porn", "Hentai"]
            .map(String::from)
            .to_vec();
        let s = scores_by_name(&classes, &[0.5, 0.1, 0.2, 0.15, 0.05]);
        assert_eq!(
            (s.neutral, s.drawing, s.sexy, s.porn, s.hentai),
            (0.5, 0.1, 0.2, 0.15, 0.05)
        );
    }
}
