"""tools/quantize_int8.py on a two-convolution model built here: `--calibrate` measures the activation
ranges on photos and writes them; quantizing from that file alone (what `vista models fetch` does) gives
the same bytes every time, which the pack's pinned hash of the int8 u2netp relies on; `--exclude`
keeps a convolution in float; and the int8 model's output stays close to the float one's."""

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "quantize_int8.py")
SIZE = 32


def two_convolutions(path):
    rng = np.random.default_rng(3)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
               for name, shape in [("w1", (8, 3, 3, 3)), ("w2", (4, 8, 3, 3))]]
    nodes = [helper.make_node("Conv", ["input.1", "w1"], ["c1"], name="first", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["out"], name="second", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT,
                                                                          [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, SIZE, SIZE])],
                              weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def quantize(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def operators(path):
    return sorted(node.op_type for node in onnx.load(path).graph.node if "Conv" in node.op_type)


@pytest.fixture
def calibrated(tmp_path):
    model, ranges = str(tmp_path / "model.onnx"), str(tmp_path / "ranges.json")
    two_convolutions(model)
    rng = np.random.default_rng(4)
    photos = []
    for i in range(3):
        photos.append(str(tmp_path / f"photo{i}.png"))
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(photos[-1])
    first = str(tmp_path / "calibrated.onnx")
    made = quantize(model, first, "--ranges", ranges, "--size", str(SIZE), "--calibrate", *photos)
    assert made.returncode == 0, made.stderr
    return model, ranges, first


def test_ranges_measured_once_give_the_same_file_every_time(calibrated, tmp_path):
    model, ranges, first = calibrated
    assert os.path.getsize(ranges) > 0
    again = []
    for i in range(2):
        again.append(str(tmp_path / f"again{i}.onnx"))
        made = quantize(model, again[-1], "--ranges", ranges)
        assert made.returncode == 0, made.stderr
    contents = [open(path, "rb").read() for path in [first, *again]]
    assert contents[0] == contents[1] == contents[2]
    assert operators(first) == ["QLinearConv", "QLinearConv"]


def test_an_excluded_convolution_stays_float_and_the_output_stays_close(calibrated, tmp_path):
    model, ranges, _ = calibrated
    partial = str(tmp_path / "partial.onnx")
    made = quantize(model, partial, "--ranges", ranges, "--op-type", "Conv", "--exclude", "second")
    assert made.returncode == 0, made.stderr
    assert operators(partial) == ["Conv", "QLinearConv"]
    # The first calibration photo as the tool prepares it: pixels / 255, then its default ImageNet mean
    # and std (the photos are already SIZE square, so nothing is resized).
    pixels = np.asarray(Image.open(str(tmp_path / "photo0.png")), dtype=np.float32) / 255
    normalised = (pixels - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    image = normalised.transpose(2, 0, 1)[None].astype(np.float32)
    run = lambda path: ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"input.1": image})[0]
    exact, approximate = run(model), run(partial)
    error = np.abs(exact - approximate).max() / np.abs(exact).max()
    assert error < 0.05, error


def test_without_a_ranges_file_it_says_how_to_make_one(tmp_path):
    model = str(tmp_path / "model.onnx")
    two_convolutions(model)
    made = quantize(model, str(tmp_path / "out.onnx"), "--ranges", str(tmp_path / "missing.json"))
    assert made.returncode != 0 and "--calibrate" in made.stderr
