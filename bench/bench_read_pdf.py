"""Read API throughput on 10-page PDFs: one born digital (a text layer on every page, read as it is) and
one scanned (page images only, rendered at 200 dpi and read by OCR). Submits each through
`read/analyze`, polls `analyzeResults`, and prints pages per second from submission to result.

    .venv-test/bin/python bench/bench_read_pdf.py [--url URL --key KEY]
"""

import argparse
import time

import requests

from common import server_url
from rendered_text import PAGES, pdf_of_scans, pdf_with_text, render

PAGE_COUNT = 10


def documents():
    lines = [f"Line {n} of the report: revenue grew by {n * 3} percent in region {n % 7}" for n in range(18)]
    scripts = list(PAGES)[:2]  # Latin and accented Latin pages, alternating
    scans = [render(scripts[i % 2])[0] for i in range(PAGE_COUNT)]
    return [("born digital", pdf_with_text([lines] * PAGE_COUNT)), ("scanned", pdf_of_scans(scans))]


def read_seconds(url, key, body):
    headers = {"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/pdf"}
    started = time.perf_counter()
    response = requests.post(url + "/vision/v3.2/read/analyze", data=body, headers=headers, timeout=120)
    response.raise_for_status()
    location = response.headers["Operation-Location"]
    while True:
        result = requests.get(location, headers=headers, timeout=60).json()
        if result["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert result["status"] == "succeeded", result
    assert len(result["analyzeResult"]["readResults"]) == PAGE_COUNT
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--key", default="bench-key")
    args = parser.parse_args()
    with server_url(args) as url:
        print(f"| {PAGE_COUNT}-page PDF | seconds | pages/s |")
        print("|---|---|---|")
        for name, body in documents():
            read_seconds(url, args.key, body)  # warm-up
            seconds = read_seconds(url, args.key, body)
            print(f"| {name} | {seconds:.2f} | {PAGE_COUNT / seconds:.2f} |")


if __name__ == "__main__":
    main()
