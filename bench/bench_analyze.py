"""4.0 analyze with all seven features: p50 latency at concurrency 1 and images/s at concurrency 4,
three times over (medians, min-max), against the sum of its models' single-thread times (measured from
the server's own per-model inference metrics, Tesseract's included, with `--cores 1 --workers 1`: the
median image's). Target: p50 at concurrency 1 no more than that sum / 1.6 on 2 cores, and no loss of
throughput at concurrency 4.

    .venv-test/bin/python bench/bench_analyze.py [--requests 20] [--repeats 3] [serve flags...]

Images: the benchmark photos. VISTA_BIN picks the build.
"""

import argparse
import re
import statistics

import requests

from common import PHOTOS, Server, photo
from timing import measure

KEY = "bench-key"
PATH = ("/computervision/imageanalysis:analyze?api-version=2023-10-01"
        "&features=caption,denseCaptions,objects,people,read,smartCrops,tags")


def analyze(url, body):
    requests.post(url + PATH, data=body, timeout=120, headers={
        "Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/octet-stream"}).raise_for_status()


def model_seconds(url):
    """Total seconds the models have run, from /metrics."""
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^vista_model_inference_seconds_sum\{[^}]*\} (\S+)$", text, re.M))


def single_thread_model_ms(images, serve_args):
    """Each image's model time (every model, Tesseract included, on one thread), as the median of
    three analyses."""
    with Server("--cores", "1", "--workers", "1", *serve_args, keys=(KEY,)) as server:
        for body in images:  # warm-up
            analyze(server.url, body)
        per_image = []
        for body in images:
            times = []
            for _ in range(3):
                before = model_seconds(server.url)
                analyze(server.url, body)
                times.append((model_seconds(server.url) - before) * 1000)
            per_image.append(statistics.median(times))
        return per_image


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single-thread-ms", type=float,
                        help="the median image's single-thread model time, when this build has no --cores "
                             "to measure it")
    parser.add_argument("serve_args", nargs="*", help="extra flags for `vista serve`")
    args = parser.parse_args()
    images = [photo(name) for name in PHOTOS]
    # The target compares like with like: the p50 latency against the median image's model time.
    single = args.single_thread_ms or statistics.median(single_thread_model_ms(images, args.serve_args))
    runs = []
    with Server(*args.serve_args, keys=(KEY,)) as server:
        for body in images:  # warm-up
            analyze(server.url, body)
        for _ in range(args.repeats):
            call = lambda i: analyze(server.url, images[i % len(images)])  # noqa: E731
            runs.append((measure(call, args.requests, 1), measure(call, args.requests, 4)))
    p50 = [lone["p50_ms"] for lone, _ in runs]
    busy = [loaded["images_per_s"] for _, loaded in runs]
    print(f"4.0 analyze, all seven features, {len(PHOTOS)} photos, {args.requests} requests per row, "
          f"medians of {args.repeats} runs (min-max); serve flags: {args.serve_args or 'defaults'}")
    print("| single-thread model time (median image) | target p50 (/1.6) | c=1 p50 ms | c=4 images/s |")
    print("|---|---|---|---|")
    print(f"| {single:.0f} ms | {single / 1.6:.0f} ms | {statistics.median(p50):.0f} ({min(p50):.0f}-{max(p50):.0f}) "
          f"| {statistics.median(busy):.2f} ({min(busy):.2f}-{max(busy):.2f}) |")


if __name__ == "__main__":
    main()
