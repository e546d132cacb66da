"""The same quality through each protocol: label recall against COCO categories, object AP50 and
mAP@[.5:.95], ICDAR 2015 word F1 and face recall, measured through the Azure, Google Cloud Vision and
AWS Rekognition surfaces of one server on ../shared/evaldata (development split; skips when absent).

Cloud names differ from Azure's COCO names ("Mobile phone" for "cell phone"); each name is mapped back
to its COCO category through the object boxes of the same run (a Google or AWS box identical to an Azure
box names the same category), and names never seen as boxes are compared in lower case.

    python bench/eval_clouds.py [--evaldata DIR] [--limit N]
"""

import argparse
import base64
import contextlib
import io
import json
import os
import sys
import time

import boto3
import requests
from botocore.config import Config

from common import ROOT, Server
from conftest import AWS_PAIR, CLOUD_ENV, GOOGLE_KEY, KEYS
from eval_objects import coco_eval
from eval_ocr import load, points, prf, score_icdar

AZURE = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
SURFACES = ["azure", "google", "aws"]


class Surfaces:
    """Asks one server the same question through each protocol, in neutral form."""

    def __init__(self, url):
        self.url = url
        self.aws = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                                aws_access_key_id=AWS_PAIR[0], aws_secret_access_key=AWS_PAIR[1],
                                config=Config(retries={"max_attempts": 3, "mode": "standard"}))

    def azure(self, path, body):
        response = requests.post(self.url + path, data=body, headers=AZURE, timeout=300)
        response.raise_for_status()
        return response.json()

    def google(self, body, *types):
        request = {"requests": [{"image": {"content": base64.b64encode(body).decode()},
                                 "features": [{"type": t, "maxResults": 1000} for t in types]}]}
        response = requests.post(f"{self.url}/v1/images:annotate", json=request,
                                 headers={"x-goog-api-key": GOOGLE_KEY}, timeout=300)
        response.raise_for_status()
        return response.json()["responses"][0]

    def objects_and_labels(self, surface, body, size):
        """([(name, score, [x, y, w, h])], [label names]) in pixels."""
        w, h = size
        if surface == "azure":
            r = self.azure("/computervision/imageanalysis:analyze?api-version=2024-02-01&features=objects,tags", body)
            objects = [(o["tags"][0]["name"], o["tags"][0]["confidence"],
                        [o["boundingBox"][k] for k in "xywh"]) for o in r["objectsResult"]["values"]]
            return objects, [t["name"] for t in r["tagsResult"]["values"]]
        if surface == "google":
            r = self.google(body, "OBJECT_LOCALIZATION", "LABEL_DETECTION")
            objects = []
            for o in r.get("localizedObjectAnnotations", []):
                v = o["boundingPoly"]["normalizedVertices"]
                x1, y1 = v[0].get("x", 0) * w, v[0].get("y", 0) * h
                objects.append((o["name"], o["score"], [x1, y1, v[2].get("x", 0) * w - x1, v[2].get("y", 0) * h - y1]))
            return objects, [l["description"] for l in r.get("labelAnnotations", [])]
        r = self.aws.detect_labels(Image={"Bytes": body}, MinConfidence=0)
        objects = [(l["Name"], i["Confidence"] / 100, [i["BoundingBox"]["Left"] * w, i["BoundingBox"]["Top"] * h,
                    i["BoundingBox"]["Width"] * w, i["BoundingBox"]["Height"] * h])
                   for l in r["Labels"] for i in l["Instances"]]
        return objects, [l["Name"] for l in r["Labels"] if l["Confidence"] >= 50]

    def words(self, surface, body):
        """[(polygon points, text)] in pixels."""
        if surface == "azure":
            r = self.azure("/computervision/imageanalysis:analyze?api-version=2024-02-01&features=read", body)
            return [(points(word["boundingPolygon"]), word["text"])
                    for line in r["readResult"]["blocks"][0]["lines"] for word in line["words"]]
        if surface == "google":
            r = self.google(body, "TEXT_DETECTION")
            return [([(v.get("x", 0), v.get("y", 0)) for v in a["boundingPoly"]["vertices"]], a["description"])
                    for a in r.get("textAnnotations", [])[1:]]
        from PIL import Image
        w, h = Image.open(io.BytesIO(body)).size
        r = self.aws.detect_text(Image={"Bytes": body})
        return [([(round(p["X"] * w, 3), round(p["Y"] * h, 3)) for p in d["Geometry"]["Polygon"]], d["DetectedText"])
                for d in r["TextDetections"] if d["Type"] == "WORD"]

    def faces(self, surface, body, size):
        """[(x, y, w, h)] in pixels."""
        w, h = size
        if surface == "azure":
            r = self.azure("/vision/v3.2/analyze?visualFeatures=Faces", body)
            return [tuple(f["faceRectangle"][k] for k in ("left", "top", "width", "height")) for f in r["faces"]]
        if surface == "google":
            boxes = []
            for f in self.google(body, "FACE_DETECTION").get("faceAnnotations", []):
                v = f["fdBoundingPoly"]["vertices"]
                x1, y1 = v[0].get("x", 0), v[0].get("y", 0)
                boxes.append((x1, y1, v[2].get("x", 0) - x1, v[2].get("y", 0) - y1))
            return boxes
        r = self.aws.detect_faces(Image={"Bytes": body})
        # Ratios back to pixels, rounded: AWS's floats carry the ratio's rounding error.
        return [tuple(round(v, 3) for v in (f["BoundingBox"]["Left"] * w, f["BoundingBox"]["Top"] * h,
                                            f["BoundingBox"]["Width"] * w, f["BoundingBox"]["Height"] * h))
                for f in r["FaceDetails"]]


