//! OpenAI CLIP's byte-level BPE tokenizer (`simple_tokenizer.py`), for CLIP text encoders a user
//! brings. Reads the merges file CLIP ships (`bpe_simple_vocab_16e6.txt.gz`): the vocabulary is the 256
//! byte symbols, the same with the end-of-word mark, one symbol per merge, then the two specials.
//! Text is lower-cased and its whitespace collapsed (CLIP's ftfy repair is skipped: it only changes
//! broken Unicode).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// How many merges CLIP uses from the file (49152 tokens - 256 bytes - 2 specials).
const MERGES: usize = 49152 - 256 - 2;
const END_OF_WORD: &str = "</w>";
/// Symbols merged at once: longer than any token in CLIP's vocabulary, so real words are unaffected.
const MAX_BPE_SYMBOLS: usize = 64;

pub struct ClipTokenizer {
    encoder: HashMap<String, i64>,
    ranks: HashMap<(String, String), usize>,
    byte_symbols: [char; 256],
    start: i64,
    end: i64,
}

fn printable(b: u32) -> bool {
    (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b)
}

/// CLIP's reversible map from bytes to printable characters (printable Latin-1 bytes map to
/// themselves, the rest to code points from 256 on).
fn byte_symbols() -> [char; 256] {
    let mut symbols = ['\0'; 256];
    let mut next = 256;
    for b in 0..256u32 {
        symbols[b as usize] = if printable(b) {
            char::from_u32(b).expect("Latin-1")
        } else {
            next += 1;
            char::from_u32(next - 1).expect("below the surrogates")
        };
    }
    symbols
}

/// The byte symbols in CLIP's vocabulary order: printable bytes first, then the others.
fn symbols_in_vocabulary_order(symbols: &[char; 256]) -> Vec<String> {
    let (printables, others): (Vec<u32>, Vec<u32>) = (0..256u32).partition(|b| printable(*b));
    printables
        .into_iter()
        .chain(others)
        .map(|b| symbols[b as usize].to_string())
        .collect()
}

impl ClipTokenizer {
    /// Reads a gzip-compressed merges file.
    pub fn load(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {} (gzip text)", path.display()))?;
        Self::from_merges(&text)
    }

    pub fn from_merges(text: &str) -> Result<Self> {
        // The first line is a version comment.
        let merges: Vec<(String, String)> = text
            .lines()
            .skip(1)
            .take(MERGES)
            .filter_map(|line| {
                let (a, b) = line.split_once(' ')?;
                Some((a.to_string(), b.to_string()))
            })
            .collect();
        if merges.is_empty() {
            bail!("no merges in the CLIP vocabulary");
        }
        let byte_symbols = byte_symbols();
        let singles = symbols_in_vocabulary_order(&byte_symbols);
        let vocab = singles
            .iter()
            .cloned()
            .chain(singles.iter().map(|s| format!("{s}{END_OF_WORD}")))
            .chain(merges.iter().map(|(a, b)| format!("{a}{b}")))
            .chain(["<|startoftext|>".to_string(), "<|endoftext|>".to_string()]);
        let encoder: HashMap<String, i64> = vocab.enumerate().map(|(i, s)| (s, i as i64)).collect();
        let start = encoder["<|startoftext|>"];
        let end = encoder["<|endoftext|>"];
        let ranks = merges
            .into_iter()
            .enumerate()
            .map(|(i, m)| (m, i))
            .collect();
        Ok(ClipTokenizer {
            encoder,
            ranks,
            byte_symbols,
            start,
            end,
        })
    }

    /// Start token, the text's tokens, end token, zero-padded (or cut, keeping the end token) to
    /// `context` ids.
    pub fn encode(&self, text: &str, context: usize) -> Vec<i64> {
        let mut ids = vec![self.start];
        let clean = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        for piece in pieces(&clean) {
            if ids.len() >= context {
                break; // the rest would be cut
            }
            let symbols: Vec<char> = piece
                .bytes()
                .map(|b| self.byte_symbols[b as usize])
                .collect();
            // BPE is quadratic in a word's length: a runaway word is merged in bounded pieces, so
            // encoding stays linear in the text (no real word is this long).
            for chunk in symbols.chunks(MAX_BPE_SYMBOLS) {
                let last = chunk.as_ptr_range().end == symbols.as_ptr_range().end;
                for token in self.bpe(chunk, last) {
                    ids.extend(self.encoder.get(&token));
                }
            }
        }
        ids.truncate(context.saturating_sub(1).max(1));
        ids.push(self.end);
        ids.resize(context.max(ids.len()), 0);
        ids
    }

