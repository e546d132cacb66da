"""Model customization through its REST contract, as Microsoft's samples and docs call it (there is no
official SDK for training): datasets of COCO files on disk or behind URLs, validated when registered;
models trained on the CPU, measured, cancelled, deleted, surviving a restart; evaluations; analyze
with `model-name`; and two replicas on one Redis, one training and the other answering."""

import http.server
import io
import json
import os
import random
import threading
import time

import pytest
import requests
from PIL import Image, ImageDraw

from conftest import KEYS, Server, start_redis

HEADERS = {"Ocp-Apim-Subscription-Key": KEYS[0]}
PREVIEW = "2023-04-01-preview"


def url(server, path, version=PREVIEW):
    joiner = "&" if "?" in path else "?"
    return f"{server.url}/computervision/{path}{joiner}api-version={version}"


def call(server, method, path, body=None, headers=None, version=PREVIEW):
    return requests.request(method, url(server, path, version), json=body,
                            headers={**HEADERS, **(headers or {})}, timeout=60)


def wait_model(server, name, timeout=240, until=("succeeded", "failed", "cancelled")):
    deadline = time.time() + timeout
    while time.time() < deadline:
        model = call(server, "GET", f"models/{name}").json()
        if model["status"] in until:
            return model
        time.sleep(0.3)
    raise AssertionError(f"model {name} still {model['status']} after {timeout} s: {model}")


# ----- data made here -----

