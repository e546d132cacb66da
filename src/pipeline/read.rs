//! Reading text: detect line regions, decide the page's orientation, recognise every line, split lines
//! into words with boxes of their own, and put the lines in reading order.
//!
//! Orientation is decided once per page, not per line: the detector's regions tell whether lines run
//! horizontally (0° or 180°) or vertically (90° or 270°), and the recogniser's confidence on a sample
//! of the largest lines, read both ways, picks between the two. A per-line classifier alone garbles
//! rotated pages.

use anyhow::Result;
use image::RgbImage;

use crate::geometry::Quad;
use crate::models::tesseract::{script_named, Script, Tesseract, SCRIPTS};
use crate::models::text_cls::TextLineClassifier;
use crate::models::text_det::{TextDetector, TextRegion};
use crate::models::text_rec::{crop_line, RecognizedLine, TextRecognizer};

/// Lines read with less mean confidence than this are noise (PP-OCR's `text_score`).
const MIN_LINE_CONFIDENCE: f32 = 0.5;
/// In scene text, words read with less mean confidence than this are dropped: on the ICDAR 2015
/// development images every word below 0.7 was wrong (19 of them), while 93 right words all scored
/// above it.
const MIN_WORD_CONFIDENCE: f32 = 0.7;
/// A page with this many lines is a document, whose doubtful words are kept (with their confidence):
/// among many lines read, a doubtful word is mostly a misread one, and dropping it loses text. On
/// the SROIE development receipts (40+ lines each) keeping them lowers line CER from 4.87% to 4.69%;
/// the ICDAR scene images (at most 14 lines) are unchanged.
const DOCUMENT_LINES: usize = 20;
/// In scene text (fewer regions than a document has lines), a region is read only from this detector
/// score: on the ICDAR 2015 development images, 0.6 / 0.65 / 0.7 raised end-to-end F1 from 62.7% to
/// 64.2 / 65.6 / 65.0% (precision 61.1% to 69.5% at 0.65, recall 64.3% to 62.1%); a stray "6" on a
/// lamp in Azure's sample image scored 0.57, its real lines 0.76 to 0.83. Documents keep the
/// detector's own 0.5: SROIE's receipts are unchanged either way.
const MIN_SCENE_REGION_SCORE: f32 = 0.65;
/// A scene region within this much of the page's surest one is read all the same: the detector scores
/// every line of a script it was not trained on lower (a clean Thai page's lines: 0.67 and 0.64).
/// ICDAR's F1 stays at 65.6%.
const SCENE_REGION_SCORE_MARGIN: f32 = 0.1;
/// How many of the largest regions vote on the page orientation.
const ORIENTATION_SAMPLE: usize = 4;
/// The scripts PP-OCR reads, as Tesseract's script detector names them.
const PPOCR_SCRIPTS: [&str; 5] = ["Latin", "Han", "Japanese", "Hiragana", "Katakana"];
/// A sample read with less confidence per character than this may be in a script the reader lacks.
const SURE_READING: f32 = 0.9;
/// The line classifier's chance from which a line is taken for upside down (PP-OCR's `cls_thresh`).
const SURELY_UPSIDE_DOWN: f32 = 0.9;
/// A sample read with less confidence per character than this is next to unread.
const DOUBTFUL_READING: f32 = 0.75;
/// A line read fully has at least this many characters per unit of its region's width / height
/// (Latin has 2.5 or more, CJK about 1; PP-OCR reading Cyrillic finds a few digits).
const MIN_CHARS_PER_ASPECT: f32 = 0.6;

/// Which way the top of the text points, in quarter turns clockwise from upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// The models that read text: the line detector, PP-OCR's recogniser (Latin, Chinese, Japanese), and
/// when the pack has them the line orientation classifier and Tesseract for the scripts PP-OCR lacks.
#[derive(Clone, Copy)]
pub struct TextModels<'a> {
    pub detector: &'a TextDetector,
    pub recognizer: &'a TextRecognizer,
    pub line_classifier: Option<&'a TextLineClassifier>,
    pub tesseract: Option<&'a Tesseract>,
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
}

/// The regions worth reading: all of a document's, a scene's sure ones (see `MIN_SCENE_REGION_SCORE`
/// and `SCENE_REGION_SCORE_MARGIN`).
fn sure_regions(mut regions: Vec<TextRegion>) -> Vec<TextRegion> {
    if regions.len() < DOCUMENT_LINES {
        let best = regions.iter().map(|r| r.score).fold(0.0, f32::max);
        regions.retain(|r| {
            r.score >= MIN_SCENE_REGION_SCORE || r.score >= best - SCENE_REGION_SCORE_MARGIN
        });
    }
    regions
}

/// The engine that reads the line crops of a page.
#[derive(Clone, Copy)]
enum LineReader<'a> {
    PpOcr(&'a TextRecognizer),
    /// Tesseract with one traineddata (e.g. "rus").
    Tesseract(&'a Tesseract, &'static str),
}

