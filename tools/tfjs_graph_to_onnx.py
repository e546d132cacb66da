"""Convert a TensorFlow.js *graph model* (model.json + weight shards) to ONNX without TensorFlow.

Why: the default pack's detector ships only as a tfjs graph, and TensorFlow is far too heavy for a user's
setup. This converter needs numpy and onnx alone. It covers the op subset that convolutional detectors
exported by tfjs use (fused convolutions, depthwise convolutions, unfused batch-norm arithmetic, hard-swish
and clip-by-value, squeeze-excite means, bilinear upsampling, concatenation, and a classifier head of
global pooling, dense layers and softmax) and rewrites the NHWC graph as NCHW, which is what ONNX Runtime
runs fastest on CPU. The graph is cut at the requested outputs, so in-graph post-processing (TopK, Gather)
is left to the caller.

Usage: tfjs_graph_to_onnx.py MODEL_JSON OUT_ONNX --output TF_NODE=ONNX_NAME [...] [--input-name NAME]
"""

import argparse
import base64
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13

# NHWC axis -> NCHW axis, for axes given by the TF graph (negative axes counted from the end).
NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1, -2: 3, -3: 2, -4: 0}


def load_weights(model_json, model_dir):
    """Read every weight shard named by the manifest, dequantising as tfjs does."""
    weights = {}
    for group in model_json["weightsManifest"]:
        data = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = spec["shape"]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant and quant["dtype"] == "float16":
                array = np.frombuffer(data, np.float16, count, offset).astype(np.float32)
                offset += 2 * count
            elif quant and quant["dtype"] in ("uint8", "uint16"):
                dtype = np.uint8 if quant["dtype"] == "uint8" else np.uint16
                raw = np.frombuffer(data, dtype, count, offset)
                offset += raw.itemsize * count
                array = raw.astype(np.float32) * quant["scale"] + quant["min"]
            elif spec["dtype"] == "float32":
                array = np.frombuffer(data, np.float32, count, offset)
                offset += 4 * count
            elif spec["dtype"] == "int32":
                array = np.frombuffer(data, np.int32, count, offset)
                offset += 4 * count
            else:
                raise ValueError(f"unsupported weight {spec['name']}: {spec['dtype']} {quant}")
            weights[spec["name"]] = array.reshape(shape)
        if offset != len(data):
            raise ValueError(f"weight shards hold {len(data)} bytes but the manifest describes {offset}")
    return weights


def attr_string(node, key):
    return base64.b64decode(node["attr"][key]["s"]).decode()


def attr_ints(node, key):
    return [int(i) for i in node["attr"][key]["list"].get("i", [])]


def fused_ops(node):
    listed = node.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])
    return [base64.b64decode(s).decode() for s in listed]


