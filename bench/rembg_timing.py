"""Times rembg's `remove` (PNG cutout) with the u2netp model in U2NET_HOME, in-process (no HTTP), at the
given concurrencies on the given images. Run by bench_segment.py with the rembg venv's Python; prints JSON.

    rembg_timing.py COUNT 1,2,4 IMAGE...
"""

import json
import sys

import rembg

from timing import measure


def phase(session, images, concurrency, count):
    return measure(lambda i: rembg.remove(images[i % len(images)], session=session), count, concurrency)


def main():
    count, concurrencies, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    images = [open(p, "rb").read() for p in paths]
    session = rembg.new_session("u2netp")
    phase(session, images, 1, len(images))  # warm-up
    print(json.dumps([phase(session, images, int(c), count) for c in concurrencies.split(",")]))


if __name__ == "__main__":
    main()
