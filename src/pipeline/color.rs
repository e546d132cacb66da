//! 3.2 `Color`: the dominant colours of the foreground (where the salience map says the subject is),
//! of the background and of the whole image, named with Azure's twelve colour names; an accent colour;
//! and whether the image is black and white. Computed on a small grid: colour statistics need no more.

use fast_image_resize::ResizeAlg;
use image::RgbImage;

use super::scene::Scene;
use super::PipelineError;
use crate::models::preprocess::resize;
use crate::models::u2net::SalienceMap;

/// Azure's colour names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColorName {
    Black,
    Blue,
    Brown,
    Grey,
    Green,
    Orange,
    Pink,
    Purple,
    Red,
    Teal,
    White,
    Yellow,
}

pub const GRID: u32 = 64;
/// A colour is reported among the dominant ones when it covers at least this share of the image.
const DOMINANT_SHARE: f32 = 0.15;
/// An image is black and white when at least this share of it has (almost) no saturation.
const BW_SHARE: f32 = 0.98;

#[derive(Debug, Clone, PartialEq)]
pub struct ColorInfo {
    pub foreground: ColorName,
    pub background: ColorName,
    pub dominant: Vec<ColorName>,
    /// Six hex digits, uppercase, no `#`.
    pub accent: String,
    pub is_black_and_white: bool,
}

/// Hue in degrees [0, 360), saturation and value in [0, 1].
pub fn hsv([r, g, b]: [u8; 3]) -> (f32, f32, f32) {
    let (r, g, b) = (r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let hue = if delta == 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / delta).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / delta + 2.0)
    } else {
        60.0 * ((r - g) / delta + 4.0)
    };
    (hue, if max == 0.0 { 0.0 } else { delta / max }, max)
}

/// The Azure colour name of one RGB colour (hue bands, with dark warm hues as brown and pale reds as pink).
pub fn name(rgb: [u8; 3]) -> ColorName {
    let (h, s, v) = hsv(rgb);
    if v < 0.2 {
        return ColorName::Black;
    }
    if s < 0.15 {
        return if v > 0.85 {
            ColorName::White
        } else {
            ColorName::Grey
        };
    }
    let red = !(15.0..345.0).contains(&h);
    if red {
        return if s < 0.5 && v > 0.7 {
            ColorName::Pink
        } else if v < 0.45 {
            ColorName::Brown
        } else {
            ColorName::Red
        };
    }
    if h < 70.0 && v < 0.55 {
        return ColorName::Brown; // dark orange and dark yellow
    }
    match h {
        h if h < 40.0 => ColorName::Orange,
        h if h < 70.0 => ColorName::Yellow,
        h if h < 165.0 => ColorName::Green,
        h if h < 200.0 => ColorName::Teal,
        h if h < 255.0 => ColorName::Blue,
        h if h < 290.0 => ColorName::Purple,
        _ => ColorName::Pink,
    }
}

fn most_common(names: impl Iterator<Item = ColorName>) -> Option<(ColorName, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for n in names {
        *counts.entry(n).or_insert(0usize) += 1;
    }
    counts.into_iter().max_by_key(|(_, c)| *c)
}

/// The colours of a scene: statistics of a `GRID` x `GRID` copy (nearest pixels, so flat colours stay
/// exact), split by its salience.
pub fn color(scene: &Scene) -> Result<ColorInfo, PipelineError> {
    let grid = resize(scene.image(), GRID, GRID, ResizeAlg::Nearest)?;
    Ok(analyze(&grid, scene.salience()?))
}

/// Colour statistics of `grid` (the image scaled to `GRID` x `GRID`), split by the salience map.
pub fn analyze(grid: &RgbImage, salience: &SalienceMap) -> ColorInfo {
    let cells: Vec<([u8; 3], bool)> = grid
        .enumerate_pixels()
        .map(|(x, y, p)| {
            let sx = (x * salience.side / grid.width()).min(salience.side - 1);
            let sy = (y * salience.side / grid.height()).min(salience.side - 1);
            (p.0, salience.at(sx, sy) >= 0.5)
        })
        .collect();
    let total = cells.len();
    let (whole, _) =
        most_common(cells.iter().map(|(c, _)| name(*c))).expect("the grid is not empty");
    let foreground = most_common(cells.iter().filter(|(_, fg)| *fg).map(|(c, _)| name(*c)))
        .map_or(whole, |m| m.0);
    let background = most_common(cells.iter().filter(|(_, fg)| !*fg).map(|(c, _)| name(*c)))
        .map_or(whole, |m| m.0);

    let mut shares: Vec<(ColorName, usize)> = Vec::new();
    for (c, _) in &cells {
        let n = name(*c);
        match shares.iter_mut().find(|(m, _)| *m == n) {
            Some((_, count)) => *count += 1,
            None => shares.push((n, 1)),
        }
    }
    shares.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut dominant: Vec<ColorName> = shares
        .iter()
        .filter(|(_, c)| *c as f32 >= DOMINANT_SHARE * total as f32)
        .take(3)
        .map(|(n, _)| *n)
        .collect();
    if dominant.is_empty() {
        dominant.push(whole);
    }

    let grey = cells.iter().filter(|(c, _)| hsv(*c).1 < 0.1).count();
    ColorInfo {
        foreground,
        background,
        dominant,
        accent: accent(&cells.iter().map(|(c, _)| *c).collect::<Vec<_>>()),
        is_black_and_white: grey as f32 >= BW_SHARE * total as f32,
    }
}

