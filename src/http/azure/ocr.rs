//! Reading text in 3.2: the legacy synchronous `/vision/v3.2/ocr` (regions, lines and words with
//! `"x,y,w,h"` string boxes, the page's orientation and skew).

use std::sync::Arc;

use axum::extract::{RawQuery, Request, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;

use super::error::ApiError;
use super::v3::{check_model_version, run, MODEL_VERSION};
use crate::geometry::{BoundingBox, Quad};
use crate::http::query::QueryParams;
use crate::http::AppState;
use crate::pipeline::read::{Orientation, PageText, ReadOptions, TextLine};
use crate::pipeline::{AnalysisOptions, Feature};

/// The language codes 3.2 `/ocr` takes (`unk`: detect); whether vista reads one is the language
/// policy's to say.
const OCR_LANGUAGES: [&str; 27] = [
    "unk", "zh-Hans", "zh-Hant", "cs", "da", "nl", "en", "fi", "fr", "de", "el", "hu", "it", "ja",
    "ko", "nb", "pl", "pt", "ru", "es", "sv", "tr", "ar", "ro", "sr-Cyrl", "sr-Latn", "sk",
];

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/vision/v3.2/ocr", post(ocr))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OcrResult {
    pub language: String,
    /// The skew of the text lines after the orientation is corrected, in radians.
    pub text_angle: f32,
    pub orientation: &'static str,
    pub regions: Vec<OcrRegion>,
    pub model_version: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OcrRegion {
    pub bounding_box: String,
    pub lines: Vec<OcrLine>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OcrLine {
    pub bounding_box: String,
    pub words: Vec<OcrWord>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OcrWord {
    pub bounding_box: String,
    pub text: String,
}

async fn ocr(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<OcrResult>, ApiError> {
    let params = QueryParams::parse(query.as_deref());
    check_model_version(&params)?;
    let language = params.get("language").unwrap_or("unk");
    let Some(language) = OCR_LANGUAGES
        .iter()
        .find(|l| l.eq_ignore_ascii_case(language))
    else {
        return Err(ApiError::invalid(
            "The input language is not supported",
            "NotSupportedLanguage",
            format!("Supported languages: {}", OCR_LANGUAGES.join(", ")),
        ));
    };
    state.pipeline.check_reading(language).map_err(|e| {
        ApiError::invalid(
            "The input language is not supported",
            "NotSupportedLanguage",
            e.0,
        )
    })?;
    let detect_orientation = params
        .flag("detectOrientation", true)
        .map_err(ApiError::bad_argument)?;
    let options = AnalysisOptions {
        read: ReadOptions {
            assume_upright: !detect_orientation,
            language: Some(language.to_string()),
            natural_order: false,
            deadline: None,
        },
        ..AnalysisOptions::default()
    };
    let analysis = run(&state, request, vec![Feature::Read], options).await?;
    let page = analysis.text.expect("the pipeline ran Read");
    Ok(Json(OcrResult::new(page, language, detect_orientation)))
}

impl OcrResult {
    fn new(page: PageText, language: &str, orientation_detected: bool) -> Self {
        let orientation = match page.orientation {
            Some(o) if orientation_detected => wire_orientation(o),
            _ => "NotDetected",
        };
        let turns = page
            .orientation
            .map_or(0.0, |o| 90.0 * o.quarter_turns() as f32);
        let skew = (page.angle - turns + 540.0).rem_euclid(360.0) - 180.0;
        OcrResult {
            language: if language == "unk" {
                guess_language(&page)
            } else {
                language.to_string()
            },
            text_angle: if page.lines.is_empty() {
                0.0
            } else {
                skew.to_radians()
            },
            orientation,
            regions: regions(page.lines, page.angle)
                .into_iter()
                .map(OcrRegion::new)
                .collect(),
            model_version: MODEL_VERSION,
        }
    }
}

fn wire_orientation(orientation: Orientation) -> &'static str {
    match orientation {
        Orientation::Up => "Up",
        Orientation::Right => "Right",
        Orientation::Down => "Down",
        Orientation::Left => "Left",
    }
}

/// The language of the script when the script names it among 3.2's OCR languages (kana: Japanese,
/// Hangul: Korean, Han alone: Chinese, Greek, Arabic); otherwise "unk": vista has no language
/// identifier for Latin or Cyrillic.
fn guess_language(page: &PageText) -> String {
    let has = |range: std::ops::RangeInclusive<u32>| {
        page.lines
            .iter()
            .any(|l| l.text.chars().any(|c| range.contains(&(c as u32))))
    };
    if has(0x3040..=0x30FF) {
        "ja"
    } else if has(0xAC00..=0xD7AF) {
        "ko"
    } else if has(0x4E00..=0x9FFF) {
        "zh-Hans"
    } else if has(0x0370..=0x03FF) {
        "el"
    } else if has(0x0600..=0x06FF) {
        "ar"
    } else {
        "unk"
    }
    .to_string()
}

/// The axis-aligned box around some quads, as 3.2's `"x,y,w,h"`.
fn box_string<'a>(quads: impl Iterator<Item = &'a Quad>) -> String {
    let BoundingBox {
        x1: x0,
        y1: y0,
        x2: x1,
        y2: y1,
    } = BoundingBox::around(quads.flat_map(|q| q.0));
    let (x, y) = (x0.max(0.0).round(), y0.max(0.0).round());
    format!(
        "{},{},{},{}",
        x,
        y,
        (x1.round() - x).max(0.0),
        (y1.round() - y).max(0.0)
    )
}

impl OcrRegion {
    fn new(lines: Vec<TextLine>) -> Self {
        OcrRegion {
            bounding_box: box_string(lines.iter().map(|l| &l.polygon)),
            lines: lines
                .into_iter()
                .map(|line| OcrLine {
                    bounding_box: box_string(std::iter::once(&line.polygon)),
                    words: line
                        .words
                        .into_iter()
                        .map(|w| OcrWord {
                            bounding_box: box_string(std::iter::once(&w.polygon)),
                            text: w.text,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Groups lines (in reading order) into regions: a line joins the region of an earlier line that it
/// overlaps along the text direction (`angle`, degrees) and follows within one and a half line heights.
fn regions(lines: Vec<TextLine>, angle: f32) -> Vec<Vec<TextLine>> {
    let (sin, cos) = angle.to_radians().sin_cos();
    let extent = |l: &TextLine| {
        // In the text's own frame: x along the lines, y down the page.
        let xs = l.polygon.0.map(|(x, y)| x * cos + y * sin);
        let ys = l.polygon.0.map(|(x, y)| -x * sin + y * cos);
        let min = |v: [f32; 4]| v.into_iter().fold(f32::MAX, f32::min);
        let max = |v: [f32; 4]| v.into_iter().fold(f32::MIN, f32::max);
        (min(xs), min(ys), max(xs), max(ys))
    };
    let mut groups: Vec<Vec<TextLine>> = Vec::new();
    for line in lines {
        let (x0, y0, x1, y1) = extent(&line);
        let height = y1 - y0;
        let home = groups.iter().position(|group| {
            group.iter().any(|other| {
                let (ox0, oy0, ox1, oy1) = extent(other);
                let overlaps = x0 < ox1 && ox0 < x1;
                let gap = (y0 - oy1).max(oy0 - y1);
                overlaps && gap < 1.5 * height.max(oy1 - oy0)
            })
        });
        match home {
            Some(i) => groups[i].push(line),
            None => groups.push(vec![line]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::read::TextWord;

    fn line(text: &str, x: f32, y: f32, w: f32, h: f32) -> TextLine {
        let polygon = Quad([(x, y), (x + w, y), (x + w, y + h), (x, y + h)]);
        TextLine {
            text: text.into(),
            polygon,
            words: vec![TextWord {
                text: text.into(),
                polygon,
                confidence: 0.9,
            }],
        }
    }

    #[test]
    fn nearby_lines_share_a_region_and_columns_do_not() {
        let lines = vec![
            line("a", 10.0, 10.0, 100.0, 20.0),
            line("far right", 400.0, 10.0, 100.0, 20.0),
            line("b", 10.0, 35.0, 80.0, 20.0),
            line("c", 10.0, 300.0, 80.0, 20.0),
        ];
        let texts: Vec<Vec<String>> = regions(lines, 0.0)
            .into_iter()
            .map(|g| g.into_iter().map(|l| l.text).collect())
            .collect();
        assert_eq!(texts, [vec!["a", "b"], vec!["far right"], vec!["c"]]);
    }

    #[test]
    fn regions_follow_the_text_direction_on_a_turned_page() {
        // Two lines of a page turned a quarter clockwise: side by side in the image, one region.
        let turned = |text: &str, x: f32| {
            let polygon = Quad([(x + 20.0, 0.0), (x + 20.0, 200.0), (x, 200.0), (x, 0.0)]);
            TextLine {
                text: text.into(),
                polygon,
                words: Vec::new(),
            }
        };
        let groups = regions(vec![turned("first", 100.0), turned("second", 70.0)], 90.0);
        assert_eq!(groups.len(), 1);
    }

    #[test]
    fn the_result_has_string_boxes_orientation_and_skew_in_radians() {
        let page = PageText {
            lines: vec![line("Hello", 10.4, 20.0, 50.0, 12.0)],
            orientation: Some(Orientation::Down),
            angle: -178.0,
        };
        let json = serde_json::to_value(OcrResult::new(page, "en", true)).unwrap();
        assert_eq!(json["orientation"], "Down");
        assert!((json["textAngle"].as_f64().unwrap() - 2f64.to_radians()).abs() < 1e-4);
        assert_eq!(json["regions"][0]["boundingBox"], "10,20,50,12");
        assert_eq!(
            json["regions"][0]["lines"][0]["words"][0],
            serde_json::json!({"boundingBox": "10,20,50,12", "text": "Hello"})
        );
        assert_eq!(json["language"], "en");
        let empty = PageText {
            lines: Vec::new(),
            orientation: None,
            angle: 0.0,
        };
        let json = serde_json::to_value(OcrResult::new(empty, "unk", true)).unwrap();
        assert_eq!(
            (
                json["orientation"].as_str(),
                json["regions"].as_array().map(Vec::len)
            ),
            (Some("NotDetected"), Some(0))
        );
    }

    #[test]
    fn the_script_names_the_language_when_it_can() {
        let page = |text: &str| PageText {
            lines: vec![line(text, 0.0, 0.0, 10.0, 10.0)],
            orientation: None,
            angle: 0.0,
        };
        assert_eq!(guess_language(&page("東京です")), "ja");
        assert_eq!(guess_language(&page("中文")), "zh-Hans");
        assert_eq!(guess_language(&page("hello")), "unk");
        assert_eq!(guess_language(&page("Καλημέρα")), "el");
        assert_eq!(
            guess_language(&page("Привет")),
            "unk",
            "Cyrillic writes many languages"
        );
    }
}
