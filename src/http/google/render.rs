//! Renders the pipeline's protocol-neutral results as Google's `AnnotateImageResponse` sections.
//! proto3 JSON rules: lowerCamel names, fields at their default value left out (so an UNKNOWN
//! likelihood is an absent field), enums as names unless the client asked for numbers.

use serde_json::{json, Map, Value};

use crate::geometry::{BoundingBox, PixelRect, Quad};
use crate::pipeline::adult::AdultRating;
use crate::pipeline::palette::ColorShare;
use crate::pipeline::read::PageText;
use crate::pipeline::smart_crop::CropRegion;
use crate::pipeline::tags::Tag;
use crate::pipeline::{DetectedFace, DetectedObject};

/// How enums are written, and the settings rendering needs.
#[derive(Debug, Clone, Copy)]
pub struct Wire {
    /// `$alt=json;enum-encoding=int`: enums as numbers.
    pub ints: bool,
    /// Score limits of the Likelihood buckets VERY_UNLIKELY..VERY_LIKELY.
    pub likelihood: [f32; 4],
}

/// The default Likelihood limits: VERY_UNLIKELY < 0.1 <= UNLIKELY < 0.3 <= POSSIBLE < 0.6 <= LIKELY
/// < 0.85 <= VERY_LIKELY.
pub const LIKELIHOOD_LIMITS: [f32; 4] = [0.1, 0.3, 0.6, 0.85];

const LIKELIHOODS: [&str; 5] = [
    "VERY_UNLIKELY",
    "UNLIKELY",
    "POSSIBLE",
    "LIKELY",
    "VERY_LIKELY",
];

impl Wire {
    fn enumerated(&self, name: &str, number: i32) -> Value {
        if self.ints {
            json!(number)
        } else {
            json!(name)
        }
    }

    /// The Likelihood of a score p in [0, 1].
    pub fn likelihood(&self, p: f32) -> Value {
        let bucket = self.likelihood.iter().filter(|&&limit| p >= limit).count();
        self.enumerated(LIKELIHOODS[bucket], bucket as i32 + 1)
    }
}

/// Drops fields at their proto3 default (0, "", false, empty lists), recursively. Empty messages
/// stay: a present message means its feature ran.
pub fn without_defaults(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !is_default(v))
                .map(|(k, v)| (k, without_defaults(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_defaults).collect()),
        other => other,
    }
}

fn is_default(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        Value::Object(_) => false,
    }
}

fn vertex(x: f32, y: f32) -> Value {
    json!({"x": x.round() as i64, "y": y.round() as i64})
}

fn rect_poly(r: &PixelRect) -> Value {
    let (x1, y1, x2, y2) = (
        r.x as f32,
        r.y as f32,
        (r.x + r.w) as f32,
        (r.y + r.h) as f32,
    );
    json!({"vertices": [vertex(x1, y1), vertex(x2, y1), vertex(x2, y2), vertex(x1, y2)]})
}

fn quad_poly(q: &Quad) -> Value {
    json!({"vertices": q.0.iter().map(|&(x, y)| vertex(x, y)).collect::<Vec<_>>()})
}

/// `labelAnnotations`: tags, the surest first, with Google's capitalised everyday names.
pub fn labels(tags: &[Tag], max: usize, name: impl Fn(&str) -> String) -> Value {
    tags.iter()
        .take(max)
        .map(|t| json!({"description": name(&t.name), "score": t.confidence, "topicality": t.confidence}))
        .collect()
}

/// `localizedObjectAnnotations`: boxes as fractions of the image, the surest first.
pub fn objects(
    objects: &[DetectedObject],
    (width, height): (u32, u32),
    max: usize,
    name: impl Fn(&str) -> String,
) -> Value {
    let mut sorted: Vec<&DetectedObject> = objects.iter().collect();
    sorted.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    sorted
        .into_iter()
        .take(max)
        .map(|o| {
            let (w, h) = (width as f32, height as f32);
            let r = &o.rect;
            let (x1, y1) = (r.x as f32 / w, r.y as f32 / h);
            let (x2, y2) = ((r.x + r.w) as f32 / w, (r.y + r.h) as f32 / h);
            let corner = |x: f32, y: f32| json!({"x": x, "y": y});
            json!({"name": name(&o.label), "score": o.confidence, "languageCode": "en",
                   "boundingPoly": {"normalizedVertices": [corner(x1, y1), corner(x2, y1), corner(x2, y2), corner(x1, y2)]}})
        })
        .collect()
}

