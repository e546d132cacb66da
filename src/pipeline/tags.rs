//! Tags: readable names for what an image shows, fused from every model that saw it. The classifier's
//! ImageNet probabilities flow up WordNet (tabby + tiger cat → "cat" → "mammal" → "animal"), the
//! detector adds its objects and their parents, the face detector "human face", the text detector
//! "text". A name several sources give is believed more (noisy-OR). The deployment's allow-list and
//! block-list (`TagFilter`) apply to every name derived from tags: tags, objects, captions, categories.

use std::collections::{HashMap, HashSet};

use super::scene::Scene;
use super::PipelineError;
use crate::models::hierarchy::NamedClass;

/// A classifier class is named itself only when this sure: its parents gather the uncertain mass.
const MIN_CLASS_NAME: f32 = 0.25;

/// The chance that a detector label is in the picture, from the detector's score. The detector's
/// scores run low: on the COCO development images a label whose best box scores 0.3-0.4 was right 79%
/// of the time, 0.4-0.5 90%, from 0.5 always; a logistic fit to those rates (slope 13, midpoint 0.27).
pub fn detection_confidence(score: f32) -> f32 {
    1.0 / (1.0 + (-13.0 * (score - 0.27)).exp())
}

/// The scene's tags from the deployment's confidence up, surest first.
pub fn tags(scene: &Scene) -> Result<Vec<Tag>, PipelineError> {
    let min_confidence = scene.settings().min_tag_confidence;
    Ok(scene.names()?.scores.tags(min_confidence))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub name: String,
    pub confidence: f32,
    /// A broader name for a specific one ("tabby" → "cat"), as 3.2 `hint`.
    pub hint: Option<String>,
}

/// What the models found that tags are made from.
#[derive(Debug, Default)]
pub struct TagEvidence<'a> {
    /// The classifier's probability of each class, with the classes' names.
    pub classes: Option<(&'a [f32], &'a [NamedClass])>,
    /// Detected objects: name, confidence, broader names.
    pub objects: Vec<(&'a str, f32, &'a [String])>,
    /// The most confident face, if any.
    pub face: Option<f32>,
    /// How sure the text detector is that the image has text, if it looked.
    pub text: Option<f32>,
    /// Names a CLIP scored zero-shot, with their probability (empty without a CLIP).
    pub zero_shot: Vec<(String, f32)>,
}

/// Every candidate name with its fused confidence (before thresholds), the input of tags, captions
/// and categories.
#[derive(Debug, Clone, Default)]
pub struct TagScores {
    scores: HashMap<String, f32>,
    hints: HashMap<String, String>,
}

impl TagScores {
    pub fn fuse(evidence: &TagEvidence, filter: &TagFilter) -> Self {
        let mut sources: HashMap<String, Vec<f32>> = HashMap::new();
        let mut hints = HashMap::new();
        let mut add = |name: &str, confidence: f32| {
            if confidence > 0.0 {
                sources
                    .entry(name.to_string())
                    .or_default()
                    .push(confidence);
            }
        };
        if let Some((probabilities, classes)) = evidence.classes {
            // Each name gets the mass of every class under it; a class counts once per name.
            let mut mass: HashMap<&str, f32> = HashMap::new();
            for (p, class) in probabilities.iter().zip(classes) {
                let mut names: Vec<&str> = class.parents.iter().map(String::as_str).collect();
                if *p >= MIN_CLASS_NAME {
                    names.push(&class.name);
                    if let Some(parent) = class.parents.first() {
                        hints.insert(class.name.clone(), parent.clone());
                    }
                }
                names.sort_unstable();
                names.dedup();
                for name in names {
                    *mass.entry(name).or_default() += p;
                }
            }
            for (name, p) in mass {
                add(name, p.min(1.0));
            }
        }
        // A detector's label is one source however many boxes carry it: its best box.
        let mut best: HashMap<&str, f32> = HashMap::new();
        for (label, confidence, parents) in &evidence.objects {
            for name in std::iter::once(*label).chain(parents.iter().map(String::as_str)) {
                let entry = best.entry(name).or_default();
                *entry = entry.max(*confidence);
            }
        }
        for (name, confidence) in best {
            add(name, confidence);
        }
        if let Some(face) = evidence.face {
            add("human face", face);
        }
        if let Some(text) = evidence.text {
            add("text", text);
        }
        for (name, probability) in &evidence.zero_shot {
            add(name, *probability);
        }
        let scores = sources
            .into_iter()
            .filter(|(name, _)| filter.permits(name))
            .map(|(name, confidences)| {
                let missed: f32 = confidences
                    .iter()
                    .map(|c| 1.0 - c.clamp(0.0, 1.0))
                    .product();
                (name, 1.0 - missed)
            })
            .collect();
        TagScores { scores, hints }
    }

    /// How sure the image shows `name` (0 when nothing named it).
    pub fn score(&self, name: &str) -> f32 {
        self.scores.get(name).copied().unwrap_or(0.0)
    }

    /// The names at or above `min_confidence`, most confident first (ties by name, so stable).
    pub fn tags(&self, min_confidence: f32) -> Vec<Tag> {
        let mut tags: Vec<Tag> = self
            .scores
            .iter()
            .filter(|(_, c)| **c >= min_confidence)
            .map(|(name, c)| Tag {
                name: name.clone(),
                confidence: *c,
                hint: self.hints.get(name).cloned(),
            })
            .collect();
        tags.sort_by(|a, b| {
            b.confidence
                .total_cmp(&a.confidence)
                .then(a.name.cmp(&b.name))
        });
        tags
    }
}

