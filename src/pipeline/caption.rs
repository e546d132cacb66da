//! Captions made of grounded facts only: who and what the detector found (how many, how large, where),
//! the classifier's surest class, and the place it recognises. No captioning model exists in any
//! registry package, so these are composed sentences ("two people at a table with a laptop"), never
//! guesses: nothing names a gender, an action no model saw, or an object no model found.

use std::collections::HashMap;

use image::RgbImage;

use super::color::{self, ColorName};
use super::image_type::{self, Signals};
use super::scene::Scene;
use super::PipelineError;
use crate::geometry::PixelRect;

/// A detection is worth a caption from this confidence (the chance it is right).
pub const MIN_CAPTION_CONFIDENCE: f32 = 0.5;
/// The classifier's class is named from this probability.
const MIN_CLASS_PROBABILITY: f32 = 0.25;
/// A tag ends a caption ("a picture of a cat") only from this confidence: below it, an all-black image
/// was "a picture of an animal".
const MIN_TAG_CONFIDENCE: f32 = 0.5;
/// Dense captions: the whole image, then at most this many regions.
pub const MAX_REGIONS: usize = 9;
const MAX_COUNT_WORD: usize = 4;

/// One detected thing (a person is one too, labelled "person").
#[derive(Debug, Clone, PartialEq)]
pub struct Thing {
    pub label: String,
    pub rect: PixelRect,
    pub confidence: f32,
}

/// What a caption may say about an image.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub width: u32,
    pub height: u32,
    /// Detections already filtered by the deployment's tag rules.
    pub things: Vec<Thing>,
    /// The classifier's surest class and its probability, if it may be named.
    pub class: Option<(String, f32)>,
    /// The most confident tag, the last resort of a caption.
    pub top_tag: Option<(String, f32)>,
    /// What the pixels and the text on them show, when that is all there is to say.
    pub look: Option<(Look, f32)>,
}

/// What an image is, told from measurements rather than a model's classes: a classifier trained on
/// photos names a printed page "a food" and a black frame "an animal".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Look {
    /// One colour all over.
    Plain(ColorName),
    /// Lines of text on a light ground, and little else.
    PageOfText,
    /// Text on a light ground with pictures or colour besides.
    Document,
    /// Text on flat panels of colour: an application's window.
    Screenshot,
}

impl Look {
    fn phrase(self) -> String {
        match self {
            Look::Plain(colour) => {
                format!("a {} background", colour.as_str().to_ascii_lowercase())
            }
            Look::PageOfText => "a page of text".into(),
            Look::Document => "a document".into(),
            Look::Screenshot => "a screenshot".into(),
        }
    }
}

/// The text an image shows, as the text detector found it on a small copy.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TextCoverage {
    pub regions: usize,
    /// Share of the image the regions cover.
    pub share: f32,
}

/// Text makes an image a text image when it is many regions over a fair share of it, or a few over a
/// large share: a page of three printed lines has them over 40% of it; a photo with a sign or two has
/// 1 to 3 regions over a few percent.
const TEXT_IMAGE: [(usize, f32); 2] = [(5, 0.08), (3, 0.15)];

