//! Reading order: lines as rows top down (the Read API's `basic`) or as columns and blocks
//! (`natural`), in the frame of the text itself, whatever the page's rotation.

use super::TextLine;
use crate::geometry::Quad;
fn direction(quad: &Quad) -> f32 {
    let [tl, tr, ..] = quad.0;
    (tr.1 - tl.1).atan2(tr.0 - tl.0).to_degrees()
}

pub(super) fn median_angle(lines: &[TextLine]) -> f32 {
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
pub(super) fn reading_order(lines: Vec<TextLine>) -> Vec<TextLine> {
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
pub(super) fn natural_order(lines: Vec<TextLine>) -> Vec<TextLine> {
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
    use crate::pipeline::read::page::turned;
    use crate::pipeline::read::test_support::rect;
    use crate::pipeline::read::Orientation;

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
