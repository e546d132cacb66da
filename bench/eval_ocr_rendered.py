"""Character error rate of 4.0 `read` on pages rendered with Debian fonts (the end-to-end tests' pages),
per script and variant: clean, noisy (blur, grain, JPEG), 4° skew, and turned 90/180/270°. Needs no
evaluation data. Prints a Markdown table.

    .venv-test/bin/python bench/eval_ocr_rendered.py [--url URL --key KEY]
"""

import argparse

import requests

from common import server_url
from rendered_text import PAGES, VARIANTS, cer, render

READ = "/computervision/imageanalysis:analyze?api-version=2024-02-01&features=read"


def read_lines(url, key, image):
    response = requests.post(url + READ, data=image, timeout=120, headers={
        "Ocp-Apim-Subscription-Key": key, "Content-Type": "application/octet-stream"})
    response.raise_for_status()
    return [line["text"] for line in response.json()["readResult"]["blocks"][0]["lines"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--key", default="eval-key")
    args = parser.parse_args()
    with server_url(args) as url:
        print("| script | " + " | ".join(VARIANTS) + " |")
        print("|---|" + "---|" * len(VARIANTS))
        for script in PAGES:
            cells = []
            for variant in VARIANTS:
                image, lines = render(script, variant)
                cells.append(f"{100 * cer(lines, read_lines(url, args.key, image)):.1f}%")
            print(f"| {script} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