/// The deployment's tag vocabulary rules: with an allow-list only its names are used; names on the
/// block-list never are, alone or inside a longer name. Names compare case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    allow: Option<HashSet<String>>,
    block: HashSet<String>,
}

impl TagFilter {
    pub fn new(allow: Option<Vec<String>>, block: Vec<String>) -> Self {
        let normalise = |names: Vec<String>| -> HashSet<String> {
            names
                .into_iter()
                .map(|n| n.trim().to_lowercase())
                .filter(|n| !n.is_empty())
                .collect()
        };
        TagFilter {
            allow: allow.map(normalise),
            block: normalise(block),
        }
    }

    /// Reads a list file: one name per line; blank lines and `#` comments are skipped.
    pub fn read_list(text: &str) -> Vec<String> {
        text.lines()
            .map(|line| line.split('#').next().unwrap_or("").trim().to_string())
            .filter(|line| !line.is_empty())
            .collect()
    }

    /// Whether `name` may be used. A blocked name is also refused inside a longer one, word for word
    /// ("cat" blocks "egyptian cat", not "catamaran").
    pub fn permits(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        let padded = format!(" {name} ");
        let blocked = self
            .block
            .iter()
            .any(|b| padded.contains(&format!(" {b} ")));
        !blocked
            && self
                .allow
                .as_ref()
                .is_none_or(|allow| allow.contains(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, parents: &[&str]) -> NamedClass {
        NamedClass {
            name: name.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn names(tags: &[Tag]) -> Vec<&str> {
        tags.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn class_mass_flows_up_to_shared_parents() {
        let classes = [
            class("tabby", &["cat", "mammal", "animal"]),
            class("tiger cat", &["cat", "mammal", "animal"]),
            class("beagle", &["dog", "mammal", "animal"]),
            class("espresso", &["coffee", "drink"]),
        ];
        let p = [0.4, 0.3, 0.2, 0.1];
        let evidence = TagEvidence {
            classes: Some((&p, &classes)),
            ..Default::default()
        };
        let scores = TagScores::fuse(&evidence, &TagFilter::default());
        assert!((scores.score("cat") - 0.7).abs() < 1e-6);
        assert!((scores.score("animal") - 0.9).abs() < 1e-6);
        // Only a sure class is named itself; "tiger cat" (0.3) is, "beagle" (0.2) is not.
        assert!(scores.score("tiger cat") > 0.0 && scores.score("beagle") == 0.0);
        let tags = scores.tags(0.5);
        assert_eq!(names(&tags), ["animal", "mammal", "cat"]);
        assert_eq!(
            scores.tags(0.35)[3].hint.as_deref(),
            Some("cat"),
            "tabby hints at cat"
        );
    }

    #[test]
    fn sources_agreeing_raise_confidence_and_names_stay_unique() {
        let classes = [class("tabby", &["cat", "animal"])];
        let p = [0.6];
        let parents = vec!["animal".to_string()];
        let evidence = TagEvidence {
            classes: Some((&p, &classes)),
            objects: vec![
                ("cat", 0.5, &parents),
                ("cat", 0.8, &parents),
                ("person", 0.9, &[]),
            ],
            face: Some(0.7),
            text: Some(0.6),
            zero_shot: vec![("tabby".into(), 0.5)],
        };
        let tags = TagScores::fuse(&evidence, &TagFilter::default()).tags(0.0);
        let cat = tags.iter().find(|t| t.name == "cat").unwrap();
        let tabby = tags.iter().find(|t| t.name == "tabby").unwrap();
        // The classifier (0.6) and a CLIP (0.5) agree: 1 - 0.4 × 0.5.
        assert!((tabby.confidence - 0.8).abs() < 1e-6);
        // 1 - (1 - 0.6)(1 - 0.8): the best box counts once, not each box.
        assert!((cat.confidence - 0.92).abs() < 1e-6);
        let mut unique = names(&tags);
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), tags.len());
        for name in ["person", "human face", "text", "tabby", "animal"] {
            assert!(tags.iter().any(|t| t.name == name), "{name} missing");
        }
    }

    #[test]
    fn detector_scores_are_raised_to_the_rate_they_are_right() {
        assert!(detection_confidence(0.15) < 0.25);
        assert!((detection_confidence(0.27) - 0.5).abs() < 1e-6);
        assert!(detection_confidence(0.5) > 0.9);
        assert!(detection_confidence(0.35) < detection_confidence(0.36));
    }

    #[test]
    fn the_filter_blocks_and_allows_names_in_any_case() {
        let block = TagFilter::new(None, vec!["Person".into()]);
        assert!(!block.permits("person") && block.permits("cat"));
        let cat = TagFilter::new(None, vec!["cat".into()]);
        assert!(!cat.permits("Egyptian cat") && cat.permits("catamaran"));
        let allow = TagFilter::new(Some(vec!["cat".into(), " dog ".into()]), vec!["dog".into()]);
        assert!(allow.permits("CAT") && !allow.permits("dog") && !allow.permits("person"));
        let evidence = TagEvidence {
            objects: vec![("person", 0.9, &[]), ("cat", 0.9, &[])],
            ..Default::default()
        };
        assert_eq!(
            names(&TagScores::fuse(&evidence, &block).tags(0.0)),
            ["cat"]
        );
        assert_eq!(
            TagFilter::read_list("cat # pets\n\n# comment\n dog\n"),
            ["cat", "dog"]
        );
    }
}
