"""tools/quantize_int8.py on a two-convolution model built here: `--calibrate` measures the activation
ranges on photos and writes them; quantizing from that file alone (what `vista models fetch` does) gives
the same bytes every time, which the pack's pinned hash of the int8 u2netp relies on; `--exclude`
keeps a convolution in float; the int8 model's output stays close to the float one's; and `--format qdq`
makes a Relu part of its convolution and, with the operators between convolutions quantized too, keeps
the activations in int8 from one convolution to the next."""

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


def random_weights(seed, shapes):
    rng = np.random.default_rng(seed)
    return [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)
            for name, shape in shapes]


def save_model(path, name, nodes, initializers):
    """A graph from a [1, 3, SIZE, SIZE] "input.1" to a [1, 4, SIZE, SIZE] "out", at opset 13."""
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input.1", TensorProto.FLOAT,
                                                                         [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, SIZE, SIZE])],
                              initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def two_convolutions(path):
    weights = random_weights(3, [("w1", (8, 3, 3, 3)), ("w2", (4, 8, 3, 3))])
    nodes = [helper.make_node("Conv", ["input.1", "w1"], ["c1"], name="first", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["out"], name="second", pads=[1, 1, 1, 1])]
    save_model(path, "two", nodes, weights)


def quantize(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def operators(path):
    return sorted(node.op_type for node in onnx.load(path).graph.node if "Conv" in node.op_type)


def photos(tmp_path):
    """Three random SIZE x SIZE photos; relative_error uses the first."""
    rng = np.random.default_rng(4)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"photo{i}.png"))
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(paths[-1])
    return paths


@pytest.fixture
def calibrated(tmp_path):
    model, ranges = str(tmp_path / "model.onnx"), str(tmp_path / "ranges.json")
    two_convolutions(model)
    first = str(tmp_path / "calibrated.onnx")
    made = quantize(model, first, "--ranges", ranges, "--size", str(SIZE), "--calibrate", *photos(tmp_path))
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
    error = relative_error(model, partial, tmp_path)
    assert error < 0.05, error


def relative_error(model, quantized, tmp_path):
    """The largest difference between the two models' outputs on the first calibration photo, relative to
    the float model's largest output. The photo is prepared as the tool prepares it: pixels / 255, then
    its default ImageNet mean and std (the photos are already SIZE square, so nothing is resized)."""
    pixels = np.asarray(Image.open(str(tmp_path / "photo0.png")), dtype=np.float32) / 255
    normalised = (pixels - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    image = normalised.transpose(2, 0, 1)[None].astype(np.float32)
    run = lambda path: ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"input.1": image})[0]
    exact, approximate = run(model), run(quantized)
    return np.abs(exact - approximate).max() / np.abs(exact).max()


def test_without_a_ranges_file_it_says_how_to_make_one(tmp_path):
    model = str(tmp_path / "model.onnx")
    two_convolutions(model)
    made = quantize(model, str(tmp_path / "out.onnx"), "--ranges", str(tmp_path / "missing.json"))
    assert made.returncode != 0 and "--calibrate" in made.stderr


def test_qdq_makes_each_relu_part_of_its_convolution(calibrated, tmp_path):
    model, ranges, _ = calibrated
    outs = [str(tmp_path / f"qdq{i}.onnx") for i in range(2)]
    for out in outs:
        made = quantize(model, out, "--ranges", ranges, "--format", "qdq",
                        "--op-type", "Conv", "--op-type", "Relu")
        assert made.returncode == 0, made.stderr
    assert open(outs[0], "rb").read() == open(outs[1], "rb").read()
    qdq = onnx.load(outs[0])
    ops = [node.op_type for node in qdq.graph.node]
    assert "Relu" not in ops and "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert max(o.version for o in qdq.opset_import if o.domain in ("", "ai.onnx")) >= 13
    # The first convolution's output is quantized on the Relu's range, which starts at zero.
    initializers = {init.name: numpy_helper.to_array(init) for init in qdq.graph.initializer}
    quantize_c1 = next(node for node in qdq.graph.node
                       if node.op_type == "QuantizeLinear" and node.input[0] in ("c1", "r1"))
    assert initializers[quantize_c1.input[2]] == 0
    assert relative_error(model, outs[0], tmp_path) < 0.05


def a_block(path):
    """U-Net's pattern in small: a convolution, a max pool, a convolution on the pooled map, the two added
    (a residual), the sum concatenated with the pooled map, upsampled, and a last convolution."""
    weights = random_weights(5, [("w1", (8, 3, 3, 3)), ("w2", (8, 8, 3, 3)), ("w3", (4, 16, 3, 3))])
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    nodes = [helper.make_node("Conv", ["input.1", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Add", ["r2", "p1"], ["sum"]),
             helper.make_node("Concat", ["sum", "p1"], ["both"], axis=1),
             helper.make_node("Resize", ["both", "", "scales"], ["up"], mode="linear"),
             helper.make_node("Conv", ["up", "w3"], ["out"], pads=[1, 1, 1, 1])]
    save_model(path, "block", nodes, [*weights, scales])


def test_qdq_keeps_the_operators_between_convolutions_in_int8(tmp_path):
    model, ranges, out = (str(tmp_path / name) for name in ("block.onnx", "ranges.json", "int8.onnx"))
    a_block(model)
    types = [arg for op in ("Conv", "Relu", "MaxPool", "Add", "Concat", "Resize") for arg in ("--op-type", op)]
    made = quantize(model, out, "--ranges", ranges, "--format", "qdq", *types, "--size", str(SIZE),
                    "--calibrate", *photos(tmp_path))
    assert made.returncode == 0, made.stderr
    nodes = onnx.load(out).graph.node
    made_by = {output: node.op_type for node in nodes for output in node.output}
    used_by = {}
    for node in nodes:
        for name in node.input:
            used_by.setdefault(name, []).append(node.op_type)
    for node in nodes:
        if node.op_type in ("MaxPool", "Add", "Concat", "Resize"):
            # Every activation in comes dequantized, and the result is quantized again: ONNX Runtime
            # fuses each into its int8 kernel.
            assert made_by[node.input[0]] == "DequantizeLinear", node.op_type
            assert all(made_by.get(name) == "DequantizeLinear" for name in node.input
                       if name in made_by), node.op_type
            assert used_by[node.output[0]] == ["QuantizeLinear"], node.op_type
    assert relative_error(model, out, tmp_path) < 0.05
