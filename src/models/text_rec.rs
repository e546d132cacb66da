//! PP-OCR text-line recognition (CTC): a line image, 48 px tall, becomes per-column class scores; the
//! greedy CTC path gives the characters, their confidences and the columns each was read from, which
//! is what lets words get boxes of their own. The character list ships inside the model's metadata.

use anyhow::{anyhow, Context, Result};
use image::RgbImage;
use imageproc::geometric_transformations::{warp_into_with, Border, Interpolation, Projection};
use ndarray::{s, Array4, ArrayView2, Axis};
use ort::value::TensorRef;
use serde::Deserialize;

use super::traits::LineRecognizer;
use crate::cpu_budget;
use crate::geometry::Quad;
use crate::models::manifest::PackEntry;
use crate::models::preprocess::{resize_bilinear, to_nchw_bgr};
use crate::runtime::SessionPool;

#[derive(Debug, Clone, Deserialize)]
pub struct TextRecFacts {
    pub input: String,
    pub output: String,
    pub height: u32,
    /// Narrower batches are padded to this width (PP-OCR's 320 for a 48 px line).
    pub min_width: u32,
    pub max_batch: usize,
    pub charset_metadata_key: String,
}

/// One character of a line, with the horizontal span it was read from (0..1 of the line's width).
#[derive(Debug, Clone, PartialEq)]
pub struct RecognizedChar {
    pub text: String,
    pub start: f32,
    pub end: f32,
    pub confidence: f32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecognizedLine {
    pub chars: Vec<RecognizedChar>,
}

impl RecognizedLine {
    pub fn text(&self) -> String {
        self.chars.iter().map(|c| c.text.as_str()).collect()
    }

    /// The mean confidence of the characters (0 for an empty line).
    pub fn confidence(&self) -> f32 {
        if self.chars.is_empty() {
            return 0.0;
        }
        self.chars.iter().map(|c| c.confidence).sum::<f32>() / self.chars.len() as f32
    }
}

/// A page with this many lines to read (a document) is read in batches of like width: on the SROIE
/// development receipts, padding was 15% of the columns read, and cutting it read them 6% sooner with
/// line CER 4.7% -> 4.5%. A scene's few lines keep batches of `max_batch` from the narrowest: its short
/// crops read unpadded came back as confident junk ("54", "600" on the ICDAR 2015 development images,
/// end-to-end F1 65.6% -> 64.9%), while its padding costs little.
const LIKE_WIDTHS_FROM: usize = 20;

/// In batches of like width, a batch's widest line is at most this much wider than its narrowest.
/// With scenes cut too, 1.05 / 1.1 / 1.25 gave receipt CER 4.3 / 4.4 / 4.5%, the same within noise;
/// on the development images 1.1 leaves 12% fewer columns to read than batches of 6 with twice as
/// many batches, 1.05 13% with nearly three times.
const PADDING_ALLOWED: f32 = 1.1;

/// How many lines each batch takes, in order, of lines whose padded widths `widths` rise.
fn batch_sizes(widths: &[f32], max_batch: usize) -> Vec<usize> {
    let max_batch = max_batch.max(1);
    if widths.len() < LIKE_WIDTHS_FROM {
        return widths.chunks(max_batch).map(<[f32]>::len).collect();
    }
    let mut sizes = Vec::new();
    let mut rest = widths;
    while let Some(&narrowest) = rest.first() {
        let size = rest
            .iter()
            .take(max_batch)
            .take_while(|&&width| width <= narrowest * PADDING_ALLOWED)
            .count();
        sizes.push(size);
        rest = &rest[size..];
    }
    sizes
}

pub struct TextRecognizer {
    sessions: SessionPool,
    facts: TextRecFacts,
    /// Class 0 is the CTC blank; then the model's characters; the last class is a space.
    classes: Vec<String>,
}

impl TextRecognizer {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        let facts: TextRecFacts = entry.facts()?;
        let charset = sessions
            .custom_metadata(&facts.charset_metadata_key)?
            .with_context(|| {
                format!(
                    "model '{}' has no '{}' metadata",
                    entry.id, facts.charset_metadata_key
                )
            })?;
        let classes = std::iter::once(String::new())
            .chain(charset.split('\n').map(str::to_owned))
            .chain(std::iter::once(" ".to_owned()))
            .collect();
        Ok(TextRecognizer {
            sessions,
            facts,
            classes,
        })
    }

    /// The aspect ratio a batch is padded to at least.
    fn min_aspect(&self) -> f32 {
        self.facts.min_width as f32 / self.facts.height as f32
    }