def stripes(rng, size=(160, 120)):
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(0, size[1], 12):
        draw.rectangle([0, y, size[0], y + 5], fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def dots(rng, size=(160, 120)):
    image = Image.new("RGB", size, tuple(rng.randrange(120, 256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(25):
        x, y, r = rng.randrange(size[0]), rng.randrange(size[1]), rng.randrange(4, 12)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(120) for _ in range(3)))
    return image


def badge(side):
    """A yellow square with a black cross: the object the detector learns."""
    image = Image.new("RGB", (side, side), (250, 210, 20))
    draw = ImageDraw.Draw(image)
    width = max(3, side // 8)
    draw.line([0, 0, side, side], fill=(0, 0, 0), width=width)
    draw.line([0, side, side, 0], fill=(0, 0, 0), width=width)
    return image


def cluttered(rng, size=(320, 240)):
    image = Image.new("RGB", size, tuple(rng.randrange(60, 200) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(10, 60), rng.randrange(10, 60)
        draw.rectangle([x, y, x + w, y + h], fill=(rng.randrange(40, 160), rng.randrange(100, 256), rng.randrange(160, 256)))
    return image


def with_badges(rng):
    """A cluttered photo with one or two badges; their relative boxes."""
    image = cluttered(rng)
    boxes = []
    for _ in range(rng.randint(1, 2)):
        side = rng.randrange(40, 80)
        for _attempt in range(20):
            x, y = rng.randrange(0, image.width - side), rng.randrange(0, image.height - side)
            if all(x + side <= b[0] or x >= b[0] + b[2] or y + side <= b[1] or y >= b[1] + b[3] for b in boxes):
                break
        image.paste(badge(side), (x, y))
        boxes.append((x, y, side, side))
    return image, [[x / image.width, y / image.height, w / image.width, h / image.height] for x, y, w, h in boxes]


def write_classification(folder, count, seed, url_base=None):
    """`count` images of each class and their COCO file; with `url_base`, images are named by URL."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    images, annotations = [], []
    for k in range(count * 2):
        cls = k % 2
        image = (stripes if cls == 0 else dots)(rng)
        name = f"{['stripes', 'dots'][cls]}-{k}.png"
        image.save(folder / name)
        entry = {"id": k + 1, "width": image.width, "height": image.height, "file_name": name}
        if url_base:
            entry["absolute_url"] = f"{url_base}/{name}"
        images.append(entry)
        annotations.append({"id": k + 1, "image_id": k + 1, "category_id": cls + 1})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "stripes"}, {"id": 2, "name": "dots"}]}
    (folder / "train.json").write_text(json.dumps(coco))
    return coco


def write_detection(folder, count, seed, name="train.json"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    images, annotations = [], []
    for k in range(count):
        image, boxes = with_badges(rng)
        file_name = f"{name[:-5]}-{k}.jpg"
        image.save(folder / file_name, quality=92)
        images.append({"id": k + 1, "width": image.width, "height": image.height, "file_name": file_name})
        for box in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": k + 1, "category_id": 1,
                                "bbox": [round(v, 5) for v in box], "area": box[2] * box[3]})
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "badge"}]}
    (folder / name).write_text(json.dumps(coco))
    return coco


def png(image):
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    write_classification(root / "patterns", 6, seed=1)
    write_detection(root / "badges", 10, seed=2)
    write_detection(root / "badges", 6, seed=3, name="test.json")
    write_detection(root / "many", 60, seed=4)
    return root


@pytest.fixture(scope="module")
def server(sets):
    with Server("--datasets-dir", str(sets), "--allow-private-urls") as s:
        yield s


@pytest.fixture(scope="module")
def trained(server):
    """The pattern classifier and the badge detector, trained once for the tests that use them."""
    assert call(server, "PUT", "datasets/patterns", {"annotationKind": "imageClassification",
                "annotationFileUris": ["patterns/train.json"]}).status_code == 201
    assert call(server, "PUT", "datasets/badges", {"annotationKind": "imageObjectDetection",
                "annotationFileUris": ["badges/train.json"]}).status_code == 201
    assert call(server, "PUT", "datasets/badges-test", {"annotationKind": "imageObjectDetection",
                "annotationFileUris": ["badges/test.json"]}).status_code == 201
    assert call(server, "PUT", "models/patterns-v1", {"trainingParameters": {
        "trainingDatasetName": "patterns", "timeBudgetInHours": 1}}).status_code == 201
    assert call(server, "PUT", "models/badges-v1", {"trainingParameters": {
        "trainingDatasetName": "badges", "timeBudgetInHours": 1, "modelKind": "Generic-Detector"},
        "evaluationParameters": {"testDatasetName": "badges-test"}}).status_code == 201
    return {name: wait_model(server, name) for name in ("patterns-v1", "badges-v1")}


# ----- datasets -----

def test_microsofts_pascal_case_requests_and_doubled_slashes_work(server):
    # What the sample package sends: PascalCase keys, managedIdentity, and '//' in some paths.
    body = {"AnnotationKind": "imageClassification", "AnnotationFileUris": ["patterns/train.json"],
            "authentication": {"Kind": "managedIdentity"}, "CustomProperties": {"Team": "A"}}
    created = call(server, "PUT", "datasets/pascal-set", body)
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert dataset["annotationKind"] == "imageClassification"
    assert dataset["annotationFileUris"] == ["patterns/train.json"]
    assert dataset["customProperties"] == {"Team": "A"}
    assert dataset["authentication"] == {"kind": "managedIdentity"}
    for key in ("createdDateTime", "updatedDateTime", "eTag"):
        assert key in dataset
    doubled = requests.get(f"{server.url}/computervision//datasets/pascal-set?api-version={PREVIEW}", headers=HEADERS)
    assert doubled.status_code == 200 and doubled.json()["name"] == "pascal-set"
    taken = call(server, "PUT", "datasets/pascal-set", body)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "DatasetAlreadyExists"
    assert call(server, "DELETE", "datasets/pascal-set").status_code == 204
    assert call(server, "GET", "datasets/pascal-set").status_code == 404


def test_a_dataset_is_updated_under_its_etag_and_listed_in_pages(server):
    body = {"annotationKind": "imageClassification", "annotationFileUris": ["patterns/train.json"]}
    names = [f"page-{k}" for k in range(3)]
    for name in names:
        assert call(server, "PUT", f"datasets/{name}", body).status_code == 201
    tag = call(server, "GET", "datasets/page-0").headers["ETag"]
    stale = call(server, "PATCH", "datasets/page-0", {"customProperties": {"a": "1"}}, headers={"If-Match": '"999"'})
    assert stale.status_code == 412
    changed = call(server, "PATCH", "datasets/page-0", {"customProperties": {"a": "1"}}, headers={"If-Match": tag})
    assert changed.status_code == 200 and changed.json()["customProperties"] == {"a": "1"}
    assert changed.json()["eTag"] != tag
    first = call(server, "GET", "datasets?top=2").json()
    assert len(first["value"]) == 2 and "nextLink" in first
    rest = requests.get(first["nextLink"], headers=HEADERS).json()
    listed = [d["name"] for d in first["value"] + rest["value"]]
    assert set(names) <= set(listed)
    assert call(server, "GET", "datasets?top=31").status_code == 400
    for name in names:
        assert call(server, "DELETE", f"datasets/{name}").status_code == 204


@pytest.mark.parametrize("change, expected", [
    (lambda c: c["annotations"][0].update(bbox=[12, 40, 300, 220]), "annotation 1: bbox must be relative"),
    (lambda c: c["annotations"][0].update(category_id=9), "annotation 1: category_id 9 is not a category"),
    (lambda c: c["images"].append(dict(c["images"][0], file_name="other.jpg")), "image 1: the id is used twice"),
    (lambda c: c["images"][0].update(file_name="missing.jpg"), "image 'missing.jpg'"),
    (lambda c: c.pop("categories"), "'categories' is missing"),
])
def test_a_bad_annotation_file_is_refused_naming_its_first_problem(server, sets, change, expected):
    coco = json.loads((sets / "badges" / "train.json").read_text())
    change(coco)
    (sets / "badges" / "broken.json").write_text(json.dumps(coco))
    refused = call(server, "PUT", "datasets/broken", {"annotationKind": "imageObjectDetection",
                   "annotationFileUris": ["badges/broken.json"]})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "InvalidRequest"
    assert "badges/broken.json" in error["message"] or "missing.jpg" in error["message"]
    assert expected in error["message"], error["message"]
    assert call(server, "GET", "datasets/broken").status_code == 404, "nothing was kept"


def test_files_outside_the_datasets_folder_and_wrong_kinds_are_refused(server):
    for uri in ["../etc/passwd", "/etc/passwd"]:
        refused = call(server, "PUT", "datasets/escape", {"annotationKind": "imageClassification", "annotationFileUris": [uri]})
        assert refused.status_code == 400 and "inside the datasets folder" in refused.json()["error"]["message"]
    wrong = call(server, "PUT", "datasets/kind", {"annotationKind": "imageSegmentation", "annotationFileUris": ["a.json"]})
    assert wrong.status_code == 400
    missing_version = requests.get(f"{server.url}/computervision/datasets", headers=HEADERS)
    assert missing_version.status_code == 400
    local_file = call(server, "PUT", "datasets/file", {"annotationKind": "imageClassification",
                      "annotationFileUris": ["file:///etc/passwd"]})
    assert local_file.status_code == 400 and "scheme 'file' is not allowed" in local_file.json()["error"]["message"]
    huge = requests.put(url(server, "datasets/huge"), headers={**HEADERS, "Content-Type": "application/json"},
                        data=b"{" + b" " * (2 << 20) + b"}")
    assert huge.status_code == 400 and "at most 1048576 bytes" in huge.json()["error"]["message"]
    extreme = requests.post(f"{server.url}/computervision/planogramcompliance:match?api-version={PREVIEW}", headers=HEADERS, json={
        "detectedProducts": {"imageMetadata": {"width": 100, "height": 100}, "products": [
            {"boundingBox": {"x": 4294967295, "y": 4294967295, "w": 4294967295, "h": 4294967295}, "tags": []}]},
        "planogram": {"width": 1e-30, "height": 1, "products": [{"id": "a", "w": 1, "h": 1}],
                      "positions": [{"id": "p", "productId": "a", "x": 0, "y": 0}]}})
    assert extreme.status_code == 200, extreme.text


def test_datasets_by_url_with_a_sas_token(tmp_path):
    folder = tmp_path / "site"
    served = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(folder), **k)

        def log_message(self, *_):
            served.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    write_classification(folder, 3, seed=5, url_base=base)
    body = {"annotationKind": "imageClassification", "annotationFileUris": [f"{base}/train.json"],
            "authentication": {"kind": "sas", "sasToken": "sv=2022&sig=secret"}}
    try:
        # Loopback is private: refused unless the deployment allows it.
        with Server() as strict:
            refused = call(strict, "PUT", "datasets/remote", body)
            assert refused.status_code == 400 and "train.json" in refused.json()["error"]["message"]
        with Server("--allow-private-urls") as open_server:
            created = call(open_server, "PUT", "datasets/remote", body)
            assert created.status_code == 201, created.text
            assert "sasToken" not in created.text, "a secret is never echoed"
    finally:
        httpd.shutdown()
    assert any(p.endswith("/train.json?sv=2022&sig=secret") for p in served), served
    assert any(".png?sv=2022&sig=secret" in p for p in served), "images are fetched with the token too"


# ----- models and analyze -----

def test_a_classifier_trains_and_answers_analyze_with_every_class(server, trained):
    model = trained["patterns-v1"]
    assert model["status"] == "succeeded", model
    assert model["trainingParameters"] == {"trainingDatasetName": "patterns", "timeBudgetInHours": 1, "modelKind": "Generic-Classifier"}
    assert model["trainingCostInMinutes"] >= 1
    performance = model["modelPerformance"]
    for key in ("accuracyTop1", "accuracyTop5", "averagePrecision", "calibrationECE"):
        assert 0 <= performance[key] <= 1, performance
    assert set(performance["tagPerformance"]) == {"stripes", "dots"}
    rng = random.Random(99)
    for make, expected in [(stripes, "stripes"), (dots, "dots")]:
        # The sample client sends image/png whatever the bytes are; any image/* type is accepted.
        answer = requests.post(f"{server.url}/computervision/imageanalysis:analyze?api-version={PREVIEW}&model-name=patterns-v1",
                               headers={**HEADERS, "Content-Type": "image/png"}, data=png(make(rng)))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["modelVersion"] == PREVIEW and body["metadata"] == {"width": 160, "height": 120}
        tags = body["customModelResult"]["tagsResult"]["values"]
        assert [t["name"] for t in tags][0] == expected
        assert {t["name"] for t in tags} == {"stripes", "dots"}
        assert tags[0]["confidence"] >= tags[1]["confidence"]
        assert abs(sum(t["confidence"] for t in tags) - 1) < 1e-3
        assert "objectsResult" not in body["customModelResult"]


def test_a_detector_finds_its_objects_and_is_measured_on_its_test_dataset(server, trained):
    model = trained["badges-v1"]
    assert model["status"] == "succeeded", model
    assert model["evaluationParameters"] == {"testDatasetName": "badges-test"}
    performance = model["modelPerformance"]
    for key in ("meanAveragePrecision30", "meanAveragePrecision50", "meanAveragePrecision75"):
        assert 0 <= performance[key] <= 1
    assert performance["meanAveragePrecision50"] >= 0.5, performance
    assert set(performance["tagPerformance"]) == {"badge"}
    image, boxes = with_badges(random.Random(1234))
    query = f"api-version=2023-10-01&model-name=badges-v1&features=tags"
    answer = requests.post(f"{server.url}/computervision/imageanalysis:analyze?{query}",
                           headers={**HEADERS, "Content-Type": "application/octet-stream"}, data=png(image))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "tagsResult" in body, "features are answered beside the custom model"
    found = body["customModelResult"]["objectsResult"]["values"]
    x, y, w, h = (boxes[0][0] * 320, boxes[0][1] * 240, boxes[0][2] * 320, boxes[0][3] * 240)

    def iou(b):
        bx, by, bw, bh = b["x"], b["y"], b["w"], b["h"]
        ix = max(0, min(x + w, bx + bw) - max(x, bx))
        iy = max(0, min(y + h, by + bh) - max(y, by))
        return ix * iy / (w * h + bw * bh - ix * iy)

    best = max(found, key=lambda o: o["tags"][0]["confidence"])
    assert best["tags"][0]["name"] == "badge"
    assert max(iou(o["boundingBox"]) for o in found if o["tags"][0]["confidence"] >= 0.3) >= 0.5, found


def test_evaluations_measure_a_trained_model_on_another_dataset(server, trained):
    created = call(server, "PUT", "models/badges-v1/evaluations/second",
                   {"EvaluationParameters": {"TestDatasetName": "badges-test"}})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "notStarted"
    deadline = time.time() + 120
    while (evaluation := call(server, "GET", "models/badges-v1/evaluations/second").json())["status"] not in ("succeeded", "failed"):
        assert time.time() < deadline
        time.sleep(0.3)
    assert evaluation["status"] == "succeeded", evaluation
    assert evaluation["modelName"] == "badges-v1"
    assert evaluation["modelPerformance"]["meanAveragePrecision50"] == trained["badges-v1"]["modelPerformance"]["meanAveragePrecision50"]
    listed = call(server, "GET", "models/badges-v1/evaluations").json()["value"]
    assert [e["name"] for e in listed] == ["second"]
    wrong_kind = call(server, "PUT", "models/badges-v1/evaluations/wrong", {"evaluationParameters": {"testDatasetName": "patterns"}})
    assert wrong_kind.status_code == 201
    while (failed := call(server, "GET", "models/badges-v1/evaluations/wrong").json())["status"] not in ("succeeded", "failed"):
        time.sleep(0.3)
    assert failed["error"]["code"] == "incorrectModelKind"
    assert call(server, "DELETE", "models/badges-v1/evaluations/second").status_code == 204


def test_analyze_names_unknown_and_unfinished_models(server, trained):
    image = png(stripes(random.Random(3)))
    analyze = lambda model: requests.post(
        f"{server.url}/computervision/imageanalysis:analyze?api-version={PREVIEW}&model-name={model}",
        headers={**HEADERS, "Content-Type": "image/jpeg"}, data=image)
    unknown = analyze("nobody")
    assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "Resource not found"
    neither = requests.post(f"{server.url}/computervision/imageanalysis:analyze?api-version={PREVIEW}",
                            headers={**HEADERS, "Content-Type": "image/png"}, data=image)
    assert neither.status_code == 400
    assert "Either 'features' or 'model-name'" in neither.json()["error"]["message"]
    # A model of a kind the dataset cannot train, and one on a missing dataset, are refused at once.
    assert call(server, "PUT", "models/wrong-kind", {"trainingParameters": {"trainingDatasetName": "patterns",
                "timeBudgetInHours": 1, "modelKind": "Generic-Detector"}}).status_code == 400
    assert call(server, "PUT", "models/no-data", {"trainingParameters": {"trainingDatasetName": "nothing",
                "timeBudgetInHours": 1}}).status_code == 400
    assert call(server, "PUT", "models/bad-budget", {"trainingParameters": {"trainingDatasetName": "patterns",
                "timeBudgetInHours": 0}}).status_code == 400


def test_training_is_cancelled_and_a_model_is_deleted_only_when_it_stopped(server):
    assert call(server, "PUT", "datasets/many", {"annotationKind": "imageObjectDetection",
                "annotationFileUris": ["many/train.json"]}).status_code == 201
    assert call(server, "PUT", "models/to-cancel", {"TrainingParameters": {"TrainingDatasetName": "many",
                "TimeBudgetInHours": 1}}).status_code == 201
    wait_model(server, "to-cancel", until=("training",), timeout=60)
    busy = call(server, "DELETE", "models/to-cancel")
    assert busy.status_code == 409 and "cancel" in busy.json()["error"]["message"]
    cancel = requests.post(f"{server.url}/computervision//models/to-cancel:cancel?api-version={PREVIEW}", headers=HEADERS)
    assert cancel.status_code == 202 and cancel.text == ""
    assert wait_model(server, "to-cancel", timeout=30)["status"] == "cancelled"
    assert call(server, "DELETE", "models/to-cancel").status_code == 204
    assert call(server, "GET", "models/to-cancel").status_code == 404
    metrics = requests.get(f"{server.url}/metrics").text
    assert "vista_training_jobs" in metrics and "vista_training_progress_ratio" in metrics


def test_a_training_interrupted_by_a_crash_finishes_after_the_restart(sets, tmp_path):
    data = str(tmp_path / "data")
    first = Server("--datasets-dir", str(sets), "--data-dir", data)
    assert call(first, "PUT", "datasets/many", {"annotationKind": "imageObjectDetection",
                "annotationFileUris": ["many/train.json"]}).status_code == 201
    assert call(first, "PUT", "models/survivor", {"trainingParameters": {"trainingDatasetName": "many",
                "timeBudgetInHours": 1}}).status_code == 201
    deadline = time.time() + 60
    while not (call(first, "GET", "models/survivor").json().get("trainingProgress") or {}).get("done"):
        assert time.time() < deadline
        time.sleep(0.2)
    first.process.kill()
    first.process.wait()
    with Server("--datasets-dir", str(sets), "--data-dir", data) as second:
        model = wait_model(second, "survivor")
        assert model["status"] == "succeeded", model
        assert model["modelPerformance"]["meanAveragePrecision50"] > 0.3


def test_two_replicas_on_one_redis_one_training_for_both_and_either_answering(sets):
    process, port = start_redis()
    redis = f"redis://127.0.0.1:{port}/0"
    env = {"VISTA_STORE_KEY": os.urandom(32).hex()}
    try:
        with Server("--redis-url", redis, "--datasets-dir", str(sets), env=env) as trainer, \
                Server("--redis-url", redis, "--datasets-dir", str(sets), "--training-threads", "0", env=env) as other:
            # Registered and asked for on the replica that does not train: the other claims the job
            # and trains it; every record is shared.
            assert call(other, "PUT", "datasets/shared", {"annotationKind": "imageClassification",
                        "annotationFileUris": ["patterns/train.json"]}).status_code == 201
            assert call(other, "PUT", "models/shared-v1", {"trainingParameters": {
                "trainingDatasetName": "shared", "timeBudgetInHours": 1}}).status_code == 201
            assert wait_model(other, "shared-v1")["status"] == "succeeded"
            assert call(trainer, "PUT", "models/shared-v2", {"trainingParameters": {
                "trainingDatasetName": "shared", "timeBudgetInHours": 1}}).status_code == 201
            assert wait_model(other, "shared-v2")["status"] == "succeeded"
            answer = requests.post(f"{other.url}/computervision/imageanalysis:analyze?api-version={PREVIEW}&model-name=shared-v1",
                                   headers={**HEADERS, "Content-Type": "image/png"}, data=png(dots(random.Random(7))))
            assert answer.status_code == 200, answer.text
            assert answer.json()["customModelResult"]["tagsResult"]["values"][0]["name"] == "dots"
    finally:
        process.terminate()
        process.wait(timeout=10)


# ----- product recognition -----

def shelf():
    """Four badges in a row with one wide space between the second and the third."""
    image = cluttered(random.Random(77), size=(480, 200))
    for x in (20, 100, 300, 380):
        image.paste(badge(60), (x, 70))
    return image


def test_product_recognition_runs_find_products_and_the_gap_between_them(server, trained):
    path = f"productrecognition/badges-v1/runs/shelf-1?api-version={PREVIEW}"
    created = requests.put(f"{server.url}/computervision/{path}", headers={**HEADERS, "Content-Type": "image/png"},
                           data=png(shelf()))
    assert created.status_code == 201, created.text
    run = created.json()
    assert (run["runName"], run["modelName"], run["status"]) == ("shelf-1", "badges-v1", "succeeded")
    result = run["result"]
    assert result["imageMetadata"] == {"width": 480, "height": 200}
    confident = [p for p in result["products"] if p["tags"][0]["confidence"] >= 0.3]
    assert len(confident) >= 3, result["products"]
    assert all(p["tags"][0]["name"] == "badge" and p["id"] for p in confident)
    gap = [g for g in result["gaps"] if g["boundingBox"]["x"] >= 140 and g["boundingBox"]["x"] + g["boundingBox"]["w"] <= 320]
    assert gap and gap[0]["tags"][0]["name"] == "gap", result["gaps"]
    assert requests.get(f"{server.url}/computervision/{path}", headers=HEADERS).json()["result"] == result
    listed = requests.get(f"{server.url}/computervision/productrecognition/badges-v1/runs?api-version={PREVIEW}", headers=HEADERS)
    assert [r["runName"] for r in listed.json()["value"]] == ["shelf-1"]
    again = requests.put(f"{server.url}/computervision/{path}", headers={**HEADERS, "Content-Type": "image/png"}, data=png(shelf()))
    assert again.status_code == 409

    # Planogram matching, in the PascalCase of Microsoft's sample planogram file.
    planogram = {"Width": 48.0, "Height": 20.0,
                 "Products": [{"Id": "b", "Name": "badge", "W": 6.0, "H": 6.0}],
                 "Fixtures": [{"Id": "f1", "X": 0.0, "Y": 13.0, "W": 48.0, "H": 1.0}],
                 "Positions": [{"Id": "1", "ProductId": "b", "FixtureId": "f1", "X": 2.0, "Y": 7.0},
                               {"Id": "2", "ProductId": "b", "FixtureId": "f1", "X": 20.0, "Y": 7.0}]}
    matched = requests.post(f"{server.url}/computervision/planogramcompliance:match?api-version={PREVIEW}",
                            headers=HEADERS, json={"DetectedProducts": result, "Planogram": planogram})
    assert matched.status_code == 200, matched.text
    by_position = {m["positionId"]: m["detectedObject"]["tags"][0]["name"] for m in matched.json()["matchingResultPerPosition"]}
    assert by_position == {"1": "badge", "2": "gap"}, matched.json()
    assert requests.delete(f"{server.url}/computervision/{path}", headers=HEADERS).status_code == 204
    assert requests.get(f"{server.url}/computervision/{path}", headers=HEADERS).status_code == 404


def test_product_recognition_says_no_pretrained_product_model_exists(server, trained):
    pretrained = requests.put(
        f"{server.url}/computervision/productrecognition/ms-pretrained-product-detection/runs/r?api-version={PREVIEW}",
        headers={**HEADERS, "Content-Type": "image/png"}, data=png(shelf()))
    assert pretrained.status_code == 404
    assert "no registry package ships a pretrained product detector" in pretrained.json()["error"]["message"]
    classifier = requests.put(f"{server.url}/computervision/productrecognition/patterns-v1/runs/r?api-version={PREVIEW}",
                              headers={**HEADERS, "Content-Type": "image/png"}, data=png(shelf()))
    assert classifier.status_code == 400 and "classifier" in classifier.json()["error"]["message"]
    old_version = requests.get(f"{server.url}/computervision/productrecognition/badges-v1/runs?api-version=2023-02-01-preview",
                               headers=HEADERS)
    assert old_version.status_code == 400


def test_vista_train_and_analyze_with_the_model_from_the_shell(sets, tmp_path):
    from conftest import MODELS, VISTA_BIN
    import subprocess
    data = str(tmp_path / "data")
    trained = subprocess.run([VISTA_BIN, "train", str(sets / "patterns" / "train.json"), "--name", "shell-v1",
                              "--data-dir", data, "--models", MODELS], capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["status"] == "succeeded" and 0 <= report["modelPerformance"]["accuracyTop1"] <= 1
    picture = tmp_path / "dots.png"
    dots(random.Random(11)).save(picture)
    answered = subprocess.run([VISTA_BIN, "analyze", str(picture), "--model", "shell-v1", "--features", "",
                               "--data-dir", data, "--models", MODELS], capture_output=True, text=True, timeout=120)
    assert answered.returncode == 0, answered.stderr
    tags = json.loads(answered.stdout)["customModelResult"]["tagsResult"]["values"]
    assert tags[0]["name"] == "dots"
    # The server on the same data directory serves the model the shell trained.
    with Server("--data-dir", data) as server:
        model = call(server, "GET", "models/shell-v1").json()
        assert model["status"] == "succeeded"
        assert call(server, "GET", "datasets/shell-v1-train").json()["annotationKind"] == "imageClassification"
    unknown = subprocess.run([VISTA_BIN, "analyze", str(picture), "--model", "nobody", "--data-dir", data,
                              "--models", MODELS], capture_output=True, text=True, timeout=120)
    assert unknown.returncode != 0 and "no model 'nobody'" in unknown.stderr
