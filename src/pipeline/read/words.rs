//! A recognised line split into words, each with the part of the line's quad it was read from; a
//! scene's doubtful words dropped.

use super::{TextLine, TextWord};
use crate::geometry::Quad;
use crate::models::text_rec::RecognizedLine;
/// The line without the words read with less than `min_word_confidence` (None if none is left): a
/// doubtful word is dropped and the line's text rebuilt around it.
pub(super) fn confident_line(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::read::page::MIN_WORD_CONFIDENCE;
    use crate::pipeline::read::test_support::{line_of, rect};

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
}