    /// Reads one batch of its group's `lines`.
    fn read_batch(&self, lines: &[RgbImage], batch: &Batch) -> Result<Vec<RecognizedLine>> {
        let height = self.facts.height;
        let batch_width = (height as f32 * batch.padded).ceil() as u32;
        let batch_lines: Vec<&RgbImage> = batch.lines.iter().map(|&i| &lines[i]).collect();
        let (tensor, widths) = line_batch(&batch_lines, height, batch_width)?;
        let content: Vec<f32> = widths
            .iter()
            .map(|&w| w as f32 / batch_width as f32)
            .collect();
        let inputs =
            ort::inputs![self.facts.input.as_str() => TensorRef::from_array_view(&tensor)?];
        self.sessions.run(inputs, |outputs| {
            let scores = outputs[self.facts.output.as_str()].try_extract_array::<f32>()?;
            let scores = scores
                .into_dimensionality::<ndarray::Ix3>()
                .map_err(|e| ort::Error::new(e.to_string()))?;
            Ok(scores
                .axis_iter(Axis(0))
                .zip(&content)
                .map(|(frames, &c)| decode_ctc(&self.classes, frames, c))
                .collect())
        })
    }
}

fn aspect(line: &RgbImage) -> f32 {
    line.width() as f32 / line.height().max(1) as f32
}

/// Lines of similar aspect ratio, read in one run.
struct Batch {
    /// The group the lines come from, and their indices in it.
    group: usize,
    lines: Vec<usize>,
    /// The largest aspect ratio among the lines (the order batches are read in).
    widest: f32,
    /// The aspect ratio the batch is padded to: `widest`, or the model's least.
    padded: f32,
}

impl LineRecognizer for TextRecognizer {
    /// Reads each line image (upright, any width), batching lines of similar aspect ratio.
    fn recognize(&self, lines: &[RgbImage]) -> Result<Vec<RecognizedLine>> {
        Ok(self.recognize_groups(&[lines])?.pop().unwrap_or_default())
    }

    /// A lone request reads the batches side by side, one thread each, widest first: a batch on one
    /// thread wastes less than on two (10 batches of 6 lines, 96 to 640 px wide: 313 ms against
    /// 324), and each thread decodes its own; unless one batch outweighs the rest, when they are read
    /// in turn on every core ([`sooner_in_turn`]).
    fn recognize_groups(&self, groups: &[&[RgbImage]]) -> Result<Vec<Vec<RecognizedLine>>> {
        // Each group's batches are cut from its own narrowest lines (a line's batch sets its
        // padding), so a line reads the same whatever else is read with it.
        let mut batches: Vec<Batch> = Vec::new();
        for (group, lines) in groups.iter().enumerate() {
            let mut order: Vec<usize> = (0..lines.len()).collect();
            order.sort_by(|&a, &b| aspect(&lines[a]).total_cmp(&aspect(&lines[b])));
            let widths: Vec<f32> = order
                .iter()
                .map(|&i| aspect(&lines[i]).max(self.min_aspect()))
                .collect();
            let mut rest = order.as_slice();
            for size in batch_sizes(&widths, self.facts.max_batch) {
                let (batch, after) = rest.split_at(size);
                let widest = batch.iter().map(|&i| aspect(&lines[i])).fold(0.0, f32::max);
                batches.push(Batch {
                    group,
                    lines: batch.to_vec(),
                    widest,
                    padded: widest.max(self.min_aspect()),
                });
                rest = after;
            }
        }
        batches.sort_by(|a, b| b.widest.total_cmp(&a.widest));
        let columns: Vec<f32> = batches
            .iter()
            .map(|b| b.lines.len() as f32 * b.padded)
            .collect();
        let workers = match cpu_budget::spread_workers() {
            workers if sooner_in_turn(&columns, workers) => 1,
            workers => workers,
        };
        let read = cpu_budget::spread(batches.len(), workers, |k| {
            self.read_batch(groups[batches[k].group], &batches[k])
        });
        let mut results: Vec<Vec<RecognizedLine>> = groups
            .iter()
            .map(|lines| vec![RecognizedLine::default(); lines.len()])
            .collect();
        for (batch, decoded) in batches.iter().zip(read) {
            for (&i, line) in batch.lines.iter().zip(decoded?) {
                results[batch.group][i] = line;
            }
        }
        Ok(results)
    }
}

/// How much faster a batch reads on every core than on one, per core: two threads read 6 lines 800 px
/// wide in 91 ms against 165 (1.8x), while two such batches side by side take 172 ms a pair (1.86x).
const WIDE_EFFICIENCY: f32 = 0.9;