/// What an image is when its pixels say so (see [`Look`]), with how sure that is.
pub fn look(signals: &Signals, mean: [u8; 3], text: TextCoverage) -> Option<(Look, f32)> {
    if signals.flat_share >= 0.97 && signals.top_colors_share >= 0.99 {
        return Some((Look::Plain(color::name(mean)), signals.flat_share));
    }
    if !TEXT_IMAGE
        .iter()
        .any(|&(regions, share)| text.regions >= regions && text.share >= share)
    {
        return None;
    }
    let sure = (text.share / 0.15).min(1.0);
    let light_ground = signals.light_share >= 0.6;
    // An application's window: flat, with coloured bars or dark panels beside its text.
    let panels = signals.colorful_share >= 0.03 || signals.dark_share >= 0.15;
    if signals.flat_share >= 0.6 && signals.top_colors_share >= 0.6 && panels {
        Some((Look::Screenshot, sure * signals.flat_share))
    } else if light_ground && signals.colorful_share < 0.05 {
        Some((Look::PageOfText, sure))
    } else if light_ground {
        Some((Look::Document, sure * signals.light_share))
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub text: String,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DenseCaption {
    pub text: String,
    pub confidence: f32,
    pub rect: PixelRect,
}

/// Things of one label, the unit a sentence counts.
#[derive(Debug, Clone)]
struct Group<'a> {
    label: &'a str,
    /// How many are surely there (at least one).
    count: usize,
    confidence: f32,
    /// Share of the image the group covers, summed over its boxes.
    area: f32,
    rects: Vec<PixelRect>,
}

/// A thing is counted from this confidence: a sentence says "two people" only of people surely there.
const COUNT_CONFIDENCE: f32 = 0.6;
/// A person rides, sits at or holds a thing only when their boxes overlap by this share of the
/// smaller one.
const TOUCHING: f32 = 0.2;

/// ImageNet classes that name a place, with the phrase that puts a subject in it.
const PLACES: [(&str, &str); 24] = [
    ("alp", "in the mountains"),
    ("valley", "in a valley"),
    ("volcano", "near a volcano"),
    ("cliff", "on a cliff"),
    ("seashore", "on a beach"),
    ("sandbar", "on a beach"),
    ("lakeside", "by a lake"),
    ("promontory", "by the sea"),
    ("coral reef", "under water"),
    ("restaurant", "in a restaurant"),
    ("grocery store", "in a grocery store"),
    ("library", "in a library"),
    ("bakery", "in a bakery"),
    ("barbershop", "in a barber shop"),
    ("bookshop", "in a book shop"),
    ("butcher shop", "in a butcher shop"),
    ("toyshop", "in a toy shop"),
    ("shoe shop", "in a shoe shop"),
    ("confectionery", "in a candy store"),
    ("patio", "on a patio"),
    ("boathouse", "by a boathouse"),
    ("church", "in front of a church"),
    ("ski", "in the snow"),
    ("dock", "at a dock"),
];

/// Things a person rides, sits on or sits at, and how a sentence says so.
fn person_relation(label: &str) -> &'static str {
    match label {
        "bicycle" | "motorcycle" | "horse" | "skateboard" | "surfboard" | "elephant" | "boat" => {
            "riding"
        }
        "skis" | "snowboard" | "bed" | "couch" | "bench" | "chair" | "toilet" => "on",
        "dining table" => "at",
        "cup" | "cell phone" | "umbrella" | "tennis racket" | "baseball bat" | "frisbee"
        | "kite" | "book" | "remote" | "knife" | "fork" | "bottle" | "wine glass"
        | "toothbrush" | "hot dog" | "donut" | "banana" | "sandwich" | "scissors"
        | "teddy bear" => "holding",
        _ => "with",
    }
}

/// Things others stand on in a picture.
fn is_surface(label: &str) -> bool {
    matches!(
        label,
        "dining table" | "bed" | "couch" | "bench" | "chair" | "bowl" | "plate" | "toilet" | "sink"
    )
}

/// The word a sentence uses for a detector label.
fn spoken(label: &str) -> &str {
    match label {
        "dining table" => "table",
        "sports ball" => "ball",
        "tv" => "television",
        "hair drier" => "hair dryer",
        "motorbike" => "motorcycle",
        other => other,
    }
}

/// "a"/"an" by the sound of the word's first letter.
pub fn article(word: &str) -> &'static str {
    let first = word.chars().next().map(|c| c.to_ascii_lowercase());
    let vowel = matches!(first, Some('a' | 'e' | 'i' | 'o'))
        || (first == Some('u') && !word.starts_with("uni") && !word.starts_with("use"));
    if vowel {
        "an"
    } else {
        "a"
    }
}

/// The plural of an English noun phrase (its last word changes).
pub fn plural(phrase: &str) -> String {
    let (head, word) = match phrase.rsplit_once(' ') {
        Some((head, word)) => (format!("{head} "), word),
        None => (String::new(), phrase),
    };
    let word = match word {
        "person" => "people".to_string(),
        "mouse" => "mice".to_string(),
        "sheep" | "skis" | "scissors" | "glasses" | "deer" | "fish" => word.to_string(),
        "knife" => "knives".to_string(),
        w if w.ends_with('s') || w.ends_with('x') || w.ends_with("ch") || w.ends_with("sh") => {
            format!("{w}es")
        }
        w if w.ends_with('y') && !w.ends_with("ay") && !w.ends_with("ey") && !w.ends_with("oy") => {
            format!("{}ies", &w[..w.len() - 1])
        }
        w => format!("{w}s"),
    };
    format!("{head}{word}")
}

