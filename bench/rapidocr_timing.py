"""Runs the `rapidocr` package (its default pipeline: PP-OCRv6 small det + rec, line classifier on) on the
given images in-process: one pass whose lines and words are printed for scoring, then timings at the
given concurrencies. Run by bench_ocr.py with the rapidocr venv's Python; prints one JSON object.

    rapidocr_timing.py COUNT 1,2,4 IMAGE...
"""

import json
import sys

from rapidocr import RapidOCR

from timing import measure


def points(box):
    return [[float(x), float(y)] for x, y in box]


def results(engine, path):
    output = engine(path, return_word_box=True)
    if output.txts is None:
        return {"lines": [], "words": []}
    lines = [{"points": points(box), "text": text} for box, text in zip(output.boxes, output.txts)]
    words = [{"points": points(box), "text": text}
             for line in (output.word_results or []) for text, _, box in line]
    return {"lines": lines, "words": words}


def main():
    count, concurrencies, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    engine = RapidOCR()
    read = [results(engine, p) for p in paths]  # also the warm-up
    timings = [measure(lambda i: engine(paths[i % len(paths)]), count, int(c))
               for c in concurrencies.split(",")]
    print(json.dumps({"results": read, "timings": timings}))


if __name__ == "__main__":
    main()
