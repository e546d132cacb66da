"""Two builds of vista side by side: the same requests to each (4.0 analyze with all seven features,
3.2 analyze with every visual feature, 4.0 read), every response compared field for field, and the
latency of each build, the two servers answering in turn so that both see the same machine. For a
restructuring that must not change results or get slower.

    python bench/compare_builds.py OLD_BINARY NEW_BINARY [--evaldata DIR] [--limit N] [--rounds R]

Images: the COCO development images (and ICDAR's for read) when ../shared/evaldata is present, else
the benchmark photos.
"""

import argparse
import glob
import os
import statistics
import time

import requests

from common import PHOTOS, ROOT, Server, photo
import conftest  # noqa: E402  (tests/e2e, put on the path by common)

V4 = ("/computervision/imageanalysis:analyze?api-version=2023-10-01"
      "&features=caption,denseCaptions,objects,people,read,smartCrops,tags")
V32 = ("/vision/v3.2/analyze?visualFeatures=Categories,Tags,Description,Faces,ImageType,Color,Adult,Objects"
       "&details=")
READ = "/computervision/imageanalysis:analyze?api-version=2023-10-01&features=read"
KEY = "compare-key"


def images(evaldata, limit):
    coco = sorted(glob.glob(os.path.join(evaldata, "coco_mini", "images", "*", "*.jpg")))[:limit]
    icdar = sorted(glob.glob(os.path.join(evaldata, "icdar2015_test", "ch4_test_images", "*.jpg")))[:limit]
    if not coco:
        return [(name, photo(name)) for name in PHOTOS], []
    load = lambda path: (os.path.basename(path), open(path, "rb").read())  # noqa: E731
    return [load(p) for p in coco], [load(p) for p in icdar]


def without_ids(value):
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k != "requestId"}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


def call(url, path, body):
    started = time.perf_counter()
    response = requests.post(url + path, data=body, timeout=120, headers={
        "Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/octet-stream"})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, without_ids(response.json())


def start(binary):
    conftest.VISTA_BIN = binary
    return Server(keys=(KEY,))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--evaldata", default=os.path.join(ROOT, "..", "shared", "evaldata"))
    parser.add_argument("--limit", type=int, default=40, help="images per set")
    parser.add_argument("--rounds", type=int, default=2, help="timed passes over the images")
    args = parser.parse_args()
    photos, pages = images(args.evaldata, args.limit)
    requests_made = [(V4, name, body) for name, body in photos] + \
        [(V32, name, body) for name, body in photos] + [(READ, name, body) for name, body in pages]
    old, new = start(args.old), start(args.new)
    try:
        latencies = {(p, which): [] for p in (V4, V32, READ) for which in ("old", "new")}
        differences = []
        for round_number in range(args.rounds):
            for i, (path, name, body) in enumerate(requests_made):
                # Alternate which build goes first so neither always meets a warm cache.
                order = [("old", old), ("new", new)]
                if (i + round_number) % 2:
                    order.reverse()
                answers = {}
                for which, server in order:
                    elapsed, answers[which] = call(server.url, path, body)
                    latencies[(path, which)].append(elapsed * 1000)
                if round_number == 0 and answers["old"] != answers["new"]:
                    differences.append((path.split("?")[0], name))
    finally:
        old.stop()
        new.stop()
    print(f"{len(photos)} photos, {len(pages)} text images, {args.rounds} rounds; builds answer in turn")
    print("| request | old p50 ms | new p50 ms | old mean ms | new mean ms |")
    print("|---|---|---|---|---|")
    for path, label in ((V4, "4.0 analyze, all seven features"), (V32, "3.2 analyze, all visual features"),
                        (READ, "4.0 read")):
        old_ms, new_ms = latencies[(path, "old")], latencies[(path, "new")]
        if old_ms:
            print(f"| {label} | {statistics.median(old_ms):.0f} | {statistics.median(new_ms):.0f} | "
                  f"{statistics.fmean(old_ms):.0f} | {statistics.fmean(new_ms):.0f} |")
    print(f"responses that differ: {len(differences)} of {len(requests_made)}")
    for path, name in differences[:10]:
        print(f"  {path} {name}")
    return 1 if differences else 0


if __name__ == "__main__":
    raise SystemExit(main())
