"""tools/onnx_fold_bias.py on a small classifier head built here ([N, T, features] -> MatMul -> Add bias ->
Softmax, N and T dynamic): the folded model has no Add, gives the same scores at any batch and sequence
size, comes out byte for byte the same every time (the pack pins the folded recogniser's hash), and a
MatMul with no bias to fold is refused with a message."""

import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

TOOL = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "onnx_fold_bias.py")
FEATURES, CLASSES = 5, 7


def head(path, with_bias=True):
    rng = np.random.default_rng(5)
    weights = [numpy_helper.from_array(rng.standard_normal((FEATURES, CLASSES)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal(CLASSES).astype(np.float32), "b")]
    scores = "logits" if with_bias else "product"
    nodes = [helper.make_node("MatMul", ["x", "w"], ["product"], name="head")]
    if with_bias:
        nodes.append(helper.make_node("Add", ["product", "b"], ["logits"], name="bias"))
    nodes.append(helper.make_node("Softmax", [scores], ["out"], axis=2))
    graph = helper.make_graph(nodes, "head",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "T", FEATURES])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", "T", CLASSES])],
                              weights if with_bias else weights[:1])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), path)


def fold(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def scores(path, x):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_the_folded_head_has_no_add_and_gives_the_same_scores(tmp_path):
    model, folded = str(tmp_path / "head.onnx"), str(tmp_path / "folded.onnx")
    head(model)
    made = fold(model, folded, "--matmul", "head")
    assert made.returncode == 0, made.stderr
    ops = [node.op_type for node in onnx.load(folded).graph.node]
    assert "Add" not in ops and ops.count("MatMul") == 1
    rng = np.random.default_rng(6)
    for shape in [(1, 1, FEATURES), (3, 11, FEATURES)]:
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(scores(folded, x), scores(model, x), rtol=1e-5, atol=1e-7)


def test_folding_gives_the_same_bytes_every_time(tmp_path):
    model = str(tmp_path / "head.onnx")
    head(model)
    outs = [str(tmp_path / f"folded{i}.onnx") for i in range(2)]
    for out in outs:
        assert fold(model, out, "--matmul", "head").returncode == 0
    assert open(outs[0], "rb").read() == open(outs[1], "rb").read()


def test_a_matmul_without_a_bias_or_a_missing_node_is_refused(tmp_path):
    model, out = str(tmp_path / "head.onnx"), str(tmp_path / "out.onnx")
    head(model, with_bias=False)
    refused = fold(model, out, "--matmul", "head")
    assert refused.returncode != 0 and "does not go to one Add" in refused.stderr
    missing = fold(model, out, "--matmul", "nowhere")
    assert missing.returncode != 0 and "no MatMul named nowhere" in missing.stderr
    assert not os.path.exists(out)
