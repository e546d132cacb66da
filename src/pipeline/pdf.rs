//! PDF documents for the Read API, through PDFium (the pack's `libpdfium.so`). A page that carries a
//! text layer is read from it directly, with positions, because that text is exact; a page without one
//! (a scan) is rendered and read by OCR. Read reports PDF pages in inches, the unit of the page itself.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use image::RgbImage;
use pdfium_render::prelude::*;

use crate::geometry::Quad;
use crate::pipeline::budget::PixelBudget;
use crate::pipeline::decode::{reserve, DecodeError, PageSelection};
use crate::pipeline::read::{Orientation, PageText, TextLine, TextWord};

/// Scans are rendered at this resolution for OCR (text 8 pt and up stays legible).
pub const RENDER_DPI: f32 = 200.0;
/// A page is rendered at most this large, its resolution lowered to fit: a poster-sized page (a
/// 337-byte PDF can declare 7200 pt) would otherwise render at 20000 px a side (4.2 GiB). 25
/// megapixels (an A2 sheet at 200 dpi is 15) fits the default pixel budget at its peak bytes.
pub const MAX_RENDER_PIXELS: f32 = 25e6;
/// Bytes a rendered pixel holds at the peak: PDFium's BGRA bitmap, its RGBA copy and the RGB page.
const RENDER_PEAK_BYTES: u64 = 4 + 4 + 3;
const POINTS_PER_INCH: f32 = 72.0;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PdfError {
    #[error("The PDF document is encrypted; send it without a password")]
    Encrypted,
    #[error("The PDF document is damaged or not a PDF")]
    Invalid,
}

/// One page: its size in inches and either the text of its text layer or its rendering.
pub enum PdfPage {
    Text {
        width: f32,
        height: f32,
        text: PageText,
    },
    Scan {
        width: f32,
        height: f32,
        image: RgbImage,
        /// The resolution it was rendered at (pixels an inch).
        dpi: f32,
    },
}

/// The resolution a page of `width` x `height` inches is rendered at: `RENDER_DPI`, lowered so that
/// the rendering stays within `MAX_RENDER_PIXELS`.
pub fn render_dpi(width: f32, height: f32) -> f32 {
    let area = (width * height).max(f32::MIN_POSITIVE);
    RENDER_DPI.min((MAX_RENDER_PIXELS / area).sqrt())
}

pub struct PdfReader {
    pdfium: Pdfium,
}

fn load_error(e: PdfiumError) -> PdfError {
    match e {
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError) => {
            PdfError::Encrypted
        }
        _ => PdfError::Invalid,
    }
}

impl PdfReader {
    pub fn open(library: &Path) -> Result<Self> {
        let bindings = Pdfium::bind_to_library(library)
            .map_err(|e| anyhow!("cannot load PDFium from {}: {e}", library.display()))?;
        Ok(PdfReader {
            pdfium: Pdfium::new(bindings),
        })
    }

    /// How many pages the document has, or why it cannot be read.
    pub fn page_count(&self, bytes: &[u8]) -> Result<usize, PdfError> {
        let document = self
            .pdfium
            .load_pdf_from_byte_slice(bytes, None)
            .map_err(load_error)?;
        Ok(document.pages().len() as usize)
    }