def coco_figures(surfaces, coco_dir):
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(os.path.join(coco_dir, "annotations", "instances_train2017.json"))
    image_dir = os.path.join(coco_dir, "images", "train2017")
    categories = {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())}
    found = {s: [] for s in SURFACES}
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        with open(os.path.join(image_dir, info["file_name"]), "rb") as f:
            body = f.read()
        truth = {coco.loadCats(a["category_id"])[0]["name"] for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))}
        for s in SURFACES:
            found[s].append((image_id, truth, *surfaces.objects_and_labels(s, body, (info["width"], info["height"]))))
    # A cloud name's COCO category: that of the Azure detection with the same score and corners in the
    # same image (two classes can share a box; they do not share a score).
    to_coco = {}
    for (_, _, azure_objects, _), *others in zip(found["azure"], found["google"], found["aws"]):
        for _, _, objects, _ in others:
            for name, score, box in objects:
                for coco_name, azure_score, azure_box in azure_objects:
                    if abs(score - azure_score) < 1e-4 and all(abs(a - b) <= 1.01 for a, b in zip(box, azure_box)):
                        to_coco[name] = coco_name
    rows = {}
    for s in SURFACES:
        detections, hits, total = [], 0, 0
        for image_id, truth, objects, labels in found[s]:
            for name, score, box in objects:
                category = categories.get(to_coco.get(name, name.lower()))
                if category:
                    detections.append({"image_id": image_id, "category_id": category, "bbox": box, "score": score})
            named = {to_coco.get(l, l.lower()) for l in labels}
            total += len(truth)
            hits += len(truth & named)
        ap, ap50 = coco_eval(coco, detections)
        rows[s] = {"label recall": hits / max(1, total), "AP50": ap50, "mAP": ap}
    return rows, len(coco.getImgIds())


def face_recall(surfaces, coco_dir):
    with open(os.path.join(coco_dir, "simple.json")) as f:
        records = [r for r in json.load(f) if r.get("visible_face_persons")
                   and os.path.exists(os.path.join(coco_dir, r["image"]))]
    recall = {}
    for s in SURFACES:
        found = total = 0
        for record in records:
            with open(os.path.join(coco_dir, record["image"]), "rb") as f:
                boxes = surfaces.faces(s, f.read(), (int(record["width"]), int(record["height"])))
            inside = lambda p, b: b[0] <= p[0] <= b[0] + b[2] and b[1] <= p[1] <= b[1] + b[3]
            for person in record["visible_face_persons"]:
                nose, *eyes = (tuple(k[:2]) if k[2] > 0 else None for k in person["face_keypoints_xyv"][:3])
                eyes = [e for e in eyes if e]
                total += 1
                found += any(inside(nose, b) and any(inside(e, b) for e in eyes) for b in boxes)
        recall[s] = found / max(1, total)
    return recall


def word_f1(surfaces, icdar_dir, limit):
    items = load(icdar_dir, limit)
    f1 = {}
    for s in SURFACES:
        def words_of(item):
            with open(os.path.join(icdar_dir, item["image"]), "rb") as f:
                return surfaces.words(s, f.read())
        counts = score_icdar(items, words_of)
        f1[s] = prf(counts, counts["correct"])[2]
    return f1, len(items)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaldata", default=os.path.join(ROOT, "..", "shared", "evaldata"))
    parser.add_argument("--limit", type=int, default=1000, help="ICDAR images at most")
    args = parser.parse_args()
    coco_dir, icdar_dir = (os.path.join(args.evaldata, d) for d in ("coco_mini", "icdar2015_test"))
    if not os.path.isdir(coco_dir) or not os.path.isdir(icdar_dir):
        print(f"SKIP: {args.evaldata} has no coco_mini or icdar2015_test (evaluation data is optional)")
        return 0
    started = time.time()
    with Server(env=CLOUD_ENV) as server:
        surfaces = Surfaces(server.url)
        coco, images = coco_figures(surfaces, coco_dir)
        faces = face_recall(surfaces, coco_dir)
        words, pages = word_f1(surfaces, icdar_dir, args.limit)
    print(f"Quality per surface: coco_mini ({images} images with boxes), ICDAR 2015 ({pages} images), "
          f"{time.time() - started:.0f} s")
    print("| surface | label recall (COCO categories) | object AP50 | object mAP@[.5:.95] | ICDAR word F1 | face recall |")
    print("|---|---|---|---|---|---|")
    for s in SURFACES:
        c = coco[s]
        print(f"| {s} | {100 * c['label recall']:.1f}% | {100 * c['AP50']:.1f} | {100 * c['mAP']:.1f} | "
              f"{100 * words[s]:.1f}% | {100 * faces[s]:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
