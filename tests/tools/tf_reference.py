"""NumPy implementations of TensorFlow's NHWC semantics, the reference the converters are tested against,
and a writer for the tfjs model files the tests generate."""

import json
import os

import numpy as np


def write_tfjs_model(directory, model, specs, blobs):
    """Writes model.json (with one weight group over `specs`) and the shard `weights.bin`; returns the json path."""
    model = {**model, "weightsManifest": [{"paths": ["weights.bin"], "weights": specs}]}
    with open(os.path.join(directory, "model.json"), "w") as f:
        json.dump(model, f)
    with open(os.path.join(directory, "weights.bin"), "wb") as f:
        f.write(b"".join(blobs))
    return os.path.join(directory, "model.json")


def same_pads(size, kernel, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def tf_conv(x, w, stride, padding, depthwise=False):
    """NHWC convolution with TF's SAME/VALID rules; w is HWIO, or HWCM for depthwise."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    if padding == "SAME":
        oh, pt, pb = same_pads(h, kh, stride)
        ow, pl, pr = same_pads(wd, kw, stride)
    else:
        oh, ow, pt, pb, pl, pr = (h - kh) // stride + 1, (wd - kw) // stride + 1, 0, 0, 0, 0
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out_c = c * w.shape[3] if depthwise else w.shape[3]
    out = np.zeros((n, oh, ow, out_c), np.float32)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            if depthwise:
                out[:, i, j, :] = np.einsum("nhwc,hwcm->ncm", patch, w).reshape(n, -1)
            else:
                out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w)
    return out


def tf_resize_bilinear(x, oh, ow):
    """align_corners=False, half_pixel_centers=False: source = destination * (in / out)."""
    n, h, w, c = x.shape
    ys, xs = np.arange(oh) * (h / oh), np.arange(ow) * (w / ow)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    dy, dx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - dx) + x[:, y0][:, :, x1] * dx
    bottom = x[:, y1][:, :, x0] * (1 - dx) + x[:, y1][:, :, x1] * dx
    return top * (1 - dy) + bottom * dy


def sigmoid(v):
    return 1 / (1 + np.exp(-v))