impl LineReader<'_> {
    fn recognize(&self, crops: &[RgbImage]) -> Result<Vec<RecognizedLine>> {
        match self {
            LineReader::PpOcr(recognizer) => recognizer.recognize(crops),
            LineReader::Tesseract(tesseract, traineddata) => {
                tesseract.recognize(traineddata, crops)
            }
        }
    }
}

/// Reads all text of `image`.
pub fn read_page(models: TextModels, image: &RgbImage, options: &ReadOptions) -> Result<PageText> {
    read_regions(models, image, models.detector.detect(image)?, options)
}

/// Reads the page from the regions the text detector found on it (at its full input size).
pub fn read_regions(
    models: TextModels,
    image: &RgbImage,
    regions: Vec<TextRegion>,
    options: &ReadOptions,
) -> Result<PageText> {
    let regions = sure_regions(regions);
    if regions.is_empty() {
        return Ok(PageText {
            lines: Vec::new(),
            orientation: None,
            angle: 0.0,
        });
    }
    let language = options
        .language
        .as_deref()
        .filter(|l| !l.eq_ignore_ascii_case("unk"));
    let named = language
        .and_then(super::language::tesseract_model)
        .and_then(|data| {
            let tesseract = models.tesseract.filter(|t| t.has(data))?;
            Some(LineReader::Tesseract(tesseract, data))
        });
    let candidates = orientation_candidates(&regions, options.assume_upright);
    let mut reader = named.unwrap_or(LineReader::PpOcr(models.recognizer));
    let (mut orientation, mut sample) = choose_orientation(reader, image, &regions, candidates)?;
    if let (None, None, Some(tesseract)) = (language, named, models.tesseract) {
        if !is_sure(&regions, &sample) {
            if let Some(script) = other_script(tesseract, image, &regions, candidates, &sample)? {
                let other = LineReader::Tesseract(tesseract, script.traineddata);
                let (other_orientation, other_sample) =
                    choose_orientation(other, image, &regions, candidates)?;
                // Only the other script's own characters count: a model reading text not of its
                // script returns lookalikes, digits and punctuation, often confidently.
                if script_evidence(script, other_sample.iter().map(|(_, l)| l))
                    > evidence(sample.iter().map(|(_, l)| l))
                {
                    (reader, orientation, sample) = (other, other_orientation, other_sample);
                }
            }
        }
    }
    let mut quads: Vec<Quad> = regions
        .iter()
        .map(|r| turned(&r.quad, orientation))
        .collect();
    // The vote already read its sample the chosen way; read the rest.
    let mut recognized: Vec<Option<RecognizedLine>> = vec![None; quads.len()];
    for (i, line) in sample {
        recognized[i] = Some(line);
    }
    let pending: Vec<usize> = (0..quads.len())
        .filter(|&i| recognized[i].is_none())
        .collect();
    let crops = pending
        .iter()
        .map(|&i| crop_line(image, &quads[i]))
        .collect::<Result<Vec<_>>>()?;
    for (&i, line) in pending.iter().zip(reader.recognize(&crops)?) {
        recognized[i] = Some(line);
    }
    let mut recognized: Vec<RecognizedLine> = recognized
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    if let Some(classifier) = models.line_classifier {
        reread_upside_down_lines(classifier, reader, image, &mut quads, &mut recognized)?;
    }
    let read: Vec<(&Quad, RecognizedLine)> = quads
        .iter()
        .zip(recognized)
        .filter(|(_, line)| !line.chars.is_empty() && line.confidence() >= MIN_LINE_CONFIDENCE)
        .collect();
    let min_word_confidence = if read.len() >= DOCUMENT_LINES {
        0.0
    } else {
        MIN_WORD_CONFIDENCE
    };
    let lines: Vec<TextLine> = read
        .iter()
        .filter_map(|(quad, line)| confident_line(line, quad, min_word_confidence))
        .collect();
    let angle = median_angle(&lines);
    let lines = if options.natural_order {
        natural_order(lines)
    } else {
        reading_order(lines)
    };
    Ok(PageText {
        lines,
        orientation: Some(orientation),
        angle,
    })
}

/// Lines the page's orientation reads doubtfully that the classifier finds upside down (a label
/// turned over on an upright page) are read again turned half way; a sure reading that is more
/// convincing replaces the first, with its quad renumbered to match.
fn reread_upside_down_lines(
    classifier: &TextLineClassifier,
    reader: LineReader,
    image: &RgbImage,
    quads: &mut [Quad],
    lines: &mut [RecognizedLine],
) -> Result<()> {
    let doubtful: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].confidence() < SURE_READING)
        .collect();
    if doubtful.is_empty() {
        return Ok(());
    }
    let crops = doubtful
        .iter()
        .map(|&i| crop_line(image, &quads[i]))
        .collect::<Result<Vec<_>>>()?;
    let upside_down: Vec<(usize, Quad)> = doubtful
        .iter()
        .zip(classifier.upside_down(&crops)?)
        .filter(|&(_, chance)| chance >= SURELY_UPSIDE_DOWN)
        .map(|(&i, _)| (i, turned(&quads[i], Orientation::Down)))
        .collect();
    if upside_down.is_empty() {
        return Ok(());
    }
    let crops = upside_down
        .iter()
        .map(|(_, quad)| crop_line(image, quad))
        .collect::<Result<Vec<_>>>()?;
    for ((i, quad), line) in upside_down.into_iter().zip(reader.recognize(&crops)?) {
        let convincing = line.confidence() >= SURE_READING
            && evidence(std::iter::once(&line)) > evidence(std::iter::once(&lines[i]));
        if convincing {
            (quads[i], lines[i]) = (quad, line);
        }
    }
    Ok(())
}

