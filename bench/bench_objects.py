"""Latency and throughput of 4.0 objects+people through a real vista server, with the model-only
inference time read from the server's own metrics over the same requests, so the pipeline overhead
(decode, resize, post-processing, JSON, HTTP) shows as a ratio. Target: overhead <= 15% at concurrency 1.

    python bench/bench_objects.py [--requests 40] [-- extra `vista serve` flags]
"""

import argparse
import re
import threading

import requests

from common import PHOTOS, Server, encoded, photo
from timing import measure

QUERY = "/computervision/imageanalysis:analyze?api-version=2023-10-01&features=objects,people"
KEY = "bench-key"


def histogram(url, name, label):
    """(sum, count) of one labelled histogram of the server's /metrics."""
    text = requests.get(url + "/metrics", timeout=10).text
    total = re.search(rf'{name}_sum\{{{re.escape(label)}\}} (\S+)', text)
    count = re.search(rf'{name}_count\{{{re.escape(label)}\}} (\S+)', text)
    return (float(total.group(1)), float(count.group(1))) if total else (0.0, 0.0)


def server_means(url):
    """Cumulative (model seconds, model runs, server seconds, server requests)."""
    model = histogram(url, "vista_model_inference_seconds", 'model="centernet"')
    http = histogram(url, "vista_http_request_duration_seconds", 'route="/computervision/imageanalysis:analyze"')
    return (*model, *http)


def run_phase(url, images, concurrency, count):
    local = threading.local()

    def one(i):
        session = getattr(local, "session", None) or requests.Session()  # keep-alive per thread
        local.session = session
        session.post(url + QUERY, data=images[i % len(images)], timeout=120, headers={
            "Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/octet-stream"}).raise_for_status()

    before = server_means(url)
    row = measure(one, count, concurrency)
    delta = [a - b for a, b in zip(server_means(url), before)]
    row["model_ms"] = delta[0] / max(delta[1], 1) * 1000
    row["server_ms"] = delta[2] / max(delta[3], 1) * 1000
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40, help="requests at concurrency 1 (twice as many at 4)")
    parser.add_argument("--format", choices=["png", "jpeg"], default="png",
                        help="send the photos as they ship (png) or re-encoded as JPEG quality 90")
    parser.add_argument("serve_args", nargs="*", help="extra flags for `vista serve`")
    args = parser.parse_args()
    images = [photo(name) if args.format == "png" else encoded(name, "JPEG", quality=90) for name in PHOTOS]
    with Server(*args.serve_args, keys=(KEY,)) as server:
        run_phase(server.url, images, 1, 5)  # warm-up
        rows = [run_phase(server.url, images, 1, args.requests), run_phase(server.url, images, 4, 2 * args.requests)]
    print(f"objects+people over {len(PHOTOS)} photos ({', '.join(PHOTOS)}) sent as {args.format.upper()}; "
          f"serve flags: {args.serve_args or 'defaults'}")
    print("| concurrency | requests | p50 ms | p95 ms | images/s | model ms/inference | server ms/request "
          "| overhead in server | overhead seen by client |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        in_server = (r["server_ms"] - r["model_ms"]) / r["model_ms"] * 100
        at_client = (r["mean_ms"] - r["model_ms"]) / r["model_ms"] * 100
        print(f"| {r['concurrency']} | {r['requests']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['images_per_s']:.2f} "
              f"| {r['model_ms']:.1f} | {r['server_ms']:.1f} | {in_server:+.1f}% | {at_client:+.1f}% |")
    print("Overhead = (mean latency - mean model run) / mean model run. 'In server' spans request arrival to response "
          "(body read, decode, resize, post-processing, JSON); 'seen by client' adds the loopback transfer and the "
          "Python client. At concurrency 4 latency includes queueing, so only concurrency 1 measures overhead.")


if __name__ == "__main__":
    main()