/// "a cat", "two cats", "a group of people", "many books".
pub fn counted(noun: &str, count: usize) -> String {
    const WORDS: [&str; 5] = ["no", "one", "two", "three", "four"];
    match count {
        0 | 1 => format!("{} {noun}", article(noun)),
        n if n <= MAX_COUNT_WORD => format!("{} {}", WORDS[n], plural(noun)),
        _ if noun == "person" => "a group of people".to_string(),
        _ => format!("many {}", plural(noun)),
    }
}

fn groups(facts: &Facts) -> Vec<Group<'_>> {
    let image_area = (facts.width as f32 * facts.height as f32).max(1.0);
    let mut groups: Vec<Group> = Vec::new();
    for thing in facts
        .things
        .iter()
        .filter(|t| t.confidence >= MIN_CAPTION_CONFIDENCE)
    {
        let area = thing.rect.w as f32 * thing.rect.h as f32 / image_area;
        let sure = (thing.confidence >= COUNT_CONFIDENCE) as usize;
        match groups.iter_mut().find(|g| g.label == thing.label) {
            Some(group) => {
                group.count += sure;
                group.confidence = group.confidence.max(thing.confidence);
                group.area += area;
                group.rects.push(thing.rect);
            }
            None => groups.push(Group {
                label: &thing.label,
                count: sure,
                confidence: thing.confidence,
                area,
                rects: vec![thing.rect],
            }),
        }
    }
    for group in &mut groups {
        group.count = group.count.max(1);
    }
    // People lead, surfaces (tables, beds) come last: they are where things are; otherwise what
    // covers most of the picture, surely.
    let rank = |g: &Group| (g.label == "person") as u8 * 2 + !is_surface(g.label) as u8;
    groups.sort_by(|a, b| {
        rank(b)
            .cmp(&rank(a))
            .then((b.area.sqrt() * b.confidence).total_cmp(&(a.area.sqrt() * a.confidence)))
    });
    groups
}

fn geometric_mean(values: &[f32]) -> f32 {
    let logs: f32 = values.iter().map(|v| v.max(1e-3).ln()).sum();
    (logs / values.len().max(1) as f32).exp()
}

/// The scene's caption candidates, the best first (see [`compose`]).
pub fn captions(scene: &Scene) -> Result<Vec<Caption>, PipelineError> {
    Ok(compose(&facts(scene)?))
}

/// The scene's dense captions: the whole image's best caption, then its regions'.
pub fn dense_captions(scene: &Scene) -> Result<Vec<DenseCaption>, PipelineError> {
    let facts = facts(scene)?;
    let caption = compose(&facts).remove(0);
    Ok(compose_dense(scene.image(), &facts, &caption))
}

/// What a caption may say about the scene.
fn facts(scene: &Scene) -> Result<Facts, PipelineError> {
    let (width, height) = scene.dimensions();
    let names = scene.names()?;
    let filter = scene.tag_filter();
    let imagenet = scene
        .models()
        .hierarchy
        .as_ref()
        .map_or(&[][..], |h| h.imagenet());
    let class = scene
        .class_probabilities()?
        .iter()
        .zip(imagenet)
        .max_by(|a, b| a.0.total_cmp(b.0))
        .map(|(p, class)| (class.name.clone(), *p))
        .filter(|(name, _)| filter.permits(name));
    let top_tag = names
        .scores
        .tags(0.0)
        .into_iter()
        .find(|t| t.name != "text" && t.name != "human face")
        .map(|t| (t.name, t.confidence));
    let grid = scene.statistics_grid()?;
    let text = scene.text_presence()?.map(|p| p.coverage);
    Ok(Facts {
        width,
        height,
        things: names.things.clone(),
        class,
        top_tag,
        look: look(
            &image_type::signals(grid),
            mean_colour(grid),
            text.unwrap_or_default(),
        ),
    })
}

