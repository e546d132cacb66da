"""The TF-free tfjs-graph converter, checked against a NumPy implementation of TensorFlow's NHWC
semantics on a small generated graph that uses every op the converter supports."""

import base64
import os
import sys

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import tfjs_graph_to_onnx as converter  # noqa: E402
from tf_reference import sigmoid, tf_conv, tf_resize_bilinear, write_tfjs_model  # noqa: E402

RNG = np.random.default_rng(7)


class GraphBuilder:
    """Writes a tfjs graph model (model.json + one weight shard) the way tfjs-converter does."""

    def __init__(self):
        self.nodes, self.specs, self.blobs, self.values = [], [], [], {}

    def const(self, name, value, float16=False):
        value = np.asarray(value)
        spec = {"name": name, "shape": list(value.shape), "dtype": "int32" if value.dtype.kind == "i" else "float32"}
        if float16:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            self.blobs.append(value.astype(np.float16).tobytes())
            value = value.astype(np.float16).astype(np.float32)  # what the reference must use
        else:
            self.blobs.append(value.astype(np.int32 if spec["dtype"] == "int32" else np.float32).tobytes())
        self.specs.append(spec)
        self.nodes.append({"name": name, "op": "Const", "attr": {}})
        self.values[name] = value
        return name

    def node(self, name, op, inputs, **attr):
        self.nodes.append({"name": name, "op": op, "input": inputs, "attr": attr})
        return name

    def write(self, directory):
        model = {"format": "graph-model", "modelTopology": {"node": self.nodes}}
        return write_tfjs_model(directory, model, self.specs, self.blobs)


def placeholder(g, *dims):
    return g.node("images", "Placeholder", [], shape={"shape": {"dim": [{"size": str(d)} for d in dims]}})


def b64(text):
    return base64.b64encode(text.encode()).decode()


def conv_attr(stride, padding, fused=()):
    attr = {"strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}}, "padding": {"s": b64(padding)},
            "data_format": {"s": b64("NHWC")}, "dilations": {"list": {"i": ["1", "1", "1", "1"]}}}
    if fused:
        attr["fused_ops"] = {"list": {"s": [b64(op) for op in fused]}}
        attr["num_args"] = {"i": "1"}
    return attr


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    g = GraphBuilder()
    w = lambda *shape: RNG.normal(0, 0.5, shape).astype(np.float32)
    x = placeholder(g, 1, 9, 9, 3)
    c1 = g.node("c1", "_FusedConv2D", [x, g.const("w1", w(3, 3, 3, 4), float16=True), g.const("b1", w(4))],
                **conv_attr(2, "SAME", ("BiasAdd", "Relu")))
    mul = g.node("hs_mul", "Mul", [g.const("sixth", np.float32(1 / 6)), c1])
    add = g.node("hs_add", "Add", [c1, g.const("three", np.float32(3))])
    relu6 = g.node("hs_relu6", "Relu6", [add])
    hswish = g.node("hs", "Mul", [mul, relu6])
    dw = g.node("dw", "FusedDepthwiseConv2dNative", [hswish, g.const("wd", w(3, 3, 4, 1)), g.const("bd", w(4))],
                **conv_attr(1, "SAME", ("BiasAdd",)))
    mean = g.node("se_mean", "Mean", [dw, g.const("axes", np.array([1, 2], np.int32))], keep_dims={"b": True})
    se = g.node("se_conv", "_FusedConv2D", [mean, g.const("wse", w(1, 1, 4, 4)), g.const("bse", w(4))],
                **conv_attr(1, "SAME", ("BiasAdd",)))
    gate = g.node("se_gate", "Mul", [dw, g.node("se_sigmoid", "Sigmoid", [se])])
    dw2 = g.node("dw2", "DepthwiseConv2dNative", [gate, g.const("wd2", w(3, 3, 4, 2))], **conv_attr(1, "SAME"))
    pw = g.node("pw", "_FusedConv2D", [dw2, g.const("wp", w(1, 1, 8, 4)), g.const("bp", w(4))],
                **conv_attr(1, "VALID", ("BiasAdd",)))
    up = g.node("up", "ResizeBilinear", [pw, g.const("size", np.array([9, 9], np.int32))],
                align_corners={"b": False}, half_pixel_centers={"b": False})
    cat = g.node("cat", "ConcatV2", [up, x, g.const("axis", np.int32(3))])
    g.node("tf_features", "Identity", [g.node("cat_relu", "Relu", [cat])])
    g.node("tf_head", "Conv2D", ["cat_relu", g.const("wh", w(3, 3, 7, 2))], **conv_attr(2, "SAME"))
    path = g.write(str(tmp_path_factory.mktemp("tfjs")))
    model = converter.convert(path, [("tf_features", "features"), ("tf_head", "head")])
    return g.values, model


