"""One image, three protocols: the Azure, Google and AWS surfaces render the same pipeline results, so
the same image gives the same objects, words and faces through each; and each surface's overload
answer is the one its clients retry."""

import base64
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import AWS_PAIR, CLOUD_ENV, GOOGLE_KEY, KEYS, Server, photo
from PIL import Image, ImageDraw, ImageFont
from rendered_text import FONTS, PAGES, render

AZURE = {"Ocp-Apim-Subscription-Key": KEYS[0]}


def google(server, content, *types):
    body = {"requests": [{"image": {"content": base64.b64encode(content).decode()},
                          "features": [{"type": t, "maxResults": 100} for t in types]}]}
    response = requests.post(f"{server.url}/v1/images:annotate", json=body, headers={"x-goog-api-key": GOOGLE_KEY})
    assert response.status_code == 200, response.text
    return response.json()["responses"][0]


def aws(server):
    return boto3.client("rekognition", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id=AWS_PAIR[0], aws_secret_access_key=AWS_PAIR[1],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def azure(server, content, path):
    response = requests.post(f"{server.url}{path}", data=content,
                             headers={**AZURE, "Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    return response.json()


def close(a, b, tolerance=1.01):
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def test_the_same_image_gives_the_same_objects_words_and_faces_on_every_surface(cloud):
    content = photo("motorcycle_left.png")
    v4 = azure(cloud, content, "/computervision/imageanalysis:analyze?api-version=2024-02-01&features=objects")
    width, height = v4["metadata"]["width"], v4["metadata"]["height"]
    azure_boxes = sorted((round(o["tags"][0]["confidence"], 4), (o["boundingBox"]["x"], o["boundingBox"]["y"],
                          o["boundingBox"]["w"], o["boundingBox"]["h"])) for o in v4["objectsResult"]["values"])
    assert azure_boxes, "the photo has objects"
    objects = google(cloud, content, "OBJECT_LOCALIZATION")["localizedObjectAnnotations"]
    google_boxes = []
    for o in objects:
        v = o["boundingPoly"]["normalizedVertices"]
        x1, y1 = v[0].get("x", 0) * width, v[0].get("y", 0) * height
        google_boxes.append((round(o["score"], 4), (x1, y1, v[2]["x"] * width - x1, v[2]["y"] * height - y1)))
    google_boxes.sort()
    labels = aws(cloud).detect_labels(Image={"Bytes": content}, MinConfidence=0)["Labels"]
    aws_boxes = sorted((round(i["Confidence"] / 100, 4), (i["BoundingBox"]["Left"] * width, i["BoundingBox"]["Top"] * height,
                        i["BoundingBox"]["Width"] * width, i["BoundingBox"]["Height"] * height))
                       for label in labels for i in label["Instances"])
    for boxes in (google_boxes, aws_boxes):
        assert len(boxes) == len(azure_boxes)
        for (score, box), (azure_score, azure_box) in zip(boxes, azure_boxes):
            assert abs(score - azure_score) < 1e-3 and close(box, azure_box), (box, azure_box)

    page, _ = render("latin")
    read = azure(cloud, page, "/computervision/imageanalysis:analyze?api-version=2024-02-01&features=read")
    azure_words = [w["text"] for line in read["readResult"]["blocks"][0]["lines"] for w in line["words"]]
    google_words = [a["description"] for a in google(cloud, page, "TEXT_DETECTION")["textAnnotations"][1:]]
    aws_words = [d["DetectedText"] for d in aws(cloud).detect_text(Image={"Bytes": page})["TextDetections"]
                 if d["Type"] == "WORD"]
    assert azure_words and azure_words == google_words == aws_words

    portrait = photo("astronaut.png")
    v32 = azure(cloud, portrait, "/vision/v3.2/analyze?visualFeatures=Faces")
    w, h = v32["metadata"]["width"], v32["metadata"]["height"]
    [azure_face] = [(f["faceRectangle"]["left"], f["faceRectangle"]["top"], f["faceRectangle"]["width"],
                     f["faceRectangle"]["height"]) for f in v32["faces"]]
    [google_face] = google(cloud, portrait, "FACE_DETECTION")["faceAnnotations"]
    v = google_face["fdBoundingPoly"]["vertices"]
    assert close((v[0]["x"], v[0]["y"], v[2]["x"] - v[0]["x"], v[2]["y"] - v[0]["y"]), azure_face)
    [aws_face] = aws(cloud).detect_faces(Image={"Bytes": portrait})["FaceDetails"]
    b = aws_face["BoundingBox"]
    assert close((b["Left"] * w, b["Top"] * h, b["Width"] * w, b["Height"] * h), azure_face)


def test_overload_is_answered_as_each_cloud_retries_it():
    """One worker, one queue slot: of eight requests at once some are refused, in each protocol's words."""
    content = photo("motorcycle_left.png")
    with Server("--workers", "1", "--queue", "1", env=CLOUD_ENV) as busy:
        body = {"requests": [{"image": {"content": base64.b64encode(content).decode()},
                              "features": [{"type": "OBJECT_LOCALIZATION"}, {"type": "LABEL_DETECTION"}]}]}
        post = lambda _: requests.post(f"{busy.url}/v1/images:annotate", json=body, headers={"x-goog-api-key": GOOGLE_KEY})
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(post, range(8)))
        refused = [a for a in answers if a.status_code != 200]
        assert refused and all(a.status_code == 503 and a.headers["retry-after"] == "1" for a in refused)
        assert refused[0].json()["error"]["status"] == "UNAVAILABLE"

        # Clients made first and released together; a dense page takes the server much longer to read
        # than the client takes to sign it, so the eight requests pile up.
        clients = [aws(busy) for _ in range(8)]
        start = threading.Barrier(8)
        page = dense_page()

        def read(client):
            start.wait()
            try:
                client.detect_text(Image={"Bytes": page})
                return "ok"
            except ClientError as e:
                return e.response["Error"]["Code"]
        with ThreadPoolExecutor(8) as pool:
            codes = set(pool.map(read, clients))
        assert codes == {"ok", "ProvisionedThroughputExceededException"}


def dense_page(lines=40):
    """A PNG page of many short lines: small to send, slow to read."""
    font = ImageFont.truetype(os.path.join(FONTS, "DejaVuSans.ttf"), 18)
    image = Image.new("RGB", (900, 60 + lines * 28), "white")
    draw = ImageDraw.Draw(image)
    for i in range(lines):
        draw.text((20, 20 + i * 28), f"Line {i}: " + PAGES["latin"][1][i % 3], font=font, fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
