"""A CLIP a user brings, plugged in through the manifest: a tiny generated visual/textual ONNX pair of
CLIP's signature stands in for a real one, so every number it gives can be computed here by hand."""

import io
import json
import os

import numpy as np
import onnx
import requests
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from conftest import KEYS, ROOT, Server, pack_without

SIDE, DIM, CONTEXT = 32, 8, 77
MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])
# CLIP's ids for "a photo of a cat" (OpenAI's vocabulary), padded.
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407] + [0] * (CONTEXT - 7)


def save(model, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def visual(weights):
    """image [N,3,H,W] → the mean of each channel → × weights [3, DIM]."""
    nodes = [helper.make_node("ReduceMean", ["image"], ["means"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["means", "w"], ["embedding"])]
    graph = helper.make_graph(nodes, "visual", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                            ["N", 3, SIDE, SIDE])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM])],
                              [numpy_helper.from_array(weights, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def textual(weights):
    """token ids [N,77] → as floats × weights [77, DIM] (scaled down: ids are large)."""
    nodes = [helper.make_node("Cast", ["text"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("MatMul", ["ids", "w"], ["embedding"])]
    graph = helper.make_graph(nodes, "textual", [helper.make_tensor_value_info("text", TensorProto.INT64,
                                                                             ["N", CONTEXT])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM])],
                              [numpy_helper.from_array(weights, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def unit(v):
    return v / np.linalg.norm(v)


def test_a_users_clip_makes_the_vectors_and_scores_names(tmp_path):
    rng = np.random.default_rng(7)
    visual_w = rng.normal(size=(3, DIM)).astype(np.float32)
    textual_w = (rng.normal(size=(CONTEXT, DIM)) / 1e4).astype(np.float32)
    pack = pack_without(tmp_path, lambda name: name.startswith("clip-names-"))
    save(visual(visual_w), str(pack / "clip" / "visual" / "model.onnx"))
    save(textual(textual_w), str(pack / "clip" / "textual" / "model.onnx"))
    with open(os.path.join(ROOT, "pack", "manifest.json")) as f:
        manifest = json.load(f)
    manifest["models"] += [
        {"id": "tiny-clip", "task": "clip-visual", "registry": "local", "file": "clip/visual/model.onnx",
         "license": "test", "facts": {"input": "image", "output": "embedding", "image_size": SIDE}},
        {"id": "tiny-clip-text", "task": "clip-textual", "registry": "local", "file": "clip/textual/model.onnx",
         "license": "test", "facts": {"input": "text", "output": "embedding", "context_length": CONTEXT}},
    ]
    (pack / "manifest.json").write_text(json.dumps(manifest))

    colour = np.array([200, 100, 50])
    image = io.BytesIO()
    Image.new("RGB", (96, 64), tuple(int(c) for c in colour)).save(image, "PNG")
    headers = {"Ocp-Apim-Subscription-Key": KEYS[0]}
    base = "/computervision/retrieval:vectorize{}?api-version=2024-02-01"
    with Server(models=str(pack)) as server:
        image_response = requests.post(server.url + base.format("Image"), data=image.getvalue(),
                                       headers={**headers, "Content-Type": "application/octet-stream"})
        text_response = requests.post(server.url + base.format("Text"), json={"text": "A photo of a  cat"},
                                      headers=headers)
        e5_version = requests.post(server.url + base.format("Text") + "&model-version=vista-e5-small-tags-2",
                                   json={"text": "a cat"}, headers=headers)
        tags = requests.post(server.url + "/computervision/imageanalysis:analyze?api-version=2023-10-01"
                             "&features=tags", data=image.getvalue(),
                             headers={**headers, "Content-Type": "application/octet-stream"})
    assert image_response.status_code == 200, image_response.text
    body = image_response.json()
    assert body["modelVersion"] == "vista-clip-tiny-clip"
    expected = unit(((colour / 255 - MEAN) / STD) @ visual_w)
    assert np.allclose(body["vector"], expected, atol=1e-4), (body["vector"], expected)
    text = text_response.json()
    assert text["modelVersion"] == "vista-clip-tiny-clip"
    assert np.allclose(text["vector"], unit(np.array(CAT_IDS, dtype=np.float64) @ textual_w), atol=1e-4)
    # The vectors are CLIP's now: asking for the default model's is refused, not mixed.
    assert e5_version.status_code == 400
    # Tags still work, with the zero-shot names as one more source.
    assert tags.status_code == 200, tags.text
    names = [t["name"] for t in tags.json()["tagsResult"]["values"]]
    assert len(names) == len(set(names))
