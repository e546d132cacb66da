"""Lay out a model's narrow convolutions for ONNX Runtime's blocked (NCHWc) kernels, with the same results.

ONNX Runtime runs convolutions, pools and concatenations on channels in blocks (16 with AVX-512, 8 with
AVX2), and a tensor stays blocked only while its channel count is a multiple of the block: otherwise
it is reordered to plain NCHW and back, a full pass over memory each way. PP-OCRv6's text detector opens
with a stem of 24- and 12-channel tensors at half the image's resolution, so on an AVX-512 machine its
max pool, its concatenation and two convolutions ran in NCHW between four reorders: 13% of the model's
time on one thread, and worse on two (these passes are bound by memory, not arithmetic).

Two rewrites, neither of which changes what the model computes:

- `--pad NODE=WIDTH`: the convolution gains zero filters (and zero biases) up to WIDTH output channels,
  and every convolution that reads them (through Relu, Identity, MaxPool, a bias Add or a channel
  Concat) gains zero weights for them. The extra channels hold zeros from end to end.
- `--split NODE`: a convolution over a channel Concat becomes one convolution per concatenated input,
  added up (the bias, and a bias Add after it, go to the last), so the concatenation is never written:
  ONNX Runtime accumulates the parts into one buffer.

The sums run in another order, so outputs agree to float rounding (largest difference 4.5e-7 on the
detector's probability map). On an AVX2 machine the padding costs a third more work in the first
layers. numpy + onnx only.

Usage: onnx_channel_blocks.py IN OUT [--pad NODE=WIDTH ...] [--split NODE ...]
"""

import argparse
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

# Operators that pass their input's channels through one to one.
CHANNELWISE = {"Relu", "Identity", "MaxPool"}


class BlockError(Exception):
    pass


class Graph:
    """The model's graph with its constants by name, and new constants added under unique names."""

    def __init__(self, model):
        self.graph = model.graph
        self.constants = {init.name: init for init in self.graph.initializer}

    def node(self, name):
        found = [node for node in self.graph.node if node.name == name]
        if len(found) != 1 or found[0].op_type != "Conv":
            raise BlockError(f"no Conv named {name}")
        return found[0]

    def array(self, name):
        if name not in self.constants:
            raise BlockError(f"{name} is not a constant")
        return numpy_helper.to_array(self.constants[name])

    def constant(self, name, array):
        """Adds `array` as a constant named `name`; returns the name."""
        if name in self.constants:
            raise BlockError(f"a constant named {name} exists already")
        init = numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.graph.initializer.append(init)
        self.constants[name] = init
        return name

    def consumers(self, tensor):
        return [node for node in self.graph.node if tensor in node.input]

    def replace(self, old, new_nodes):
        """Puts `new_nodes` where `old` stood."""
        at = list(self.graph.node).index(old)
        nodes = list(self.graph.node)
        del self.graph.node[:]
        self.graph.node.extend(nodes[:at] + new_nodes + nodes[at + 1:])

    def prune(self):
        """Drops nodes nothing reads and constants no node reads; shapes recorded before are stale."""
        outputs = {output.name for output in self.graph.output}
        while True:
            read = {name for node in self.graph.node for name in node.input} | outputs
            dead = [node for node in self.graph.node if not any(out in read for out in node.output)]
            if not dead:
                break
            for node in dead:
                self.graph.node.remove(node)
        read = {name for node in self.graph.node for name in node.input}
        for init in [init for init in self.graph.initializer if init.name not in read]:
            self.graph.initializer.remove(init)
            del self.constants[init.name]
        del self.graph.value_info[:]


def spread(array, layout, axis):
    """`array` with `axis` rearranged to `layout`: entry j is the old index layout[j], or zeros (None)."""
    shape = list(array.shape)
    shape[axis] = len(layout)
    out = np.zeros(shape, array.dtype)
    for new, old in enumerate(layout):
        if old is not None:
            out[(slice(None),) * axis + (new,)] = array[(slice(None),) * axis + (old,)]
    return out


def attribute(node, name, default):
    found = [a for a in node.attribute if a.name == name]
    return helper.get_attribute_value(found[0]) if found else default


