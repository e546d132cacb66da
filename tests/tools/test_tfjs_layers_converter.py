"""The TF-free tfjs layers-model (Keras) converter, checked against NumPy implementations of the Keras
layers on a small generated model that uses every layer the converter supports, with uint8-quantized
weights as nsfwjs ships them."""

import os
import sys

import numpy as np
import onnxruntime as ort
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
sys.path.insert(0, os.path.dirname(__file__))
import tfjs_layers_to_onnx as converter  # noqa: E402
from tf_reference import tf_conv, write_tfjs_model  # noqa: E402

RNG = np.random.default_rng(11)


class KerasBuilder:
    def __init__(self):
        self.layers, self.specs, self.blobs, self.values = [], [], [], {}

    def weight(self, name, shape, quantized=True):
        value = RNG.normal(0, 0.4, shape).astype(np.float32)
        spec = {"name": name, "shape": list(shape), "dtype": "float32"}
        if quantized:
            low, scale = float(value.min()), float((value.max() - value.min()) / 255)
            codes = np.round((value - low) / scale).astype(np.uint8)
            spec["quantization"] = {"dtype": "uint8", "min": low, "scale": scale}
            self.blobs.append(codes.tobytes())
            value = codes.astype(np.float32) * scale + low  # what the reference must use
        else:
            self.blobs.append(value.tobytes())
        self.specs.append(spec)
        self.values[name] = value

    def layer(self, name, kind, inputs, **config):
        self.layers.append({"name": name, "class_name": kind, "config": {"name": name, **config},
                            "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else []})
        return name

    def write(self, directory):
        config = {"layers": self.layers, "input_layers": [["input", 0, 0]],
                  "output_layers": [[self.layers[-1]["name"], 0, 0]]}
        model = {"format": "layers-model", "modelTopology": {"model_config": {"class_name": "Model", "config": config}}}
        return write_tfjs_model(directory, model, self.specs, self.blobs)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    k = KerasBuilder()
    x = k.layer("input", "InputLayer", [], batch_input_shape=[None, 9, 9, 3])
    pad = k.layer("pad", "ZeroPadding2D", [x], padding=[[0, 1], [0, 1]])
    k.weight("conv/kernel", (3, 3, 3, 4))
    conv = k.layer("conv", "Conv2D", [pad], strides=[2, 2], padding="valid", activation="linear", use_bias=False)
    for part in ("gamma", "beta", "moving_mean"):
        k.weight(f"bn/{part}", (4,))
    k.values["bn/moving_variance"] = np.abs(RNG.normal(1, 0.2, 4)).astype(np.float32)
    k.specs.append({"name": "bn/moving_variance", "shape": [4], "dtype": "float32"})
    k.blobs.append(k.values["bn/moving_variance"].tobytes())
    bn = k.layer("bn", "BatchNormalization", [conv], epsilon=0.001, center=True, scale=True)
    relu6 = k.layer("relu6", "ReLU", [bn], max_value=6)
    k.weight("dw/depthwise_kernel", (3, 3, 4, 1))
    dw = k.layer("dw", "DepthwiseConv2D", [relu6], strides=[1, 1], padding="same", activation="linear", use_bias=False)
    add = k.layer("add", "Add", [dw, relu6])
    k.weight("pw/kernel", (1, 1, 4, 6), quantized=False)
    k.weight("pw/bias", (6,), quantized=False)
    pw = k.layer("pw", "Conv2D", [add], strides=[1, 1], padding="same", activation="relu", use_bias=True)
    pool = k.layer("pool", "AveragePooling2D", [pw], pool_size=[2, 2], strides=[2, 2], padding="valid")
    flat = k.layer("flat", "Flatten", [pool])
    k.weight("dense/kernel", (24, 5))
    k.weight("dense/bias", (5,))
    dense = k.layer("dense", "Dense", [flat], activation="linear", use_bias=True)
    drop = k.layer("drop", "Dropout", [dense], rate=0.5)
    k.layer("out", "Activation", [drop], activation="softmax")
    path = k.write(str(tmp_path_factory.mktemp("keras")))
    return k.values, converter.convert(path)


def reference(v, x):
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    conv = tf_conv(padded, v["conv/kernel"], 2, "VALID")
    bn = (conv - v["bn/moving_mean"]) / np.sqrt(v["bn/moving_variance"] + 0.001) * v["bn/gamma"] + v["bn/beta"]
    relu6 = np.clip(bn, 0, 6)
    added = tf_conv(relu6, v["dw/depthwise_kernel"], 1, "SAME", depthwise=True) + relu6
    pw = np.maximum(tf_conv(added, v["pw/kernel"], 1, "SAME") + v["pw/bias"], 0)
    n, h, w, c = pw.shape
    pooled = pw.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    logits = pooled.reshape(n, -1) @ v["dense/kernel"] + v["dense/bias"]  # Keras flattens H, W, C
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_converted_layers_model_matches_keras_semantics(converted):
    values, model = converted
    x = RNG.uniform(0, 1, (2, 9, 9, 3)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"images": x.transpose(0, 3, 1, 2)})
    assert probabilities.shape == (2, 5)
    np.testing.assert_allclose(probabilities, reference(values, x), rtol=1e-4, atol=1e-5)


def test_unknown_layers_are_named(tmp_path):
    k = KerasBuilder()
    x = k.layer("input", "InputLayer", [], batch_input_shape=[None, 4, 4, 1])
    k.layer("lstm", "LSTM", [x])
    with pytest.raises(ValueError, match="unsupported layer LSTM"):
        converter.convert(k.write(str(tmp_path)))
