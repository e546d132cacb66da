"""The torch-free EfficientNet-Lite0 converter, checked on a checkpoint written here in PyTorch's legacy
(pre-1.6) format with random weights, some stored with TensorFlow-layout strides as the shipped file does,
against a NumPy forward pass of the network (TF "same" padding, batch norm, ReLU6, residuals)."""

import collections
import os
import pickle
import struct
import sys
import types

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
sys.path.insert(0, os.path.dirname(__file__))
import pth_efficientnet_to_onnx as converter  # noqa: E402
from tf_reference import tf_conv  # noqa: E402

RNG = np.random.default_rng(5)
# EfficientNet-B0's stages: repeats, stride, expansion, kernel, output channels.
STAGES = [(1, 1, 1, 3, 16), (2, 2, 6, 3, 24), (2, 2, 6, 5, 40), (3, 2, 6, 3, 80), (3, 1, 6, 5, 112),
          (4, 2, 6, 5, 192), (1, 1, 6, 3, 320)]


def fake_torch():
    """Just enough of `torch` for pickle to name its globals."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    storage = type("FloatStorage", (), {"__module__": "torch"})

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch.FloatStorage, torch.LongStorage = storage, type("LongStorage", (), {"__module__": "torch"})
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    sys.modules.update({"torch": torch, "torch._utils": utils})
    return torch, utils


class Storage:
    def __init__(self, key, kind, data):
        self.key, self.kind, self.data = key, kind, data


class Tensor:
    def __init__(self, storage, shape, strides):
        self.storage, self.shape, self.strides = storage, shape, strides

    def __reduce__(self):
        return sys.modules["torch._utils"]._rebuild_tensor_v2, (
            self.storage, 0, self.shape, self.strides, False, collections.OrderedDict())


def write_legacy_checkpoint(path, tensors, tf_layout):
    """torch.save's legacy format. Tensors named in `tf_layout` (4-d) are stored as HWIO memory with
    matching strides, as the shipped checkpoint stores its convolutions."""
    torch, _ = fake_torch()
    storages, state = [], collections.OrderedDict()
    for name, value in tensors.items():
        key = str(len(storages))
        if name in tf_layout:
            memory = np.ascontiguousarray(value.transpose(2, 3, 1, 0))  # O,I,H,W → H,W,I,O
            o, i, h, w = value.shape
            strides = (1, o, w * i * o, i * o)
        else:
            memory = np.array(value, order="C")  # keeps 0-d tensors 0-d
            strides = tuple(s // memory.itemsize for s in memory.strides)
        kind = torch.LongStorage if memory.dtype == np.int64 else torch.FloatStorage
        storages.append(Storage(key, kind, memory))
        state[name] = Tensor(storages[-1], value.shape, strides)

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", obj.kind, obj.key, "cpu", obj.data.size, None)
            return None

    with open(path, "wb") as f:
        pickle.dump(0x1950a86a20f9469cfc6c, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, f, protocol=2)
        Writer(f, protocol=2).dump(state)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.data.size))
            f.write(s.data.tobytes())


def random_lite0():
    tensors, tf_layout = collections.OrderedDict(), set()

    def conv(name, shape, tf=False):
        tensors[f"{name}.weight"] = RNG.normal(0, np.sqrt(2 / np.prod(shape[1:])), shape).astype(np.float32)
        if tf:
            tf_layout.add(f"{name}.weight")

    def bn(name, channels):
        tensors[f"{name}.weight"] = RNG.uniform(0.5, 1.5, channels).astype(np.float32)
        tensors[f"{name}.bias"] = RNG.normal(0, 0.1, channels).astype(np.float32)
        tensors[f"{name}.running_mean"] = RNG.normal(0, 0.1, channels).astype(np.float32)
        tensors[f"{name}.running_var"] = RNG.uniform(0.5, 1.5, channels).astype(np.float32)
        tensors[f"{name}.num_batches_tracked"] = np.array(0, np.int64)

    conv("_conv_stem", (32, 3, 3, 3), tf=True)
    bn("_bn0", 32)
    channels, index = 32, 0
    for repeats, _, expansion, kernel, out in STAGES:
        for _ in range(repeats):
            block, wide = f"_blocks.{index}", channels * expansion
            if expansion != 1:
                conv(f"{block}._expand_conv", (wide, channels, 1, 1), tf=True)
                bn(f"{block}._bn0", wide)
            conv(f"{block}._depthwise_conv", (wide, 1, kernel, kernel))
            bn(f"{block}._bn1", wide)
            conv(f"{block}._project_conv", (out, wide, 1, 1), tf=True)
            bn(f"{block}._bn2", out)
            channels, index = out, index + 1
    conv("_conv_head", (1280, 320, 1, 1))
    bn("_bn1", 1280)
    tensors["_fc.weight"] = RNG.normal(0, 0.03, (1000, 1280)).astype(np.float32)
    tensors["_fc.bias"] = RNG.normal(0, 0.1, 1000).astype(np.float32)
    return tensors, tf_layout


def reference(t, x):
    """The network in NumPy, NHWC, batch norm unfolded (eps 1e-3)."""
    def bn(y, name):
        return (y - t[f"{name}.running_mean"]) / np.sqrt(t[f"{name}.running_var"] + 1e-3) \
            * t[f"{name}.weight"] + t[f"{name}.bias"]

    def conv(y, name, stride=1, depthwise=False):
        w = t[f"{name}.weight"].transpose(2, 3, 1, 0)  # → HWIO, or HW1C for depthwise
        if depthwise:
            w = w.transpose(0, 1, 3, 2)  # HWC1
        return tf_conv(y, w, stride, "SAME", depthwise=depthwise)

    relu6 = lambda y: np.clip(y, 0, 6)  # noqa: E731
    y = relu6(bn(conv(x, "_conv_stem", 2), "_bn0"))
    index = 0
    for repeats, stride, expansion, _, _ in STAGES:
        for repeat in range(repeats):
            block, inputs = f"_blocks.{index}", y
            if expansion != 1:
                y = relu6(bn(conv(y, f"{block}._expand_conv"), f"{block}._bn0"))
            y = relu6(bn(conv(y, f"{block}._depthwise_conv", stride if repeat == 0 else 1, depthwise=True),
                         f"{block}._bn1"))
            y = bn(conv(y, f"{block}._project_conv"), f"{block}._bn2")
            if repeat > 0:
                y = y + inputs
            index += 1
    y = relu6(bn(conv(y, "_conv_head"), "_bn1"))
    features = y.mean(axis=(1, 2))
    return features @ t["_fc.weight"].T + t["_fc.bias"], features


def test_a_legacy_checkpoint_converts_to_the_same_network(tmp_path):
    tensors, tf_layout = random_lite0()
    checkpoint, onnx_path = tmp_path / "lite0.pth", tmp_path / "lite0.onnx"
    write_legacy_checkpoint(checkpoint, tensors, tf_layout)
    read = converter.read_state_dict(str(checkpoint))
    assert set(read) == set(tensors)
    assert np.array_equal(read["_conv_stem.weight"], tensors["_conv_stem.weight"]), "strided storage read back"
    converter.main(str(checkpoint), str(onnx_path))
    x = RNG.normal(0, 1, (1, 40, 48, 3)).astype(np.float32)  # sides that need uneven "same" padding
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits, features = session.run(["logits", "features"], {"input": x.transpose(0, 3, 1, 2)})
    want_logits, want_features = reference(tensors, x)
    assert np.allclose(features, want_features, rtol=1e-3, atol=1e-3)
    assert np.allclose(logits, want_logits, rtol=1e-3, atol=1e-3)
