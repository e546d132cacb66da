//! What a request can ask the pipeline for, which models each feature's result comes from, and why a
//! deployment cannot serve one.

use std::fmt;

use crate::models::ModelPack;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    Caption,
    DenseCaptions,
    Objects,
    People,
    Read,
    SmartCrops,
    Tags,
    /// One rectangle around what matters.
    AreaOfInterest,
    /// Face rectangles (with age and gender where that model is installed).
    Faces,
    /// Dominant and accent colours.
    Color,
    /// Clip art and line drawing.
    ImageType,
    /// Adult and racy scores.
    Adult,
    /// The 86-category taxonomy.
    Categories,
    /// Caption candidates and tag words.
    Description,
    /// Dominant colours as RGB values with their shares of the image.
    Palette,
    /// The whole image's brightness, contrast and sharpness.
    Quality,
}

impl Feature {
    /// The features a client can name one by one (those of Image Analysis 4.0 and the CLI).
    pub const ALL: [Feature; 7] = [
        Feature::Caption,
        Feature::DenseCaptions,
        Feature::Objects,
        Feature::People,
        Feature::Read,
        Feature::SmartCrops,
        Feature::Tags,
    ];

    /// The feature's name in messages and on the CLI (Image Analysis 4.0's spelling).
    pub fn name(self) -> &'static str {
        match self {
            Feature::Caption => "caption",
            Feature::DenseCaptions => "denseCaptions",
            Feature::Objects => "objects",
            Feature::People => "people",
            Feature::Read => "read",
            Feature::SmartCrops => "smartCrops",
            Feature::Tags => "tags",
            Feature::AreaOfInterest => "areaOfInterest",
            Feature::Faces => "faces",
            Feature::Color => "color",
            Feature::ImageType => "imageType",
            Feature::Adult => "adult",
            Feature::Categories => "categories",
            Feature::Description => "description",
            Feature::Palette => "palette",
            Feature::Quality => "quality",
        }
    }

    /// Case-insensitive lookup of one of [`Feature::ALL`] by name.
    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The manifest tasks of the models (and libraries) this feature's result comes from, evidence
    /// included: a one-shot command loads only these.
    pub fn model_tasks(self) -> &'static [&'static str] {
        // Tags, captions and categories weigh every model that can name something.
        const WORDS: &[&str] = &[
            "tags",
            "objects",
            "faces",
            "text-detection",
            "clip-visual",
            "clip-textual",
            "clip-vocabulary",
        ];
        match self {
            Feature::Objects | Feature::People => &["objects"],
            Feature::Read => &[
                "text-detection",
                "text-recognition",
                "text-line-orientation",
                "ocr-library",
                "pdf",
            ],
            Feature::SmartCrops | Feature::AreaOfInterest => &["salience", "faces", "objects"],
            Feature::Faces => &["faces", "face-attributes"],
            Feature::Color => &["salience"],
            Feature::ImageType | Feature::Palette | Feature::Quality => &[],
            Feature::Adult => &["adult"],
            Feature::Caption
            | Feature::DenseCaptions
            | Feature::Tags
            | Feature::Categories
            | Feature::Description => WORDS,
        }
    }

    /// Why `models` cannot serve this feature, or `None` when they can. Evidence models (faces and
    /// text for tags, say) are optional: without them a result has less to go on.
    pub fn unavailable(self, models: &ModelPack) -> Option<String> {
        let required: &[(bool, &str)] = match self {
            Feature::Objects | Feature::People => {
                &[(models.detector.is_some(), "the object detector (centernet)")]
            }
            Feature::SmartCrops | Feature::AreaOfInterest | Feature::Color => {
                &[(models.salience.is_some(), "the salience model (u2netp)")]
            }
            Feature::Adult => &[(models.nsfw.is_some(), "the adult-content classifier (nsfw)")],
            Feature::Faces => &[(models.faces.is_some(), "the face detector (centerface)")],
            Feature::ImageType | Feature::Palette | Feature::Quality => &[],
            Feature::Read => &[
                (
                    models.text_detector.is_some(),
                    "the text detector (ppocr-det)",
                ),
                (
                    models.text_recognizer.is_some(),
                    "the text recognizer (ppocr-rec)",
                ),
            ],
            Feature::Caption
            | Feature::DenseCaptions
            | Feature::Tags
            | Feature::Categories
            | Feature::Description => &[
                (
                    models.classifier.is_some(),
                    "the classifier (efficientnet-lite0)",
                ),
                (models.detector.is_some(), "the object detector (centernet)"),
                (
                    models.hierarchy.is_some(),
                    "the WordNet names (wordnet, wordtree)",
                ),
            ],
        };
        let missing: Vec<&str> = required
            .iter()
            .filter_map(|&(present, what)| (!present).then_some(what))
            .collect();
        (!missing.is_empty()).then(|| {
            let verb = if missing.len() > 1 { "are" } else { "is" };
            format!(
                "{} {verb} not installed; run `vista models fetch`",
                missing.join(" and ")
            )
        })
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_parse_case_insensitively_and_round_trip() {
        for feature in Feature::ALL {
            assert_eq!(Feature::parse(feature.name()), Some(feature));
            assert_eq!(
                Feature::parse(&feature.name().to_uppercase()),
                Some(feature)
            );
        }
        assert_eq!(Feature::parse("Objects "), Some(Feature::Objects));
        assert_eq!(Feature::parse("faces"), None);
    }
}
