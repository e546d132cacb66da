#!/usr/bin/env python3
"""Quantizes an ONNX model to int8 (ONNX Runtime's static quantizer: QLinear operators or QDQ pairs,
weights per channel, activations uint8) from activation ranges kept in the repository.

The ranges are measured once, by a developer, with `--calibrate` on photos from the scikit-image wheel;
`vista models fetch` then only applies them. Measuring at install time would run float kernels that
differ in their last bits between CPUs, so the file (and its pinned sha256) would differ between
machines; weights are quantized in numpy, which rounds the same everywhere.

With `--format qdq` the model is written as QuantizeLinear/DequantizeLinear pairs around float
operators (opset 13 at least, which per-channel weights need), which ONNX Runtime fuses into int8
kernels when it loads the model; with `--op-type Relu` a Relu after a quantized convolution becomes part
of it, and with the operators between convolutions (MaxPool, Concat, Resize, Add) quantized too the
activations stay int8 from one convolution to the next. The ranges file must hold a range for every
quantized operator's inputs and outputs: measure it with the same `--op-type`s.

    quantize_int8.py MODEL OUT --ranges RANGES.json [--op-type Conv] [--exclude NODE ...] [--format qdq]
    quantize_int8.py MODEL OUT --ranges RANGES.json --calibrate IMAGE... --size 320 \
        --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 [--divide-by-max]    (needs Pillow)
"""

import argparse
import os
import sys
import tempfile

import onnx
from onnx import version_converter
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)

# The first opset whose DequantizeLinear takes per-channel scales.
QDQ_OPSET = 13


class Photos(CalibrationDataReader):
    """Each photo and its mirror image, prepared as the model's code prepares it: stretched to a square,
    optionally divided by its maximum, then normalised by mean and std (NCHW)."""

    def __init__(self, input_name, paths, size, mean, std, divide_by_max):
        import numpy as np
        from PIL import Image

        def prepared(image):
            pixels = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
            pixels /= max(float(pixels.max()), 1.0) if divide_by_max else 255.0
            pixels = (pixels - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
            return {input_name: pixels.transpose(2, 0, 1)[None].astype(np.float32)}

        images = [Image.open(path) for path in paths]
        views = images + [image.transpose(Image.FLIP_LEFT_RIGHT) for image in images]
        self.batches = iter([prepared(view) for view in views])

    def get_next(self):
        return next(self.batches, None)


def floats(text):
    return [float(v) for v in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--ranges", required=True, help="activation ranges (JSON); written by --calibrate")
    parser.add_argument("--op-type", action="append", default=[], help="quantize only these operators")
    parser.add_argument("--exclude", action="append", default=[], help="keep this node in float")
    parser.add_argument("--calibrate", nargs="+", metavar="IMAGE", help="measure the ranges on these photos")
    parser.add_argument("--input", default="input.1")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--mean", type=floats, default=[0.485, 0.456, 0.406])
    parser.add_argument("--std", type=floats, default=[0.229, 0.224, 0.225])
    parser.add_argument("--divide-by-max", action="store_true")
    parser.add_argument("--format", choices=["operator", "qdq"], default="operator",
                        help="QLinear operators, or QuantizeLinear/DequantizeLinear pairs")
    args = parser.parse_args()
    if args.calibrate:
        if os.path.exists(args.ranges):
            os.remove(args.ranges)  # the quantizer would reuse it instead of measuring
        reader = Photos(args.input, args.calibrate, args.size, args.mean, args.std, args.divide_by_max)
    elif not os.path.isfile(args.ranges):
        sys.exit(f"{args.ranges}: no such ranges file (measure it with --calibrate)")
    else:
        reader = None
    model = onnx.load(args.model)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if args.format == "qdq" and opset < QDQ_OPSET:
        model = version_converter.convert_version(model, QDQ_OPSET)
    with tempfile.TemporaryDirectory() as work:
        # From a file: given the model in memory, the quantizer writes other bytes than the pinned ones.
        source = os.path.join(work, "model.onnx")
        onnx.save(model, source)
        quantize_static(source, args.out, reader,
                        quant_format=QuantFormat.QDQ if args.format == "qdq" else QuantFormat.QOperator,
                        op_types_to_quantize=args.op_type or None, nodes_to_exclude=args.exclude,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=args.ranges)


if __name__ == "__main__":
    main()