def pad(model, widths):
    """Pads each Conv in `widths` (name -> output channels) with zero filters; see the module's doc."""
    graph = Graph(model)
    for name, width in widths.items():
        channels = graph.array(graph.node(name).input[1]).shape[0]
        if width < channels:
            raise BlockError(f"{name} has {channels} output channels, more than {width}")
    # The channel layout of every tensor that differs from its original: per channel, the original
    # channel it holds, or None for a padded one (zeros).
    layouts = {}
    for node in list(graph.graph.node):
        layout = layouts.get(node.input[0]) if node.input else None
        if node.op_type == "Conv":
            weights = graph.array(node.input[1])
            if layout is not None:
                if attribute(node, "group", 1) != 1:
                    raise BlockError(f"{node.name}: a grouped convolution cannot read padded channels")
                weights = spread(weights, layout, 1)
            if node.name in widths:
                padded = list(range(weights.shape[0])) + [None] * (widths[node.name] - weights.shape[0])
                weights = spread(weights, padded, 0)
                if len(node.input) > 2 and node.input[2]:
                    node.input[2] = graph.constant(f"{node.name}.padded_bias",
                                                   spread(graph.array(node.input[2]), padded, 0))
                layouts[node.output[0]] = padded
            if layout is not None or node.name in widths:
                node.input[1] = graph.constant(f"{node.name}.padded_weights", weights)
        elif not any(name in layouts for name in node.input):
            continue
        elif node.op_type in CHANNELWISE:
            layouts[node.output[0]] = layout
        elif node.op_type == "Add" and len(node.input) == 2 and any(i in graph.constants for i in node.input):
            bias_at = 0 if node.input[0] in graph.constants else 1
            layout = layouts[node.input[1 - bias_at]]
            bias = graph.array(node.input[bias_at])
            if bias.ndim != 4 or bias.shape[1] != sum(old is not None for old in layout):
                raise BlockError(f"{node.name}: adds no per-channel bias to padded channels")
            node.input[bias_at] = graph.constant(f"{node.name}.padded_bias", spread(bias, layout, 1))
            layouts[node.output[0]] = layout
        elif node.op_type == "Concat" and attribute(node, "axis", None) == 1:
            if not all(name in layouts for name in node.input):
                raise BlockError(f"{node.name}: concatenates padded and unpadded channels")
            joined, offset = [], 0
            for name in node.input:
                joined += [None if old is None else old + offset for old in layouts[name]]
                offset += sum(old is not None for old in layouts[name])
            layouts[node.output[0]] = joined
        else:
            raise BlockError(f"{node.name}: padded channels cannot pass through {node.op_type}")
        for output in node.output:
            if output in layouts and output in {o.name for o in graph.graph.output}:
                raise BlockError(f"{node.name}: the model's output {output} would be padded")
    graph.prune()
    return model


def split(model, name):
    """Turns the Conv `name` over a channel Concat into one Conv per input, added up; see the module's doc."""
    graph = Graph(model)
    conv = graph.node(name)
    producers = {out: node for node in graph.graph.node for out in node.output}
    source = producers.get(conv.input[0])
    while source is not None and source.op_type == "Identity":
        source = producers.get(source.input[0])
    if source is None or source.op_type != "Concat" or attribute(source, "axis", None) != 1:
        raise BlockError(f"{name} does not read a channel Concat")
    if len(source.input) < 2:
        raise BlockError(f"{name}: its Concat has one input, nothing to split")
    if attribute(conv, "group", 1) != 1:
        raise BlockError(f"{name} is a grouped convolution")
    shapes = {value.name: value.type.tensor_type.shape.dim
              for value in onnx.shape_inference.infer_shapes(model).graph.value_info}
    weights = graph.array(conv.input[1])
    bias = list(conv.input[2:3])
    output = conv.output[0]
    # A bias Add after the convolution (through Identity) joins the last part, so the sum is fused.
    after = graph.consumers(output)
    while len(after) == 1 and after[0].op_type == "Identity":
        after = graph.consumers(after[0].output[0])
    if not bias and len(after) == 1 and after[0].op_type == "Add":
        constant = [i for i in after[0].input if i in graph.constants]
        values = graph.array(constant[0]) if constant else None
        per_channel = values is not None and values.ndim >= 3 and values.shape[-3:] == (weights.shape[0], 1, 1)
        if per_channel and values.size == weights.shape[0]:
            bias = [graph.constant(f"{name}.bias", values.reshape(-1))]
            output = after[0].output[0]
            graph.graph.node.remove(after[0])
    parts, offset = [], 0
    for k, tensor in enumerate(source.input):
        channels = shapes[tensor][1].dim_value if tensor in shapes else 0
        if channels <= 0:
            raise BlockError(f"{name}: the channels of {tensor} are unknown")
        part = helper.make_node("Conv", [tensor, graph.constant(f"{name}.part{k}_weights",
                                                                weights[:, offset:offset + channels])]
                                + (bias if k == len(source.input) - 1 else []),
                                [f"{name}.part{k}"], name=f"{name}.part{k}")
        part.attribute.extend(conv.attribute)
        parts.append(part)
        offset += channels
    if offset != weights.shape[1]:
        raise BlockError(f"{name} reads {weights.shape[1]} channels, its Concat gives {offset}")
    # The last part (with the bias) first: ONNX Runtime adds the running sum into it.
    total = parts[0].output[0]
    sums = []
    for k, part in enumerate(parts[1:], start=1):
        out = output if k == len(parts) - 1 else f"{name}.sum{k}"
        sums.append(helper.make_node("Add", [part.output[0], total], [out], name=f"{name}.sum{k}"))
        total = out
    graph.replace(conv, parts + sums)
    graph.prune()
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--pad", action="append", default=[], metavar="NODE=WIDTH",
                        help="pad this Conv's output channels to WIDTH with zero filters")
    parser.add_argument("--split", action="append", default=[], metavar="NODE",
                        help="split this Conv over its input Concat")
    args = parser.parse_args(argv)
    model = onnx.load(args.model)
    try:
        widths = {}
        for item in args.pad:
            node, _, width = item.partition("=")
            if not width.isdigit():
                raise BlockError(f"--pad {item}: expected NODE=WIDTH")
            widths[node] = int(width)
        if widths:
            model = pad(model, widths)
        for node in args.split:
            model = split(model, node)
        onnx.checker.check_model(model)
    except BlockError as error:
        sys.exit(f"{args.model}: {error}")
    onnx.save(model, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