/// The mean colour of a statistics grid.
fn mean_colour(grid: &RgbImage) -> [u8; 3] {
    let n = (grid.width() * grid.height()).max(1) as u64;
    let sum = grid.pixels().fold([0u64; 3], |acc, p| {
        [0, 1, 2].map(|i| acc[i] + u64::from(p.0[i]))
    });
    sum.map(|total| (total / n) as u8)
}

/// Candidate captions, the fullest first; each names fewer facts and is less sure than the last
/// only when it drops a doubtful one. Never empty. A plain image is its colour, and an image of text
/// is "a page of text", "a document" or "a screenshot" unless something large is surely on it.
pub fn compose(facts: &Facts) -> Vec<Caption> {
    if let Some((look, confidence)) = facts
        .look
        .filter(|(look, _)| matches!(look, Look::Plain(_)) || !has_large_subject(facts))
    {
        return vec![Caption {
            text: look.phrase(),
            confidence,
        }];
    }
    let groups = groups(facts);
    let place = facts.class.as_ref().and_then(|(class, p)| {
        PLACES
            .iter()
            .find(|(name, _)| name == class)
            .map(|(_, phrase)| (*phrase, *p))
    });
    let mut candidates = Vec::new();
    if let Some(subject) = groups.first() {
        let mut sentence = counted(spoken(subject.label), subject.count);
        let mut evidence = vec![subject.confidence];
        let simple = Caption {
            text: sentence.clone(),
            confidence: subject.confidence,
        };
        // A person's sentence names what they ride, sit on or hold (a thing touching them) before
        // what is merely there.
        let touches = |g: &Group| {
            subject.label == "person"
                && g.rects.iter().any(|r| {
                    subject
                        .rects
                        .iter()
                        .any(|p| covered(r, p).max(covered(p, r)) >= TOUCHING)
                })
        };
        let related = |g: &&Group| touches(g) && person_relation(g.label) != "with";
        let other = groups[1..].iter().find(related).or(groups.get(1));
        if let Some(other) = other {
            let object = format!("{} {}", article(spoken(other.label)), spoken(other.label));
            let relation = if touches(other) {
                person_relation(other.label)
            } else if subject.label == "person" {
                "with"
            } else if is_surface(other.label) {
                "on"
            } else {
                "next to"
            };
            sentence = format!("{sentence} {relation} {object}");
            evidence.push(other.confidence);
            // A third thing joins with "and" when it is surely there.
            let third = groups[1..]
                .iter()
                .find(|g| g.label != other.label && g.confidence >= 0.8);
            if let Some(third) = third {
                let noun = spoken(third.label);
                sentence = format!("{sentence} and {}", counted(noun, third.count));
                evidence.push(third.confidence);
            }
        }
        if let Some((phrase, p)) = place {
            sentence = format!("{sentence} {phrase}");
            evidence.push(p);
        }
        candidates.push(Caption {
            text: sentence,
            confidence: geometric_mean(&evidence),
        });
        candidates.push(simple);
    }
    if let Some((class, p)) = facts
        .class
        .as_ref()
        .filter(|(_, p)| *p >= MIN_CLASS_PROBABILITY)
    {
        if place.is_none() {
            candidates.push(Caption {
                text: format!("a close up of {} {class}", article(class)),
                confidence: *p,
            });
        }
    }
    // The last resort: a tag names what no sentence could.
    if let Some((tag, confidence)) = facts
        .top_tag
        .as_ref()
        .filter(|(_, confidence)| *confidence >= MIN_TAG_CONFIDENCE && candidates.is_empty())
    {
        candidates.push(Caption {
            text: format!("a picture of {} {tag}", article(tag)),
            confidence: *confidence,
        });
    }
    if candidates.is_empty() {
        // Nothing any model recognised: say only that much, with no confidence in more.
        candidates.push(Caption {
            text: "an image".into(),
            confidence: 0.0,
        });
    }
    let mut seen = Vec::new();
    candidates.retain(|c| {
        let new = !seen.contains(&c.text);
        seen.push(c.text.clone());
        new
    });
    candidates
}