/// Whether the sample was read as a script the reader knows: most of its length (three quarters)
/// is in lines read confidently and densely. PP-OCR reading a script it lacks reads nothing, or
/// scattered digits and lookalikes, or reads with low confidence.
fn is_sure(regions: &[TextRegion], sample: &[(usize, RecognizedLine)]) -> bool {
    let aspect = |i: usize| aspect(&regions[i]);
    let read = |line: &RecognizedLine, aspect: f32| {
        line.confidence() >= SURE_READING
            && line.chars.len() as f32 >= MIN_CHARS_PER_ASPECT * aspect
    };
    let total: f32 = sample.iter().map(|(i, _)| aspect(*i)).sum();
    let sure: f32 = sample
        .iter()
        .filter(|(i, line)| read(line, aspect(*i)))
        .map(|(i, _)| aspect(*i))
        .sum();
    sure >= 0.75 * total
}

/// The script of the page's sample lines among those Tesseract reads (as its script detector or the
/// letters PP-OCR read name it), unless the detector names a script PP-OCR reads.
fn other_script(
    tesseract: &Tesseract,
    image: &RgbImage,
    regions: &[TextRegion],
    candidates: &[Orientation],
    sample: &[(usize, RecognizedLine)],
) -> Result<Option<&'static Script>> {
    let indices: Vec<usize> = sample.iter().map(|(i, _)| *i).collect();
    let crops = sample_crops(image, regions, &indices, candidates[0])?;
    let script = tesseract.detect_script(&stacked(&crops))?;
    let installed = |s: &Script| tesseract.has(s.traineddata);
    let named = script
        .as_deref()
        .and_then(script_named)
        .filter(|s| installed(s))
        // The detector is often unsure of a few lines; PP-OCR knows some Greek and Cyrillic
        // letters, and a reading made mostly of them names the script.
        .or_else(|| script_of_letters(sample, installed));
    match script {
        _ if named.is_some() => Ok(named),
        Some(script) if PPOCR_SCRIPTS.contains(&script.as_str()) => Ok(None),
        // The detector could not tell, or named a neighbour (Hangul and Devanagari are its weak
        // points). If PP-OCR found next to nothing, each installed script reads the largest line
        // every way the page may be turned, and the most convincing reading names it; otherwise
        // (hard scene text, mostly) PP-OCR's reading stands.
        _ if !barely_read(regions, sample) => Ok(None),
        _ => {
            let trial = candidates
                .iter()
                .map(|&o| crop_line(image, &turned(&regions[sample[0].0].quad, o)))
                .collect::<Result<Vec<_>>>()?;
            let mut best = None;
            for script in SCRIPTS.iter().filter(|s| tesseract.has(s.traineddata)) {
                let read = tesseract.recognize(script.traineddata, &trial)?;
                let score = read
                    .iter()
                    .map(|line| script_evidence(script, std::iter::once(line)))
                    .fold(0.0, f32::max);
                if best.is_none_or(|(_, top)| score > top) {
                    best = Some((script, score));
                }
            }
            Ok(best.map(|(script, _)| script))
        }
    }
}

/// The installed script that most of the sample's letters (at least three, more than half) belong to.
fn script_of_letters(
    sample: &[(usize, RecognizedLine)],
    installed: impl Fn(&Script) -> bool,
) -> Option<&'static Script> {
    let letters: Vec<char> = sample
        .iter()
        .flat_map(|(_, line)| line.chars.iter().flat_map(|c| c.text.chars()))
        .filter(|c| c.is_alphabetic())
        .collect();
    let (script, count) = SCRIPTS
        .iter()
        .filter(|s| installed(s))
        .map(|s| (s, letters.iter().filter(|&&c| s.contains(c)).count()))
        .max_by_key(|&(_, count)| count)?;
    (count >= 3 && 2 * count > letters.len()).then_some(script)
}

/// Whether PP-OCR found next to nothing in the sample: fewer characters than a fifth of what its
/// lines' length holds in Latin, or characters it doubts (a mean confidence below 0.75; lookalikes
/// of another script score about 0.4 to 0.7).
fn barely_read(regions: &[TextRegion], sample: &[(usize, RecognizedLine)]) -> bool {
    let chars: usize = sample.iter().map(|(_, line)| line.chars.len()).sum();
    let length: f32 = sample.iter().map(|(i, _)| aspect(&regions[*i])).sum();
    let lines = sample.iter().map(|(_, line)| line);
    (chars as f32) < 0.5 * length || evidence(lines) < DOUBTFUL_READING * chars as f32
}

