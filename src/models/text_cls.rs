//! PP-OCR's text-line orientation classifier: tells an upright line from one turned 180°. vista decides
//! orientation per page (the classifier alone garbles turned pages); this model only picks out single
//! lines the page's orientation reads poorly that are upside down, such as a label turned over on an
//! upright page.

use anyhow::Result;
use image::RgbImage;
use ort::value::TensorRef;
use serde::Deserialize;

use super::traits::LineOrientationClassifier;
use crate::models::manifest::PackEntry;
use crate::models::text_rec::line_batch;
use crate::runtime::SessionPool;

#[derive(Debug, Clone, Deserialize)]
pub struct TextClsFacts {
    pub input: String,
    pub output: String,
    pub height: u32,
    /// Lines are scaled to `height` and squeezed to at most this width, then padded to it.
    pub width: u32,
    pub max_batch: usize,
}

pub struct TextLineClassifier {
    sessions: SessionPool,
    facts: TextClsFacts,
}

impl TextLineClassifier {
    pub fn new(sessions: SessionPool, entry: &PackEntry) -> Result<Self> {
        Ok(TextLineClassifier {
            sessions,
            facts: entry.facts()?,
        })
    }

    /// The chance of 180° for each image.
    fn classify(&self, lines: &[&RgbImage]) -> Result<Vec<f32>> {
        let facts = &self.facts;
        let mut chances = Vec::with_capacity(lines.len());
        for batch in lines.chunks(facts.max_batch.max(1)) {
            let (tensor, _) = line_batch(batch, facts.height, facts.width)?;
            let inputs = ort::inputs![facts.input.as_str() => TensorRef::from_array_view(&tensor)?];
            // The output is [N, 2]: the chances of 0° and of 180°.
            let batch_chances = self.sessions.run(inputs, |outputs| {
                let scores = outputs[facts.output.as_str()].try_extract_array::<f32>()?;
                Ok(scores
                    .rows()
                    .into_iter()
                    .map(|row| row[1])
                    .collect::<Vec<_>>())
            })?;
            chances.extend(batch_chances);
        }
        Ok(chances)
    }
}

impl LineOrientationClassifier for TextLineClassifier {
    /// For each line image (read as upright), the probability that it is upside down: the mean over
    /// pieces of the line the model's input shape holds unsqueezed (a long line squeezed whole into
    /// it is often missed).
    fn upside_down(&self, lines: &[RgbImage]) -> Result<Vec<f32>> {
        let facts = &self.facts;
        let pieces: Vec<Vec<RgbImage>> = lines
            .iter()
            .map(|line| pieces_of(line, facts.width as f32 / facts.height as f32))
            .collect();
        let flat: Vec<&RgbImage> = pieces.iter().flatten().collect();
        let chances = self.classify(&flat)?;
        let mut chances = chances.into_iter();
        Ok(pieces
            .iter()
            .map(|p| chances.by_ref().take(p.len()).sum::<f32>() / p.len() as f32)
            .collect())
    }
}

/// The most pieces a line is cut into.
const MAX_PIECES: u32 = 8;

/// The line cut across into equal pieces of at most `aspect` (width / height) each, up to MAX_PIECES.
fn pieces_of(line: &RgbImage, aspect: f32) -> Vec<RgbImage> {
    let (width, height) = line.dimensions();
    let count =
        ((width as f32 / (aspect * height.max(1) as f32)).ceil() as u32).clamp(1, MAX_PIECES);
    let step = width / count;
    (0..count)
        .map(|i| {
            let x = i * step;
            let w = if i + 1 == count { width - x } else { step };
            image::imageops::crop_imm(line, x, 0, w.max(1), height).to_image()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_into_pieces_the_input_holds() {
        let widths = |w: u32, h: u32| -> Vec<u32> {
            pieces_of(&RgbImage::new(w, h), 4.0)
                .iter()
                .map(|p| {
                    assert_eq!(p.height(), h);
                    p.width()
                })
                .collect()
        };
        assert_eq!(widths(150, 48), vec![150]);
        assert_eq!(widths(576, 48), vec![192, 192, 192]);
        assert_eq!(widths(601, 48), vec![150, 150, 150, 151]);
        assert_eq!(widths(10_000, 10).len(), MAX_PIECES as usize);
    }
}
