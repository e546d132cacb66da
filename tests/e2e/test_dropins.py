"""Drop-ins for what people already run: Microsoft's Read container (its start settings, `syncAnalyze`,
`/status`, `/swagger`, the 3.0 and 3.1 Read routes) and the DeepStack / CodeProject.AI API, through the
unmodified Azure SDK, the DeepStack and CodeProject.AI Python clients, and Frigate's request shape."""

import io
import re
import time
from urllib.parse import urlparse

import pytest
import requests
from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from msrest.authentication import CognitiveServicesCredentials
from PIL import Image

from conftest import KEYS, Server, photo
from rendered_text import render

CONTAINER_KEY = "container-api-key"


@pytest.fixture(scope="module")
def container():
    """vista started the way the Read container is: settings as arguments and in the environment."""
    with Server("Eula=accept", "Billing=https://example.cognitiveservices.azure.com/", f"ApiKey={CONTAINER_KEY}",
                "Logging:Console:LogLevel:Default=Information", env={"StorageTimeToLiveInMinutes": "0.05"}) as s:
        yield s


def multipage_tiff(pages):
    images = [Image.open(io.BytesIO(page)).convert("RGB") for page in pages]
    out = io.BytesIO()
    images[0].save(out, "TIFF", save_all=True, append_images=images[1:])
    return out.getvalue()


def test_the_read_container_settings_start_vista_and_its_key_works_with_the_sdk(container):
    log = "".join(container.log)
    assert "Billing is ignored" in log and CONTAINER_KEY not in log
    page, lines = render("latin")
    client = ComputerVisionClient(container.url, CognitiveServicesCredentials(CONTAINER_KEY))
    submitted = client.read_in_stream(io.BytesIO(page), raw=True)
    operation = submitted.headers["Operation-Location"].rsplit("/", 1)[-1]
    for _ in range(100):
        result = client.get_read_result(operation)
        if result.status not in ("notStarted", "running"):
            break
        time.sleep(0.1)
    assert result.status == "succeeded"
    assert [line.text for line in result.analyze_result.read_results[0].lines] == lines
    # StorageTimeToLiveInMinutes=0.05 keeps results 3 s.
    time.sleep(3.5)
    gone = requests.get(submitted.headers["Operation-Location"], headers={"Ocp-Apim-Subscription-Key": CONTAINER_KEY})
    assert gone.status_code == 404


