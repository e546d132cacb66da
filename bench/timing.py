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


def repeated(runs, ours, theirs):
    """Medians over repeated runs. `runs` is a list of (our rows, their rows), one row per concurrency in
    the same order; returns one dict per concurrency with both engines' median p50 and images/s and the
    median, min and max of the throughput ratio (ours / theirs) across the runs."""
    summary = []
    for i, first in enumerate(runs[0][0]):
        ratios = [mine[i]["images_per_s"] / other[i]["images_per_s"] for mine, other in runs]
        summary.append({
            "concurrency": first["concurrency"],
            ours: {key: statistics.median(mine[i][key] for mine, _ in runs) for key in ("p50_ms", "images_per_s")},
            theirs: {key: statistics.median(other[i][key] for _, other in runs) for key in ("p50_ms", "images_per_s")},
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        })
    return summary
