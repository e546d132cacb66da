"""What the benchmark and evaluation scripts share: paths, the photo set, their common arguments, and a
vista server (the caller's, or one started for the run)."""

import argparse
import contextlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from conftest import DATA, MODELS, Server, encoded, photo  # noqa: E402,F401  (re-exported)

# The fixed benchmark set: the end-to-end suite's photos (from the scikit-image wheel).
PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png", "camera.png"]


def evaluation_args(description, extra=()):
    """Parses --evaldata/--url/--key and `extra` (flag, help) options; returns (args, coco_mini dir), or
    (args, None) after printing SKIP."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--evaldata", default=os.path.join(ROOT, "..", "shared", "evaldata"))
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--key", default="eval-key")
    for flag, help_text in extra:
        parser.add_argument(flag, help=help_text)
    args = parser.parse_args()
    coco_dir = os.path.join(args.evaldata, "coco_mini")
    if not os.path.isdir(coco_dir):
        print(f"SKIP: {coco_dir} is absent (evaluation data is optional)")
        return args, None
    return args, coco_dir


def server_url(args, *flags):
    """A context giving the URL of `args.url`, or of a server started with `flags` and stopped after."""
    if args.url:
        return contextlib.nullcontext(args.url)
    return _started(Server(*flags, keys=(args.key,)))


@contextlib.contextmanager
def _started(server):
    with server:
        yield server.url
