//! A CLIP a user brings: its visual and textual ONNX encoders (the layout Immich's CLIP packs use:
//! `visual/model.onnx`, `textual/model.onnx`) declared in the manifest as `clip-visual` and
//! `clip-textual` entries, tokenized with OpenAI's BPE vocabulary from the pack. Images and texts land in
//! one space, so search vectors are CLIP's own and names can be scored zero-shot.

use std::path::Path;

use anyhow::{bail, Context, Result};
use fast_image_resize::{FilterType, ResizeAlg};
use image::RgbImage;
use ndarray::Array2;
use serde::Deserialize;

use crate::models::clip_tokenizer::ClipTokenizer;
use crate::models::manifest::PackEntry;
use crate::models::preprocess::{resize, to_nchw};
use crate::runtime::SessionPool;

#[derive(Debug, Clone, Deserialize)]
pub struct ClipVisualFacts {
    pub input: String,
    pub output: String,
    /// The side of the square the image is resized (shorter side) and centre-cropped to.
    pub image_size: u32,
    /// Per-channel RGB mean and std of pixels scaled to 0..1 (OpenAI's by default).
    #[serde(default = "openai_mean")]
    pub mean: [f32; 3],
    #[serde(default = "openai_std")]
    pub std: [f32; 3],
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClipTextualFacts {
    pub input: String,
    pub output: String,
    #[serde(default = "default_context")]
    pub context_length: usize,
    /// Token ids as int32 (some exports) instead of int64.
    #[serde(default)]
    pub int32_tokens: bool,
}

/// CLIP's learned temperature (100 in OpenAI's models).
const LOGIT_SCALE: f32 = 100.0;

fn openai_mean() -> [f32; 3] {
    [0.481_454_66, 0.457_827_5, 0.408_210_73]
}
fn openai_std() -> [f32; 3] {
    [0.268_629_54, 0.261_302_6, 0.275_777_1]
}
fn default_context() -> usize {
    77
}

pub struct Clip {
    /// The visual entry's id, which names the vectors' model version.
    pub name: String,
    /// Names scored zero-shot, and their text embeddings (one row each).
    vocabulary: Option<(Vec<String>, Array2<f32>)>,
    visual: SessionPool,
    textual: SessionPool,
    tokenizer: ClipTokenizer,
    visual_facts: ClipVisualFacts,
    textual_facts: ClipTextualFacts,
}

impl Clip {
    pub fn new(
        visual: (SessionPool, &PackEntry),
        textual: (SessionPool, &PackEntry),
        vocabulary: &Path,
    ) -> Result<Self> {
        Ok(Clip {
            vocabulary: None,
            name: visual.1.id.clone(),
            visual_facts: visual.1.facts()?,
            textual_facts: textual.1.facts()?,
            visual: visual.0,
            textual: textual.0,
            tokenizer: ClipTokenizer::load(vocabulary).context("the CLIP vocabulary")?,
        })
    }

    /// Embeds `names` ("a photo of a {name}") for zero-shot scoring, reusing `cache` when it holds
    /// them: a real text encoder takes minutes over ImageNet-22k's names, once.
    pub fn with_vocabulary(mut self, names: Vec<String>, cache: &Path) -> Result<Self> {
        let dim = self.embed_text("a photo")?.len();
        let rows = match std::fs::read(cache) {
            Ok(bytes) if bytes.len() == names.len() * dim * 4 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            _ => {
                tracing::info!(
                    names = names.len(),
                    "embedding the zero-shot vocabulary with CLIP (cached after)"
                );
                let mut rows = Vec::with_capacity(names.len() * dim);
                for name in &names {
                    rows.extend(self.embed_text(&format!("a photo of a {name}"))?);
                }
                let bytes: Vec<u8> = rows.iter().flat_map(|v: &f32| v.to_le_bytes()).collect();
                if let Err(e) = std::fs::write(cache, bytes) {
                    tracing::warn!("could not cache the zero-shot vocabulary: {e}");
                }
                rows
            }
        };
        let vectors = Array2::from_shape_vec((names.len(), dim), rows)?;
        self.vocabulary = Some((names, vectors));
        Ok(self)
    }

    /// The vocabulary's names most likely shown by an image embedding, with their probability
    /// (softmax of CLIP's scaled cosine similarities), those from `min_probability` only.
    pub fn zero_shot(&self, image: &[f32], min_probability: f32) -> Vec<(String, f32)> {
        let Some((names, vectors)) = &self.vocabulary else {
            return Vec::new();
        };
        let image = ndarray::ArrayView1::from(image);
        let logits: Vec<f32> = vectors
            .dot(&image)
            .iter()
            .map(|s| LOGIT_SCALE * s)
            .collect();
        crate::models::efficientnet::softmax(&logits)
            .into_iter()
            .zip(names)
            .filter(|(p, _)| *p >= min_probability)
            .map(|(p, name)| (name.clone(), p))
            .collect()
    }

    /// The unit-length embedding of an image: shorter side to `image_size`, centre crop, normalised.
    pub fn embed_image(&self, image: &RgbImage) -> Result<Vec<f32>> {
        let facts = &self.visual_facts;
        let side = facts.image_size;
        let (w, h) = image.dimensions();
        let scale = side as f32 / w.min(h).max(1) as f32;
        let (sw, sh) = (
            ((w as f32 * scale).round() as u32).max(side),
            ((h as f32 * scale).round() as u32).max(side),
        );
        let scaled = resize(
            image,
            sw,
            sh,
            ResizeAlg::Convolution(FilterType::CatmullRom),
        )?;
        let crop = image::imageops::crop_imm(&scaled, (sw - side) / 2, (sh - side) / 2, side, side)
            .to_image();
        let tensor = to_nchw(crop.as_raw(), side, side, |c, v| {
            (v as f32 / 255.0 - facts.mean[c]) / facts.std[c]
        });
        normalised(self.visual.run_flat(&facts.input, &tensor, &facts.output)?)
    }

    /// The unit-length embedding of a text.
    pub fn embed_text(&self, text: &str) -> Result<Vec<f32>> {
        let facts = &self.textual_facts;
        let ids = self.tokenizer.encode(text, facts.context_length);
        let shape = (1, ids.len());
        let (input, output) = (facts.input.as_str(), facts.output.as_str());
        let vector = if facts.int32_tokens {
            let ids = Array2::from_shape_vec(shape, ids.iter().map(|&i| i as i32).collect())?;
            self.textual.run_flat(input, &ids, output)?
        } else {
            self.textual
                .run_flat(input, &Array2::from_shape_vec(shape, ids)?, output)?
        };
        normalised(vector)
    }
}

fn normalised(vector: Vec<f32>) -> Result<Vec<f32>> {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if vector.is_empty() || !norm.is_finite() || norm == 0.0 {
        bail!("the CLIP encoder gave an empty or zero vector");
    }
    Ok(vector.into_iter().map(|v| v / norm).collect())
}