    /// Merges a word's symbols, lowest rank first, until no known pair is left; `word_end` marks the
    /// last symbol as ending the word.
    fn bpe(&self, word: &[char], word_end: bool) -> Vec<String> {
        let mut parts: Vec<String> = word.iter().map(|c| c.to_string()).collect();
        if let (Some(last), true) = (parts.last_mut(), word_end) {
            last.push_str(END_OF_WORD);
        }
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| {
                    self.ranks
                        .get(&(w[0].clone(), w[1].clone()))
                        .map(|r| (*r, i))
                })
                .min();
            let Some((rank, _)) = best else { break };
            // Merge every occurrence of the best pair, left to right, as CLIP does.
            let mut merged = Vec::with_capacity(parts.len());
            let mut i = 0;
            while i < parts.len() {
                if i + 1 < parts.len()
                    && self.ranks.get(&(parts[i].clone(), parts[i + 1].clone())) == Some(&rank)
                {
                    merged.push(format!("{}{}", parts[i], parts[i + 1]));
                    i += 2;
                } else {
                    merged.push(parts[i].clone());
                    i += 1;
                }
            }
            parts = merged;
        }
        parts
    }
}

/// CLIP's pre-tokenizer: contractions ('s 't 're 've 'm 'll 'd), runs of letters, single digits, and
/// runs of other non-space characters.
fn pieces(text: &str) -> Vec<&str> {
    const CONTRACTIONS: [&str; 7] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let len = if let Some(contraction) = CONTRACTIONS.iter().find(|p| rest.starts_with(**p)) {
            contraction.len()
        } else if c.is_alphabetic() {
            rest.find(|ch: char| !ch.is_alphabetic())
                .unwrap_or(rest.len())
        } else if c.is_numeric() {
            c.len_utf8()
        } else {
            rest.find(|ch: char| ch.is_whitespace() || ch.is_alphanumeric())
                .unwrap_or(rest.len())
        };
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Add;

    /// A vocabulary of two merges: "c a" → "ca" (id 512), "ca t</w>" → "cat</w>" (513); the
    /// specials follow (514, 515).
    fn tiny() -> ClipTokenizer {
        ClipTokenizer::from_merges("#version: 0.2\nc a\nca t</w>\n").unwrap()
    }

    #[test]
    fn pieces_split_like_clips_pattern() {
        assert_eq!(
            pieces("a cat's 12 toys!!"),
            ["a", "cat", "'s", "1", "2", "toys", "!!"]
        );
    }

    #[test]
    fn merges_apply_by_rank_and_ids_are_framed_and_padded() {
        let t = tiny();
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(t.bpe(&chars("cat"), true), ["cat</w>"]);
        assert_eq!(t.bpe(&chars("ac"), true), ["a", "c</w>"]);
        // "a</w>": the 65th printable byte (after "!" .. "`"), in the second block of 256.
        assert_eq!(t.encode("A  CAT", 7), [514, 256 + 64, 513, 515, 0, 0, 0]);
        // Too long a text keeps its end token.
        assert_eq!(t.encode("cat cat cat cat", 4), [514, 513, 513, 515]);
    }

    #[test]
    fn a_runaway_word_is_encoded_in_bounded_pieces_and_cut_to_the_context() {
        let t = tiny();
        // 60,000 characters in one word: merged in 64-symbol pieces, and no further than the context.
        let ids = t.encode(&"ca".repeat(30_000), 77);
        assert_eq!(ids.len(), 77);
        assert_eq!((ids[0], ids[1], ids[76]), (514, 512, 515));
        // A word within the piece size is merged whole, end-of-word mark included.
        assert_eq!(t.encode(&"ca".repeat(31).add("t"), 40)[31], 513);
    }

    /// The real vocabulary, when the pack is installed (`vista models fetch`): CLIP's own ids.
    #[test]
    fn the_real_vocabulary_gives_clips_ids() {
        let models = std::env::var("VISTA_MODELS").unwrap_or_else(|_| "models".into());
        let path = Path::new(&models).join("clip-bpe-vocab.txt.gz");
        let t = ClipTokenizer::load(&path)
            .unwrap_or_else(|e| panic!("{e:#}: run `vista models fetch` before the tests"));
        assert_eq!(
            t.encode("a photo of a cat", 77)[..8],
            [49406, 320, 1125, 539, 320, 2368, 49407, 0]
        );
    }
}
