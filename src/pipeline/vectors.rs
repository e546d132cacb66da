//! Search vectors without an image-text model: an image is described in words (its caption and its
//! tags, surest first) and that description is what the text encoder embeds. A text query then lands
//! near the images whose description says what it asks for, in any language the encoder knows.

use super::{Analysis, Feature};

/// The default vector model: images described in words (caption and tags), embedded with
/// multilingual-e5-small, as are queries, with e5's common direction removed (version 2); version 1
/// is the same without that, when the pack lacks the centre.
pub const E5_MODEL_VERSION: &str = "vista-e5-small-tags-2";
pub const E5_UNCENTRED_MODEL_VERSION: &str = "vista-e5-small-tags-1";

/// The features whose words describe an image for its search vector (without a CLIP).
pub const IMAGE_WORDS: [Feature; 2] = [Feature::Caption, Feature::Tags];

/// The manifest tasks of the models that make search vectors: the text encoder and its centre, or a
/// CLIP a user brought (with its vocabulary).
pub const VECTOR_TASKS: [&str; 5] = [
    "text-embedding",
    "text-embedding-centre",
    "clip-visual",
    "clip-textual",
    "clip-vocabulary",
];

/// Tags the description names, at most (the strongest carry the meaning; a long tail adds noise).
const MAX_TAGS: usize = 12;

/// "a photo of two people at a table, with person, dining table, furniture, human face": phrased the
/// way people search ("a photo of a dog"), which on the COCO development images found the right class
/// first three to five times as often as "caption. tags" did (e5 passages share a strong common
/// direction; wording close to the queries' stands out from it).
pub fn image_passage(analysis: &Analysis) -> String {
    let caption = analysis
        .captions
        .as_ref()
        .and_then(|c| c.first())
        .map_or("", |c| c.text.as_str());
    let tags: Vec<&str> = analysis
        .tags
        .iter()
        .flatten()
        .take(MAX_TAGS)
        .map(|t| t.name.as_str())
        .collect();
    format!("a photo of {caption}, with {}", tags.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::caption::Caption;
    use crate::pipeline::tags::Tag;

    #[test]
    fn the_passage_is_the_caption_then_the_tags_in_order() {
        let mut analysis = Analysis::new(10, 10, image::ImageFormat::Png);
        analysis.captions = Some(vec![Caption {
            text: "a cat on a bed".into(),
            confidence: 0.8,
        }]);
        analysis.tags = Some(
            ["cat", "bed", "animal"]
                .iter()
                .map(|n| Tag {
                    name: n.to_string(),
                    confidence: 0.9,
                    hint: None,
                })
                .collect(),
        );
        assert_eq!(
            image_passage(&analysis),
            "a photo of a cat on a bed, with cat, bed, animal"
        );
    }
}
