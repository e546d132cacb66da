"""Latency and throughput of a call made `count` times by `concurrency` threads. Shared by the
benchmarks, including the one that runs in rembg's own venv (so: standard library only)."""

import concurrent.futures
import statistics
import time


def measure(call, count, concurrency):
    """Runs `call(i)` for i in range(count); returns p50/p95/mean latency in ms and calls per second."""
    def timed(i):
        started = time.perf_counter()
        call(i)
        return time.perf_counter() - started

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        latencies = sorted(pool.map(timed, range(count)))
    wall = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": count,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[min(count - 1, round(0.95 * (count - 1)))] * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "images_per_s": count / wall,
    }
