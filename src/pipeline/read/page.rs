//! The decisions of reading one page from its text regions: which regions are worth reading, which
//! way up the page is, which engine reads its script, which upside-down lines to read again; then
//! words (`words`) and reading order (`order`).
//!
//! Orientation is decided once per page, not per line: the detector's regions tell whether lines run
//! horizontally (0° or 180°) or vertically (90° or 270°), and the recogniser's confidence on a sample
//! of the largest lines, read both ways, picks between the two. A per-line classifier alone garbles
//! rotated pages. The models come in through [`Readers`], so the tests below drive every decision with
//! fake readers built in code.

use std::cell::RefCell;
use std::collections::HashMap;

use anyhow::Result;
use image::RgbImage;

use super::order::{median_angle, natural_order, reading_order};
use super::words::confident_line;
use super::{Orientation, PageText, ReadOptions, TextLine};
use crate::cpu_budget;
use crate::geometry::Quad;
use crate::models::tesseract::{script_named, Script, SCRIPTS};
use crate::models::text_det::TextRegion;
use crate::models::text_rec::{crop_line, RecognizedLine};
use crate::models::traits::{LineOrientationClassifier, LineRecognizer, ScriptReader};

/// The models that read the lines of a page: PP-OCR's recogniser (Latin, Chinese, Japanese), and when
/// the pack has them the line orientation classifier and Tesseract for the scripts PP-OCR lacks.
#[derive(Clone, Copy)]
pub struct Readers<'a> {
    pub recognizer: &'a dyn LineRecognizer,
    pub line_classifier: Option<&'a dyn LineOrientationClassifier>,
    pub scripts: Option<&'a dyn ScriptReader>,
}
/// Lines read with less mean confidence than this are noise (PP-OCR's `text_score`).
const MIN_LINE_CONFIDENCE: f32 = 0.5;

