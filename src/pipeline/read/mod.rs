//! Reading text: what a page read holds (lines in reading order, their words, the page's orientation),
//! and how it is read: the text detector's regions, then the page's decisions (`page`), words
//! (`words`) and reading order (`order`).

mod order;
mod page;
mod words;

use anyhow::Result;
use image::RgbImage;

pub use self::page::Readers;
use super::scene::Scene;
use super::PipelineError;
use crate::geometry::{BoundingBox, Quad};
use crate::models::traits::TextRegionDetector;
/// Which way the top of the text points, in quarter turns clockwise from upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Orientation {
    Up,
    Right,
    Down,
    Left,
}

impl Orientation {
    pub fn quarter_turns(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextWord {
    pub text: String,
    /// Corners clockwise from the word's own top-left.
    pub polygon: Quad,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TextLine {
    pub text: String,
    pub polygon: Quad,
    pub words: Vec<TextWord>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PageText {
    /// In reading order.
    pub lines: Vec<TextLine>,
    /// None when the page has no text.
    pub orientation: Option<Orientation>,
    /// The direction text runs, in degrees clockwise from the x axis, in [-180, 180).
    pub angle: f32,
}

impl PageText {
    /// The same text with every coordinate multiplied by `factor` (pixels of a rendering to inches).
    pub fn scaled(mut self, factor: f32) -> Self {
        let scale = |q: &mut Quad| q.0 = q.0.map(|(x, y)| (x * factor, y * factor));
        for line in &mut self.lines {
            scale(&mut line.polygon);
            line.words.iter_mut().for_each(|w| scale(&mut w.polygon));
        }
        self
    }
}

/// One page of a document read by the Read API (pages are numbered from 1). Images are measured in
/// pixels, PDF pages in inches.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadPage {
    pub number: usize,
    pub width: f32,
    pub height: f32,
    pub in_inches: bool,
    pub text: PageText,
}

/// How a page is read.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Read the page as it stands instead of detecting its orientation (3.2 `detectOrientation=false`).
    pub assume_upright: bool,
    /// The request's language (BCP 47); None or "unk" detects the script.
    pub language: Option<String>,
    /// Order lines by columns and blocks (the Read API's `readingOrder=natural`) instead of by rows.
    pub natural_order: bool,
    /// A document still being read at this time stops with [`super::PipelineError::TimedOut`] before
    /// its next page (the Read container's `Task:MaxRunningTimeSpanInMinutes`).
    pub deadline: Option<std::time::Instant>,
}

/// Reads all text of `image`: its text regions, then the page's decisions (see [`page`]).
pub fn read_page(
    detector: &dyn TextRegionDetector,
    readers: &Readers,
    image: &RgbImage,
    options: &ReadOptions,
) -> Result<PageText> {
    page::read_regions(readers, image, detector.detect(image)?, options)
}

/// The Read feature on a scene: its text read (the scene's text regions serve text presence too).
pub fn read(scene: &Scene, options: &ReadOptions) -> Result<PageText, PipelineError> {
    let regions = scene.text_regions()?.to_vec();
    Ok(page::read_regions(
        &scene.readers()?,
        scene.image(),
        regions,
        options,
    )?)
}

#[cfg(test)]
mod test_support {
    use crate::geometry::Quad;
    use crate::models::text_rec::{RecognizedChar, RecognizedLine};

    /// An upright rectangle as a quad.
    pub fn rect(x: f32, y: f32, w: f32, h: f32) -> Quad {
        Quad([(x, y), (x + w, y), (x + w, y + h), (x, y + h)])
    }

    /// A line read as these (text, start, end) spans, each with confidence 0.8.
    pub fn line_of(spans: &[(&str, f32, f32)]) -> RecognizedLine {
        RecognizedLine {
            chars: spans
                .iter()
                .map(|&(text, start, end)| RecognizedChar {
                    text: text.into(),
                    start,
                    end,
                    confidence: 0.8,
                })
                .collect(),
        }
    }
}

/// Lines within this many line heights of the one above (and overlapping it sideways) continue its
/// paragraph; a blank line's worth of gap starts a new one.
const PARAGRAPH_GAP: f32 = 0.6;

impl PageText {
    /// The lines grouped into paragraphs: runs of consecutive lines (in reading order) that sit
    /// close under one another. Each range indexes [`PageText::lines`].
    pub fn paragraphs(&self) -> Vec<std::ops::Range<usize>> {
        let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            let continues = i > 0 && {
                let a = BoundingBox::around(self.lines[i - 1].polygon.0);
                let b = BoundingBox::around(line.polygon.0);
                let height = (a.height() + b.height()) / 2.0;
                let gap = b.y1 - a.y2;
                gap >= -height / 2.0 && gap <= PARAGRAPH_GAP * height && b.x1 < a.x2 && a.x1 < b.x2
            };
            match groups.last_mut() {
                Some(group) if continues => group.end = i + 1,
                _ => groups.push(i..i + 1),
            }
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::rect;
    use super::*;

    fn line(text: &str, polygon: Quad) -> TextLine {
        TextLine {
            text: text.into(),
            polygon,
            words: Vec::new(),
        }
    }

    #[test]
    fn close_stacked_lines_form_a_paragraph_and_gaps_or_columns_split_them() {
        let page = PageText {
            lines: vec![
                line("a", rect(10.0, 10.0, 100.0, 20.0)),
                line("b", rect(10.0, 33.0, 90.0, 20.0)),
                line("c", rect(10.0, 90.0, 100.0, 20.0)), // a blank line above
                line("d", rect(300.0, 113.0, 50.0, 20.0)), // another column
            ],
            orientation: Some(Orientation::Up),
            angle: 0.0,
        };
        assert_eq!(page.paragraphs(), vec![0..2, 2..3, 3..4]);
    }
}
