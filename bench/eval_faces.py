"""Face recall of 3.2 `Faces` on the visible-face-person proxy of ../shared/evaldata/coco_mini: a person
whose nose and at least one eye are labelled counts as found when the nose and a labelled eye fall
inside one detected face box. Also reports detected faces per image, since recall alone hides
over-detection. Skips cleanly when the evaluation data is absent; starts its own server unless --url.

    python bench/eval_faces.py [--evaldata DIR] [--url URL --key KEY]
"""

import json
import os
import sys

import requests

from common import evaluation_args, server_url


def inside(point, box):
    x, y = point
    r = box["faceRectangle"]
    return r["left"] <= x <= r["left"] + r["width"] and r["top"] <= y <= r["top"] + r["height"]


def main():
    args, coco_dir = evaluation_args(__doc__.splitlines()[0])
    if coco_dir is None:
        return 0
    with open(os.path.join(coco_dir, "simple.json")) as f:
        records = [r for r in json.load(f) if r.get("visible_face_persons")
                   and os.path.exists(os.path.join(coco_dir, r["image"]))]
    found = total = faces = 0
    with server_url(args) as url:
        for record in records:
            with open(os.path.join(coco_dir, record["image"]), "rb") as f:
                response = requests.post(f"{url}/vision/v3.2/analyze?visualFeatures=Faces", data=f.read(), timeout=60,
                                         headers={"Ocp-Apim-Subscription-Key": args.key,
                                                  "Content-Type": "application/octet-stream"})
            response.raise_for_status()
            detected = response.json()["faces"]
            faces += len(detected)
            for person in record["visible_face_persons"]:
                nose, left_eye, right_eye = (tuple(k[:2]) if k[2] > 0 else None for k in person["face_keypoints_xyv"][:3])
                eyes = [e for e in (left_eye, right_eye) if e]
                total += 1
                found += any(inside(nose, box) and any(inside(e, box) for e in eyes) for box in detected)
    print(f"Face recall (visible-face persons of coco_mini, {len(records)} images): {found}/{total} = {found / total:.1%}; "
          f"{faces} faces detected ({faces / len(records):.2f} per image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
