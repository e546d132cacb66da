"""Convert a TensorFlow.js *layers model* (a Keras functional model: model.json + weight shards) to ONNX
without TensorFlow, rewriting NHWC as NCHW. Covers the layers of MobileNet-style classifiers:
InputLayer, ZeroPadding2D, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Activation, Add,
AveragePooling2D, GlobalAveragePooling2D, Flatten, Dense, Dropout.

Some packages (nsfwjs) ship the model and its weights as JavaScript bundles; `--js-model`/`--js-weights`
evaluates them with node and converts what they export.

Usage: tfjs_layers_to_onnx.py MODEL_JSON OUT_ONNX [--input-name images] [--output-name probabilities]
       tfjs_layers_to_onnx.py --js-model model.min.js --js-weights shard.min.js OUT_ONNX
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tfjs_graph_to_onnx import OPSET, load_weights

ACTIVATIONS = {"linear": None, "relu": "Relu", "softmax": "Softmax", "sigmoid": "Sigmoid"}


def js_bundles_to_json(js_model, js_weights, directory):
    """Evaluates the bundles with node; writes model.json and weights.bin into `directory`."""
    script = (
        "const fs=require('fs');const [m,w,dir]=process.argv.slice(1);"
        "const model=require(m);const shard=require(w);"
        "model.format='layers-model';model.weightsManifest.forEach(g=>g.paths=['weights.bin']);"
        "fs.writeFileSync(dir+'/model.json',JSON.stringify(model));"
        "fs.writeFileSync(dir+'/weights.bin',Buffer.from(shard,'base64'));"
    )
    subprocess.run(["node", "-e", script, os.path.abspath(js_model), os.path.abspath(js_weights), directory],
                   check=True)
    return os.path.join(directory, "model.json")


class LayersConverter:
    def __init__(self, model_json, weights, input_name, output_name):
        config = model_json["modelTopology"]["model_config"]["config"]
        self.layers = {layer["name"]: layer for layer in config["layers"]}
        self.order = [layer["name"] for layer in config["layers"]]
        self.inputs = config["input_layers"]
        self.outputs = config["output_layers"]
        self.weights = weights
        self.input_name, self.output_name = input_name, output_name
        self.nodes, self.initializers, self.graph_inputs = [], [], []

    def const(self, name, array, dtype=np.float32):
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def emit(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def weight(self, layer, key):
        return self.weights[f"{layer}/{key}"].astype(np.float32)

    def activation(self, source, name, activation):
        op = ACTIVATIONS[activation]
        if op is None:
            return self.emit("Identity", [source], name)
        return self.emit(op, [source], name, **({"axis": 1} if op == "Softmax" else {}))

    def convert_layer(self, layer, sources):
        kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
        if kind == "InputLayer":
            _, h, w, c = cfg["batch_input_shape"]
            self.graph_inputs.append(helper.make_tensor_value_info(self.input_name, TensorProto.FLOAT, ["batch", c, h, w]))
            return self.input_name
        src = sources[0]
        if kind == "ZeroPadding2D":
            (top, bottom), (left, right) = cfg["padding"]
            pads = self.const(name + "/pads", [0, 0, top, left, 0, 0, bottom, right], np.int64)
            return self.emit("Pad", [src, pads], name, mode="constant")
        if kind in ("Conv2D", "DepthwiseConv2D"):
            if kind == "Conv2D":
                kernel = self.weight(name, "kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
                group = 1
            else:
                k = self.weight(name, "depthwise_kernel")  # [kh, kw, C, M]
                kernel = k.transpose(2, 3, 0, 1).reshape(k.shape[2] * k.shape[3], 1, k.shape[0], k.shape[1])
                group = k.shape[2]
            inputs = [src, self.const(name + "/kernel", kernel)]
            if cfg.get("use_bias", True):
                inputs.append(self.const(name + "/bias", self.weight(name, "bias")))
            attrs = dict(kernel_shape=list(kernel.shape[2:]), strides=list(cfg["strides"]),
                         dilations=list(cfg.get("dilation_rate", [1, 1])), group=group)
            if cfg["padding"] == "same":
                attrs["auto_pad"] = "SAME_UPPER"
            else:
                attrs["pads"] = [0, 0, 0, 0]
            conv = self.emit("Conv", inputs, name + "/conv", **attrs)
            return self.activation(conv, name, cfg.get("activation", "linear"))
        if kind == "BatchNormalization":
            channels = self.weights[f"{name}/moving_mean"].shape[0]
            gamma = self.weight(name, "gamma") if cfg.get("scale", True) else np.ones(channels, np.float32)
            beta = self.weight(name, "beta") if cfg.get("center", True) else np.zeros(channels, np.float32)
            inputs = [src, self.const(name + "/gamma", gamma), self.const(name + "/beta", beta),
                      self.const(name + "/mean", self.weight(name, "moving_mean")),
                      self.const(name + "/var", self.weight(name, "moving_variance"))]
            return self.emit("BatchNormalization", inputs, name, epsilon=float(cfg["epsilon"]))
        if kind == "ReLU":
            if cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                raise ValueError(f"{name}: leaky or thresholded ReLU is not supported")
            if cfg.get("max_value") is None:
                return self.emit("Relu", [src], name)
            zero = self.const(name + "/min", np.array(0, np.float32))
            top = self.const(name + "/max", np.array(cfg["max_value"], np.float32))
            return self.emit("Clip", [src, zero, top], name)
        if kind == "Activation":
            return self.activation(src, name, cfg["activation"])
        if kind == "Add":
            return self.emit("Add", sources, name)
        if kind == "AveragePooling2D":
            attrs = dict(kernel_shape=list(cfg["pool_size"]), strides=list(cfg["strides"] or cfg["pool_size"]))
            if cfg["padding"] == "same":
                attrs["auto_pad"] = "SAME_UPPER"
            return self.emit("AveragePool", [src], name, **attrs)
        if kind == "GlobalAveragePooling2D":
            pooled = self.emit("GlobalAveragePool", [src], name + "/pool")
            return self.emit("Flatten", [pooled], name, axis=1)
        if kind == "Flatten":
            # Keras flattens channels-last: H, W, C order.
            nhwc = self.emit("Transpose", [src], name + "/nhwc", perm=[0, 2, 3, 1])
            return self.emit("Flatten", [nhwc], name, axis=1)
        if kind == "Dense":
            inputs = [src, self.const(name + "/kernel", self.weight(name, "kernel"))]
            if cfg.get("use_bias", True):
                inputs.append(self.const(name + "/bias", self.weight(name, "bias")))
            dense = self.emit("Gemm", inputs, name + "/gemm")
            return self.activation(dense, name, cfg.get("activation", "linear"))
        if kind == "Dropout":
            return self.emit("Identity", [src], name)
        raise ValueError(f"unsupported layer {kind} at {name}")

    def build(self, graph_name):
        produced = {}
        for layer_name in self.order:
            layer = self.layers[layer_name]
            inbound = layer.get("inbound_nodes") or [[]]
            if len(layer.get("inbound_nodes") or []) > 1:
                raise ValueError(f"{layer_name}: shared layers are not supported")
            sources = [produced[src[0]] for src in inbound[0]]
            produced[layer_name] = self.convert_layer(layer, sources)
        if len(self.outputs) != 1:
            raise ValueError("exactly one model output is supported")
        self.nodes.append(helper.make_node("Identity", [produced[self.outputs[0][0]]], [self.output_name],
                                           name=self.output_name + "/out"))
        output = helper.make_tensor_value_info(self.output_name, TensorProto.FLOAT, ["batch", None])
        graph = helper.make_graph(self.nodes, graph_name, self.graph_inputs, [output], initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="vista-tfjs-layers-to-onnx")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def convert(model_json_path, input_name="images", output_name="probabilities"):
    with open(model_json_path) as f:
        model_json = json.load(f)
    weights = load_weights(model_json, os.path.dirname(model_json_path))
    name = os.path.splitext(os.path.basename(model_json_path))[0]
    return LayersConverter(model_json, weights, input_name, output_name).build(name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_json", nargs="?")
    parser.add_argument("out")
    parser.add_argument("--js-model")
    parser.add_argument("--js-weights")
    parser.add_argument("--input-name", default="images")
    parser.add_argument("--output-name", default="probabilities")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        model_json = args.model_json or js_bundles_to_json(args.js_model, args.js_weights, scratch)
        model = convert(model_json, args.input_name, args.output_name)
    onnx.save(model, args.out)
    print(f"wrote {args.out}: {len(model.graph.node)} nodes", file=sys.stderr)


if __name__ == "__main__":
    main()
