"""Adult/racy false-positive rate of 3.2 `Adult` on ordinary photos: every coco_mini image (COCO is
screened for ordinary content), via a vista server. Skips cleanly when the evaluation data is absent.

    python bench/eval_adult.py [--evaldata DIR] [--url URL --key KEY]
"""

import json
import os
import sys

import requests

from common import evaluation_args, server_url


def main():
    args, coco_dir = evaluation_args(__doc__.splitlines()[0])
    if coco_dir is None:
        return 0
    with open(os.path.join(coco_dir, "simple.json")) as f:
        images = [r["image"] for r in json.load(f) if os.path.exists(os.path.join(coco_dir, r["image"]))]
    adult = racy = 0
    worst = (0.0, "")
    with server_url(args) as url:
        for image in images:
            with open(os.path.join(coco_dir, image), "rb") as f:
                response = requests.post(f"{url}/vision/v3.2/analyze?visualFeatures=Adult", data=f.read(), timeout=60,
                                         headers={"Ocp-Apim-Subscription-Key": args.key,
                                                  "Content-Type": "application/octet-stream"})
            response.raise_for_status()
            rating = response.json()["adult"]
            adult += rating["isAdultContent"]
            racy += rating["isRacyContent"]
            worst = max(worst, (rating["adultScore"], image))
    print(f"Ordinary photos flagged ({len(images)} coco_mini images): adult {adult} ({adult / len(images):.1%}), "
          f"racy {racy} ({racy / len(images):.1%}); highest adult score {worst[0]:.3f} ({os.path.basename(worst[1])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
