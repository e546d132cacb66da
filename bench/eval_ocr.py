"""OCR quality on ../shared/evaldata, through the running server's 4.0 `read`:

- ICDAR 2015 (scene text): word-level precision / recall / F1, a word counting when a predicted word's
  quad overlaps a legible ground-truth word with IoU >= 0.5 and the text is the same ignoring case;
  predictions over "don't care" words are ignored. Detection-only scores (IoU alone) too.
- SROIE (receipts): line CER, two ways. Strict: each ground-truth line is paired with the predicted line
  that overlaps it most (IoU >= 0.5 of their boxes), an unpaired line counts all its characters as
  errors. Segmentation-free: SROIE often cuts one printed row into several lines ("1 X" and "5.20")
  where vista reads the row as one, so each ground-truth line is also compared with the best-matching
  stretch of the predicted line that covers most of its box. SROIE's transcriptions are upper case, so
  both sides are compared in upper case.

Skips cleanly when the data is absent.

    .venv-test/bin/python bench/eval_ocr.py [--url URL --key KEY] [--limit N]
"""

import argparse
import json
import os
import time

import requests

from common import ROOT, server_url
from rendered_text import edit_distance

READ = "/computervision/imageanalysis:analyze?api-version=2024-02-01&features=read"


def read(url, key, path):
    with open(path, "rb") as f:
        body = f.read()
    response = requests.post(url + READ, data=body, timeout=300, headers={
        "Ocp-Apim-Subscription-Key": key, "Content-Type": "application/octet-stream"})
    response.raise_for_status()
    return response.json()["readResult"]["blocks"][0]["lines"]


def points(polygon):
    return [(p["x"], p["y"]) for p in polygon]


def quad_points(flat):
    return list(zip(flat[0::2], flat[1::2]))


def area(polygon):
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1]))) / 2


def clip(subject, clipper):
    """Sutherland-Hodgman: the part of `subject` inside the convex `clipper` (both clockwise or both not)."""
    orientation = 1 if sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(clipper, clipper[1:] + clipper[:1])) > 0 \
        else -1

    def inside(p, a, b):
        return orientation * ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])) >= 0

    def cross(p, q, a, b):
        dx, dy = q[0] - p[0], q[1] - p[1]
        ex, ey = b[0] - a[0], b[1] - a[1]
        denominator = dx * ey - dy * ex
        if denominator == 0:
            return q
        t = ((a[0] - p[0]) * ey - (a[1] - p[1]) * ex) / denominator
        return (p[0] + t * dx, p[1] + t * dy)

    output = subject
    for a, b in zip(clipper, clipper[1:] + clipper[:1]):
        if not output:
            break
        current, output = output, []
        for p, q in zip(current, current[1:] + current[:1]):
            if inside(q, a, b):
                if not inside(p, a, b):
                    output.append(cross(p, q, a, b))
                output.append(q)
            elif inside(p, a, b):
                output.append(cross(p, q, a, b))
    return output


def iou(a, b):
    inter = area(clip(a, b)) if area(a) > 0 and area(b) > 0 else 0.0
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def box_of(polygon):
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    return min(xs), min(ys), max(xs), max(ys)