/// Whether batches that take `costs` (lines times padded width, listed as they are taken) end sooner
/// read in turn, each on all `workers` cores, than side by side, one thread each. They do when one
/// batch outweighs the rest: a scene's four-line orientation sample took 54 ms on one thread while
/// the other thread read the page's few short lines in 5 ms and waited.
fn sooner_in_turn(costs: &[f32], workers: usize) -> bool {
    if workers < 2 {
        return false;
    }
    let mut ends = vec![0.0f32; workers];
    for &cost in costs {
        if let Some(first_free) = ends.iter_mut().min_by(|a, b| a.total_cmp(b)) {
            *first_free += cost;
        }
    }
    let side_by_side = ends.iter().copied().fold(0.0, f32::max);
    let in_turn = costs.iter().sum::<f32>() / (workers as f32 * WIDE_EFFICIENCY);
    in_turn < side_by_side
}

/// Line images as PP-OCR's line models take them: each scaled to `height` keeping its aspect (at most
/// `batch_width` wide), BGR values in [-1, 1], left-aligned in a zero-padded [N, 3, height,
/// batch_width] batch; and the width each line took.
pub fn line_batch(
    lines: &[&RgbImage],
    height: u32,
    batch_width: u32,
) -> Result<(Array4<f32>, Vec<u32>)> {
    let mut tensor = Array4::<f32>::zeros((lines.len(), 3, height as usize, batch_width as usize));
    let mut widths = Vec::with_capacity(lines.len());
    for (slot, line) in lines.iter().enumerate() {
        let ratio = line.width() as f32 / line.height().max(1) as f32;
        let width = ((height as f32 * ratio).ceil() as u32).clamp(1, batch_width);
        let pixels = resize_bilinear(line, width, height)?;
        let scaled = to_nchw_bgr(&pixels, width, height, |_, v| v as f32 / 127.5 - 1.0);
        tensor
            .slice_mut(s![slot..=slot, .., .., ..width as usize])
            .assign(&scaled);
        widths.push(width);
    }
    Ok((tensor, widths))
}

/// Greedy CTC: the best class per column, repeats merged, blanks (class 0) dropped. `content` is the
/// share of the columns that hold the line (the rest is padding).
fn decode_ctc(classes: &[String], frames: ArrayView2<'_, f32>, content: f32) -> RecognizedLine {
    let columns = frames.nrows() as f32;
    let to_line = |frame: usize| ((frame as f32 / columns) / content).clamp(0.0, 1.0);
    let mut chars: Vec<RecognizedChar> = Vec::new();
    let mut previous = 0usize;
    for (t, scores) in frames.outer_iter().enumerate() {
        let (best, p) = match scores.as_slice() {
            Some(scores) => best_class(scores),
            None => best_class(&scores.to_vec()),
        };
        if best != 0 && best == previous {
            if let Some(last) = chars.last_mut() {
                last.end = to_line(t + 1);
                last.confidence = last.confidence.max(p);
            }
        } else if best != 0 {
            let text = classes.get(best).cloned().unwrap_or_default();
            chars.push(RecognizedChar {
                text,
                start: to_line(t),
                end: to_line(t + 1),
                confidence: p,
            });
        }
        previous = best;
    }
    // A line neither starts nor ends with a space.
    while chars.first().is_some_and(|c| c.text.trim().is_empty()) {
        chars.remove(0);
    }
    while chars.last().is_some_and(|c| c.text.trim().is_empty()) {
        chars.pop();
    }
    RecognizedLine { chars }
}

/// The first highest score and its class. Kept as running maxima of 16 lanes, which the compiler
/// turns into vector instructions: a plain index-and-value fold over a column's 18,385 classes was
/// 2% of a receipt's CPU, all of it on the request's own thread while the other core waited.
fn best_class(scores: &[f32]) -> (usize, f32) {
    const LANES: usize = 16;
    let higher = |m: f32, v: f32| if v > m { v } else { m };
    let mut lanes = [f32::MIN; LANES];
    let chunks = scores.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            *m = higher(*m, v);
        }
    }
    let best = lanes.iter().chain(tail).copied().fold(f32::MIN, higher);
    match scores.iter().position(|&v| v == best) {
        Some(class) => (class, best),
        None => (0, f32::MIN),
    }
}

