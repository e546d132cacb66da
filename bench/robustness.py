"""What a hostile or unlucky client does to a vista server, measured; each check starts its own server
(VISTA_BIN picks the binary, so a build before a change can be measured the same way) and prints a table.

  fuzz        seeded malformed requests and decompression bombs: no 5xx, no crash; peak and settled RSS
  overload    4x the server's capacity for a while: 200s and 429s (with Retry-After), latency, RSS, and
              how soon a request succeeds again once the load stops
  durability  kill -9 with Read operations queued; a restart on the same data directory reads them all
  memory      one, then two concurrent 16000x16000 PNGs: peak and settled RSS

`--quick` runs a short version of each (the test suite runs those). Everything stays on loopback and
every loop is bounded in requests and time.

  .venv-test/bin/python bench/robustness.py fuzz --requests 5200
  .venv-test/bin/python bench/robustness.py overload --seconds 60
  .venv-test/bin/python bench/robustness.py durability
  .venv-test/bin/python bench/robustness.py memory
"""

import argparse
import concurrent.futures
import io
import os
import random
import statistics
import struct
import threading
import time
import zlib

import requests
from PIL import Image

import common  # noqa: F401  (puts tests/e2e on the path)
from conftest import KEYS, Server, photo
from rendered_text import pdf_of_scans, render

HEADERS = {"Ocp-Apim-Subscription-Key": KEYS[0]}
OUT = os.path.join(common.ROOT, "bench-out")


