"""Tags, captions, dense captions, categories, descriptions and search vectors, through both Azure SDKs
(4.0 and 3.2) and plain HTTP for the vectors, against a running vista with the real model pack."""

import io
import json
import re
import subprocess

import numpy as np
import pytest
import requests
from azure.ai.vision.imageanalysis.models import VisualFeatures
from azure.cognitiveservices.vision.computervision import ComputerVisionClient
from azure.cognitiveservices.vision.computervision.models import ComputerVisionErrorResponseException, \
    VisualFeatureTypes
from azure.core.exceptions import HttpResponseError
from msrest.authentication import CognitiveServicesCredentials
from PIL import Image

from conftest import KEYS, MODELS, VISTA_BIN, Server, pack_without, photo

NAMING = [VisualFeatures.CAPTION, VisualFeatures.DENSE_CAPTIONS, VisualFeatures.TAGS]
GENDERED = {"man", "men", "woman", "women", "boy", "girl", "he", "she", "his", "her", "lady", "guy"}
# What the pack's models see in the suite's photos (the scikit-image wheel's).
PHOTO_SUBJECTS = {"chelsea.png": "cat", "motorcycle_left.png": "motorcycle", "coffee.png": "cup",
                  "astronaut.png": "person"}


@pytest.fixture(scope="module")
def cv(server):
    return ComputerVisionClient(server.url, CognitiveServicesCredentials(KEYS[0]))


def stream(name):
    return io.BytesIO(photo(name))


@pytest.mark.parametrize("name,subject", PHOTO_SUBJECTS.items())
def test_caption_dense_captions_and_tags_follow_the_contract(client, name, subject):
    result = client.analyze(image_data=photo(name), visual_features=NAMING, gender_neutral_caption=True)
    width, height = Image.open(io.BytesIO(photo(name))).size
    caption = result.caption
    assert caption.text and 0 < caption.confidence <= 1
    dense = result.dense_captions.list
    assert 1 <= len(dense) <= 10
    first = dense[0].bounding_box
    assert (first.x, first.y, first.width, first.height) == (0, 0, width, height)
    assert dense[0].text == caption.text
    boxes = [(d.bounding_box.x, d.bounding_box.y, d.bounding_box.width, d.bounding_box.height) for d in dense]
    assert len(set(boxes)) == len(boxes), "each dense caption has its own box"
    for d in dense:
        box = d.bounding_box
        assert box.x + box.width <= width and box.y + box.height <= height and d.text
    names = [t.name for t in result.tags.list]
    assert len(set(names)) == len(names), names
    assert subject in names, names
    assert all(0.5 <= t.confidence <= 1 for t in result.tags.list)
    words = set(re.findall(r"[a-z]+", " ".join(d.text for d in dense).lower()))
    assert not words & GENDERED, f"no model here can tell gender: {dense}"
    # Only what was asked for comes back.
    assert result.objects is None and result.read is None


def test_captions_name_what_was_found(client):
    cat = client.analyze(image_data=photo("chelsea.png"), visual_features=[VisualFeatures.CAPTION]).caption
    assert "cat" in cat.text.split(), cat.text
    rider = client.analyze(image_data=photo("motorcycle_left.png"), visual_features=[VisualFeatures.CAPTION])
    assert "motorcycle" in rider.caption.text, rider.caption.text
    tags = client.analyze(image_data=photo("chelsea.png"), visual_features=[VisualFeatures.TAGS]).tags.list
    by_name = {t.name: t.confidence for t in tags}
    # Hypernyms come from WordNet and are at least as sure as the cat.
    assert by_name["animal"] >= by_name["cat"] and by_name["mammal"] >= by_name["cat"]


def test_captions_in_another_language_are_refused(client):
    with pytest.raises(HttpResponseError) as e:
        client.analyze(image_data=photo("chelsea.png"), visual_features=[VisualFeatures.CAPTION], language="es")
    assert e.value.status_code == 400 and e.value.error.innererror["code"] == "NotSupportedLanguage"
    # Features that need no words still work in any language Azure lists.
    assert client.analyze(image_data=photo("chelsea.png"), visual_features=[VisualFeatures.OBJECTS],
                          language="es").objects.list


def test_v32_describe_tag_and_analyze(cv):
    described = cv.describe_image_in_stream(stream("chelsea.png"), max_candidates=3)
    captions = described.captions
    assert 1 <= len(captions) <= 3 and all(c.text for c in captions)
    assert len({c.text for c in captions}) == len(captions)
    assert "cat" in described.tags
    tagged = cv.tag_image_in_stream(stream("chelsea.png")).tags
    assert "cat" in [t.name for t in tagged]
    analysis = cv.analyze_image_in_stream(stream("chelsea.png"), visual_features=[
        VisualFeatureTypes.categories, VisualFeatureTypes.tags, VisualFeatureTypes.description])
    assert analysis.categories[0].name == "animal_cat", analysis.categories
    assert 0 < analysis.categories[0].score <= 1
    assert analysis.description.captions[0].text == described.captions[0].text
    people = cv.analyze_image_in_stream(stream("astronaut.png"), visual_features=[VisualFeatureTypes.categories])
    assert people.categories[0].name.startswith("people_"), people.categories
    with pytest.raises(ComputerVisionErrorResponseException) as e:
        cv.describe_image_in_stream(stream("chelsea.png"), language="ja")
    assert e.value.error.error.innererror.code == "NotSupportedLanguage"