def reference(v, x):
    c1 = np.maximum(tf_conv(x, v["w1"], 2, "SAME") + v["b1"], 0)
    hswish = (v["sixth"] * c1) * np.clip(c1 + 3, 0, 6)
    dw = tf_conv(hswish, v["wd"], 1, "SAME", depthwise=True) + v["bd"]
    se = tf_conv(dw.mean(axis=(1, 2), keepdims=True), v["wse"], 1, "SAME") + v["bse"]
    gated = dw * sigmoid(se)
    dw2 = tf_conv(gated, v["wd2"], 1, "SAME", depthwise=True)
    pw = tf_conv(dw2, v["wp"], 1, "VALID") + v["bp"]
    features = np.maximum(np.concatenate([tf_resize_bilinear(pw, 9, 9), x], axis=3), 0)
    return features, tf_conv(features, v["wh"], 2, "SAME")


def test_converted_graph_matches_tensorflow_semantics(converted):
    values, model = converted
    x = RNG.uniform(0, 255, (1, 9, 9, 3)).astype(np.float32) / 64
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    features, head = session.run(["features", "head"], {"images": x.transpose(0, 3, 1, 2)})
    want_features, want_head = reference(values, x)
    assert features.shape == (1, 7, 9, 9) and head.shape == (1, 2, 5, 5)
    np.testing.assert_allclose(features.transpose(0, 2, 3, 1), want_features, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(head.transpose(0, 2, 3, 1), want_head, rtol=1e-4, atol=1e-4)


def test_conversion_is_deterministic(converted, tmp_path):
    _, model = converted
    assert model.SerializeToString() == model.SerializeToString()
    assert {o.name for o in model.graph.output} == {"features", "head"}
    assert [i.name for i in model.graph.input] == ["images"]


def test_a_classifier_head_matches_tensorflow_semantics(tmp_path):
    """Unfused batch norm (per-channel Mul/Add), clip-by-value, global pooling and dense layers."""
    g = GraphBuilder()
    w = lambda *shape: RNG.normal(0, 0.5, shape).astype(np.float32)
    x = placeholder(g, -1, 6, 6, 3)
    conv = g.node("conv", "DepthwiseConv2dNative", [x, g.const("wd", w(3, 3, 3, 1))], **conv_attr(1, "SAME"))
    bn = g.node("bn_add", "Add", [g.node("bn_mul", "Mul", [conv, g.const("scale", w(3))]), g.const("shift", w(3))])
    low = g.node("clip_min", "Minimum", [g.node("relu", "Relu", [bn]), g.const("six", np.float32(6))])
    clipped = g.node("clip", "Maximum", [low, g.const("zero", np.float32(0))])
    pooled = g.node("pool", "Mean", [clipped, g.const("hw", np.array([1, 2], np.int32))], keep_dims={"b": False})
    fused = {"fused_ops": {"list": {"s": [b64("BiasAdd"), b64("Relu")]}}, "transpose_b": {"b": False}}
    hidden = g.node("hidden", "_FusedMatMul", [pooled, g.const("wh", w(3, 5)), g.const("bh", w(5))], **fused)
    fused = {"fused_ops": {"list": {"s": [b64("BiasAdd")]}}}
    logits = g.node("logits", "_FusedMatMul", [hidden, g.const("wo", w(5, 4)), g.const("bo", w(4))], **fused)
    g.node("tf_probs", "Softmax", [g.node("shifted", "Add", [logits, g.const("bias4", w(4))])])
    model = converter.convert(g.write(str(tmp_path)), [("tf_probs", "probs"), ("pool", "pooled")])
    v = g.values
    xs = RNG.uniform(0, 1, (2, 6, 6, 3)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    probs, pooled_out = session.run(["probs", "pooled"], {"images": xs.transpose(0, 3, 1, 2)})
    bn_ref = tf_conv(xs, v["wd"], 1, "SAME", depthwise=True) * v["scale"] + v["shift"]
    pooled_ref = np.clip(np.maximum(bn_ref, 0), 0, 6).mean(axis=(1, 2))
    logits_ref = np.maximum(pooled_ref @ v["wh"] + v["bh"], 0) @ v["wo"] + v["bo"] + v["bias4"]
    probs_ref = np.exp(logits_ref) / np.exp(logits_ref).sum(axis=1, keepdims=True)
    assert probs.shape == (2, 4)
    np.testing.assert_allclose(pooled_out, pooled_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(probs, probs_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("node,op,output,error", [
    ("relu", "Relu", "relu", "already a tensor"),  # an output name that collides with a graph tensor
    ("erf", "Erf", "out", "unsupported op Erf"),  # an op the converter does not know
])
def test_bad_graphs_are_refused_with_a_clear_error(tmp_path, node, op, output, error):
    g = GraphBuilder()
    g.node(node, op, [placeholder(g, 1, 4, 4, 1)])
    with pytest.raises(ValueError, match=error):
        converter.convert(g.write(str(tmp_path)), [(node, output)])


def test_weight_shards_must_match_the_manifest(tmp_path):
    g = GraphBuilder()
    placeholder(g, 1)
    g.const("w", np.ones(4, np.float32))
    path = g.write(str(tmp_path))
    with open(os.path.join(tmp_path, "weights.bin"), "ab") as f:
        f.write(b"\0" * 8)
    with pytest.raises(ValueError, match="weight shards hold"):
        converter.convert(path, [("images", "out")])
