"""The cost of each protocol surface over the same work: p50 and p90 latency of the same image and
features through Azure 4.0, Google Cloud Vision, AWS Rekognition (SigV4-signed) and DeepStack, one request
at a time against one server. The models are the same; the differences are parsing, signing checks and
rendering.

    python bench/bench_surfaces.py [--repeats 20]
"""

import argparse
import base64
import statistics
import sys
import time

import boto3
import requests
from botocore.config import Config

from common import Server, photo
from conftest import AWS_PAIR, CLOUD_ENV, GOOGLE_KEY, KEYS
from rendered_text import render


def timed(call, repeats):
    call()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    photo_bytes, (page, _) = photo("motorcycle_left.png"), render("latin")
    with Server(env=CLOUD_ENV) as server:
        url = server.url
        azure = lambda path, body: requests.post(url + path, data=body, headers={
            "Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}).raise_for_status()
        google = lambda body, *types: requests.post(f"{url}/v1/images:annotate", headers={"x-goog-api-key": GOOGLE_KEY},
            json={"requests": [{"image": {"content": base64.b64encode(body).decode()},
                                "features": [{"type": t} for t in types]}]}).raise_for_status()
        aws = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=AWS_PAIR[0],
                           aws_secret_access_key=AWS_PAIR[1], config=Config(retries={"max_attempts": 1}))
        deepstack = lambda body: requests.post(f"{url}/v1/vision/detection", data={"api_key": KEYS[0]},
                                               files={"image": body}).raise_for_status()
        rows = [
            ("objects + tags", "Azure 4.0", lambda: azure("/computervision/imageanalysis:analyze?api-version=2024-02-01&features=objects,tags", photo_bytes)),
            ("objects + tags", "Google", lambda: google(photo_bytes, "OBJECT_LOCALIZATION", "LABEL_DETECTION")),
            ("objects + tags", "AWS DetectLabels", lambda: aws.detect_labels(Image={"Bytes": photo_bytes})),
            ("objects", "Azure 4.0", lambda: azure("/computervision/imageanalysis:analyze?api-version=2024-02-01&features=objects", photo_bytes)),
            ("objects", "DeepStack", lambda: deepstack(photo_bytes)),
            ("text", "Azure 4.0 read", lambda: azure("/computervision/imageanalysis:analyze?api-version=2024-02-01&features=read", page)),
            ("text", "Google TEXT_DETECTION", lambda: google(page, "TEXT_DETECTION")),
            ("text", "AWS DetectText", lambda: aws.detect_text(Image={"Bytes": page})),
        ]
        print(f"One request at a time, {args.repeats} repeats each (ms, client-measured, one server)")
        print("| work | surface | p50 | p90 |")
        print("|---|---|---|---|")
        for work, surface, call in rows:
            p50, p90 = timed(call, args.repeats)
            print(f"| {work} | {surface} | {p50:.0f} | {p90:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