/// In scene text, words read with less mean confidence than this are dropped: on the ICDAR 2015
/// development images every word below 0.7 was wrong (19 of them), while 93 right words all scored
/// above it.
pub(super) const MIN_WORD_CONFIDENCE: f32 = 0.7;

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
    PpOcr(&'a dyn LineRecognizer),
    /// Tesseract with one traineddata (e.g. "rus").
    Tesseract(&'a dyn ScriptReader, &'static str),
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

/// Reads the page from the regions the text detector found on it (at its full input size); a lone
/// request reads ahead (see `read_regions_ahead`).
pub(super) fn read_regions(
    readers: &Readers,
    image: &RgbImage,
    regions: Vec<TextRegion>,
    options: &ReadOptions,
) -> Result<PageText> {
    let ahead = cpu_budget::spread_workers() > 1;
    read_regions_ahead(readers, image, regions, options, ahead)
}

/// `read_regions`. Most pages are upright, and PP-OCR settles that on the vote's sample alone; with
/// `ahead`, it reads the rest of the page that way in the same go, on the cores the sample's batch
/// would leave idle, and keeps it if the vote agrees (a receipt: 5% sooner). The answer is the same
/// either way: each group is read as if alone.
fn read_regions_ahead(
    readers: &Readers,
    image: &RgbImage,
    regions: Vec<TextRegion>,
    options: &ReadOptions,
    ahead: bool,
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
        .and_then(crate::pipeline::language::tesseract_model)
        .and_then(|data| {
            let tesseract = readers.scripts.filter(|t| t.has(data))?;
            Some(LineReader::Tesseract(tesseract, data))
        });
    let crops = LineCrops::new(image, &regions);
    let candidates = orientation_candidates(&regions, options.assume_upright);
    let mut reader = named.unwrap_or(LineReader::PpOcr(readers.recognizer));
    let voters = vote_sample(&regions);
    let (first, rest) = match reader {
        LineReader::PpOcr(recognizer) if ahead => {
            let (sample, rest) = read_sample_and_rest(recognizer, &crops, &voters, candidates[0])?;
            (sample, Some(rest))
        }
        _ => (read_sample(reader, &crops, &voters, candidates[0])?, None),
    };
    let (mut orientation, mut sample) =
        choose_orientation(reader, &crops, &voters, candidates, first)?;
    if let (None, None, Some(tesseract)) = (language, named, readers.scripts) {
        if !is_sure(&regions, &sample) {
            if let Some(script) = other_script(tesseract, &crops, candidates, &sample)? {
                let other = LineReader::Tesseract(tesseract, script.traineddata);
                let first = read_sample(other, &crops, &voters, candidates[0])?;
                let (other_orientation, other_sample) =
                    choose_orientation(other, &crops, &voters, candidates, first)?;
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
    // What was read ahead stands if the page is that way up and PP-OCR still reads it.
    let kept = orientation == candidates[0] && matches!(reader, LineReader::PpOcr(_));
    let rest = rest.filter(|_| kept);
    let mut quads: Vec<Quad> = regions
        .iter()
        .map(|r| turned(&r.quad, orientation))
        .collect();
    // The vote already read its sample the chosen way (and maybe the rest); read what is left.
    let mut recognized: Vec<Option<RecognizedLine>> = vec![None; quads.len()];
    for (i, line) in sample.into_iter().chain(rest.into_iter().flatten()) {
        recognized[i] = Some(line);
    }
    let pending: Vec<usize> = (0..quads.len())
        .filter(|&i| recognized[i].is_none())
        .collect();
    for (&i, line) in pending
        .iter()
        .zip(reader.recognize(&crops.of(&pending, orientation)?)?)
    {
        recognized[i] = Some(line);
    }
    let mut recognized: Vec<RecognizedLine> = recognized
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    if let Some(classifier) = readers.line_classifier {
        reread_upside_down_lines(
            classifier,
            reader,
            &crops,
            orientation,
            &mut quads,
            &mut recognized,
        )?;
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
/// convincing replaces the first, with its quad renumbered to match. `quads` are the regions' turned
/// `orientation`, the way the page reads.
fn reread_upside_down_lines(
    classifier: &dyn LineOrientationClassifier,
    reader: LineReader,
    crops: &LineCrops,
    orientation: Orientation,
    quads: &mut [Quad],
    lines: &mut [RecognizedLine],
) -> Result<()> {
    let doubtful: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].confidence() < SURE_READING)
        .collect();
    if doubtful.is_empty() {
        return Ok(());
    }
    let upside_down: Vec<(usize, Quad)> = doubtful
        .iter()
        .zip(classifier.upside_down(&crops.of(&doubtful, orientation)?)?)
        .filter(|&(_, chance)| chance >= SURELY_UPSIDE_DOWN)
        .map(|(&i, _)| (i, turned(&quads[i], Orientation::Down)))
        .collect();
    if upside_down.is_empty() {
        return Ok(());
    }
    let turned_over = upside_down
        .iter()
        .map(|(_, quad)| crop_line(crops.image, quad))
        .collect::<Result<Vec<_>>>()?;
    for ((i, quad), line) in upside_down.into_iter().zip(reader.recognize(&turned_over)?) {
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
    tesseract: &dyn ScriptReader,
    crops: &LineCrops,
    candidates: &[Orientation],
    sample: &[(usize, RecognizedLine)],
) -> Result<Option<&'static Script>> {
    let regions = crops.regions;
    let indices: Vec<usize> = sample.iter().map(|(i, _)| *i).collect();
    let script = tesseract.detect_script(&stacked(&crops.of(&indices, candidates[0])?))?;
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
                .map(|&o| crops.of(&[sample[0].0], o))
                .collect::<Result<Vec<_>>>()?
                .concat();
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

/// The quad's corners renumbered so the first is the top-left of text turned `orientation`.
pub(super) fn turned(quad: &Quad, orientation: Orientation) -> Quad {
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

/// Lines read, each with the index of its region.
type Readings = Vec<(usize, RecognizedLine)>;

/// The regions that vote on the page's orientation: the largest.
fn vote_sample(regions: &[TextRegion]) -> Vec<usize> {
    let area = |i: usize| side_lengths(&regions[i].quad).0 * side_lengths(&regions[i].quad).1;
    let mut sample: Vec<usize> = (0..regions.len()).collect();
    sample.sort_by(|&a, &b| area(b).total_cmp(&area(a)));
    sample.truncate(ORIENTATION_SAMPLE);
    sample
}

/// The candidate orientation the reader reads best, and the sample of lines the vote read, as
/// (region index, line) read that way; `first` is the sample read the first candidate's way.
fn choose_orientation(
    reader: LineReader,
    crops: &LineCrops,
    sample: &[usize],
    candidates: &[Orientation],
    first: Readings,
) -> Result<(Orientation, Readings)> {
    // With PP-OCR, the first candidate (upright, or turned right) read surely settles it: most pages
    // are upright, and PP-OCR never reads a page upside down surely. Tesseract's models can read
    // upside-down text as confident lookalikes, so with them every candidate is read.
    let mut best = (candidates[0], first);
    if matches!(reader, LineReader::PpOcr(_)) && is_sure(crops.regions, &best.1) {
        return Ok(best);
    }
    for &o in &candidates[1..] {
        let read = read_sample(reader, crops, sample, o)?;
        if evidence(read.iter().map(|(_, l)| l)) > evidence(best.1.iter().map(|(_, l)| l)) {
            best = (o, read);
        }
    }
    Ok(best)
}

/// The lines of the regions at `sample`, read as if the page were turned `orientation`.
fn read_sample(
    reader: LineReader,
    crops: &LineCrops,
    sample: &[usize],
    orientation: Orientation,
) -> Result<Readings> {
    Ok(sample
        .iter()
        .copied()
        .zip(reader.recognize(&crops.of(sample, orientation)?)?)
        .collect())
}

/// `read_sample`, and every other region read the same way, each as if read on its own, in one
/// go: the crops cut and the batches read on every core.
fn read_sample_and_rest(
    recognizer: &dyn LineRecognizer,
    crops: &LineCrops,
    sample: &[usize],
    orientation: Orientation,
) -> Result<(Readings, Readings)> {
    let rest: Vec<usize> = (0..crops.regions.len())
        .filter(|i| !sample.contains(i))
        .collect();
    let order: Vec<usize> = sample.iter().chain(&rest).copied().collect();
    let crops = crops.of(&order, orientation)?;
    let (sample_crops, rest_crops) = crops.split_at(sample.len());
    let mut read = recognizer
        .recognize_groups(&[sample_crops, rest_crops])?
        .into_iter();
    let mut paired = |indices: &[usize]| -> Readings {
        indices
            .iter()
            .copied()
            .zip(read.next().unwrap_or_default())
            .collect()
    };
    Ok((paired(sample), paired(&rest)))
}

/// The page's line crops, each cut once: the orientation vote, the script check and the reading ask
/// for the same region turned the same way several times (on a photo read doubtfully, its largest
/// region, 465x387 px, was cut eight times at 7 ms each).
struct LineCrops<'a> {
    image: &'a RgbImage,
    regions: &'a [TextRegion],
    cut: RefCell<HashMap<(usize, Orientation), RgbImage>>,
}

impl<'a> LineCrops<'a> {
    fn new(image: &'a RgbImage, regions: &'a [TextRegion]) -> Self {
        LineCrops {
            image,
            regions,
            cut: RefCell::new(HashMap::new()),
        }
    }

    /// The lines of the regions at `indices`, cropped as if the page were turned `orientation`. A
    /// receipt's 47 crops took 17 ms on one thread (9 ms on two): a lone request cuts them on every
    /// core.
    fn of(&self, indices: &[usize], orientation: Orientation) -> Result<Vec<RgbImage>> {
        let missing: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| !self.cut.borrow().contains_key(&(i, orientation)))
            .collect();
        let (image, regions) = (self.image, self.regions);
        let fresh = cpu_budget::spread(missing.len(), cpu_budget::spread_workers(), |k| {
            crop_line(image, &turned(&regions[missing[k]].quad, orientation))
        });
        let mut cut = self.cut.borrow_mut();
        for (&i, crop) in missing.iter().zip(fresh) {
            cut.insert((i, orientation), crop?);
        }
        Ok(indices
            .iter()
            .filter_map(|&i| cut.get(&(i, orientation)).cloned())
            .collect())
    }
}

/// How convincingly lines were read: confidence weighted by the characters found.
fn evidence<'a>(lines: impl Iterator<Item = &'a RecognizedLine>) -> f32 {
    lines.map(|l| l.confidence() * l.chars.len() as f32).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::pipeline::read::test_support::{line_of, rect};

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

    // Fake pages: each line is a bar whose grey level numbers it (line k is k * 40), with a marker at
    // the start of its text: red for Latin, blue for Cyrillic. A bar turned over has its marker at
    // the right. The fake readers read a crop only when its marker is on the left.
    const RED: [u8; 3] = [230, 20, 20];
    const BLUE: [u8; 3] = [20, 20, 230];

    struct Bar {
        rect: (f32, f32, f32, f32),
        number: u8,
        marker: [u8; 3],
        upside_down: bool,
    }

    fn page(bars: &[Bar]) -> (RgbImage, Vec<TextRegion>) {
        let mut image = RgbImage::from_pixel(400, 300, image::Rgb([255, 255, 255]));
        for bar in bars {
            let (x, y, w, h) = bar.rect;
            let grey = bar.number * 40;
            for py in y as u32..(y + h) as u32 {
                for px in x as u32..(x + w) as u32 {
                    let along = (px as f32 - x) / w;
                    let marked = if bar.upside_down {
                        along > 0.75
                    } else {
                        along < 0.25
                    };
                    let colour = if marked { bar.marker } else { [grey; 3] };
                    image.put_pixel(px, py, image::Rgb(colour));
                }
            }
        }
        let regions = bars
            .iter()
            .map(|b| TextRegion {
                quad: rect(b.rect.0, b.rect.1, b.rect.2, b.rect.3),
                score: 0.9,
            })
            .collect();
        (image, regions)
    }

    fn bar(number: u8, y: f32, marker: [u8; 3], upside_down: bool) -> Bar {
        Bar {
            rect: (20.0, y, 300.0 - 10.0 * number as f32, 30.0),
            number,
            marker,
            upside_down,
        }
    }

    /// Which marker a crop starts with, and the number of its bar.
    fn marker_and_number(crop: &RgbImage) -> (Option<[u8; 3]>, u8) {
        let (w, h) = crop.dimensions();
        let start = crop.get_pixel(w / 10, h / 2).0;
        let middle = crop.get_pixel(w / 2, h / 2).0;
        let marker = [RED, BLUE]
            .into_iter()
            .find(|m| m.iter().zip(start).all(|(a, b)| a.abs_diff(b) < 40));
        (marker, ((middle[0] as f32) / 40.0).round() as u8)
    }

    fn reading(text: &str, confidence: f32) -> RecognizedLine {
        let n = text.chars().count().max(1) as f32;
        let mut line = line_of(&[]);
        line.chars = text
            .chars()
            .enumerate()
            .map(|(i, c)| crate::models::text_rec::RecognizedChar {
                text: c.to_string(),
                start: i as f32 / n,
                end: (i + 1) as f32 / n,
                confidence,
            })
            .collect();
        line
    }

    /// PP-OCR: reads Latin lines the right way up, and little else.
    struct FakeRecognizer;

    impl LineRecognizer for FakeRecognizer {
        fn recognize(&self, lines: &[RgbImage]) -> Result<Vec<RecognizedLine>> {
            Ok(lines
                .iter()
                .map(|crop| match marker_and_number(crop) {
                    (Some(RED), number) => reading(&format!("LATINLINE{number}"), 0.95),
                    _ => reading("1", 0.3),
                })
                .collect())
        }
    }

    /// Tesseract with Cyrillic: reads Cyrillic lines the right way up and names their script.
    struct FakeScripts {
        detections: AtomicUsize,
    }

    impl ScriptReader for FakeScripts {
        fn has(&self, traineddata: &str) -> bool {
            traineddata == "rus"
        }

        fn recognize(&self, traineddata: &str, lines: &[RgbImage]) -> Result<Vec<RecognizedLine>> {
            assert_eq!(traineddata, "rus");
            Ok(lines
                .iter()
                .map(|crop| match marker_and_number(crop) {
                    (Some(BLUE), number) => reading(&format!("СТРОКА{number}"), 0.9),
                    _ => reading("Ш", 0.2),
                })
                .collect())
        }

        fn detect_script(&self, _: &RgbImage) -> Result<Option<String>> {
            self.detections.fetch_add(1, Ordering::SeqCst);
            Ok(Some("Cyrillic".into()))
        }
    }

    /// Tells lines whose marker is on the right for upside down.
    struct FakeLineClassifier;

    impl LineOrientationClassifier for FakeLineClassifier {
        fn upside_down(&self, lines: &[RgbImage]) -> Result<Vec<f32>> {
            Ok(lines
                .iter()
                .map(|crop| {
                    let (w, h) = crop.dimensions();
                    let end = crop.get_pixel(w - w / 10, h / 2).0;
                    if end[0] > 200 && end[2] < 60 {
                        0.95
                    } else {
                        0.05
                    }
                })
                .collect())
        }
    }

    fn texts(page: &PageText) -> Vec<&str> {
        page.lines.iter().map(|l| l.text.as_str()).collect()
    }

    /// The page as a busy machine reads it (sample first) after checking that a lone request,
    /// reading ahead, reads the same.
    fn read_both_ways(
        readers: &Readers,
        image: &RgbImage,
        regions: Vec<TextRegion>,
        options: &ReadOptions,
    ) -> PageText {
        let ahead = read_regions_ahead(readers, image, regions.clone(), options, true).unwrap();
        let page = read_regions_ahead(readers, image, regions, options, false).unwrap();
        assert_eq!(ahead, page, "reading ahead changes nothing");
        page
    }

    /// Counts the calls that read the vote's sample and the rest of the page in one go.
    struct ReadAheadCounter {
        in_one_go: AtomicUsize,
    }

    impl LineRecognizer for ReadAheadCounter {
        fn recognize(&self, lines: &[RgbImage]) -> Result<Vec<RecognizedLine>> {
            FakeRecognizer.recognize(lines)
        }

        fn recognize_groups(&self, groups: &[&[RgbImage]]) -> Result<Vec<Vec<RecognizedLine>>> {
            if groups.len() == 2 {
                self.in_one_go.fetch_add(1, Ordering::SeqCst);
            }
            groups.iter().map(|lines| self.recognize(lines)).collect()
        }
    }

    #[test]
    fn reading_ahead_keeps_the_rest_of_an_upright_page_and_rereads_a_turned_one() {
        let counter = ReadAheadCounter {
            in_one_go: AtomicUsize::new(0),
        };
        let readers = Readers {
            recognizer: &counter,
            line_classifier: None,
            scripts: None,
        };
        let expected: Vec<String> = (1..=6).map(|n| format!("LATINLINE{n}")).collect();
        for upside_down in [false, true] {
            // Six lines: the vote reads the four largest, the rest are read ahead.
            let bars: Vec<Bar> = (1..=6u8)
                .map(|n| {
                    let y = 40.0 * n as f32;
                    bar(n, if upside_down { 280.0 - y } else { y }, RED, upside_down)
                })
                .collect();
            let (image, regions) = page(&bars);
            let page = read_both_ways(&readers, &image, regions, &ReadOptions::default());
            let want = if upside_down {
                Orientation::Down
            } else {
                Orientation::Up
            };
            assert_eq!(page.orientation, Some(want));
            assert_eq!(texts(&page), expected);
        }
        assert_eq!(
            counter.in_one_go.load(Ordering::SeqCst),
            2,
            "each page read its sample and the rest in one go once (not when reading sample first)"
        );
    }

    #[test]
    fn the_orientation_vote_reads_a_page_upright_or_turned_over_and_in_rows() {
        let readers = Readers {
            recognizer: &FakeRecognizer,
            line_classifier: None,
            scripts: None,
        };
        // Given bottom line first: the page comes back top down.
        let bars = [bar(3, 200.0, RED, false), bar(1, 40.0, RED, false)];
        let (image, regions) = page(&bars);
        let read = read_both_ways(&readers, &image, regions, &ReadOptions::default());
        assert_eq!(read.orientation, Some(Orientation::Up));
        assert_eq!(texts(&read), ["LATINLINE1", "LATINLINE3"]);

        // Turned over: read upside down, the reader's first line is the image's bottom one.
        let bars = [bar(1, 200.0, RED, true), bar(3, 40.0, RED, true)];
        let (image, regions) = page(&bars);
        let read = read_both_ways(&readers, &image, regions, &ReadOptions::default());
        assert_eq!(read.orientation, Some(Orientation::Down));
        assert_eq!(texts(&read), ["LATINLINE1", "LATINLINE3"]);
        assert!((read.angle.abs() - 180.0).abs() < 1e-3, "{}", read.angle);

        // Told the page is upright, it is not turned, and what reads as noise is dropped.
        let options = ReadOptions {
            assume_upright: true,
            ..ReadOptions::default()
        };
        let read = read_both_ways(&readers, &image, page(&bars).1, &options);
        assert_eq!(read.orientation, Some(Orientation::Up));
        assert!(read.lines.is_empty(), "{:?}", texts(&read));
    }

    #[test]
    fn a_script_the_recognizer_barely_reads_falls_back_to_the_installed_script_reader() {
        let scripts = FakeScripts {
            detections: AtomicUsize::new(0),
        };
        let readers = Readers {
            recognizer: &FakeRecognizer,
            line_classifier: None,
            scripts: Some(&scripts),
        };
        // Five lines: the fifth is not in the vote's sample, and read by the other script too.
        let bars: Vec<Bar> = (1..=5u8)
            .map(|n| bar(n, 50.0 * n as f32 - 30.0, BLUE, false))
            .collect();
        let (image, regions) = page(&bars);
        let read = read_both_ways(&readers, &image, regions.clone(), &ReadOptions::default());
        let expected: Vec<String> = (1..=5).map(|n| format!("СТРОКА{n}")).collect();
        assert_eq!(texts(&read), expected);
        assert_eq!(scripts.detections.load(Ordering::SeqCst), 2, "once a way");

        // A page PP-OCR reads surely never asks for the script.
        let (latin, latin_regions) = page(&[bar(1, 40.0, RED, false), bar(2, 120.0, RED, false)]);
        let read = read_both_ways(&readers, &latin, latin_regions, &ReadOptions::default());
        assert_eq!(texts(&read), ["LATINLINE1", "LATINLINE2"]);
        assert_eq!(scripts.detections.load(Ordering::SeqCst), 2);

        // Without the script reader the Cyrillic page has nothing sure to say.
        let readers = Readers {
            scripts: None,
            ..readers
        };
        let read = read_both_ways(&readers, &image, regions, &ReadOptions::default());
        assert!(read.lines.is_empty(), "{:?}", texts(&read));
    }

    #[test]
    fn an_upside_down_line_on_an_upright_page_is_read_again_turned_over() {
        let bars = [
            bar(1, 20.0, RED, false),
            bar(2, 80.0, RED, false),
            bar(3, 140.0, RED, false),
            bar(4, 200.0, RED, true),
        ];
        let (image, regions) = page(&bars);
        let without = Readers {
            recognizer: &FakeRecognizer,
            line_classifier: None,
            scripts: None,
        };
        let read = read_both_ways(&without, &image, regions.clone(), &ReadOptions::default());
        assert_eq!(read.orientation, Some(Orientation::Up));
        assert_eq!(texts(&read), ["LATINLINE1", "LATINLINE2", "LATINLINE3"]);

        let with = Readers {
            line_classifier: Some(&FakeLineClassifier),
            ..without
        };
        let read = read_both_ways(&with, &image, regions, &ReadOptions::default());
        assert_eq!(
            texts(&read),
            ["LATINLINE1", "LATINLINE2", "LATINLINE3", "LATINLINE4"]
        );
        // The rescued line's polygon starts at its own top-left: the bar's bottom-right corner.
        let (x, y, w, h) = bars[3].rect;
        assert_eq!(read.lines[3].polygon.0[0], (x + w, y + h));
    }
}