/// A region's length in units of its thickness, whichever way it runs.
fn aspect(region: &TextRegion) -> f32 {
    let (width, height) = side_lengths(&region.quad);
    width.max(height) / width.min(height).max(1.0)
}

/// Evidence counting only the characters of `script`.
fn script_evidence<'a>(script: &Script, lines: impl Iterator<Item = &'a RecognizedLine>) -> f32 {
    lines
        .flat_map(|line| &line.chars)
        .filter(|c| c.text.chars().all(|c| script.contains(c)))
        .map(|c| c.confidence)
        .sum()
}

/// Line crops one under another on a white page, each scaled to the same height, with a gap between.
fn stacked(crops: &[RgbImage]) -> RgbImage {
    const HEIGHT: u32 = 48;
    let scaled: Vec<RgbImage> = crops
        .iter()
        .map(|c| {
            let width = (c.width() * HEIGHT / c.height().max(1)).max(1);
            image::imageops::resize(c, width, HEIGHT, image::imageops::FilterType::Triangle)
        })
        .collect();
    let width = scaled.iter().map(RgbImage::width).max().unwrap_or(1) + HEIGHT;
    let height = (scaled.len() as u32 * 2 + 1) * HEIGHT / 2 + HEIGHT;
    let mut strip = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (i, crop) in scaled.iter().enumerate() {
        let top = HEIGHT / 2 + i as u32 * (HEIGHT * 3 / 2);
        image::imageops::replace(&mut strip, crop, (HEIGHT / 2) as i64, top as i64);
    }
    strip
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

/// The line without the words read with less than `min_word_confidence` (None if none is left): a
/// doubtful word is dropped and the line's text rebuilt around it.
fn confident_line(
    line: &RecognizedLine,
    quad: &Quad,
    min_word_confidence: f32,
) -> Option<TextLine> {
    // A CJK character is a word of its own: one doubtful character is kept, or the line would be torn.
    let sure = |w: &TextWord| w.confidence >= min_word_confidence || stands_alone(&w.text);
    let words = words_of(line, quad);
    if words.iter().all(sure) {
        return Some(TextLine {
            text: line.text(),
            polygon: *quad,
            words,
        });
    }
    let words: Vec<TextWord> = words.into_iter().filter(sure).collect();
    let mut text = String::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 && !(stands_alone(&word.text) && stands_alone(&words[i - 1].text)) {
            text.push(' ');
        }
        text.push_str(&word.text);
    }
    (!words.is_empty()).then_some(TextLine {
        text,
        polygon: *quad,
        words,
    })
}

/// The quad's corners renumbered so the first is the top-left of text turned `orientation`.
fn turned(quad: &Quad, orientation: Orientation) -> Quad {
    let k = orientation.quarter_turns();
    Quad(std::array::from_fn(|i| quad.0[(i + k) % 4]))
}

/// The orientations a page may have: the regions' shape tells horizontal lines (upright or upside
/// down) from vertical ones; just upright when the caller says so.
fn orientation_candidates(regions: &[TextRegion], assume_upright: bool) -> &'static [Orientation] {
    if assume_upright {
        return &[Orientation::Up];
    }
    let tall = regions
        .iter()
        .filter(|r| side_lengths(&r.quad).1 > 1.5 * side_lengths(&r.quad).0)
        .count();
    if 2 * tall > regions.len() {
        &[Orientation::Right, Orientation::Left]
    } else {
        &[Orientation::Up, Orientation::Down]
    }
}

/// The length of the quad's top edge and of its left edge.
fn side_lengths(q: &Quad) -> (f32, f32) {
    let [tl, tr, _, bl] = q.0;
    (
        (tr.0 - tl.0).hypot(tr.1 - tl.1),
        (bl.0 - tl.0).hypot(bl.1 - tl.1),
    )
}

/// The candidate orientation the reader reads best, and the sample of lines the vote read, as
/// (region index, line) read that way.
fn choose_orientation(
    reader: LineReader,
    image: &RgbImage,
    regions: &[TextRegion],
    candidates: &[Orientation],
) -> Result<(Orientation, Vec<(usize, RecognizedLine)>)> {
    let area = |i: usize| side_lengths(&regions[i].quad).0 * side_lengths(&regions[i].quad).1;
    let mut sample: Vec<usize> = (0..regions.len()).collect();
    sample.sort_by(|&a, &b| area(b).total_cmp(&area(a)));
    sample.truncate(ORIENTATION_SAMPLE);
    let read_turned = |o: Orientation| -> Result<Vec<(usize, RecognizedLine)>> {
        let crops = sample_crops(image, regions, &sample, o)?;
        Ok(sample
            .iter()
            .copied()
            .zip(reader.recognize(&crops)?)
            .collect())
    };
    // With PP-OCR, the first candidate (upright, or turned right) read surely settles it: most pages
    // are upright, and PP-OCR never reads a page upside down surely. Tesseract's models can read
    // upside-down text as confident lookalikes, so with them every candidate is read.
    let mut best = (candidates[0], read_turned(candidates[0])?);
    if matches!(reader, LineReader::PpOcr(_)) && is_sure(regions, &best.1) {
        return Ok(best);
    }
    for &o in &candidates[1..] {
        let read = read_turned(o)?;
        if evidence(read.iter().map(|(_, l)| l)) > evidence(best.1.iter().map(|(_, l)| l)) {
            best = (o, read);
        }
    }
    Ok(best)
}