/// `faceAnnotations`: the detector's box (as both polygons: vista makes no looser landmark box), the
/// five landmarks (Google's left and right are the viewer's, as vista's), the pose, and the two
/// likelihoods pixels can tell (under-exposure from brightness, blur from sharpness). Emotions and
/// headwear have no model: they stay UNKNOWN (absent).
pub fn faces(faces: &[DetectedFace], max: usize, wire: &Wire) -> Value {
    faces
        .iter()
        .take(max)
        .map(|f| {
            let l = &f.landmarks;
            let landmark = |name: &str, number: i32, (x, y): (f32, f32)| {
                json!({"type": wire.enumerated(name, number), "position": {"x": x, "y": y}})
            };
            json!({
                "boundingPoly": rect_poly(&f.rect),
                "fdBoundingPoly": rect_poly(&f.rect),
                "landmarks": [landmark("LEFT_EYE", 1, l.left_eye), landmark("RIGHT_EYE", 2, l.right_eye),
                              landmark("NOSE_TIP", 8, l.nose), landmark("MOUTH_LEFT", 11, l.mouth_left),
                              landmark("MOUTH_RIGHT", 12, l.mouth_right)],
                "rollAngle": f.pose.roll, "panAngle": f.pose.yaw, "tiltAngle": f.pose.pitch,
                "detectionConfidence": f.confidence,
                "underExposedLikelihood": wire.likelihood(under_exposure(f.quality.brightness)),
                "blurredLikelihood": wire.likelihood(1.0 - f.quality.sharpness),
            })
        })
        .collect()
}

/// A face counts as under-exposed in proportion to how far its mean luma falls below a quarter of
/// the range (faces in ordinary photos sit at 0.35-0.65).
fn under_exposure(brightness: f32) -> f32 {
    ((0.25 - brightness) / 0.25).clamp(0.0, 1.0)
}

/// `safeSearchAnnotation`: adult and racy from the adult-content model; spoof, medical and violence
/// have no model and stay UNKNOWN (absent).
pub fn safe_search(rating: &AdultRating, wire: &Wire) -> Value {
    json!({"adult": wire.likelihood(rating.adult_score), "racy": wire.likelihood(rating.racy_score)})
}

/// `imagePropertiesAnnotation`: the palette, largest share first.
pub fn image_properties(palette: &[ColorShare]) -> Value {
    let colors: Vec<Value> = palette
        .iter()
        .map(|c| {
            json!({"color": {"red": c.rgb[0], "green": c.rgb[1], "blue": c.rgb[2]},
                   "score": c.fraction, "pixelFraction": c.fraction})
        })
        .collect();
    json!({"dominantColors": {"colors": colors}})
}

/// `cropHintsAnnotation`: one hint per ratio; `importanceFraction` is the share of the image's
/// importance (salience, faces, people, objects) the window keeps. vista has no model of how sure a
/// crop is: `confidence` stays at its default (absent).
pub fn crop_hints(crops: &[CropRegion]) -> Value {
    let hints: Vec<Value> = crops
        .iter()
        .map(|c| json!({"boundingPoly": rect_poly(&c.rect), "importanceFraction": c.importance}))
        .collect();
    json!({"cropHints": hints})
}

/// A page's text, in Google's two forms.
pub struct TextSections {
    pub annotations: Value,
    pub full: Value,
}

/// Where a page's coordinates live: pixels of an image, or a PDF page (sized in points, boxes as
/// fractions of the page).
#[derive(Debug, Clone, Copy)]
pub enum PageUnits {
    Pixels { width: u32, height: u32 },
    Document { width: f32, height: f32 },
}