    /// Hands each selected page (numbered from 1, at most `max_pages` of the document) to `read`, one
    /// at a time: a scan is rendered only once its pixels are free in the budget, and released before
    /// the next page is rendered.
    pub fn for_each_page<E: From<PdfError> + From<DecodeError>>(
        &self,
        bytes: &[u8],
        (selected, max_pages): PageSelection,
        budget: &Arc<PixelBudget>,
        mut read: impl FnMut(usize, PdfPage) -> Result<(), E>,
    ) -> Result<(), E> {
        let document = self
            .pdfium
            .load_pdf_from_byte_slice(bytes, None)
            .map_err(load_error)?;
        for (index, page) in document.pages().iter().enumerate().take(max_pages) {
            if !selected(index + 1) {
                continue;
            }
            let (width, height) = (
                page.width().value / POINTS_PER_INCH,
                page.height().value / POINTS_PER_INCH,
            );
            let lines = page
                .text()
                .map(|text| text_lines(&text, page.height().value))
                .unwrap_or_default();
            if !lines.is_empty() {
                let text = PageText {
                    lines,
                    orientation: Some(Orientation::Up),
                    angle: 0.0,
                };
                read(
                    index + 1,
                    PdfPage::Text {
                        width,
                        height,
                        text,
                    },
                )?;
                continue;
            }
            let dpi = render_dpi(width, height);
            let (columns, rows) = ((width * dpi).round(), (height * dpi).round());
            let permit = reserve(budget, (columns * rows) as u64, RENDER_PEAK_BYTES)?;
            let config = PdfRenderConfig::new().set_target_width(columns as i32);
            let cpu = crate::cpu_budget::budget().hold(1);
            let bitmap = page
                .render_with_config(&config)
                .map_err(|_| PdfError::Invalid)?;
            drop(cpu);
            let image = bitmap
                .as_image()
                .map_err(|_| PdfError::Invalid)?
                .into_rgb8();
            drop(bitmap);
            let scan = PdfPage::Scan {
                width,
                height,
                image,
                dpi,
            };
            read(index + 1, scan)?;
            drop(permit);
        }
        Ok(())
    }
}

/// A word or line being collected: its text and box in inches from the page's top-left.
#[derive(Default)]
struct Run {
    text: String,
    left: f32,
    top: f32,
    right: f32,
    bottom: f32,
}

impl Run {
    fn add(&mut self, c: char, (left, top, right, bottom): (f32, f32, f32, f32)) {
        if self.text.is_empty() {
            (self.left, self.top, self.right, self.bottom) = (left, top, right, bottom);
        } else {
            (self.left, self.top) = (self.left.min(left), self.top.min(top));
            (self.right, self.bottom) = (self.right.max(right), self.bottom.max(bottom));
        }
        self.text.push(c);
    }

    fn quad(&self) -> Quad {
        Quad([
            (self.left, self.top),
            (self.right, self.top),
            (self.right, self.bottom),
            (self.left, self.bottom),
        ])
    }
}

/// Groups the text layer's characters into lines and words: a line ends at a line break or where the
/// next character does not continue it (another baseline, or back to the left); a word ends at a space.
fn text_lines(text: &PdfPageText<'_>, page_height: f32) -> Vec<TextLine> {
    let inches = |v: f32| v / POINTS_PER_INCH;
    let mut lines: Vec<TextLine> = Vec::new();
    let (mut line, mut word, mut words) = (Run::default(), Run::default(), Vec::<TextWord>::new());
    let finish_word = |word: &mut Run, words: &mut Vec<TextWord>| {
        if !word.text.is_empty() {
            words.push(TextWord {
                text: std::mem::take(&mut word.text),
                polygon: word.quad(),
                confidence: 1.0,
            });
        }
    };
    for c in text.chars().iter() {
        let Some(ch) = c.unicode_char() else { continue };
        let bounds = c.loose_bounds().ok().map(|r| {
            (
                inches(r.left().value),
                inches(page_height - r.top().value),
                inches(r.right().value),
                inches(page_height - r.bottom().value),
            )
        });
        let breaks_line = match bounds {
            _ if ch == '\n' || ch == '\r' => true,
            Some((left, top, _, bottom)) if !line.text.is_empty() && !ch.is_whitespace() => {
                let height = line.bottom - line.top;
                let middle = (top + bottom) / 2.0;
                (middle - (line.top + line.bottom) / 2.0).abs() > height / 2.0
                    || left < line.right - height
            }
            _ => false,
        };
        if breaks_line {
            finish_word(&mut word, &mut words);
            finish_line(&mut line, &mut words, &mut lines);
        }
        if ch.is_whitespace() {
            finish_word(&mut word, &mut words);
            continue;
        }
        if let Some(bounds) = bounds {
            word.add(ch, bounds);
            line.add(ch, bounds);
        }
    }
    finish_word(&mut word, &mut words);
    finish_line(&mut line, &mut words, &mut lines);
    lines
}

/// Closes the line being collected (if it has words) and starts the next one.
fn finish_line(line: &mut Run, words: &mut Vec<TextWord>, lines: &mut Vec<TextLine>) {
    if !words.is_empty() {
        let text = words
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        lines.push(TextLine {
            text,
            polygon: line.quad(),
            words: std::mem::take(words),
        });
    }
    *line = Run::default();
}
