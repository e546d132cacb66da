"""Image Analysis 4.0 objects and people, judged by Azure's own Python SDK against a running vista."""

import concurrent.futures
import io
import subprocess
import time

import pytest
import requests
from azure.ai.vision.imageanalysis import ImageAnalysisClient
from azure.ai.vision.imageanalysis.models import VisualFeatures
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError
from PIL import Image

from conftest import KEYS, MODELS, VISTA_BIN, Server, encoded, photo

ANALYZE = "/computervision/imageanalysis:analyze"
OBJECTS_PEOPLE = [VisualFeatures.OBJECTS, VisualFeatures.PEOPLE]


def inside(box, width, height):
    return box.x >= 0 and box.y >= 0 and box.width >= 1 and box.height >= 1 and \
        box.x + box.width <= width and box.y + box.height <= height


def iou(a, b):
    ax2, ay2, bx2, by2 = a.x + a.width, a.y + a.height, b.x + b.width, b.y + b.height
    w = max(0, min(ax2, bx2) - max(a.x, b.x))
    h = max(0, min(ay2, by2) - max(a.y, b.y))
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)


@pytest.mark.parametrize("name,label", [
    ("astronaut.png", "person"), ("coffee.png", "cup"), ("chelsea.png", "cat"),
    ("motorcycle_left.png", "motorcycle"), ("camera.png", "person"),
])
def test_objects_found_on_real_photos(client, name, label):
    result = client.analyze(image_data=photo(name), visual_features=[VisualFeatures.OBJECTS])
    width, height = Image.open(io.BytesIO(photo(name))).size
    assert (result.metadata.width, result.metadata.height) == (width, height)
    assert result.model_version == "2023-10-01"
    names = [o.tags[0].name for o in result.objects.list]
    assert label in names, names
    for obj in result.objects.list:
        assert len(obj.tags) == 1 and 0 < obj.tags[0].confidence <= 1
        assert inside(obj.bounding_box, width, height)
    # Only what was asked for comes back.
    assert result.people is None and result.caption is None and result.read is None


def test_people_agree_with_person_objects(client):
    result = client.analyze(image_data=photo("astronaut.png"), visual_features=OBJECTS_PEOPLE)
    people = result.people.list
    persons = [o for o in result.objects.list if o.tags[0].name == "person"]
    assert people and persons
    best = max(people, key=lambda p: p.confidence)
    assert 0 < best.confidence <= 1
    assert max(iou(best.bounding_box, p.bounding_box) for p in persons) > 0.9
    # The astronaut fills most of the left of the frame.
    assert best.bounding_box.height > 400 and best.bounding_box.x < 60


def test_no_people_in_a_photo_of_a_cat(client):
    result = client.analyze(image_data=photo("chelsea.png"), visual_features=[VisualFeatures.PEOPLE])
    assert result.people.list == [] or max(p.confidence for p in result.people.list) < 0.3
    assert result.objects is None


@pytest.mark.parametrize("fmt,args", [("JPEG", {}), ("GIF", {}), ("BMP", {}), ("WEBP", {}), ("TIFF", {}),
                                      ("ICO", {"sizes": [(256, 256)]})])
def test_every_input_format_is_detected_from_content(client, fmt, args):
    data = encoded("motorcycle_left.png", fmt, **args)
    result = client.analyze(image_data=data, visual_features=[VisualFeatures.OBJECTS])
    assert "motorcycle" in [o.tags[0].name for o in result.objects.list], fmt


def test_exif_orientation_is_honoured(client):
    image = Image.open(io.BytesIO(photo("motorcycle_left.png"))).convert("RGB")  # 741 x 500
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    result = client.analyze(image_data=out.getvalue(), visual_features=[VisualFeatures.OBJECTS])
    assert (result.metadata.width, result.metadata.height) == (500, 741)
    assert "motorcycle" in [o.tags[0].name for o in result.objects.list]


def test_url_input_from_a_loopback_server(client, file_server):
    result = client.analyze_from_url(image_url=f"{file_server}/astronaut.png", visual_features=OBJECTS_PEOPLE)
    assert result.people.list and result.metadata.width == 512


def test_unreachable_url_is_reported_as_azure_does(client, file_server):
    with pytest.raises(HttpResponseError) as e:
        client.analyze_from_url(image_url=f"{file_server}/missing.png", visual_features=OBJECTS_PEOPLE)
    assert e.value.status_code == 400
    assert e.value.error.code == "InvalidRequest"
    assert "image url is not accessible" in e.value.message