/// `textAnnotations` (the whole text, then each word) and `fullTextAnnotation` (pages → blocks →
/// paragraphs → words → symbols with detected breaks). Paragraphs come from the lines' layout (one
/// block each, type TEXT: vista has no table or picture model). Symbol boxes divide their word's box
/// evenly among its characters: the recognizer does not report character boxes.
pub fn text(
    page: &PageText,
    units: PageUnits,
    language: Option<&str>,
    wire: &Wire,
) -> TextSections {
    let poly = |q: &Quad| match units {
        PageUnits::Pixels { .. } => quad_poly(q),
        PageUnits::Document { width, height } => json!({"normalizedVertices":
            q.0.iter().map(|&(x, y)| json!({"x": x / width, "y": y / height})).collect::<Vec<_>>()}),
    };
    let languages = match language {
        Some(code) => json!({"detectedLanguages": [{"languageCode": code, "confidence": 1.0}]}),
        None => json!({}),
    };
    let mut text = String::new();
    let mut words_flat = Vec::new();
    let mut blocks = Vec::new();
    let mut page_confidences = Vec::new();
    for lines in page.paragraphs() {
        let last_line = lines.end - 1;
        let mut words_json = Vec::new();
        let mut confidences = Vec::new();
        for index in lines.clone() {
            let line = &page.lines[index];
            text.push_str(&line.text);
            text.push('\n');
            for (w, word) in line.words.iter().enumerate() {
                words_flat
                    .push(json!({"description": word.text, "boundingPoly": poly(&word.polygon)}));
                let break_type = if w + 1 < line.words.len() {
                    ("SPACE", 1)
                } else if index == last_line {
                    ("LINE_BREAK", 5)
                } else {
                    ("EOL_SURE_SPACE", 3)
                };
                let chars: Vec<char> = word.text.chars().collect();
                let symbols: Vec<Value> = chars
                    .iter()
                    .enumerate()
                    .map(|(c, ch)| {
                        let mut symbol = json!({"text": ch.to_string(), "confidence": word.confidence,
                            "boundingBox": poly(&slice(&word.polygon, c, chars.len()))});
                        if c + 1 == chars.len() {
                            symbol["property"] = json!({"detectedBreak":
                                {"type": wire.enumerated(break_type.0, break_type.1)}});
                        }
                        symbol
                    })
                    .collect();
                confidences.push(word.confidence);
                words_json.push(
                    json!({"property": languages, "boundingBox": poly(&word.polygon),
                    "symbols": symbols, "confidence": word.confidence}),
                );
            }
        }
        let outline = enclosing(lines.clone().map(|i| &page.lines[i].polygon));
        let confidence = mean(&confidences);
        page_confidences.extend(confidences);
        blocks.push(json!({"boundingBox": poly(&outline),
            "paragraphs": [{"boundingBox": poly(&outline), "words": words_json, "confidence": confidence}],
            "blockType": wire.enumerated("TEXT", 1), "confidence": confidence}));
    }
    if page.lines.is_empty() {
        return TextSections {
            annotations: json!([]),
            full: json!({"text": "", "pages": [page_json(units, json!({}), vec![], 0.0)]}),
        };
    }
    let outline = enclosing(page.lines.iter().map(|l| &l.polygon));
    let mut whole = json!({"description": text, "boundingPoly": poly(&outline)});
    if let Some(code) = language {
        whole["locale"] = json!(code);
    }
    let mut annotations = vec![whole];
    annotations.extend(words_flat);
    TextSections {
        annotations: Value::Array(annotations),
        full: json!({"text": text, "pages": [page_json(units, languages, blocks, mean(&page_confidences))]}),
    }
}

fn page_json(units: PageUnits, property: Value, blocks: Vec<Value>, confidence: f32) -> Value {
    let (width, height) = match units {
        PageUnits::Pixels { width, height } => (json!(width), json!(height)),
        PageUnits::Document { width, height } => (json!(width), json!(height)),
    };
    json!({"property": property, "width": width, "height": height, "blocks": blocks, "confidence": confidence})
}

