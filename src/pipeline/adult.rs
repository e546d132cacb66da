//! 3.2 `Adult` from the nsfwjs classes: adult = Porn + Hentai; racy = Sexy plus half the adult score
//! (explicit content is racy too). Thresholds are the deployment's. There is no gore model, so no
//! gore score is produced at all rather than a made-up one.

use super::scene::{required, Scene};
use super::PipelineError;
use crate::models::nsfw::NsfwScores;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdultRating {
    pub adult_score: f32,
    pub racy_score: f32,
    pub is_adult: bool,
    pub is_racy: bool,
    /// The classifier's five class probabilities, for surfaces that report them one by one.
    pub classes: NsfwScores,
}

/// The share of the adult score that also counts as racy.
const ADULT_SHARE_OF_RACY: f32 = 0.5;

/// The scene's adult and racy scores, at the deployment's thresholds.
pub fn adult(scene: &Scene) -> Result<AdultRating, PipelineError> {
    let model = required(scene.models().nsfw.as_ref(), "the adult-content classifier")?;
    let settings = scene.settings();
    Ok(rate(
        &model.classify(scene.image())?,
        settings.adult_threshold,
        settings.racy_threshold,
    ))
}

pub fn rate(scores: &NsfwScores, adult_threshold: f32, racy_threshold: f32) -> AdultRating {
    let adult_score = (scores.porn + scores.hentai).min(1.0);
    let racy_score = (scores.sexy + ADULT_SHARE_OF_RACY * adult_score).min(1.0);
    AdultRating {
        adult_score,
        racy_score,
        is_adult: adult_score >= adult_threshold,
        is_racy: racy_score >= racy_threshold,
        classes: *scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adult_is_porn_plus_hentai_and_racy_includes_half_of_it() {
        let scores = NsfwScores {
            drawing: 0.0,
            hentai: 0.2,
            neutral: 0.1,
            porn: 0.4,
            sexy: 0.3,
        };
        let rating = rate(&scores, 0.5, 0.5);
        assert!((rating.adult_score - 0.6).abs() < 1e-6 && (rating.racy_score - 0.6).abs() < 1e-6);
        assert!(rating.is_adult && rating.is_racy);
        let neutral = rate(
            &NsfwScores {
                neutral: 0.97,
                sexy: 0.02,
                porn: 0.01,
                ..Default::default()
            },
            0.5,
            0.5,
        );
        assert!(!neutral.is_adult && !neutral.is_racy && neutral.racy_score < 0.03);
    }
}
