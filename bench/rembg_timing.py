"""Times rembg's `remove` (PNG cutout) with the u2netp model in U2NET_HOME, in-process (no HTTP), at
concurrency 1 and 2 on the given images. Run by bench_segment.py with the rembg venv's Python; prints JSON."""

import concurrent.futures
import json
import statistics
import sys
import time

import rembg


def phase(session, images, concurrency, count):
    def one(i):
        started = time.perf_counter()
        rembg.remove(images[i % len(images)], session=session)
        return time.perf_counter() - started

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        latencies = sorted(pool.map(one, range(count)))
    return {"concurrency": concurrency, "p50_ms": statistics.median(latencies) * 1000,
            "images_per_s": count / (time.perf_counter() - started)}


def main():
    count, paths = int(sys.argv[1]), sys.argv[2:]
    images = [open(p, "rb").read() for p in paths]
    session = rembg.new_session("u2netp")
    phase(session, images, 1, len(images))  # warm-up
    print(json.dumps([phase(session, images, 1, count), phase(session, images, 2, count)]))


if __name__ == "__main__":
    main()