/// Whether a thing surely there covers a fifth of the image or more: a photo on a page, a person in
/// a video call, which the caption names before the text around it.
fn has_large_subject(facts: &Facts) -> bool {
    let area = (facts.width as f32 * facts.height as f32).max(1.0);
    facts.things.iter().any(|t| {
        t.confidence >= COUNT_CONFIDENCE && (t.rect.w as f32 * t.rect.h as f32) / area >= 0.2
    })
}

/// The part of `outer` that `inner` covers, as a share of `inner`.
fn covered(inner: &PixelRect, outer: &PixelRect) -> f32 {
    let w = (inner.x + inner.w).min(outer.x + outer.w) as i64 - inner.x.max(outer.x) as i64;
    let h = (inner.y + inner.h).min(outer.y + outer.h) as i64 - inner.y.max(outer.y) as i64;
    let area = (inner.w as f32 * inner.h as f32).max(1.0);
    (w.max(0) * h.max(0)) as f32 / area
}

/// The colour of the middle of a region (its edges are mostly background).
fn region_colour(image: &RgbImage, rect: &PixelRect) -> Option<ColorName> {
    let (x0, y0) = (rect.x + rect.w / 4, rect.y + rect.h / 4);
    let (x1, y1) = (
        (rect.x + 3 * rect.w / 4).min(image.width()),
        (rect.y + 3 * rect.h / 4).min(image.height()),
    );
    let step = ((x1.saturating_sub(x0)).max(y1.saturating_sub(y0)) / 32).max(1);
    let mut counts: HashMap<ColorName, usize> = HashMap::new();
    let mut total = 0;
    for y in (y0..y1).step_by(step as usize) {
        for x in (x0..x1).step_by(step as usize) {
            *counts
                .entry(color::name(image.get_pixel(x, y).0))
                .or_default() += 1;
            total += 1;
        }
    }
    // Named only when one colour clearly dominates the middle.
    counts
        .into_iter()
        .max_by_key(|(name, n)| (*n, *name))
        .filter(|(_, n)| *n * 2 > total)
        .map(|(name, _)| name)
}

fn colour_word(name: ColorName) -> String {
    match name {
        ColorName::Grey => "gray".into(),
        other => other.as_str().to_lowercase(),
    }
}

/// Labels a colour describes well (not people, animals or food, whose colour is their own).
fn has_telling_colour(label: &str) -> bool {
    matches!(
        label,
        "bicycle"
            | "car"
            | "motorcycle"
            | "airplane"
            | "bus"
            | "train"
            | "truck"
            | "boat"
            | "fire hydrant"
            | "umbrella"
            | "handbag"
            | "tie"
            | "suitcase"
            | "frisbee"
            | "kite"
            | "surfboard"
            | "skateboard"
            | "bottle"
            | "cup"
            | "chair"
            | "couch"
            | "bed"
            | "backpack"
            | "vase"
            | "book"
            | "toothbrush"
            | "teddy bear"
            | "bench"
    )
}

/// A short phrase for one detected thing, in the light of the others around it.
fn region_phrase(image: &RgbImage, thing: &Thing, others: &[&Thing]) -> String {
    let noun = spoken(&thing.label);
    if thing.label == "person" {
        // What the person holds or rides: a sure thing mostly inside the person's box.
        let companion = others
            .iter()
            .filter(|o| o.label != "person" && o.confidence >= MIN_CAPTION_CONFIDENCE)
            .filter(|o| covered(&o.rect, &thing.rect) >= 0.5)
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
        return match companion {
            Some(other) => {
                let object = spoken(&other.label);
                format!(
                    "a person {} {} {object}",
                    person_relation(&other.label),
                    article(object)
                )
            }
            None => "a person".into(),
        };
    }
    match region_colour(image, &thing.rect).filter(|_| has_telling_colour(&thing.label)) {
        Some(colour) => {
            let colour = colour_word(colour);
            format!("{} {colour} {noun}", article(&colour))
        }
        None => format!("{} {noun}", article(noun)),
    }
}