/// The line inside `quad` (corners clockwise from the text's own top-left), straightened into an
/// upright image as wide as the quad's longer horizontal edge and as tall as its longer vertical one.
pub fn crop_line(image: &RgbImage, quad: &Quad) -> Result<RgbImage> {
    let [tl, tr, br, bl] = quad.0;
    let length = |a: (f32, f32), b: (f32, f32)| (b.0 - a.0).hypot(b.1 - a.1);
    let width = length(tl, tr).max(length(bl, br)).round().max(1.0);
    let height = length(tl, bl).max(length(tr, br)).round().max(1.0);
    let target = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)];
    let to_image = Projection::from_control_points(target, quad.0)
        .ok_or_else(|| anyhow!("degenerate text region {quad:?}"))?;
    let mut line = RgbImage::new(width as u32, height as u32);
    warp_into_with(
        image,
        |x, y| to_image * (x + 0.5, y + 0.5),
        Interpolation::Bilinear,
        Border::Replicate,
        &mut line,
    );
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;
    use ndarray::Array2;

    #[test]
    fn a_documents_batches_hold_lines_of_like_width_and_a_scenes_keep_six() {
        // A scene's few lines: six at a time from the narrowest, however their widths differ.
        assert_eq!(
            batch_sizes(&[1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0], 6),
            [6, 1]
        );
        // A document's: a batch ends at six lines or where a line is over a tenth wider than its
        // first.
        let mut widths = vec![4.0; 8];
        widths.extend([4.3, 4.5, 4.9, 5.0]);
        widths.extend(vec![10.0; 7]);
        widths.push(30.0);
        assert_eq!(widths.len(), LIKE_WIDTHS_FROM);
        assert_eq!(batch_sizes(&widths, 6), [6, 3, 2, 1, 6, 1, 1]);
        assert_eq!(batch_sizes(&[], 6), Vec::<usize>::new());
    }

    #[test]
    fn batches_read_in_turn_on_every_core_only_when_one_outweighs_the_rest() {
        // The orientation sample beside a few short lines: 54 ms alone on one thread.
        assert!(sooner_in_turn(&[40.0, 4.0], 2));
        assert!(sooner_in_turn(&[40.0], 2), "a lone batch takes every core");
        // A receipt's many batches keep both threads busy to the end.
        assert!(!sooner_in_turn(
            &[40.0, 30.0, 20.0, 20.0, 10.0, 10.0, 5.0],
            2
        ));
        assert!(!sooner_in_turn(&[20.0, 20.0], 2));
        assert!(
            !sooner_in_turn(&[40.0, 4.0], 1),
            "under load there is one thread"
        );
        assert!(!sooner_in_turn(&[], 2));
    }

    fn decoder(classes: &[&str]) -> impl Fn(&[usize], f32) -> RecognizedLine {
        let classes: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
        move |path: &[usize], content: f32| {
            let mut frames = Array2::<f32>::from_elem((path.len(), classes.len()), 0.01);
            for (t, &k) in path.iter().enumerate() {
                frames[[t, k]] = 0.9;
            }
            decode_ctc(&classes, frames.view(), content)
        }
    }

    #[test]
    fn the_best_class_is_the_first_highest_wherever_it_lies() {
        let mut scores = vec![0.1f32; 37];
        assert_eq!(best_class(&scores), (0, 0.1), "all equal: the first");
        scores[20] = 0.7;
        scores[35] = 0.7;
        assert_eq!(best_class(&scores), (20, 0.7));
        scores[36] = 0.8;
        assert_eq!(best_class(&scores), (36, 0.8), "in the tail past the lanes");
        assert_eq!(best_class(&[-3.0, -1.0, -2.0]), (1, -1.0));
    }

    #[test]
    fn repeats_merge_blanks_split_and_edges_lose_spaces() {
        let decode = decoder(&["", "a", "b", " "]);
        // blank a a blank a b b blank space
        let line = decode(&[3, 0, 1, 1, 0, 1, 2, 2, 0, 3], 1.0);
        assert_eq!(line.text(), "aab");
        assert_eq!(line.chars[0].start, 0.2);
        assert_eq!(line.chars[0].end, 0.4);
        assert!((line.confidence() - 0.9).abs() < 1e-6);
    }

    #[test]
    fn spans_are_fractions_of_the_content_not_the_padding() {
        let decode = decoder(&["", "x"]);
        // The line fills half of the 10 columns; 'x' is read in columns 2..4.
        let line = decode(&[0, 0, 1, 1, 0, 0, 0, 0, 0, 0], 0.5);
        assert_eq!((line.chars[0].start, line.chars[0].end), (0.4, 0.8));
        assert_eq!(decode(&[0, 0, 0], 1.0), RecognizedLine::default());
    }

    #[test]
    fn crops_straighten_a_rotated_region() {
        // A white image with a black 60x20 bar rotated by 90 degrees: reading the quad from its
        // top-right corner (text running downwards) yields an upright 60x20 black crop.
        let image = RgbImage::from_fn(100, 100, |x, y| {
            if (40..60).contains(&x) && (20..80).contains(&y) {
                Rgb([0, 0, 0])
            } else {
                Rgb([255, 255, 255])
            }
        });
        let quad = Quad([(60.0, 20.0), (60.0, 80.0), (40.0, 80.0), (40.0, 20.0)]);
        let line = crop_line(&image, &quad).unwrap();
        assert_eq!(line.dimensions(), (60, 20));
        let dark = line.pixels().filter(|p| p.0[0] < 64).count();
        assert!(dark as f32 > 0.9 * 1200.0, "{dark} dark pixels");
    }
}