/// The most vivid colour: the mean of the vivid pixels of the commonest vivid hue name, weighted by
/// saturation; a grey image's accent is its mean grey.
fn accent(colors: &[[u8; 3]]) -> String {
    let vivid: Vec<([u8; 3], f32)> = colors
        .iter()
        .filter_map(|c| {
            let (_, s, v) = hsv(*c);
            (s >= 0.4 && v >= 0.35).then_some((*c, s))
        })
        .collect();
    let chosen: Vec<([u8; 3], f32)> = match most_common(vivid.iter().map(|(c, _)| name(*c))) {
        Some((top, _)) => vivid.into_iter().filter(|(c, _)| name(*c) == top).collect(),
        None => colors.iter().map(|c| (*c, 1.0)).collect(),
    };
    let weight: f32 = chosen.iter().map(|(_, w)| w).sum();
    let mean = |i: usize| {
        (chosen.iter().map(|(c, w)| c[i] as f32 * w).sum::<f32>() / weight).round() as u8
    };
    format!("{:02X}{:02X}{:02X}", mean(0), mean(1), mean(2))
}

impl ColorName {
    pub fn as_str(self) -> &'static str {
        match self {
            ColorName::Black => "Black",
            ColorName::Blue => "Blue",
            ColorName::Brown => "Brown",
            ColorName::Grey => "Grey",
            ColorName::Green => "Green",
            ColorName::Orange => "Orange",
            ColorName::Pink => "Pink",
            ColorName::Purple => "Purple",
            ColorName::Red => "Red",
            ColorName::Teal => "Teal",
            ColorName::White => "White",
            ColorName::Yellow => "Yellow",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn plain_colours_get_their_names() {
        let cases = [
            ([0, 0, 0], ColorName::Black),
            ([255, 255, 255], ColorName::White),
            ([128, 128, 128], ColorName::Grey),
            ([220, 20, 20], ColorName::Red),
            ([255, 140, 0], ColorName::Orange),
            ([240, 220, 30], ColorName::Yellow),
            ([30, 160, 40], ColorName::Green),
            ([0, 128, 128], ColorName::Teal),
            ([30, 60, 200], ColorName::Blue),
            ([120, 40, 170], ColorName::Purple),
            ([255, 150, 200], ColorName::Pink),
            ([120, 70, 30], ColorName::Brown),
        ];
        for (rgb, want) in cases {
            assert_eq!(name(rgb), want, "{rgb:?}");
        }
    }

    #[test]
    fn foreground_and_background_follow_the_salience_map() {
        // A red square on a blue background, with the square marked salient.
        let grid = RgbImage::from_fn(GRID, GRID, |x, y| {
            if (16..48).contains(&x) && (16..48).contains(&y) {
                Rgb([210, 20, 30])
            } else {
                Rgb([20, 40, 200])
            }
        });
        let side = 8;
        let values = (0..side * side)
            .map(|i| {
                if (2..6).contains(&(i % side)) && (2..6).contains(&(i / side)) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let info = analyze(&grid, &SalienceMap { side, values });
        assert_eq!(
            (info.foreground, info.background),
            (ColorName::Red, ColorName::Blue)
        );
        assert_eq!(info.dominant, vec![ColorName::Blue, ColorName::Red]);
        assert!(!info.is_black_and_white);
        assert_eq!(info.accent.len(), 6);
    }

    #[test]
    fn grey_images_are_black_and_white_with_a_grey_accent() {
        let grid = RgbImage::from_fn(GRID, GRID, |x, _| Rgb([(x * 4) as u8; 3]));
        let info = analyze(
            &grid,
            &SalienceMap {
                side: 4,
                values: vec![0.0; 16],
            },
        );
        assert!(info.is_black_and_white);
        let [r, g, b] = [0, 2, 4].map(|i| u8::from_str_radix(&info.accent[i..i + 2], 16).unwrap());
        assert!(r == g && g == b, "{}", info.accent);
    }
}
