"""Make an ONNX model's input and output dimensions symbolic, stop listing initializers as graph inputs,
and drop unused initializers (old PyTorch exports do all three: fixed shapes stop other image sizes, and
initializer-inputs stop ONNX Runtime from folding constants). numpy + onnx only.

Usage: onnx_dynamic_dims.py IN OUT --dims NAME=D0,D1,... [...]   (a dim is a number or a symbol)
"""

import argparse
import sys

import onnx
from onnx.tools.update_model_dims import update_inputs_outputs_dims


def parse_dims(text):
    return [int(d) if d.isdigit() else d for d in text.split(",")]


def dynamicize(model, dims):
    used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    initializers = {init.name for init in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(real_inputs)
    known = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    unknown = set(dims) - known
    if unknown:
        raise ValueError(f"no graph input or output named {sorted(unknown)}")
    current = lambda values: {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in values}
    inputs, outputs = current(model.graph.input), current(model.graph.output)
    inputs.update({k: v for k, v in dims.items() if k in inputs})
    outputs.update({k: v for k, v in dims.items() if k in outputs})
    model = update_inputs_outputs_dims(model, inputs, outputs)
    onnx.checker.check_model(model)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--dims", action="append", required=True, help="NAME=D0,D1,...")
    args = parser.parse_args(argv)
    dims = {name: parse_dims(value) for name, value in (d.split("=", 1) for d in args.dims)}
    onnx.save(dynamicize(onnx.load(args.model), dims), args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