def test_sync_analyze_answers_the_finished_operation_and_older_read_versions_work(container):
    page, lines = render("latin")
    headers = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
    sync = requests.post(f"{container.url}/vision/v3.2/read/syncAnalyze?language=en", data=page, headers=headers)
    assert sync.status_code == 200
    body = sync.json()
    assert body["status"] == "succeeded"
    assert [line["text"] for line in body["analyzeResult"]["readResults"][0]["lines"]] == lines
    assert body["analyzeResult"]["readResults"][0]["language"] == "en"
    bad = requests.post(f"{container.url}/vision/v3.2/read/syncAnalyze", data=b"not an image", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidImageFormat"
    for version in ("v3.0", "v3.1"):
        accepted = requests.post(f"{container.url}/vision/{version}/read/analyze", data=page, headers=headers)
        assert accepted.status_code == 202
        location = accepted.headers["Operation-Location"]
        assert f"/vision/{version}/read/analyzeResults/" in location
        for _ in range(100):
            result = requests.get(location, headers=headers).json()
            if result["status"] not in ("notStarted", "running"):
                break
            time.sleep(0.1)
        assert [line["text"] for line in result["analyzeResult"]["readResults"][0]["lines"]] == lines


def test_a_document_read_past_its_running_time_fails_instead_of_running_on():
    pages = [render("latin")[0]] * 4
    with Server("Task:MaxRunningTimeSpanInMinutes=0.0001") as capped:
        headers = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
        sync = requests.post(f"{capped.url}/vision/v3.2/read/syncAnalyze", data=multipage_tiff(pages), headers=headers)
        assert sync.status_code == 500 and "took longer" in sync.json()["error"]["message"]
        accepted = requests.post(f"{capped.url}/vision/v3.2/read/analyze", data=multipage_tiff(pages), headers=headers)
        for _ in range(100):
            result = requests.get(accepted.headers["Operation-Location"], headers=headers).json()
            if result["status"] not in ("notStarted", "running"):
                break
            time.sleep(0.1)
        assert result["status"] == "failed" and "took longer" in result["error"]["message"]


def test_status_swagger_and_start_page_need_no_cdn_and_document_every_route(container):
    status = requests.get(f"{container.url}/status")
    assert status.status_code == 200 and status.json()["apiStatus"] == "Valid"
    for page in ("/", "/swagger"):
        html = requests.get(container.url + page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", html.text), "no CDN"
    doc = requests.get(f"{container.url}/swagger/v1/swagger.json").json()
    assert doc["openapi"].startswith("3.")
    checked = 0
    for path, methods in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in methods:
            response = requests.request(method, container.url + concrete, timeout=30)
            unknown = response.status_code == 404 and "Resource not found" in response.text
            assert not unknown and response.status_code != 405, f"{method.upper()} {path}: {response.status_code}"
            checked += 1
    assert checked >= 40


@pytest.fixture(scope="module")
def deepstack(container):
    return urlparse(container.url)


def test_the_deepstack_client_detects_objects_faces_and_a_scene(deepstack):
    from deepstack.core import DeepstackException, DeepstackFace, DeepstackObject, DeepstackScene
    options = {"ip": deepstack.hostname, "port": deepstack.port, "api_key": KEYS[0]}
    objects = DeepstackObject(**options, min_confidence=0.4).detect(photo("motorcycle_left.png"))
    assert objects and objects[0]["label"] == "motorcycle" and objects[0]["confidence"] >= 0.4
    assert all(isinstance(objects[0][k], int) for k in ("x_min", "y_min", "x_max", "y_max"))
    assert objects[0]["x_min"] < objects[0]["x_max"] and objects[0]["y_min"] < objects[0]["y_max"]
    [face] = DeepstackFace(**options).detect(photo("astronaut.png"))
    assert face["confidence"] > 0.5 and face["x_max"] - face["x_min"] > 20
    scene = DeepstackScene(**options).recognize(photo("chelsea.png"))
    assert scene["label"].startswith("animal") and 0 < scene["confidence"] <= 1
    with pytest.raises(DeepstackException):
        DeepstackFace(**options).register("alice", photo("astronaut.png"))
    with pytest.raises(DeepstackException):
        DeepstackObject(**{**options, "api_key": "wrong"}).detect(photo("motorcycle_left.png"))
    with pytest.raises(DeepstackException):
        DeepstackObject(**options, custom_model="ipcam-combined").detect(photo("motorcycle_left.png"))


def test_frigates_request_shape_and_codeproject_ai(deepstack, container):
    # What Frigate's DeepStack detector sends: a JPEG in `image`, the key in `api_key`; it reads
    # predictions in order and stops at the first under 0.4.
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(photo("coffee.png"))).convert("RGB").save(jpeg, "JPEG")
    response = requests.post(f"{container.url}/v1/vision/detection", data={"api_key": KEYS[0]},
                             files={"image": jpeg.getvalue()}, timeout=10)
    body = response.json()
    assert body["success"] is True and body["count"] == len(body["predictions"])
    confidences = [p["confidence"] for p in body["predictions"]]
    assert confidences == sorted(confidences, reverse=True)
    assert {"inferenceMs", "processMs", "analysisRoundTripMs"} <= set(body)
    # CodeProject.AI's client sends no key: it works against a server started with --no-auth.
    from codeprojectai.core import CodeProjectAIObject
    with Server("--no-auth", keys=()) as open_server:
        address = urlparse(open_server.url)
        found = CodeProjectAIObject(ip=address.hostname, port=address.port,
                                    min_confidence=0.4).detect(photo("motorcycle_left.png"))
    assert found[0]["label"] == "motorcycle"
    page, lines = render("latin")
    ocr = requests.post(f"{container.url}/v1/vision/ocr", files={"image": page},
                        headers={"Ocp-Apim-Subscription-Key": KEYS[0]}).json()
    assert [p["label"] for p in ocr["predictions"]] == lines
    refused = requests.post(f"{container.url}/v1/vision/detection", files={"image": page})
    assert refused.status_code == 401 and refused.json()["success"] is False
    # An image over the 20 MB limit is refused while it streams in.
    huge = requests.post(f"{container.url}/v1/vision/detection", data={"api_key": KEYS[0]},
                         files={"image": b"\xff" * (20 * 1024 * 1024 + 1)})
    assert huge.status_code == 413 and huge.json()["success"] is False