fn mean(values: &[f32]) -> f32 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f32>() / values.len() as f32
    }
}

/// The `index`-th of `count` equal slices of a word's quad, along its reading direction.
fn slice(q: &Quad, index: usize, count: usize) -> Quad {
    let [tl, tr, br, bl] = q.0;
    let lerp =
        |a: (f32, f32), b: (f32, f32), t: f32| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
    let (t0, t1) = (
        index as f32 / count as f32,
        (index + 1) as f32 / count as f32,
    );
    Quad([
        lerp(tl, tr, t0),
        lerp(tl, tr, t1),
        lerp(bl, br, t1),
        lerp(bl, br, t0),
    ])
}

/// The upright rectangle around quads.
fn enclosing<'a>(quads: impl Iterator<Item = &'a Quad>) -> Quad {
    BoundingBox::around(quads.flat_map(|q| q.0)).quad()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::read::{Orientation, TextLine, TextWord};

    const WIRE: Wire = Wire {
        ints: false,
        likelihood: LIKELIHOOD_LIMITS,
    };

    #[test]
    fn likelihoods_bucket_scores_as_names_or_numbers() {
        let names: Vec<Value> = [0.0, 0.1, 0.29, 0.3, 0.6, 0.85, 1.0]
            .iter()
            .map(|p| WIRE.likelihood(*p))
            .collect();
        assert_eq!(
            names,
            [
                "VERY_UNLIKELY",
                "UNLIKELY",
                "UNLIKELY",
                "POSSIBLE",
                "LIKELY",
                "VERY_LIKELY",
                "VERY_LIKELY"
            ]
            .map(|n| json!(n))
        );
        let ints = Wire { ints: true, ..WIRE };
        assert_eq!(ints.likelihood(0.0), json!(1));
        assert_eq!(ints.likelihood(0.9), json!(5));
    }

    #[test]
    fn proto3_defaults_are_left_out_but_empty_messages_stay() {
        let value = json!({"a": 0, "b": 0.0, "c": "", "d": false, "e": [], "f": null,
                           "g": {"x": 0, "y": 3}, "h": {}, "i": [{"x": 0}]});
        assert_eq!(
            without_defaults(value),
            json!({"g": {"y": 3}, "h": {}, "i": [{}]})
        );
    }

    #[test]
    fn a_word_is_split_into_symbols_and_its_last_symbol_carries_the_break() {
        let word = |text: &str, x: f32| TextWord {
            text: text.into(),
            polygon: Quad([(x, 10.0), (x + 40.0, 10.0), (x + 40.0, 30.0), (x, 30.0)]),
            confidence: 0.9,
        };
        let page = PageText {
            lines: vec![TextLine {
                text: "ab cd".into(),
                polygon: Quad([(0.0, 10.0), (90.0, 10.0), (90.0, 30.0), (0.0, 30.0)]),
                words: vec![word("ab", 0.0), word("cd", 50.0)],
            }],
            orientation: Some(Orientation::Up),
            angle: 0.0,
        };
        let units = PageUnits::Pixels {
            width: 100,
            height: 50,
        };
        let text = text(&page, units, Some("en"), &WIRE);
        assert_eq!(text.annotations[0]["description"], "ab cd\n");
        assert_eq!(text.annotations[0]["locale"], "en");
        assert_eq!(text.annotations[2]["description"], "cd");
        let words = &text.full["pages"][0]["blocks"][0]["paragraphs"][0]["words"];
        let symbols = &words[0]["symbols"];
        assert_eq!(
            symbols[1]["boundingBox"]["vertices"][0],
            json!({"x": 20, "y": 10})
        );
        assert_eq!(symbols[1]["property"]["detectedBreak"]["type"], "SPACE");
        assert!(symbols[0].get("property").is_none());
        let last = &words[1]["symbols"][1];
        assert_eq!(last["property"]["detectedBreak"]["type"], "LINE_BREAK");
    }
}