def test_v32_analyze_defaults_to_categories(server):
    response = requests.post(f"{server.url}/vision/v3.2/analyze", data=photo("chelsea.png"), headers={
        "Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"})
    assert response.status_code == 200
    assert set(response.json()) == {"categories", "requestId", "metadata", "modelVersion"}


def vectorize(server, kind, **body):
    route = f"{server.url}/computervision/retrieval:vectorize{kind}?api-version=2024-02-01"
    headers = {"Ocp-Apim-Subscription-Key": KEYS[0]}
    if kind == "Image":
        return requests.post(route, data=body["image"], headers={**headers, "Content-Type": "application/octet-stream"})
    return requests.post(route, json=body, headers=headers)


def test_text_queries_in_spanish_find_their_image(server):
    names = list(PHOTO_SUBJECTS) + ["camera.png"]
    images = []
    for name in names:
        response = vectorize(server, "Image", image=photo(name))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["modelVersion"] == "vista-e5-small-tags-2"
        images.append(body["vector"])
    images = np.array(images)
    assert images.shape == (len(names), 384)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-3)
    for query, expected in [("un gato", "chelsea.png"), ("una motocicleta", "motorcycle_left.png"),
                            ("una taza de café", "coffee.png")]:
        vector = np.array(vectorize(server, "Text", text=query).json()["vector"])
        ranked = [names[i] for i in np.argsort(-(images @ vector))]
        assert ranked[0] == expected, (query, ranked)


def test_vectorize_rules(server):
    assert vectorize(server, "Text", text="").status_code == 400
    assert vectorize(server, "Text", text="word " * 71).status_code == 400
    response = requests.post(f"{server.url}/computervision/retrieval:vectorizeText?api-version=2024-02-01"
                             "&model-version=2023-04-15", json={"text": "a cat"},
                             headers={"Ocp-Apim-Subscription-Key": KEYS[0]})
    assert response.status_code == 400
    assert "vista-e5-small-tags-2" in response.json()["error"]["innererror"]["message"]


def test_the_block_list_removes_a_name_everywhere(tmp_path):
    block = tmp_path / "blocked.txt"
    block.write_text("# never say it\ncat\n")
    headers = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
    with Server("--tag-block-list", str(block)) as server:
        body = requests.post(f"{server.url}/computervision/imageanalysis:analyze?api-version=2023-10-01"
                             "&features=caption,denseCaptions,tags,objects", data=photo("chelsea.png"),
                             headers=headers).json()
    names = [t["name"] for t in body["tagsResult"]["values"]]
    assert "cat" not in names and "animal" in names, names
    texts = [body["captionResult"]["text"]] + [d["text"] for d in body["denseCaptionsResult"]["values"]]
    assert not any("cat" in t.split() for t in texts), texts
    assert all(o["tags"][0]["name"] != "cat" for o in body["objectsResult"]["values"])


def test_without_the_classifier_captions_and_tags_are_refused_by_name(tmp_path):
    pack = pack_without(tmp_path, lambda name: name == "efficientnet-lite0.onnx")
    headers = {"Ocp-Apim-Subscription-Key": KEYS[0], "Content-Type": "application/octet-stream"}
    with Server(models=str(pack)) as server:
        response = requests.post(f"{server.url}/computervision/imageanalysis:analyze?api-version=2023-10-01"
                                 "&features=caption", data=photo("chelsea.png"), headers=headers)
        objects = requests.post(f"{server.url}/computervision/imageanalysis:analyze?api-version=2023-10-01"
                                "&features=objects", data=photo("chelsea.png"), headers=headers)
    error = response.json()["error"]
    assert response.status_code == 400 and error["innererror"]["code"] == "NotSupportedVisualFeature"
    assert "efficientnet-lite0" in error["innererror"]["message"]
    assert objects.status_code == 200


def test_cli_index_then_search_in_another_language(tmp_path):
    folder = tmp_path / "photos" / "nested"
    folder.mkdir(parents=True)
    for name in PHOTO_SUBJECTS:
        (folder / name).write_bytes(photo(name))
    (folder / "notes.txt").write_text("not an image")
    index = tmp_path / "index.json"
    run = lambda *args: subprocess.run([VISTA_BIN, *args, "--models", MODELS, "--index", str(index)],
                                       capture_output=True, text=True, timeout=300)
    first = run("index", str(tmp_path / "photos"))
    assert first.returncode == 0, first.stderr
    assert f"{len(PHOTO_SUBJECTS)} images in" in first.stderr
    stored = json.loads(index.read_text())
    assert stored["modelVersion"] == "vista-e5-small-tags-2" and len(stored["images"]) == len(PHOTO_SUBJECTS)
    found = run("search", "un gato dormido", "--top", "2")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert len(lines) == 2 and lines[0].endswith("chelsea.png"), lines
    # A second run finds nothing new to embed and keeps the same vectors.
    again = run("index", str(tmp_path / "photos"))
    assert again.returncode == 0 and json.loads(index.read_text())["images"] == stored["images"]