def rss_mib(pid, field="VmRSS"):
    """A process's resident size (VmRSS) or its peak (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Samples a process's resident size every 50 ms while in use; `peak` is the highest sample."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except FileNotFoundError:
                return
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()


def settled_rss(pid, seconds=3.0):
    time.sleep(seconds)
    return rss_mib(pid)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bombs():
    """Small inputs that declare huge pixel counts: the cases the hostile-client report measured."""
    gif = b"GIF89a" + struct.pack("<HH", 16000, 16000) + b"\x00\x00\x00" + b",\x00\x00\x00\x00\x01\x00\x01\x00\x00" \
        b"\x02\x02D\x01\x00;"
    # A 16-bit RGB PNG of 16000x4000, all zero rows: about 2 MB compressed, 384 MB decoded.
    rows = zlib.compress(b"\x00" * (1 + 16000 * 6) * 4000, 9)
    png16 = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16000, 4000, 16, 2, 0, 0, 0)) \
        + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")
    pdf = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
           b"endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 7200 7200]>>endobj\ntrailer<</Root 1 0 R>>\n"
           b"%%EOF\n")
    pages = [Image.new("1", (9000, 9000), 1) for _ in range(4)]
    tiff = io.BytesIO()
    pages[0].save(tiff, "TIFF", save_all=True, append_images=pages[1:], compression="group4")
    return {"gif-16k-screen": gif, "png-16bit": png16, "pdf-7200pt": pdf, "tiff-4x9000": tiff.getvalue()}


ROUTES = [
    ("POST", "/computervision/imageanalysis:analyze?api-version=2024-02-01&features=tags,objects,read"),
    ("POST", "/computervision/imageanalysis:analyze?api-version=2024-02-01&features=smartCrops"
             "&smartcrops-aspect-ratios=0.5,9"),
    ("POST", "/vision/v3.2/analyze?visualFeatures=Categories,Faces,Color&details=Landmarks"),
    ("POST", "/vision/v3.2/ocr?language=unk&detectOrientation=true"),
    ("POST", "/vision/v3.2/generateThumbnail?width=100&height=0"),
    ("POST", "/vision/v3.2/read/analyze?pages=1-2"),
    ("POST", "/computervision/imageanalysis:segment?api-version=2023-02-01-preview&mode=backgroundRemoval"),
    ("POST", "/computervision/retrieval:vectorizeText?api-version=2024-02-01"),
    ("GET", "/vision/v3.2/read/analyzeResults/not-an-id"),
    ("PUT", "/vision/v3.2/analyze"),
    ("DELETE", "/computervision/imageanalysis:analyze"),
]


def fuzz_case(rng, valid, bomb_bodies):
    """One malformed (or odd) request: (method, path, headers, body)."""
    method, path = rng.choice(ROUTES)
    if rng.random() < 0.2:
        path += rng.choice(["&features=", "&language=xx", "&model-version=9", "&gender-neutral-caption=maybe",
                            "%ZZ", "&" + "a" * 3000, "&pages=0-", "&maxCandidates=-1"])
    headers = dict(HEADERS)
    roll = rng.random()
    if roll < 0.3:
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 4096)))
    elif roll < 0.5:
        body = valid[: rng.randint(0, len(valid))]
    elif roll < 0.65:
        body = bytearray(valid)
        for _ in range(rng.randint(1, 20)):
            body[rng.randrange(len(body))] = rng.getrandbits(8)
        body = bytes(body)
    elif roll < 0.8:
        body = rng.choice(list(bomb_bodies.values()))
    elif roll < 0.9:
        headers["Content-Type"] = "application/json"
        body = rng.choice([b'{"url": "http://127.0.0.1:1/x.jpg"}', b'{"url": "file:///etc/passwd"}', b"{",
                           b'{"url": 5}', b'{"text": "' + b"x" * 70000 + b'"}', b'{"text": ""}', b"[]"])
    else:
        headers["Content-Type"] = rng.choice(["multipart/form-data; boundary=zz", "image/jpeg",
                                              "text/plain", "application/pdf"])
        body = b"--zz\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n" + valid[:2000] + b"\r\n--zz--\r\n"
    if rng.random() < 0.05:
        headers.pop("Ocp-Apim-Subscription-Key")
    headers.setdefault("Content-Type", "application/octet-stream")
    return method, path, headers, body


def fuzz(args):
    rng = random.Random(args.seed)
    valid = photo("chelsea.png")
    bomb_bodies = bombs()
    cases = [fuzz_case(rng, valid, bomb_bodies) for _ in range(args.requests)]
    statuses, failures = {}, []
    with Server("--workers", "2", "--queue", "8") as server:
        pid = server.process.pid
        start_rss = rss_mib(pid)
        session = requests.Session()

        def send(case):
            method, path, headers, body = case
            try:
                return session.request(method, server.url + path, headers=headers, data=body, timeout=120).status_code
            except requests.RequestException as e:
                return f"error: {type(e).__name__}"

        started = time.time()
        with RssSampler(pid) as sampler, concurrent.futures.ThreadPoolExecutor(4) as pool:
            for case, status in zip(cases, pool.map(send, cases)):
                statuses[status] = statuses.get(status, 0) + 1
                if not isinstance(status, int) or status >= 500:
                    failures.append((case[0], case[1][:80], status))
        elapsed = time.time() - started
        alive = server.process.poll() is None and requests.get(server.url + "/health").status_code == 200
        settled = settled_rss(pid)
    print(f"fuzz: {args.requests} requests (seed {args.seed}) in {elapsed:.0f} s")
    print("| status | count |\n|---|---|")
    for status, count in sorted(statuses.items(), key=lambda kv: str(kv[0])):
        print(f"| {status} | {count} |")
    print(f"\n| RSS at start | peak (sampled) | settled | server alive |\n|---|---|---|---|\n"
          f"| {start_rss:.0f} MiB | {sampler.peak:.0f} MiB | {settled:.0f} MiB | {alive} |")
    for failure in failures[:10]:
        print("FAILURE", failure)
    return not failures and alive


ALL_FEATURES = "caption,denseCaptions,tags,objects,people,read,smartCrops"


def analyze_once(url, body, timeout=60, features="objects"):
    started = time.time()
    response = requests.post(url + f"/computervision/imageanalysis:analyze?api-version=2024-02-01&features={features}",
                             data=body, headers={**HEADERS, "Content-Type": "application/octet-stream"},
                             timeout=timeout)
    return response, time.time() - started


def overload(args):
    body = photo("astronaut.png")
    with Server("--workers", "2", "--queue", "8") as server:
        pid = server.process.pid
        # Capacity: images/s with as many clients as workers.
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda _: analyze_once(server.url, body), range(8)))
        capacity = 8 / (time.time() - started)
        clients = max(4, int(4 * (2 + 8)))  # 4x what workers and queue hold at once
        deadline = time.time() + args.seconds
        results, retry_after = [], set()

        def client():
            while time.time() < deadline:
                try:
                    response, seconds = analyze_once(server.url, body)
                except requests.RequestException as e:
                    results.append((f"error: {type(e).__name__}", 0.0))
                    continue
                results.append((response.status_code, seconds))
                if response.status_code == 429:
                    retry_after.add(response.headers.get("Retry-After"))
                    time.sleep(0.05)

        with RssSampler(pid) as sampler, concurrent.futures.ThreadPoolExecutor(clients) as pool:
            for _ in range(clients):
                pool.submit(client)
        stopped = time.time()
        while analyze_once(server.url, body)[0].status_code != 200:
            time.sleep(0.01)
        recovery = time.time() - stopped
        settled = settled_rss(pid)
    ok = sorted(s for status, s in results if status == 200)
    counts = {}
    for status, _ in results:
        counts[status] = counts.get(status, 0) + 1
    p = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))] * 1000 if ok else float("nan")  # noqa: E731
    print(f"overload: {clients} clients for {args.seconds} s against a capacity of {capacity:.1f} images/s")
    print("| 200 | 429 | other | Retry-After | p50 of 200s | p95 of 200s | peak RSS | settled RSS | recovery |")
    print("|---|---|---|---|---|---|---|---|---|")
    other = sum(c for s, c in counts.items() if s not in (200, 429))
    print(f"| {counts.get(200, 0)} | {counts.get(429, 0)} | {other} | {','.join(sorted(map(str, retry_after)))} | "
          f"{p(0.5):.0f} ms | {p(0.95):.0f} ms | {sampler.peak:.0f} MiB | {settled:.0f} MiB | "
          f"{recovery * 1000:.0f} ms |")
    return other == 0 and counts.get(429, 0) > 0 and all(retry_after)


def durability(args, data_dir=None):
    import tempfile
    from azure.cognitiveservices.vision.computervision import ComputerVisionClient
    from msrest.authentication import CognitiveServicesCredentials
    from test_read import submit, wait_for
    data = data_dir or tempfile.mkdtemp(prefix="vista-durability-")
    document = pdf_of_scans([render("latin")[0]] * 3)
    first = Server("--data-dir", data)
    sdk = lambda server: ComputerVisionClient(server.url, CognitiveServicesCredentials(KEYS[0]))  # noqa: E731
    operations = [submit(sdk(first), document) for _ in range(args.operations)]
    first.process.kill()
    first.process.wait()
    started = time.time()
    with Server("--data-dir", data) as second:
        results = [wait_for(sdk(second), operation, timeout=600) for operation in operations]
    statuses = [r.status for r in results]
    print(f"durability: {args.operations} three-page scans accepted, kill -9, restart")
    print("| accepted | succeeded after the restart | lost | time to read them all |\n|---|---|---|---|")
    print(f"| {len(operations)} | {statuses.count('succeeded')} | {len(operations) - statuses.count('succeeded')} | "
          f"{time.time() - started:.0f} s |")
    return statuses == ["succeeded"] * len(operations)


def big_png(side):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"uniform-{side}.png")
    if not os.path.exists(path):
        Image.new("RGB", (side, side), (90, 120, 150)).save(path, compress_level=1)
    with open(path, "rb") as f:
        return f.read()


def memory(args):
    body = big_png(args.side)
    flags = [] if args.no_budget_flag else ["--max-decode-megapixels", str((args.side * args.side) // 1_000_000 + 1)]
    rows = []
    with Server("--workers", "2", *flags) as server:
        pid = server.process.pid
        start = rss_mib(pid)
        for concurrent_images in (1, 2):
            with RssSampler(pid) as sampler, concurrent.futures.ThreadPoolExecutor(concurrent_images) as pool:
                statuses = [r.status_code for r, _ in
                            pool.map(lambda _: analyze_once(server.url, body, 600, ALL_FEATURES),
                                     range(concurrent_images))]
            rows.append((concurrent_images, statuses, sampler.peak, settled_rss(pid)))
    print(f"memory: {args.side}x{args.side} PNG, all seven 4.0 features; RSS at start {start:.0f} MiB")
    print("| images at once | statuses | peak RSS | settled RSS |\n|---|---|---|---|")
    for n, statuses, peak, settled in rows:
        print(f"| {n} | {statuses} | {peak:.0f} MiB | {settled:.0f} MiB |")
    return all(s == 200 for _, statuses, _, _ in rows for s in statuses)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="check", required=True)
    f = sub.add_parser("fuzz")
    f.add_argument("--requests", type=int, default=2000)
    f.add_argument("--seed", type=int, default=7)
    o = sub.add_parser("overload")
    o.add_argument("--seconds", type=int, default=60)
    d = sub.add_parser("durability")
    d.add_argument("--operations", type=int, default=20)
    m = sub.add_parser("memory")
    m.add_argument("--side", type=int, default=16000)
    m.add_argument("--no-budget-flag", action="store_true", help="for a build without --max-decode-megapixels")
    args = parser.parse_args()
    passed = {"fuzz": fuzz, "overload": overload, "durability": durability, "memory": memory}[args.check](args)
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
