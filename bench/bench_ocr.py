"""OCR speed and accuracy: vista's 4.0 `read` over HTTP against the `rapidocr` Python package called
in-process, with the same PP-OCRv6 models (both from the rapidocr 3.10.0 wheel), on the same images, in
one run on the same machine. Images: the ICDAR 2015 and SROIE development images when
../shared/evaldata is present (then accuracy is scored too), else the pages the OCR tests render.
At concurrency 1, 2 and 4, three times over (medians). Target: vista >= 2x rapidocr's throughput at
every concurrency, with equal or better accuracy.

    .venv-test/bin/python bench/bench_ocr.py

installs rapidocr 3.10.0 (and the same onnxruntime as the model pack) into .venv-rapidocr on first use;
`--rapidocr-python` names another interpreter that has them.
"""

import argparse
import json
import os
import subprocess
import tempfile

import requests

from common import ROOT, Server
from eval_ocr import READ, load, points, prf, score_icdar, score_sroie
from rendered_text import PAGES, render
from timing import measure, repeated

KEY = "bench-key"
RAPIDOCR = ["rapidocr==3.10.0", "onnxruntime==1.31.1"]


def rapidocr_python():
    """The Python of .venv-rapidocr, made with rapidocr installed if it is not there yet."""
    venv = os.path.join(ROOT, ".venv-rapidocr")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run(["python3", "-m", "venv", venv], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *RAPIDOCR],
                       check=True)
    return python


def image_set(evaldata, limit):
    """[(path, set name, item)] for the evaluation images, or rendered pages written to a temp dir."""
    chosen = []
    for name, folder in [("icdar", "icdar2015_test"), ("sroie", "sroie_subset")]:
        directory = os.path.join(evaldata, folder)
        if os.path.isdir(directory):
            chosen += [(os.path.join(directory, i["image"]), name, i) for i in load(directory, limit)]
    if chosen:
        return chosen
    pages = tempfile.mkdtemp(prefix="vista-ocr-bench-")
    for script in PAGES:
        path = os.path.join(pages, f"{script}.png")
        with open(path, "wb") as f:
            f.write(render(script)[0])
        chosen.append((path, "rendered", None))
    return chosen


def vista_read(url, body):
    response = requests.post(url + READ, data=body, timeout=300, headers={
        "Ocp-Apim-Subscription-Key": KEY, "Content-Type": "application/octet-stream"})
    response.raise_for_status()
    lines = response.json()["readResult"]["blocks"][0]["lines"]
    return {"lines": [{"points": points(l["boundingPolygon"]), "text": l["text"]} for l in lines],
            "words": [{"points": points(w["boundingPolygon"]), "text": w["text"]} for l in lines for w in l["words"]]}


def accuracy(images, results):
    """Markdown cells: ICDAR end-to-end word F1 and SROIE segmentation-free line CER."""
    by_path = {path: r for (path, _, _), r in zip(images, results)}
    as_pairs = lambda entries: [([tuple(p) for p in e["points"]], e["text"]) for e in entries]
    cells = {}
    for name in ("icdar", "sroie"):
        chosen = [(path, item) for path, set_name, item in images if set_name == name]
        if not chosen:
            cells[name] = "n/a"
            continue
        path_of = {id(item): path for path, item in chosen}
        items = [item for _, item in chosen]
        if name == "icdar":
            counts = score_icdar(items, lambda item: as_pairs(by_path[path_of[id(item)]]["words"]))
            cells[name] = f"{100 * prf(counts, counts['correct'])[2]:.1f}%"
        else:
            scores = score_sroie(items, lambda item: as_pairs(by_path[path_of[id(item)]]["lines"]))
            cells[name] = f"{100 * scores['free_cer']:.1f}%"
    return cells


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rapidocr-python", help="a Python with rapidocr (default: .venv-rapidocr, made)")
    parser.add_argument("--evaldata", default=os.path.join(ROOT, "..", "shared", "evaldata"))
    parser.add_argument("--limit", type=int, default=10, help="images per evaluation set")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per concurrency")
    parser.add_argument("--repeats", type=int, default=3, help="runs of both engines; medians are shown")
    parser.add_argument("--concurrency", default="1,2,4", help="comma-separated concurrencies")
    parser.add_argument("serve_args", nargs="*", help="extra flags for `vista serve`")
    args = parser.parse_args()
    images = image_set(args.evaldata, args.limit)
    paths = [path for path, _, _ in images]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    bodies = [open(p, "rb").read() for p in paths]
    runs = []
    with Server(*args.serve_args, keys=(KEY,)) as server:
        ours = [vista_read(server.url, body) for body in bodies]  # also the warm-up
        for _ in range(args.repeats):
            rapid = subprocess.run([args.rapidocr_python or rapidocr_python(),
                                    os.path.join(ROOT, "bench", "rapidocr_timing.py"), str(args.requests),
                                    args.concurrency, *paths], capture_output=True, text=True, check=True)
            rapid = json.loads(rapid.stdout.strip().splitlines()[-1])
            timings = [measure(lambda i: vista_read(server.url, bodies[i % len(bodies)]), args.requests, c)
                       for c in concurrencies]
            runs.append((timings, rapid["timings"]))
    sets = sorted({name for _, name, _ in images})
    print(f"{len(images)} images ({', '.join(sets)}), {args.requests} timed requests per row, medians of "
          f"{args.repeats} runs; serve flags: {args.serve_args or 'defaults'}")
    summary = repeated(runs, "vista", "rapidocr")
    header = " | ".join(f"c={row['concurrency']} p50 ms | c={row['concurrency']} images/s" for row in summary)
    print(f"| engine | {header} | ICDAR word F1 | SROIE CER |")
    print("|---|" + "---|" * (2 * len(summary) + 2))
    for name, results in [("rapidocr", rapid["results"]), ("vista", ours)]:
        cells = accuracy(images, results)
        speed = " | ".join(f"{row[name]['p50_ms']:.0f} | {row[name]['images_per_s']:.2f}" for row in summary)
        print(f"| {name} | {speed} | {cells['icdar']} | {cells['sroie']} |")
    for row in summary:
        print(f"vista / rapidocr throughput at concurrency {row['concurrency']}: {row['ratio']:.2f}x "
              f"(min {row['ratio_min']:.2f}x, max {row['ratio_max']:.2f}x)")
    print("rapidocr is called in-process; vista's numbers include HTTP on loopback.")


if __name__ == "__main__":
    main()