/// The whole image first (the caption), then up to nine regions, surest first, each box once.
pub fn compose_dense(image: &RgbImage, facts: &Facts, caption: &Caption) -> Vec<DenseCaption> {
    let whole = PixelRect {
        x: 0,
        y: 0,
        w: facts.width,
        h: facts.height,
    };
    let mut regions = vec![DenseCaption {
        text: caption.text.clone(),
        confidence: caption.confidence,
        rect: whole,
    }];
    let mut things: Vec<&Thing> = facts
        .things
        .iter()
        .filter(|t| t.confidence >= MIN_CAPTION_CONFIDENCE && t.rect.w > 0 && t.rect.h > 0)
        .collect();
    things.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    for thing in &things {
        if regions.len() > MAX_REGIONS {
            break;
        }
        if regions.iter().any(|r| r.rect == thing.rect) {
            continue;
        }
        regions.push(DenseCaption {
            text: region_phrase(image, thing, &things),
            confidence: thing.confidence,
            rect: thing.rect,
        });
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thing(label: &str, x: u32, y: u32, w: u32, h: u32, confidence: f32) -> Thing {
        Thing {
            label: label.into(),
            rect: PixelRect { x, y, w, h },
            confidence,
        }
    }

    fn facts(things: Vec<Thing>) -> Facts {
        Facts {
            width: 640,
            height: 480,
            things,
            ..Default::default()
        }
    }

    fn signals(flat: f32, top: f32, light: f32, dark: f32, colourful: f32) -> Signals {
        Signals {
            top_colors_share: top,
            flat_share: flat,
            light_share: light,
            dark_share: dark,
            colorful_share: colourful,
        }
    }

    #[test]
    fn pages_screens_and_plain_images_are_told_from_their_pixels_and_text() {
        let lines = |regions, share| TextCoverage { regions, share };
        let plain = signals(1.0, 1.0, 0.0, 1.0, 0.0);
        assert_eq!(
            look(&plain, [0, 0, 0], lines(0, 0.0)),
            Some((Look::Plain(ColorName::Black), 1.0))
        );
        let page = signals(0.9, 0.95, 0.9, 0.05, 0.0);
        assert_eq!(
            look(&page, [240; 3], lines(3, 0.4)).unwrap().0,
            Look::PageOfText
        );
        assert_eq!(
            look(&page, [240; 3], lines(2, 0.4)),
            None,
            "two lines are a sign"
        );
        assert_eq!(
            look(&page, [240; 3], lines(6, 0.05)),
            None,
            "text must cover enough"
        );
        let window = signals(0.85, 0.8, 0.7, 0.2, 0.06);
        assert_eq!(
            look(&window, [200; 3], lines(12, 0.2)).unwrap().0,
            Look::Screenshot
        );
        let brochure = signals(0.3, 0.3, 0.7, 0.1, 0.2);
        assert_eq!(
            look(&brochure, [200; 3], lines(8, 0.2)).unwrap().0,
            Look::Document
        );
        let photo = signals(0.2, 0.2, 0.2, 0.3, 0.5);
        assert_eq!(look(&photo, [90; 3], lines(8, 0.2)), None);
    }

    #[test]
    fn a_look_replaces_weak_guesses_but_not_a_large_sure_subject() {
        let mut page = facts(vec![]);
        page.class = Some(("pill bottle".into(), 0.3));
        page.look = Some((Look::Document, 0.8));
        assert_eq!(compose(&page)[0].text, "a document");
        let mut call = facts(vec![thing("person", 100, 100, 300, 300, 0.9)]);
        call.look = Some((Look::Screenshot, 0.8));
        assert_eq!(compose(&call)[0].text, "a person");
        let mut weak = facts(vec![]);
        weak.top_tag = Some(("animal".into(), 0.25));
        assert_eq!(
            compose(&weak)[0].text,
            "an image",
            "a weak tag is not named"
        );
    }

    #[test]
    fn articles_plurals_and_counts_are_english() {
        assert_eq!(article("apple"), "an");
        assert_eq!(article("umbrella"), "an");
        assert_eq!(article("unicycle"), "a");
        assert_eq!(article("cat"), "a");
        assert_eq!(plural("bus"), "buses");
        assert_eq!(plural("wine glass"), "wine glasses");
        assert_eq!(plural("teddy bear"), "teddy bears");
        assert_eq!(plural("knife"), "knives");
        assert_eq!(plural("person"), "people");
        assert_eq!(plural("sheep"), "sheep");
        assert_eq!(plural("toy"), "toys");
        assert_eq!(plural("strawberry"), "strawberries");
        assert_eq!(counted("person", 1), "a person");
        assert_eq!(counted("person", 2), "two people");
        assert_eq!(counted("person", 7), "a group of people");
        assert_eq!(counted("orange", 1), "an orange");
        assert_eq!(counted("book", 12), "many books");
    }

    #[test]
    fn people_lead_and_relate_to_the_largest_other_thing() {
        let scene = facts(vec![
            thing("person", 10, 10, 200, 400, 0.9),
            thing("person", 300, 10, 200, 400, 0.8),
            thing("dining table", 0, 300, 640, 180, 0.7),
            thing("laptop", 250, 250, 100, 60, 0.4),
        ]);
        let captions = compose(&scene);
        // The laptop is below the caption's confidence floor: it is not mentioned.
        assert_eq!(captions[0].text, "two people at a table");
        assert_eq!(captions[1].text, "two people");
        assert!(captions[0].confidence < 0.9 && captions[0].confidence > 0.7);
    }

    #[test]
    fn relations_need_touching_boxes_and_counts_need_sure_things() {
        let far = facts(vec![
            thing("person", 10, 10, 100, 300, 0.9),
            thing("person", 400, 10, 100, 300, 0.55),
            thing("cup", 550, 400, 40, 40, 0.8),
        ]);
        // The second person is likely there but not sure enough to count; the cup is out of reach.
        assert_eq!(compose(&far)[0].text, "a person with a cup");
        let near = facts(vec![
            thing("person", 10, 10, 100, 300, 0.9),
            thing("cup", 60, 150, 40, 40, 0.8),
        ]);
        assert_eq!(compose(&near)[0].text, "a person holding a cup");
    }

    #[test]
    fn objects_rest_on_surfaces_and_places_are_named() {
        let mut scene = facts(vec![
            thing("pizza", 100, 100, 300, 200, 0.9),
            thing("dining table", 0, 50, 640, 430, 0.6),
        ]);
        assert_eq!(compose(&scene)[0].text, "a pizza on a table");
        scene.class = Some(("restaurant".into(), 0.5));
        assert_eq!(
            compose(&scene)[0].text,
            "a pizza on a table in a restaurant"
        );
    }

    #[test]
    fn without_detections_the_class_or_the_top_tag_speaks() {
        let mut scene = facts(vec![]);
        scene.class = Some(("airliner".into(), 0.6));
        scene.top_tag = Some(("airplane".into(), 0.7));
        let texts: Vec<String> = compose(&scene).into_iter().map(|c| c.text).collect();
        assert_eq!(
            texts,
            ["a close up of an airliner"],
            "the tag is the last resort"
        );
        scene.class = None;
        assert_eq!(compose(&scene)[0].text, "a picture of an airplane");
        assert_eq!(compose(&facts(vec![]))[0].text, "an image");
        assert_eq!(compose(&facts(vec![]))[0].confidence, 0.0);
    }

    #[test]
    fn dense_captions_start_with_the_whole_image_and_never_repeat_a_box() {
        let mut image = RgbImage::from_pixel(640, 480, image::Rgb([250, 250, 250]));
        for y in 200..300 {
            for x in 400..600 {
                image.put_pixel(x, y, image::Rgb([200, 20, 20]));
            }
        }
        let scene = facts(vec![
            thing("person", 10, 10, 200, 400, 0.9),
            thing("cup", 50, 150, 40, 40, 0.8),
            thing("car", 400, 200, 200, 100, 0.7),
            thing("car", 400, 200, 200, 100, 0.6),
        ]);
        let caption = compose(&scene).remove(0);
        let dense = compose_dense(&image, &scene, &caption);
        assert_eq!(dense[0].text, caption.text);
        assert_eq!((dense[0].rect.w, dense[0].rect.h), (640, 480));
        let texts: Vec<&str> = dense.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(
            texts[1..],
            ["a person holding a cup", "a white cup", "a red car"]
        );
    }
}
