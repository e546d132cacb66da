"""Model customization measured as a user would meet it: the scene classifier and the synthetic logo
detector that bench/custom_sets.py builds from the development data are trained with `vista train`
(the server's own trainer) and measured on their disjoint test files; then a server answers analyze
with each model, one request at a time, and its latency is timed beside a plain `tags` analyze.

    python bench/eval_custom.py            # builds the sets under bench-out/custom if needed

Prints a table: set, images, top-1 or mAP@0.5 (and mAP@0.75), training wall time, analyze p50/p90.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import requests

from common import MODELS, ROOT, Server, evaluation_args

VISTA = os.environ.get("VISTA_BIN", os.path.join(ROOT, "target", "release", "vista"))
SETS = os.path.join(ROOT, "bench-out", "custom")
REPEATS = 20


def train(name, folder, data_dir):
    started = time.time()
    out = subprocess.run(
        [VISTA, "train", os.path.join(folder, "train.json"), "--name", name, "--test", os.path.join(folder, "test.json"),
         "--data-dir", data_dir, "--models", MODELS],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout), time.time() - started


def latency(server, query, image):
    times = []
    for _ in range(REPEATS + 2):
        started = time.time()
        answer = requests.post(f"{server.url}/computervision/imageanalysis:analyze?{query}",
                               headers={"Ocp-Apim-Subscription-Key": "eval-key", "Content-Type": "application/octet-stream"},
                               data=image, timeout=60)
        answer.raise_for_status()
        times.append((time.time() - started) * 1000)
    times = sorted(times[2:])  # the first two warm the sessions
    return statistics.median(times), times[int(len(times) * 0.9) - 1]


def main():
    args, coco = evaluation_args(__doc__)
    if coco is None:
        return
    if not os.path.exists(os.path.join(SETS, "logos", "test.json")):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "custom_sets.py"), "--out", SETS], check=True)
    data_dir = tempfile.mkdtemp(prefix="vista-custom-")
    rows = []
    for name, kind in [("scenes", "classifier"), ("logos", "detector")]:
        folder = os.path.join(SETS, name)
        report, seconds = train(name, folder, data_dir)
        performance = report["modelPerformance"]
        counts = [len(json.load(open(os.path.join(folder, f)))["images"]) for f in ("train.json", "test.json")]
        if kind == "classifier":
            quality = f"top-1 {performance['accuracyTop1']:.1%}, top-5 {performance['accuracyTop5']:.1%}"
        else:
            quality = (f"mAP@0.5 {performance['meanAveragePrecision50']:.3f}, "
                       f"mAP@0.75 {performance['meanAveragePrecision75']:.3f}")
        rows.append([name, kind, f"{counts[0]} / {counts[1]}", quality, f"{seconds:.1f} s"])
    first_test = json.load(open(os.path.join(SETS, "logos", "test.json")))["images"][0]["file_name"]
    image = open(os.path.join(SETS, "logos", first_test), "rb").read()
    with Server("--data-dir", data_dir, keys=("eval-key",)) as server:
        timings = {
            "tags (no custom model)": latency(server, "api-version=2023-10-01&features=tags", image),
            "scenes": latency(server, "api-version=2023-04-01-preview&model-name=scenes", image),
            "logos": latency(server, "api-version=2023-04-01-preview&model-name=logos", image),
        }
    print("| set | head | train / test images | quality on the test images | training (wall, incl. loading) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(f"analyze latency, one request at a time, {REPEATS} requests of a {first_test} photo")
    print("| model-name | p50 ms | p90 ms |")
    print("|---|---|---|")
    for name, (p50, p90) in timings.items():
        print(f"| {name} | {p50:.0f} | {p90:.0f} |")


if __name__ == "__main__":
    main()
