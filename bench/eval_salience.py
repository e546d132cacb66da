"""Quality of the salience features, measured by calling a vista server:

- background removal: IoU of the foregroundMatting matte (thresholded at 128) with the foreground-mask
  proxy in ../shared/evaldata/coco_mini/derived/fg_masks (masks derived from COCO polygons);
- smart crops: the fraction of crops that keep the image's main annotated box (the largest non-crowd
  COCO box; kept = at least 90% of its area inside the crop), for several ratios, next to a centred crop
  of the same size as the baseline.

Skips cleanly when the evaluation data is absent. Starts its own server unless --url is given.

    python bench/eval_salience.py [--evaldata DIR] [--url URL --key KEY]
"""

import io
import json
import os
import sys

import numpy as np
import requests
from PIL import Image

from common import evaluation_args, server_url

RATIOS = [0.75, 1.0, 1.33, 1.8]
KEEP_SHARE = 0.9


def post(url, key, path, data):
    response = requests.post(url + path, data=data, timeout=120,
                             headers={"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/octet-stream"})
    response.raise_for_status()
    return response


def mask_iou(url, key, coco_dir):
    with open(os.path.join(coco_dir, "derived", "fg_masks.json")) as f:
        entries = json.load(f)
    scores = []
    for entry in entries:
        with open(os.path.join(coco_dir, entry["image"]), "rb") as f:
            matte = post(url, key, "/computervision/imageanalysis:segment?api-version=2023-02-01-preview"
                                   "&mode=foregroundMatting", f.read())
        predicted = np.asarray(Image.open(io.BytesIO(matte.content))) >= 128
        truth = np.asarray(Image.open(os.path.join(coco_dir, entry["mask"])).convert("L")) > 127
        union = np.logical_or(predicted, truth).sum()
        scores.append((entry["category"], np.logical_and(predicted, truth).sum() / union if union else 1.0))
    return scores


def kept(crop, box):
    x, y, w, h = box
    inside_w = max(0.0, min(x + w, crop[0] + crop[2]) - max(x, crop[0]))
    inside_h = max(0.0, min(y + h, crop[1] + crop[3]) - max(y, crop[1]))
    return inside_w * inside_h >= KEEP_SHARE * w * h


def centred(width, height, ratio):
    if width / height > ratio:
        w = round(height * ratio)
        return ((width - w) / 2, 0, w, height)
    h = round(width / ratio)
    return (0, (height - h) / 2, width, h)


def crop_keeps(url, key, coco_dir):
    with open(os.path.join(coco_dir, "simple.json")) as f:
        records = [r for r in json.load(f) if r["boxes_xywh"] and os.path.exists(os.path.join(coco_dir, r["image"]))]
    ours, baseline = {r: [] for r in RATIOS}, {r: [] for r in RATIOS}
    for record in records:
        boxes = [b for b in record["boxes_xywh"] if len(b) < 6]  # a sixth item marks crowd boxes
        if not boxes:
            continue
        main = max(boxes, key=lambda b: b[2] * b[3])[:4]
        with open(os.path.join(coco_dir, record["image"]), "rb") as f:
            result = post(url, key, "/computervision/imageanalysis:analyze?api-version=2023-10-01&features=smartCrops"
                                    "&smartcrops-aspect-ratios=" + ",".join(map(str, RATIOS)), f.read()).json()
        for crop in result["smartCropsResult"]["values"]:
            b = crop["boundingBox"]
            ours[crop["aspectRatio"]].append(kept((b["x"], b["y"], b["w"], b["h"]), main))
            baseline[crop["aspectRatio"]].append(kept(centred(record["width"], record["height"], crop["aspectRatio"]), main))
    return ours, baseline


def main():
    args, coco_dir = evaluation_args(__doc__.splitlines()[0])
    if coco_dir is None:
        return 0
    with server_url(args) as url:
        ious = mask_iou(url, args.key, coco_dir)
        ours, baseline = crop_keeps(url, args.key, coco_dir)
    people_and_things = [s for c, s in ious if c not in ("dining table", "bed")]
    print(f"Background removal (foregroundMatting >= 128 vs derived fg masks), {len(ious)} images:")
    print(f"  mean IoU {np.mean([s for _, s in ious]):.3f}; without table/bed masks ({len(people_and_things)} images) "
          f"{np.mean(people_and_things):.3f}; median {np.median([s for _, s in ious]):.3f}")
    print(f"Smart crops keeping >= {KEEP_SHARE:.0%} of the main COCO box ({len(ours[RATIOS[0]])} images):")
    print("| ratio | vista | centred crop |")
    print("|---|---|---|")
    for ratio in RATIOS:
        print(f"| {ratio} | {np.mean(ours[ratio]):.1%} | {np.mean(baseline[ratio]):.1%} |")
    print(f"| all | {np.mean(sum(ours.values(), [])):.1%} | {np.mean(sum(baseline.values(), [])):.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