def test_private_urls_are_refused_unless_configured(file_server):
    cli = subprocess.run([VISTA_BIN, "analyze", f"{file_server}/astronaut.png", "--models", MODELS],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1
    assert "The provided image url is not accessible." in cli.stderr
    allowed = subprocess.run([VISTA_BIN, "analyze", f"{file_server}/astronaut.png", "--models", MODELS,
                              "--allow-private-urls"], capture_output=True, text=True, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    assert '"peopleResult"' in allowed.stdout


def test_cli_prints_what_the_api_returns(server, tmp_path):
    path = tmp_path / "coffee.png"
    path.write_bytes(photo("coffee.png"))
    cli = subprocess.run([VISTA_BIN, "analyze", str(path), "--models", MODELS, "--features", "objects"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    api = requests.post(f"{server.url}{ANALYZE}?api-version=2023-10-01&features=objects", data=photo("coffee.png"),
                        headers={"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"})
    import json
    assert json.loads(cli.stdout) == api.json()


def test_the_secondary_key_works_and_a_wrong_key_gets_401(server):
    rotated = ImageAnalysisClient(endpoint=server.url, credential=AzureKeyCredential(KEYS[1]))
    assert rotated.analyze(image_data=photo("coffee.png"), visual_features=[VisualFeatures.OBJECTS]).objects
    wrong = ImageAnalysisClient(endpoint=server.url, credential=AzureKeyCredential("not-a-key"))
    with pytest.raises(HttpResponseError) as e:
        wrong.analyze(image_data=photo("coffee.png"), visual_features=[VisualFeatures.OBJECTS])
    assert e.value.status_code == 401
    assert e.value.error.code == "401"
    assert "invalid subscription key" in e.value.message


def post(server, query, data, content_type="application/octet-stream", key=KEYS[0], **kwargs):
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["Ocp-Apim-Subscription-Key"] = key
    return requests.post(f"{server.url}{ANALYZE}?{query}", data=data, headers=headers, timeout=60, **kwargs)


def assert_azure_error(response, status, code, inner=None):
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code and body["message"]
    assert response.headers["x-ms-error-code"] == code
    assert response.headers["apim-request-id"]
    if inner is None:
        assert "innererror" not in body
    else:
        assert body["innererror"]["code"] == inner, body
    return body


def test_missing_key_gets_401(server):
    body = assert_azure_error(post(server, "api-version=2023-10-01&features=objects", photo("coffee.png"), key=None),
                              401, "401")
    assert "missing subscription key" in body["message"]


def test_error_paths_through_the_sdk(client):
    tiny = io.BytesIO()
    Image.new("RGB", (30, 30)).save(tiny, "PNG")
    cases = [
        (dict(image_data=tiny.getvalue(), visual_features=OBJECTS_PEOPLE), "InvalidImageSize"),
        (dict(image_data=b"this is not an image at all", visual_features=OBJECTS_PEOPLE), "InvalidImageFormat"),
        (dict(image_data=photo("coffee.png"), visual_features=[VisualFeatures.OBJECTS],
              smart_crops_aspect_ratios=[2.5]), "BadArgument"),
        (dict(image_data=photo("coffee.png"), visual_features=[VisualFeatures.TAGS], language="pt"),
         "NotSupportedLanguage"),
    ]
    for kwargs, inner in cases:
        with pytest.raises(HttpResponseError) as e:
            client.analyze(**kwargs)
        assert e.value.status_code == 400, inner
        assert e.value.error.code == "InvalidRequest", inner
        assert e.value.error.innererror["code"] == inner  # azure-core keeps innererror as a dict


def test_query_rules(server):
    data = photo("coffee.png")
    # Encoded commas, case-insensitive names, any order, unknown parameters ignored.
    ok = post(server, "key1=value1&FEATURES=Objects%2Cpeople&api-version=2023-10-01&key2=value2", data)
    assert ok.status_code == 200, ok.text
    assert set(ok.json()) == {"modelVersion", "metadata", "objectsResult", "peopleResult"}
    assert ok.headers["apim-request-id"] == ok.headers["request-id"]
    assert post(server, "features=objects&api-version=2024-02-01&model-version=latest", data).status_code == 200
    body = assert_azure_error(post(server, "api-version=2023-10-01&features=faces", data), 400, "InvalidRequest",
                              "NotSupportedVisualFeature")
    assert "faces" in body["innererror"]["message"]
    body = assert_azure_error(post(server, "api-version=2023-10-01&features=smartCrops,categories", data), 400,
                              "InvalidRequest", "NotSupportedVisualFeature")
    assert "categories" in body["innererror"]["message"], "a 3.2 feature is not a 4.0 one"
    assert_azure_error(post(server, "api-version=2023-10-01&features=objects&smartcrops-aspect-ratios=0.9,1.9", data),
                       400, "InvalidRequest", "BadArgument")
    body = assert_azure_error(post(server, "api-version=2023-10-01", data), 400, "InvalidRequest")
    assert body["message"] == "Either 'features' or 'model-name' needs to be specified in the query parameter"
    assert_azure_error(post(server, "features=objects", data), 400, "InvalidRequest")


def test_body_rules(server):
    query = "api-version=2023-10-01&features=objects"
    size_message = "The image size is not allowed to be zero or larger than 20971520 bytes"
    assert assert_azure_error(post(server, query, b"\0" * (20971520 + 1)), 400, "InvalidRequest")["message"] == size_message
    assert assert_azure_error(post(server, query, b""), 400, "InvalidRequest")["message"] == size_message
    assert_azure_error(post(server, query, b"x", content_type="text/plain"), 400, "InvalidRequest")
    # Chunked transfer encoding (what the 3.2 SDK sends) and multipart both work.
    chunks = (photo("coffee.png")[i:i + 65536] for i in range(0, len(photo("coffee.png")), 65536))
    chunked = post(server, query, chunks)
    assert chunked.status_code == 200 and "cup" in chunked.text
    multipart = requests.post(f"{server.url}{ANALYZE}?{query}", files={"file": ("coffee.png", photo("coffee.png"))},
                              headers={"Ocp-Apim-Subscription-Key": KEYS[0]}, timeout=60)
    assert multipart.status_code == 200 and "cup" in multipart.text
    assert_azure_error(post(server, query, b'{"link": 1}', content_type="application/json"), 400, "InvalidRequest",
                       "InvalidImageUrl")


def test_probes_and_metrics(server, client):
    client.analyze(image_data=photo("coffee.png"), visual_features=[VisualFeatures.OBJECTS])
    assert requests.get(server.url + "/health").json() == {"status": "healthy"}
    ready = requests.get(server.url + "/ready").json()
    states = {m["id"]: m["state"] for m in ready["models"]}
    # Every model of the default pack is loaded; the optional age/gender model is installed (the tests
    # fetch it) but stays unused without --face-attributes.
    assert states.pop("faceres") == "installed"
    # The CLIP tokenizer's vocabulary and the zero-shot names wait for a CLIP the user brings.
    assert states.pop("clip-bpe") == states.pop("imagenet22k-names") == "installed"
    assert ready["ready"] and all(state == "loaded" for state in states.values()), states
    assert "gore" in [m["feature"] for m in ready["noModel"]]
    metrics = requests.get(server.url + "/metrics").text
    assert 'vista_http_requests_total{route="/computervision/imageanalysis:analyze",status="200"}' in metrics
    assert 'vista_model_inference_seconds_count{model="centernet"}' in metrics
    assert "vista_queue_depth" in metrics
    assert "vista_http_request_duration_seconds_bucket" in metrics


def test_unknown_routes_get_an_azure_404(server):
    assert_azure_error(requests.get(server.url + "/vision/v9/nothing"), 404, "404")


def test_a_full_queue_answers_429_and_loses_no_accepted_work():
    server = Server("--workers", "1", "--queue", "1")
    try:
        data = photo("motorcycle_left.png")
        query = "api-version=2023-10-01&features=objects"
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(lambda _: post(server, query, data), range(12)))
        statuses = sorted(r.status_code for r in responses)
        assert 429 in statuses and 200 in statuses, statuses
        assert set(statuses) == {200, 429}
        for r in responses:
            if r.status_code == 429:
                assert r.headers["Retry-After"] == "1"
                assert r.json()["error"]["code"] == "429"
            else:
                assert "motorcycle" in r.text
    finally:
        assert server.stop() == 0


def test_shutdown_finishes_in_flight_requests():
    server = Server("--workers", "1", "--queue", "8")
    data = photo("astronaut.png")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, server, "api-version=2023-10-01&features=people", data) for _ in range(4)]
        time.sleep(0.3)
        server.process.terminate()
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200] * 4
    assert server.process.wait(timeout=30) == 0
    log = "".join(server.log)
    assert "finishing in-flight requests" in log
    assert KEYS[0] not in log, "keys are never logged"


def test_the_server_refuses_to_start_without_keys_unless_told():
    refused = subprocess.run([VISTA_BIN, "serve", "--models", MODELS, "--addr", "127.0.0.1:0"],
                             capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/bin:/bin", "VISTA_API_KEYS": ""})
    assert refused.returncode != 0
    assert "no API key, token issuer, Google key or AWS credential is configured" in refused.stderr
    open_server = Server("--no-auth", keys=())
    try:
        assert post(open_server, "api-version=2023-10-01&features=objects", photo("coffee.png"),
                    key=None).status_code == 200
        assert "authentication is OFF" in "".join(open_server.log)
    finally:
        open_server.stop()
