"""p50/p95 of one 3.2 analyze with Faces, Adult, Color, ImageType and Objects (every model and pixel
feature vista serves in 3.2), over the benchmark photos, at concurrency 1.

    python bench/bench_v32.py [--requests 30] [-- extra `vista serve` flags]
"""

import argparse

import requests

from common import PHOTOS, Server, photo
from timing import measure

QUERY = "/vision/v3.2/analyze?visualFeatures=Faces,Adult,Color,ImageType,Objects"
KEY = "bench-key"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("serve_args", nargs="*", help="extra flags for `vista serve`")
    args = parser.parse_args()
    images = [photo(name) for name in PHOTOS]
    with Server(*args.serve_args, keys=(KEY,)) as server:
        def one(i):
            requests.post(server.url + QUERY, data=images[i % len(images)], timeout=120, headers={
                "Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/octet-stream"}).raise_for_status()
        measure(one, len(images), 1)  # warm-up
        row = measure(one, args.requests, 1)
    print(f"3.2 analyze Faces+Adult+Color+ImageType+Objects, {args.requests} requests at concurrency 1 over "
          f"{len(PHOTOS)} photos; serve flags: {args.serve_args or 'defaults'}: "
          f"p50 {row['p50_ms']:.0f} ms, p95 {row['p95_ms']:.0f} ms, {row['images_per_s']:.2f} images/s")


if __name__ == "__main__":
    main()