def box_overlap(a, b):
    """(intersection, area of a, area of b) of the axis-aligned boxes around two polygons."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = box_of(a), box_of(b)
    inter = max(0, min(ax1, bx1) - max(ax0, bx0)) * max(0, min(ay1, by1) - max(ay0, by0))
    return inter, (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)


def box_iou(a, b):
    inter, area_a, area_b = box_overlap(a, b)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def substring_distance(text, line):
    """The fewest edits that turn `text` into some stretch of `line` (free start and end in `line`)."""
    previous = [0] * (len(line) + 1)
    for i, c in enumerate(text, 1):
        current = [i]
        for j, d in enumerate(line, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (c != d)))
        previous = current
    return min(previous)


def coverage(truth, predicted):
    """The share of the ground-truth box that the predicted box covers."""
    inter, truth_area, _ = box_overlap(truth, predicted)
    return inter / max(1e-9, truth_area)


def load(directory, limit):
    """The items of a set whose images are present (the development half), at most `limit`."""
    items = json.load(open(os.path.join(directory, "simple.json")))
    return [i for i in items if os.path.exists(os.path.join(directory, i["image"]))][:limit]


def score_icdar(items, words_of):
    """Word counts over ICDAR `items`; `words_of(item)` gives the predicted [(polygon points, text)]."""
    counts = {"gt": 0, "pred": 0, "detected": 0, "correct": 0}
    for item in items:
        truth = [(quad_points(w["quad"]), w["text"], w["dont_care"]) for w in item["words"]]
        legible = [t for t in truth if not t[2]]
        ignored = [t for t in truth if t[2]]
        predictions = [w for w in words_of(item) if not any(iou(w[0], t[0]) >= 0.5 for t in ignored)]
        counts["gt"] += len(legible)
        counts["pred"] += len(predictions)
        used_detected, used_correct = set(), set()
        for quad, text, _ in legible:
            overlapping = [i for i, p in enumerate(predictions) if iou(p[0], quad) >= 0.5]
            free = [i for i in overlapping if i not in used_detected]
            if free:
                used_detected.add(free[0])
                counts["detected"] += 1
            same = [i for i in overlapping if predictions[i][1].lower() == text.lower() and i not in used_correct]
            if same:
                used_correct.add(same[0])
                counts["correct"] += 1
    return counts


def prf(counts, hits):
    p, r = hits / max(1, counts["pred"]), hits / max(1, counts["gt"])
    return p, r, 2 * p * r / max(1e-9, p + r)


def score_sroie(items, lines_of):
    """Line CERs over SROIE `items`; `lines_of(item)` gives the predicted [(polygon points, text)]."""
    errors = characters = unpaired = total = free_errors = 0
    for item in items:
        predicted = lines_of(item)
        for line in item["lines"]:
            quad, text = quad_points(line["quad"]), line["text"].upper()
            total += 1
            characters += len(text)
            best = max(((box_iou(quad, p[0]), p[1]) for p in predicted), default=(0.0, ""))
            if best[0] >= 0.5:
                errors += min(len(text), edit_distance(text, best[1].upper()))
            else:
                errors += len(text)
                unpaired += 1
            covering = max(((coverage(quad, p[0]), p[1]) for p in predicted), default=(0.0, ""))
            free_errors += substring_distance(text, covering[1].upper()) if covering[0] >= 0.5 else len(text)
    return {"lines": total, "unpaired": unpaired, "strict_cer": errors / max(1, characters),
            "free_cer": free_errors / max(1, characters)}


def icdar(url, key, directory, limit):
    items = load(directory, limit)
    started = time.time()
    counts = score_icdar(items, lambda item: [
        (points(w["boundingPolygon"]), w["text"])
        for line in read(url, key, os.path.join(directory, item["image"])) for w in line["words"]])
    seconds = time.time() - started
    print(f"ICDAR 2015, {len(items)} images, {counts['gt']} legible words, {counts['pred']} predicted words "
          f"({seconds / max(1, len(items)):.2f} s/image)")
    print("| ICDAR 2015 | precision | recall | F1 |")
    print("|---|---|---|---|")
    for name, hits in [("detection (IoU >= 0.5)", counts["detected"]),
                       ("end to end (+ exact text, any case)", counts["correct"])]:
        p, r, f = prf(counts, hits)
        print(f"| {name} | {100 * p:.1f}% | {100 * r:.1f}% | {100 * f:.1f}% |")


def sroie(url, key, directory, limit):
    items = load(directory, limit)
    started = time.time()
    scores = score_sroie(items, lambda item: [
        (points(line["boundingPolygon"]), line["text"])
        for line in read(url, key, os.path.join(directory, item["image"]))])
    seconds = time.time() - started
    print(f"SROIE, {len(items)} receipts, {scores['lines']} lines ({seconds / max(1, len(items)):.2f} s/receipt): "
          f"line CER {100 * scores['strict_cer']:.1f}% strict ({scores['unpaired']} lines unpaired), "
          f"{100 * scores['free_cer']:.1f}% segmentation-free")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaldata", default=os.path.join(ROOT, "..", "shared", "evaldata"))
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--key", default="eval-key")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per set")
    args = parser.parse_args()
    sets = [(name, os.path.join(args.evaldata, folder)) for name, folder in
            [("icdar", "icdar2015_test"), ("sroie", "sroie_subset")]]
    present = [(name, d) for name, d in sets if os.path.isdir(d)]
    for name, d in sets:
        if (name, d) not in present:
            print(f"SKIP {name}: {d} is absent (evaluation data is optional)")
    if not present:
        return
    with server_url(args) as url:
        for name, directory in present:
            (icdar if name == "icdar" else sroie)(url, args.key, directory, args.limit)


if __name__ == "__main__":
    main()
