//! Product recognition on shelf photos (2023-04-01-preview): the products a custom detector finds,
//! the gaps between them along each shelf, and planogram matching (which detected product or gap
//! stands at each planned position).

use serde::{Deserialize, Serialize};

use crate::geometry::PixelRect;

/// A product or a gap, in image pixels, with its tags (the first is the answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShelfObject {
    pub id: String,
    pub rect: PixelRect,
    pub tags: Vec<(String, f32)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductResult {
    pub width: u32,
    pub height: u32,
    pub products: Vec<ShelfObject>,
    pub gaps: Vec<ShelfObject>,
}

/// The tag of a gap.
pub const GAP: &str = "gap";
/// Products lie on one shelf when their vertical centres are closer than this share of their
/// median height.
const SAME_SHELF: f32 = 0.5;
/// A space between neighbours on a shelf is a gap from this share of the shelf's median product
/// width.
const GAP_WIDTH: f32 = 0.5;

fn centre_y(r: &PixelRect) -> f32 {
    r.y as f32 + r.h as f32 / 2.0
}

fn median(mut values: Vec<f32>) -> f32 {
    values.sort_by(f32::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The gaps between `products` along each shelf: products are grouped into shelves by their
/// vertical centres, and a space between neighbours at least half a typical product wide is a gap,
/// as high as its neighbours span, as sure as the less sure of them.
pub fn gaps(products: &[ShelfObject]) -> Vec<ShelfObject> {
    let mut order: Vec<&ShelfObject> = products.iter().collect();
    order.sort_by(|a, b| centre_y(&a.rect).total_cmp(&centre_y(&b.rect)));
    let typical_height = median(products.iter().map(|p| p.rect.h as f32).collect());
    let mut shelves: Vec<Vec<&ShelfObject>> = Vec::new();
    for product in order {
        match shelves.last_mut() {
            Some(shelf)
                if (centre_y(&product.rect) - centre_y(&shelf[0].rect)).abs()
                    < SAME_SHELF * typical_height =>
            {
                shelf.push(product)
            }
            _ => shelves.push(vec![product]),
        }
    }
    let mut found = Vec::new();
    for mut shelf in shelves {
        shelf.sort_by_key(|p| p.rect.x);
        let typical_width = median(shelf.iter().map(|p| p.rect.w as f32).collect());
        for pair in shelf.windows(2) {
            let (left, right) = (&pair[0].rect, &pair[1].rect);
            let start = left.x.saturating_add(left.w);
            if right.x <= start || ((right.x - start) as f32) < GAP_WIDTH * typical_width {
                continue;
            }
            let top = left.y.min(right.y);
            let bottom = left
                .y
                .saturating_add(left.h)
                .max(right.y.saturating_add(right.h));
            let confidence = pair[0].tags[0].1.min(pair[1].tags[0].1);
            found.push(ShelfObject {
                id: format!("gap-{}", found.len() + 1),
                rect: PixelRect {
                    x: start,
                    y: top,
                    w: right.x - start,
                    h: bottom - top,
                },
                tags: vec![(GAP.to_string(), confidence)],
            });
        }
    }
    found
}

/// A planogram: its size in its own units, products, fixtures and positions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Planogram {
    pub width: f32,
    pub height: f32,
    /// Product id, w, h (where a position's box ends; matching needs no names).
    pub products: Vec<(String, f32, f32)>,
    /// Position id, product id, x, y (top-left corner, planogram units).
    pub positions: Vec<(String, String, f32, f32)>,
}

/// For each position, the detected product or gap that best covers where the planogram puts it. The
/// photo is taken to frame the planogram, so its units scale to pixels by the image's size; a
/// position whose expected box overlaps nothing is left out (the contract leaves it unspecified).
pub fn match_planogram(
    planogram: &Planogram,
    detected: &ProductResult,
) -> Vec<(String, ShelfObject)> {
    if planogram.width <= 0.0 || planogram.height <= 0.0 {
        return Vec::new();
    }
    let scale_x = detected.width as f32 / planogram.width;
    let scale_y = detected.height as f32 / planogram.height;
    let candidates: Vec<&ShelfObject> = detected.products.iter().chain(&detected.gaps).collect();
    let mut matches = Vec::new();
    for (position, product, x, y) in &planogram.positions {
        let Some((_, w, h)) = planogram.products.iter().find(|p| &p.0 == product) else {
            continue;
        };
        let expected = crate::geometry::BoundingBox {
            x1: x * scale_x,
            y1: y * scale_y,
            x2: (x + w) * scale_x,
            y2: (y + h) * scale_y,
        };
        let best = candidates
            .iter()
            .map(|c| (c, expected.iou(&c.rect.to_box())))
            .filter(|(_, overlap)| *overlap > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((object, _)) = best {
            matches.push((position.clone(), (*object).clone()));
        }
    }
    matches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, x: u32, y: u32) -> ShelfObject {
        ShelfObject {
            id: id.into(),
            rect: PixelRect {
                x,
                y,
                w: 40,
                h: 100,
            },
            tags: vec![("soda".into(), 0.9)],
        }
    }

    #[test]
    fn gaps_are_wide_spaces_between_neighbours_on_one_shelf() {
        // Shelf 1: 0, 45 (5 px apart: no gap), 140 (55 px: a gap). Shelf 2 below: 0, 200.
        let products = [
            product("a", 0, 0),
            product("b", 45, 5),
            product("c", 140, 0),
            product("d", 0, 300),
            product("e", 200, 305),
        ];
        let found = gaps(&products);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].rect.x, found[0].rect.w), (85, 55));
        assert_eq!((found[0].rect.y, found[0].rect.h), (0, 105));
        assert_eq!((found[1].rect.x, found[1].rect.w), (40, 160));
        assert_eq!(found[0].tags[0].0, GAP);
    }

    #[test]
    fn positions_match_what_stands_where_the_planogram_puts_them() {
        let detected = ProductResult {
            width: 200,
            height: 100,
            products: vec![product("p1", 0, 0)],
            gaps: vec![ShelfObject {
                id: "gap-1".into(),
                rect: PixelRect {
                    x: 100,
                    y: 0,
                    w: 40,
                    h: 100,
                },
                tags: vec![(GAP.into(), 0.8)],
            }],
        };
        let planogram = Planogram {
            width: 20.0,
            height: 10.0,
            products: vec![("s".into(), 4.0, 10.0)],
            positions: vec![
                ("1".into(), "s".into(), 0.0, 0.0),
                ("2".into(), "s".into(), 10.0, 0.0),
                ("3".into(), "s".into(), 16.0, 0.0),
            ],
        };
        let matched = match_planogram(&planogram, &detected);
        let ids: Vec<(&str, &str)> = matched
            .iter()
            .map(|(p, o)| (p.as_str(), o.id.as_str()))
            .collect();
        assert_eq!(ids, [("1", "p1"), ("2", "gap-1")]);
    }
}
