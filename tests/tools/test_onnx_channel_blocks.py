"""tools/onnx_channel_blocks.py on a small stem built here, shaped like PP-OCRv6's detector's (a convolution,
then a max pool beside two convolutions, concatenated and read by a last convolution, biases as separate
Adds): padded and split, it gives the same output, its tensors have the padded widths, no Concat is
left, the file comes out byte for byte the same every time (the pack pins the converted detector's
hash), and rewrites that would change the result or cannot be done are refused with a message."""

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "onnx_channel_blocks.py")
STEM_PADDING = ["--pad", "conv0=8", "--pad", "conv1=4", "--pad", "conv2=8"]


def stem(path, pool_into="MaxPool"):
    """x -> conv0 (6) -> bias -> Relu -> [MaxPool | conv1 (3) -> Relu -> conv2 (6) -> Relu] -> Concat ->
    Identity -> conv3 (5) -> bias -> Relu. `pool_into` replaces the max pool (to test refusals)."""
    rng = np.random.default_rng(7)

    def weights(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    constants = [weights("w0", 6, 3, 3, 3), weights("b0", 1, 6, 1, 1), weights("w1", 3, 6, 2, 2),
                 weights("w2", 6, 3, 2, 2), weights("w3", 5, 12, 3, 3), weights("b3", 1, 5, 1, 1)]
    same = {"auto_pad": "SAME_UPPER"}
    pool = (helper.make_node("MaxPool", ["r0"], ["pooled"], name="pool", kernel_shape=[2, 2], **same)
            if pool_into == "MaxPool" else helper.make_node(pool_into, ["r0"], ["pooled"], name="pool"))
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="conv0", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c0", "b0"], ["a0"], name="bias0"),
        helper.make_node("Relu", ["a0"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], name="conv1", kernel_shape=[2, 2], **same),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", kernel_shape=[2, 2], **same),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        pool,
        helper.make_node("Concat", ["pooled", "r2"], ["joined"], name="join", axis=1),
        helper.make_node("Identity", ["joined"], ["same"], name="same"),
        helper.make_node("Conv", ["same", "w3"], ["c3"], name="conv3", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c3", "b3"], ["a3"], name="bias3"),
        helper.make_node("Relu", ["a3"], ["out"], name="relu3"),
    ]
    graph = helper.make_graph(nodes, "stem",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "H", "W"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 5, "h", "w"])],
                              constants)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), path)


def blocks(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def output(path, x):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_the_padded_and_split_stem_gives_the_same_output_with_no_concat(tmp_path):
    model, out = str(tmp_path / "stem.onnx"), str(tmp_path / "blocks.onnx")
    stem(model)
    made = blocks(model, out, *STEM_PADDING, "--split", "conv3")
    assert made.returncode == 0, made.stderr
    converted = onnx.load(out)
    ops = [node.op_type for node in converted.graph.node]
    assert "Concat" not in ops and ops.count("Conv") == 5
    widths = {init.name: init.dims[0] for init in converted.graph.initializer}
    convs = {node.name: node for node in converted.graph.node if node.op_type == "Conv"}
    assert [widths[convs[name].input[1]] for name in ("conv0", "conv1", "conv2")] == [8, 4, 8]
    # Each part reads one padded input: 8 channels, of which 6 real.
    parts = [convs[f"conv3.part{k}"] for k in range(2)]
    shapes = {init.name: list(init.dims) for init in converted.graph.initializer}
    assert [shapes[part.input[1]] for part in parts] == [[5, 8, 3, 3], [5, 8, 3, 3]]
    rng = np.random.default_rng(8)
    for size in [(16, 16), (37, 23)]:
        x = rng.standard_normal((1, 3, *size)).astype(np.float32)
        np.testing.assert_allclose(output(out, x), output(model, x), rtol=1e-5, atol=1e-5)


def test_padding_alone_keeps_the_concat_and_the_output(tmp_path):
    model, out = str(tmp_path / "stem.onnx"), str(tmp_path / "padded.onnx")
    stem(model)
    assert blocks(model, out, *STEM_PADDING).returncode == 0
    assert "Concat" in [node.op_type for node in onnx.load(out).graph.node]
    x = np.random.default_rng(9).standard_normal((1, 3, 20, 28)).astype(np.float32)
    np.testing.assert_allclose(output(out, x), output(model, x), rtol=1e-5, atol=1e-5)


def test_the_conversion_gives_the_same_bytes_every_time(tmp_path):
    model = str(tmp_path / "stem.onnx")
    stem(model)
    outs = [str(tmp_path / f"blocks{i}.onnx") for i in range(2)]
    for out in outs:
        assert blocks(model, out, *STEM_PADDING, "--split", "conv3").returncode == 0
    assert open(outs[0], "rb").read() == open(outs[1], "rb").read()


def test_rewrites_that_cannot_be_done_are_refused(tmp_path):
    model, out = str(tmp_path / "stem.onnx"), str(tmp_path / "out.onnx")
    stem(model, pool_into="Sigmoid")  # sigmoid(0) is not 0: padded channels may not pass through it
    refused = blocks(model, out, "--pad", "conv0=8")
    assert refused.returncode != 0 and "cannot pass through Sigmoid" in refused.stderr
    stem(model)
    for args, message in [(["--pad", "conv0=4"], "more than 4"),
                           (["--pad", "conv0"], "expected NODE=WIDTH"),
                           (["--pad", "nowhere=8"], "no Conv named nowhere"),
                           (["--split", "conv1"], "does not read a channel Concat"),
                           # Padded on one side only, the concatenation's channels would shift.
                           (["--pad", "conv2=8"], "concatenates padded and unpadded channels")]:
        refused = blocks(model, out, *args)
        assert refused.returncode != 0 and message in refused.stderr, (args, refused.stderr)
    assert not os.path.exists(out)