/// The lines of the regions at `indices`, cropped as if the page were turned `orientation`.
fn sample_crops(
    image: &RgbImage,
    regions: &[TextRegion],
    indices: &[usize],
    orientation: Orientation,
) -> Result<Vec<RgbImage>> {
    indices
        .iter()
        .map(|&i| crop_line(image, &turned(&regions[i].quad, orientation)))
        .collect()
}

/// How convincingly lines were read: confidence weighted by the characters found.
fn evidence<'a>(lines: impl Iterator<Item = &'a RecognizedLine>) -> f32 {
    lines.map(|l| l.confidence() * l.chars.len() as f32).sum()
}

/// Whether a character is written as a word of its own (CJK ideographs and kana; Korean separates its
/// words with spaces).
fn stands_alone(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(c as u32,
            0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
    })
}

/// Splits a recognised line at spaces (and around CJK characters) and gives each word the part of
/// the line's quad it was read from: from half a character before its first character's centre to
/// half a character after its last one's, a character's width being the line's median pitch (the
/// distance between neighbouring characters' centres within words).
fn words_of(line: &RecognizedLine, quad: &Quad) -> Vec<TextWord> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut open = false;
    for (i, c) in line.chars.iter().enumerate() {
        if c.text.trim().is_empty() {
            open = false;
        } else if stands_alone(&c.text) {
            groups.push(vec![i]);
            open = false;
        } else if open {
            groups.last_mut().expect("an open word").push(i);
        } else {
            groups.push(vec![i]);
            open = true;
        }
    }
    let centre = |i: usize| (line.chars[i].start + line.chars[i].end) / 2.0;
    let mut pitches: Vec<f32> = groups
        .iter()
        .flat_map(|g| {
            g.windows(2)
                .map(|pair| (centre(pair[1]) - centre(pair[0])).abs())
        })
        .collect();
    pitches.sort_by(f32::total_cmp);
    let pitch = pitches
        .get(pitches.len() / 2)
        .copied()
        .unwrap_or(1.0 / line.chars.len().max(1) as f32);
    let mut spans: Vec<(f32, f32)> = groups
        .iter()
        .map(|g| {
            // Right-to-left scripts come in reading order, their centres decreasing.
            let centres = g.iter().map(|&i| centre(i));
            let first = centres.clone().fold(f32::MAX, f32::min);
            let last = centres.fold(f32::MIN, f32::max);
            (
                (first - pitch / 2.0).max(0.0),
                (last + pitch / 2.0).min(1.0),
            )
        })
        .collect();
    // Neighbours across the line that overlap meet halfway.
    let mut across: Vec<usize> = (0..spans.len()).collect();
    across.sort_by(|&a, &b| spans[a].0.total_cmp(&spans[b].0));
    for pair in across.windows(2) {
        let (left, right) = (pair[0], pair[1]);
        if spans[left].1 > spans[right].0 {
            let middle = (spans[left].1 + spans[right].0) / 2.0;
            (spans[left].1, spans[right].0) = (middle, middle);
        }
    }
    groups
        .iter()
        .zip(spans)
        .map(|(group, (start, end))| {
            let chars = group.iter().map(|&i| &line.chars[i]);
            TextWord {
                text: chars.clone().map(|c| c.text.as_str()).collect(),
                polygon: part_of(quad, start, end),
                confidence: chars.map(|c| c.confidence).sum::<f32>() / group.len() as f32,
            }
        })
        .collect()
}