class Converter:
    def __init__(self, model_json, weights):
        self.nodes = {n["name"]: n for n in model_json["modelTopology"]["node"]}
        self.weights = weights
        self.onnx_nodes = []
        self.initializers = {}
        self.converted = {}  # tf tensor name -> onnx tensor name
        self.flat = set()  # onnx tensors of shape [N, C] (after global pooling); the rest are NCHW maps
        self.inputs = []

    def constant(self, name, array):
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(np.asarray(array), name)
        return name

    def emit(self, op, inputs, name, **attrs):
        self.onnx_nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def const_value(self, tf_name):
        base = tf_name.split(":")[0]
        if base not in self.weights:
            raise ValueError(f"{tf_name} is expected to be a constant")
        return self.weights[base]

    def tensor(self, tf_name):
        """The ONNX tensor for a TF tensor, converting its producer first (iteratively, graphs are deep)."""
        stack = [tf_name.split(":")[0]]
        while stack:
            name = stack[-1]
            if name in self.converted:
                stack.pop()
                continue
            node = self.nodes[name]
            pending = [i.split(":")[0] for i in node.get("input", [])
                       if i.split(":")[0] not in self.converted and i.split(":")[0] not in self.weights]
            if pending:
                stack.extend(pending)
                continue
            self.converted[name] = self.convert_node(node)
            stack.pop()
        return self.converted[tf_name.split(":")[0]]

    def operand(self, tf_name, flat=False):
        """A node input that may be a constant (a scalar, or one value per channel) or a computed tensor."""
        base = tf_name.split(":")[0]
        if base in self.weights:
            value = self.weights[base].astype(np.float32)
            if value.ndim == 0 or value.size == 1:
                return self.constant(base, value.reshape(()))
            if value.ndim != 1:
                raise ValueError(f"only scalar or per-channel constants are supported in arithmetic ({tf_name})")
            # TF broadcasts a [C] vector over the last (channel) axis; in NCHW that is [C, 1, 1].
            return self.constant(base, value if flat else value.reshape(-1, 1, 1))
        return self.converted[base]

    def elementwise(self, op, name, inputs):
        flat = any(self.converted.get(i.split(":")[0]) in self.flat for i in inputs)
        return self.mark(self.emit(op, [self.operand(i, flat) for i in inputs], name), flat)

    def mark(self, onnx_name, flat):
        if flat:
            self.flat.add(onnx_name)
        return onnx_name

    def convert_node(self, node):
        op, name, inputs = node["op"], node["name"], node.get("input", [])
        if op == "Placeholder":
            dims = [int(d["size"]) for d in node["attr"]["shape"]["shape"]["dim"]]
            n, h, w, c = dims
            self.inputs.append(helper.make_tensor_value_info(self.input_name, TensorProto.FLOAT,
                                                             [n if n > 0 else "batch", c, h, w]))
            return self.input_name
        if op in ("_FusedConv2D", "Conv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"):
            return self.convolution(node)
        if op in ("Mul", "Add", "Sub"):
            return self.elementwise(op, name, inputs)
        if op in ("Minimum", "Maximum"):
            return self.elementwise(op[:3], name, inputs)
        if op == "Relu6":
            source = self.tensor(inputs[0])
            return self.mark(self.emit("Clip", [source, self.constant("zero", np.float32(0)),
                                                self.constant("six", np.float32(6))], name), source in self.flat)
        if op in ("Relu", "Sigmoid", "Identity", "Softmax"):
            source = self.tensor(inputs[0])
            if op == "Softmax" and source not in self.flat:
                raise ValueError(f"{name}: Softmax over a feature map's channels is not supported")
            return self.mark(self.emit(op, [source], name), source in self.flat)
        if op == "Mean":
            axes = sorted(NHWC_TO_NCHW_AXIS[int(a)] for a in np.atleast_1d(self.const_value(inputs[1])))
            keep = node.get("attr", {}).get("keep_dims", {}).get("b", False)
            if not keep and axes != [2, 3]:
                raise ValueError(f"{name}: only global pooling (over H and W) may drop dimensions")
            mean = self.emit("ReduceMean", [self.tensor(inputs[0])], name, axes=axes, keepdims=int(keep))
            return self.mark(mean, not keep)
        if op == "_FusedMatMul":
            return self.dense(node)
        if op == "ConcatV2":
            axis = NHWC_TO_NCHW_AXIS[int(self.const_value(inputs[-1]))]
            return self.emit("Concat", [self.tensor(i) for i in inputs[:-1]], name, axis=axis)
        if op == "ResizeBilinear":
            return self.resize_bilinear(node)
        raise ValueError(f"unsupported op {op} at {name}")

    def convolution(self, node):
        op, name, inputs = node["op"], node["name"], node["input"]
        depthwise = "Depthwise" in op
        kernel = self.const_value(inputs[1]).astype(np.float32)
        if depthwise:  # [kh, kw, in, mult] -> [in*mult, 1, kh, kw], grouped by input channel
            kh, kw, cin, mult = kernel.shape
            onnx_kernel = kernel.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
            group = cin
        else:  # [kh, kw, in, out] -> [out, in, kh, kw]
            kh, kw, _, _ = kernel.shape
            onnx_kernel = kernel.transpose(3, 2, 0, 1)
            group = 1
        conv_inputs = [self.tensor(inputs[0]), self.constant(name + "/kernel", np.ascontiguousarray(onnx_kernel))]
        extra = fused_ops(node)
        if extra:
            if extra[0] != "BiasAdd":
                raise ValueError(f"{name}: unsupported fused ops {extra}")
            conv_inputs.append(self.constant(name + "/bias", self.const_value(inputs[2]).astype(np.float32)))
        strides = attr_ints(node, "strides")[1:3]
        dilations = attr_ints(node, "dilations")[1:3] if "dilations" in node["attr"] else [1, 1]
        padding = attr_string(node, "padding")
        attrs = dict(kernel_shape=[kh, kw], strides=strides, dilations=dilations, group=group)
        if padding == "SAME":
            attrs["auto_pad"] = "SAME_UPPER"  # TF puts the odd padding pixel at the end, as SAME_UPPER does
        elif padding == "VALID":
            attrs["pads"] = [0, 0, 0, 0]
        else:
            raise ValueError(f"{name}: unsupported padding {padding}")
        activation = extra[1:]
        conv_name = name if not activation else name + "/conv"
        out = self.emit("Conv", conv_inputs, conv_name, **attrs)
        if not activation:
            return out
        if activation == ["Relu"]:
            return self.emit("Relu", [out], name)
        if activation == ["Relu6"]:
            return self.emit("Clip", [out, self.constant("zero", np.float32(0)), self.constant("six", np.float32(6))], name)
        raise ValueError(f"{name}: unsupported fused activation {activation}")

    def dense(self, node):
        """A fully connected layer on pooled features: MatMul + BiasAdd (+ Relu) as one Gemm."""
        name, inputs, attrs = node["name"], node["input"], node.get("attr", {})
        source = self.tensor(inputs[0])
        if source not in self.flat:
            raise ValueError(f"{name}: a dense layer needs pooled [N, C] features")
        if attrs.get("transpose_a", {}).get("b", False):
            raise ValueError(f"{name}: transpose_a is not supported")
        extra = fused_ops(node)
        if not extra or extra[0] != "BiasAdd" or extra[1:] not in ([], ["Relu"]):
            raise ValueError(f"{name}: unsupported fused ops {extra}")
        kernel = self.const_value(inputs[1]).astype(np.float32)
        bias = self.const_value(inputs[2]).astype(np.float32)
        trans_b = int(attrs.get("transpose_b", {}).get("b", False))
        gemm_name = name if len(extra) == 1 else name + "/gemm"
        out = self.emit("Gemm", [source, self.constant(name + "/kernel", kernel), self.constant(name + "/bias", bias)],
                        gemm_name, transB=trans_b)
        if len(extra) == 2:
            out = self.emit("Relu", [out], name)
        return self.mark(out, True)

    def resize_bilinear(self, node):
        name, inputs = node["name"], node["input"]
        attrs = node.get("attr", {})
        align = attrs.get("align_corners", {}).get("b", False)
        half = attrs.get("half_pixel_centers", {}).get("b", False)
        mode = "align_corners" if align else ("half_pixel" if half else "asymmetric")
        height, width = (int(v) for v in self.const_value(inputs[1]))
        source = self.tensor(inputs[0])
        # sizes = [N, C] of the input (known only at run time) followed by the requested H, W
        shape = self.emit("Shape", [source], name + "/shape")
        batch_channels = self.emit("Slice", [shape, self.constant("slice_start0", np.array([0], np.int64)),
                                             self.constant("slice_end2", np.array([2], np.int64))], name + "/nc")
        sizes = self.emit("Concat", [batch_channels, self.constant(name + "/hw", np.array([height, width], np.int64))],
                          name + "/sizes", axis=0)
        return self.emit("Resize", [source, "", "", sizes], name, mode="linear",
                         coordinate_transformation_mode=mode)

    def build(self, outputs, input_name, graph_name):
        self.input_name = input_name
        results = []
        for tf_name, onnx_name in outputs:
            produced = self.tensor(tf_name)
            if onnx_name in self.converted.values() or onnx_name in self.initializers:
                raise ValueError(f"output name {onnx_name!r} is already a tensor of the graph; choose another")
            self.onnx_nodes.append(helper.make_node("Identity", [produced], [onnx_name], name=onnx_name + "/out"))
            rank = 2 if produced in self.flat else 4
            results.append(helper.make_tensor_value_info(onnx_name, TensorProto.FLOAT, [None] * rank))
        graph = helper.make_graph(self.onnx_nodes, graph_name, self.inputs, results,
                                  initializer=list(self.initializers.values()))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="vista-tfjs-graph-to-onnx")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def convert(model_json_path, outputs, input_name="images"):
    with open(model_json_path) as f:
        model_json = json.load(f)
    if model_json.get("format") != "graph-model":
        raise ValueError(f"{model_json_path} is not a tfjs graph model")
    weights = load_weights(model_json, os.path.dirname(model_json_path))
    name = os.path.splitext(os.path.basename(model_json_path))[0]
    return Converter(model_json, weights).build(outputs, input_name, name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_json")
    parser.add_argument("out")
    parser.add_argument("--output", action="append", required=True, help="TF_NODE=ONNX_NAME")
    parser.add_argument("--input-name", default="images")
    args = parser.parse_args(argv)
    outputs = [tuple(o.split("=", 1)) for o in args.output]
    model = convert(args.model_json, outputs, args.input_name)
    onnx.save(model, args.out)
    print(f"wrote {args.out}: {len(model.graph.node)} nodes", file=sys.stderr)


if __name__ == "__main__":
    main()
