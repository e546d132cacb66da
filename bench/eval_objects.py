"""COCO box mAP@[.5:.95] and AP50 of 4.0 `objects`, measured by calling a running vista server, next to
the detector's own output (the same ONNX model decoded as its tfjs graph did: top-100 peaks, no NMS,
no threshold) so that any quality the integrated pipeline loses shows up.

Reads ../shared/evaldata/coco_mini (evaluation-only data, never copied into the repo) and skips cleanly
when it is absent. By default it starts its own servers from target/release/vista: one with the low
threshold an mAP evaluation needs, one with the served defaults.

    python bench/eval_objects.py [--evaldata DIR] [--url URL --key KEY]
"""

import contextlib
import io
import os
import sys

import numpy as np
import requests

from common import ROOT, evaluation_args, server_url


def coco_eval(coco, detections):
    from pycocotools.cocoeval import COCOeval
    if not detections:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        result = coco.loadRes(detections)
        evaluation = COCOeval(coco, result, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats[0], evaluation.stats[1]


def server_detections(url, key, coco, image_dir, name_to_category):
    detections = []
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        with open(os.path.join(image_dir, info["file_name"]), "rb") as f:
            response = requests.post(f"{url}/computervision/imageanalysis:analyze?api-version=2023-10-01&features=objects",
                                     data=f.read(), headers={"Ocp-Apim-Subscription-Key": key,
                                                             "Content-Type": "application/octet-stream"}, timeout=60)
        response.raise_for_status()
        for obj in response.json()["objectsResult"]["values"]:
            box, tag = obj["boundingBox"], obj["tags"][0]
            detections.append({"image_id": image_id, "category_id": name_to_category[tag["name"]],
                               "bbox": [box["x"], box["y"], box["w"], box["h"]], "score": tag["confidence"]})
    return detections


def reference_detections(model_path, coco, image_dir, category_ids, letterbox):
    """The model's own output, decoded exactly as its tfjs graph did (3x3 peak test, top 100)."""
    import onnxruntime as ort
    from PIL import Image
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    detections = []
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        image = Image.open(os.path.join(image_dir, info["file_name"])).convert("RGB")
        width, height = image.size
        if letterbox:
            scale = 512 / max(width, height)
            fit = (max(1, round(width * scale)), max(1, round(height * scale)))
            pixels = np.zeros((512, 512, 3), np.float32)
            pixels[:fit[1], :fit[0]] = np.asarray(image.resize(fit, Image.BILINEAR), np.float32)
            sx, sy = width / fit[0], height / fit[1]
        else:
            pixels = np.asarray(image.resize((512, 512), Image.BILINEAR), np.float32)
            sx, sy = width / 512, height / 512
        heatmap, distances = session.run(None, {"images": pixels.transpose(2, 0, 1)[None]})
        heatmap, distances = heatmap[0], distances[0]
        padded = np.pad(heatmap, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
        pooled = np.max([padded[:, dy:dy + 128, dx:dx + 128] for dy in range(3) for dx in range(3)], axis=0)
        peaks = (heatmap * (heatmap == pooled)).reshape(-1)
        for index in np.argsort(-peaks)[:100]:
            cls, cell = divmod(int(index), 128 * 128)
            y, x = divmod(cell, 128)
            d = distances[:, y, x]
            x1, x2 = np.clip([(x * 4 - d[0]) * sx, (x * 4 + d[2]) * sx], 0, width)
            y1, y2 = np.clip([(y * 4 - d[1]) * sy, (y * 4 + d[3]) * sy], 0, height)
            detections.append({"image_id": image_id, "category_id": category_ids[cls],
                               "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                               "score": float(peaks[index])})
    return detections


def main():
    args, coco_dir = evaluation_args(__doc__.splitlines()[0])
    if coco_dir is None:
        return 0
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(os.path.join(coco_dir, "annotations", "instances_train2017.json"))
    image_dir = os.path.join(coco_dir, "images", "train2017")
    category_ids = sorted(coco.getCatIds())
    name_to_category = {c["name"]: c["id"] for c in coco.loadCats(category_ids)}
    rows = []
    model = os.path.join(ROOT, "models", "centernet.onnx")
    for label, letterbox in [("model only, letterboxed input (vista's pre-processing), top-100", True),
                             ("model only, stretched input (as human.js feeds it), top-100", False)]:
        rows.append((label, *coco_eval(coco, reference_detections(model, coco, image_dir, category_ids, letterbox))))
    settings = [(f"vista at {args.url}", [])] if args.url else [
        ("vista server, --min-object-confidence 0.01 (evaluation setting)", ["--min-object-confidence", "0.01"]),
        ("vista server, served defaults (confidence >= 0.3)", [])]
    for label, flags in settings:
        with server_url(args, *flags) as url:
            rows.append((label, *coco_eval(coco, server_detections(url, args.key, coco, image_dir, name_to_category))))
    print(f"COCO boxes, {len(coco.getImgIds())} images of {coco_dir} (development split)")
    print(f"| {'setting':<70} | mAP@[.5:.95] | AP50  |")
    print(f"|{'-' * 72}|--------------|-------|")
    for label, ap, ap50 in rows:
        print(f"| {label:<70} | {ap * 100:12.1f} | {ap50 * 100:5.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