/// The slice of `quad` between fractions `start` and `end` of its length.
fn part_of(quad: &Quad, start: f32, end: f32) -> Quad {
    let [tl, tr, br, bl] = quad.0;
    let along =
        |a: (f32, f32), b: (f32, f32), t: f32| (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
    Quad([
        along(tl, tr, start),
        along(tl, tr, end),
        along(bl, br, end),
        along(bl, br, start),
    ])
}

fn direction(quad: &Quad) -> f32 {
    let [tl, tr, ..] = quad.0;
    (tr.1 - tl.1).atan2(tr.0 - tl.0).to_degrees()
}

fn median_angle(lines: &[TextLine]) -> f32 {
    let mut angles: Vec<f32> = lines.iter().map(|l| direction(&l.polygon)).collect();
    if angles.is_empty() {
        return 0.0;
    }
    angles.sort_by(f32::total_cmp);
    let angle = angles[angles.len() / 2];
    if angle >= 180.0 {
        angle - 360.0
    } else {
        angle
    }
}

/// Coordinates in the text's own frame: u along the lines, v down the page as a reader sees it
/// (whatever the page's rotation), taken from the longest line's direction: a short line's (one
/// character, a small label) can be tilted by tens of degrees, and a frame tilted that much makes
/// lines one under another look like one row (on Azure's sample image a stray "6" put "Hand writing"
/// before "Sample text").
struct TextFrame {
    cos: f32,
    sin: f32,
}

impl TextFrame {
    fn of(lines: &[TextLine]) -> Option<Self> {
        let length = |l: &TextLine| {
            let [tl, tr, ..] = l.polygon.0;
            (tr.0 - tl.0).hypot(tr.1 - tl.1)
        };
        let longest = lines
            .iter()
            .max_by(|a, b| length(a).total_cmp(&length(b)))?;
        let theta = direction(&longest.polygon).to_radians();
        Some(TextFrame {
            cos: theta.cos(),
            sin: theta.sin(),
        })
    }

    fn point(&self, (x, y): (f32, f32)) -> (f32, f32) {
        (x * self.cos + y * self.sin, -x * self.sin + y * self.cos)
    }

    /// The line's extent in the frame: (u0, v0, u1, v1).
    fn extent(&self, line: &TextLine) -> [f32; 4] {
        line.polygon.0.iter().map(|&p| self.point(p)).fold(
            [f32::MAX, f32::MAX, f32::MIN, f32::MIN],
            |[u0, v0, u1, v1], (u, v)| [u0.min(u), v0.min(v), u1.max(u), v1.max(v)],
        )
    }
}

/// Top to bottom, and left to right within a row, as seen by a reader of the text: lines whose
/// centres are within half a line height share a row (the Read API's `basic` order).
fn reading_order(lines: Vec<TextLine>) -> Vec<TextLine> {
    let Some(frame) = TextFrame::of(&lines) else {
        return lines;
    };
    let mut placed: Vec<([f32; 4], TextLine)> =
        lines.into_iter().map(|l| (frame.extent(&l), l)).collect();
    let centre = |e: &[f32; 4]| ((e[0] + e[2]) / 2.0, (e[1] + e[3]) / 2.0);
    placed.sort_by(|a, b| centre(&a.0).1.total_cmp(&centre(&b.0).1));
    let mut rows: Vec<Vec<([f32; 4], TextLine)>> = Vec::new();
    for line in placed {
        match rows.last_mut() {
            Some(row)
                if (centre(&line.0).1 - centre(&row[0].0).1).abs()
                    < 0.5 * (row[0].0[3] - row[0].0[1]) =>
            {
                row.push(line)
            }
            _ => rows.push(vec![line]),
        }
    }
    rows.into_iter()
        .flat_map(|mut row| {
            row.sort_by(|a, b| centre(&a.0).0.total_cmp(&centre(&b.0).0));
            row.into_iter().map(|(_, line)| line)
        })
        .collect()
}

/// Column by column (the Read API's `natural` order): lines stacked closely with overlapping extents
/// form blocks; a block comes before the blocks below it that it overlaps across the page, and before
/// the blocks to its right that share its height on the page; free choices go top first.
fn natural_order(lines: Vec<TextLine>) -> Vec<TextLine> {
    let Some(frame) = TextFrame::of(&lines) else {
        return lines;
    };
    let mut placed: Vec<([f32; 4], TextLine)> =
        lines.into_iter().map(|l| (frame.extent(&l), l)).collect();
    placed.sort_by(|a, b| a.0[1].total_cmp(&b.0[1]));
    let across = |a: &[f32; 4], b: &[f32; 4]| a[0] < b[2] && b[0] < a[2];
    let down = |a: &[f32; 4], b: &[f32; 4]| a[1] < b[3] && b[1] < a[3];
    // Blocks: each line joins the block whose last line sits just above it, overlapping it across.
    let mut blocks: Vec<(Vec<usize>, [f32; 4])> = Vec::new();
    for (i, (extent, _)) in placed.iter().enumerate() {
        let height = extent[3] - extent[1];
        let joins = blocks.iter_mut().find(|(members, _)| {
            let last = &placed[*members.last().expect("blocks are never empty")].0;
            across(last, extent)
                && extent[1] > last[1] + 0.5 * height
                && extent[1] - last[3] < height
        });
        match joins {
            Some((members, outline)) => {
                members.push(i);
                *outline = [
                    outline[0].min(extent[0]),
                    outline[1].min(extent[1]),
                    outline[2].max(extent[2]),
                    outline[3].max(extent[3]),
                ];
            }
            None => blocks.push((vec![i], *extent)),
        }
    }
    let before = |a: &[f32; 4], b: &[f32; 4]| {
        (across(a, b) && a[1] < b[1]) || (!across(a, b) && a[2] <= b[0] && down(a, b))
    };
    // A topological order of `before`, the topmost ready block first; a cycle is broken the same way.
    let mut order = Vec::new();
    let mut left: Vec<usize> = (0..blocks.len()).collect();
    while !left.is_empty() {
        let ready = |&&b: &&usize| {
            !left
                .iter()
                .any(|&a| a != b && before(&blocks[a].1, &blocks[b].1))
        };
        let topmost = |a: &&usize, b: &&usize| blocks[**a].1[1].total_cmp(&blocks[**b].1[1]);
        let next = *left
            .iter()
            .filter(ready)
            .min_by(topmost)
            .or_else(|| left.iter().min_by(topmost))
            .expect("blocks are left");
        left.retain(|&b| b != next);
        order.push(next);
    }
    let mut slots: Vec<Option<TextLine>> = placed.into_iter().map(|(_, l)| Some(l)).collect();
    order
        .into_iter()
        .flat_map(|b| blocks[b].0.clone())
        .map(|i| slots[i].take().expect("each line is in one block"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::text_rec::RecognizedChar;

    fn line_of(spans: &[(&str, f32, f32)]) -> RecognizedLine {
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

    #[test]
    fn a_reading_made_mostly_of_one_installed_scripts_letters_names_it() {
        let sample_of = |text: &str| {
            let spans: Vec<(String, f32, f32)> =
                text.chars().map(|c| (c.to_string(), 0.0, 0.1)).collect();
            let spans: Vec<(&str, f32, f32)> =
                spans.iter().map(|(t, a, b)| (t.as_str(), *a, *b)).collect();
            vec![(0, line_of(&spans))]
        };
        let all = |_: &Script| true;
        let greek = script_of_letters(&sample_of("πνω α τ τεπλι συλ"), all);
        assert_eq!(greek.map(|s| s.name), Some("Greek"));
        // A stray lookalike in Latin text, too few letters, or a script not installed: no script.
        assert!(script_of_letters(&sample_of("Total α 12.00"), all).is_none());
        assert!(script_of_letters(&sample_of("αλ 12"), all).is_none());
        let no_greek = |s: &Script| s.name != "Greek";
        assert!(script_of_letters(&sample_of("πνω α τ τεπλι συλ"), no_greek).is_none());
    }

    fn rect(x: f32, y: f32, w: f32, h: f32) -> Quad {
        Quad([(x, y), (x + w, y), (x + w, y + h), (x, y + h)])
    }

    #[test]
    fn words_split_at_spaces_and_take_their_part_of_the_line() {
        let line = line_of(&[
            ("a", 0.0, 0.1),
            ("b", 0.1, 0.2),
            (" ", 0.25, 0.3),
            ("c", 0.8, 0.9),
        ]);
        let words = words_of(&line, &rect(100.0, 10.0, 200.0, 20.0));
        assert_eq!(
            words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(),
            ["ab", "c"]
        );
        // Centres at 0.05, 0.15 and 0.85 of the line; the pitch inside "ab" is 0.1, so each word runs
        // from half a pitch before its first centre to half a pitch after its last.
        let Quad([tl, tr, br, bl]) = words[0].polygon;
        assert_eq!(
            (tl, tr, br, bl),
            ((100.0, 10.0), (140.0, 10.0), (140.0, 30.0), (100.0, 30.0))
        );
        let Quad([tl, tr, ..]) = words[1].polygon;
        assert_eq!((tl.0, tr.0), (260.0, 280.0));
        assert!((words[0].confidence - 0.8).abs() < 1e-6);
    }

    #[test]
    fn doubtful_words_are_dropped_and_the_line_rebuilt() {
        let mut line = line_of(&[
            ("a", 0.0, 0.1),
            (" ", 0.2, 0.3),
            ("b", 0.4, 0.5),
            (" ", 0.6, 0.7),
            ("c", 0.8, 0.9),
        ]);
        line.chars[2].confidence = 0.3;
        let quad = rect(0.0, 0.0, 100.0, 10.0);
        let kept = confident_line(&line, &quad, MIN_WORD_CONFIDENCE).unwrap();
        assert_eq!((kept.text.as_str(), kept.words.len()), ("a c", 2));
        let document = confident_line(&line, &quad, 0.0).unwrap();
        assert_eq!((document.text.as_str(), document.words.len()), ("a b c", 3));
        line.chars.iter_mut().for_each(|c| c.confidence = 0.2);
        assert!(confident_line(&line, &quad, MIN_WORD_CONFIDENCE).is_none());
        let cjk = line_of(&[("東", 0.0, 0.2), ("x", 0.3, 0.4), ("京", 0.5, 0.7)]);
        let mut cjk = cjk;
        cjk.chars[1].confidence = 0.1;
        assert_eq!(
            confident_line(&cjk, &rect(0.0, 0.0, 10.0, 2.0), MIN_WORD_CONFIDENCE)
                .unwrap()
                .text,
            "東京"
        );
    }

    #[test]
    fn cjk_characters_are_words_of_their_own() {
        let line = line_of(&[
            ("東", 0.0, 0.2),
            ("京", 0.2, 0.4),
            ("A", 0.5, 0.6),
            ("1", 0.6, 0.7),
        ]);
        let words: Vec<String> = words_of(&line, &rect(0.0, 0.0, 10.0, 2.0))
            .into_iter()
            .map(|w| w.text)
            .collect();
        assert_eq!(words, ["東", "京", "A1"]);
    }

    #[test]
    fn turning_a_quad_starts_it_at_the_texts_own_top_left() {
        let q = rect(0.0, 0.0, 10.0, 30.0);
        // Text running downwards (its top faces right) starts at the image's top-right corner.
        assert_eq!(turned(&q, Orientation::Right).0[0], (10.0, 0.0));
        assert_eq!(turned(&q, Orientation::Down).0[0], (10.0, 30.0));
        assert_eq!(turned(&q, Orientation::Left).0[0], (0.0, 30.0));
        assert_eq!(direction(&turned(&q, Orientation::Right)), 90.0);
    }

    fn line(text: &str, quad: Quad) -> TextLine {
        TextLine {
            text: text.into(),
            polygon: quad,
            words: Vec::new(),
        }
    }

    #[test]
    fn reading_order_is_rows_top_down_then_left_to_right() {
        let lines = vec![
            line("second row", rect(0.0, 40.0, 50.0, 20.0)),
            line("right", rect(120.0, 2.0, 50.0, 20.0)),
            line("left", rect(0.0, 0.0, 50.0, 20.0)),
        ];
        let order: Vec<String> = reading_order(lines).into_iter().map(|l| l.text).collect();
        assert_eq!(order, ["left", "right", "second row"]);
    }

    #[test]
    fn scenes_keep_their_sure_regions_and_documents_all() {
        let region = |score| TextRegion {
            quad: rect(0.0, 0.0, 10.0, 10.0),
            score,
        };
        let scene = sure_regions(vec![region(0.57), region(0.8), region(0.65)]);
        assert_eq!(
            scene.iter().map(|r| r.score).collect::<Vec<_>>(),
            [0.8, 0.65]
        );
        let document: Vec<TextRegion> = (0..DOCUMENT_LINES).map(|_| region(0.55)).collect();
        assert_eq!(sure_regions(document).len(), DOCUMENT_LINES);
    }

    #[test]
    fn a_short_tilted_line_does_not_tilt_the_reading_frame() {
        // The boxes vista found on Azure's sample image: a stray one-character box tilted by 9
        // degrees came first, and in its frame "Hand writing" shared a row with "Sample text".
        let lines = vec![
            line(
                "6",
                Quad([(505.9, 65.6), (523.4, 62.7), (525.3, 74.2), (507.8, 77.1)]),
            ),
            line(
                "Hand writing",
                Quad([
                    (717.5, 519.4),
                    (824.4, 522.9),
                    (823.5, 549.6),
                    (716.6, 546.1),
                ]),
            ),
            line(
                "Sample text",
                Quad([
                    (718.5, 497.2),
                    (846.9, 499.4),
                    (846.5, 525.3),
                    (718.1, 523.1),
                ]),
            ),
            line(
                "123 456",
                Quad([
                    (718.5, 544.8),
                    (794.9, 546.0),
                    (794.5, 568.8),
                    (718.2, 567.6),
                ]),
            ),
        ];
        let order: Vec<String> = reading_order(lines).into_iter().map(|l| l.text).collect();
        assert_eq!(order, ["6", "Sample text", "Hand writing", "123 456"]);
    }

    #[test]
    fn natural_order_reads_columns_under_a_title_before_a_footer() {
        let lines = vec![
            line("title", rect(0.0, 0.0, 300.0, 30.0)),
            line("left 1", rect(0.0, 50.0, 140.0, 20.0)),
            line("right 1", rect(160.0, 50.0, 140.0, 20.0)),
            line("left 2", rect(0.0, 75.0, 140.0, 20.0)),
            line("right 2", rect(160.0, 75.0, 140.0, 20.0)),
            line("right 3", rect(160.0, 100.0, 140.0, 20.0)),
            line("footer", rect(0.0, 160.0, 300.0, 20.0)),
        ];
        let natural: Vec<String> = natural_order(lines.clone())
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            natural,
            ["title", "left 1", "left 2", "right 1", "right 2", "right 3", "footer"]
        );
        let basic: Vec<String> = reading_order(lines).into_iter().map(|l| l.text).collect();
        assert_eq!(basic[1..3], ["left 1", "right 1"]);
    }

    #[test]
    fn reading_order_follows_an_upside_down_page() {
        // Turned 180°: the reader's first row is the image's bottom one, read right to left.
        let down = |x, y| turned(&rect(x, y, 50.0, 20.0), Orientation::Down);
        let lines = vec![
            line("first", down(100.0, 100.0)),
            line("last", down(0.0, 0.0)),
            line("second", down(0.0, 100.0)),
        ];
        let order: Vec<String> = reading_order(lines).into_iter().map(|l| l.text).collect();
        assert_eq!(order, ["first", "second", "last"]);
        assert_eq!(median_angle(&[line("x", down(0.0, 0.0))]), -180.0);
    }
}
