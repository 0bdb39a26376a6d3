"""CenterNet decode in NumPy, exactly as it runs on the ARM after the engine.

sigmoid of the heatmap logits → keep the 3×3 local maxima → the top K (score, class, cell) →
box = ((cell + offset) ∓ size / 2) × stride in input pixels (continuous coordinates).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

TOP_K = 100


class Detections(NamedTuple):
    """One image's detections, best first: boxes (K, 4) x0, y0, x1, y1; scores (K,); labels (K,)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^−x) without overflow for large |x|."""
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(x.dtype, copy=False)


def maxpool3x3(x: np.ndarray) -> np.ndarray:
    """3×3 max over the last two axes, stride 1, padded with −inf (same size)."""
    h, w = x.shape[-2:]
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], constant_values=-np.inf)
    out = p[..., 0:h, 0:w].copy()
    for dy in range(3):
        for dx in range(3):
            np.maximum(out, p[..., dy:dy + h, dx:dx + w], out=out)
    return out


def decode(heatmap: np.ndarray, size: np.ndarray, offset: np.ndarray, k: int = TOP_K,
           stride: int = 4) -> Detections:
    """One image: heatmap logits (C, H, W), size (2, H, W) = (w, h), offset (2, H, W) = (dx, dy)."""
    heat = sigmoid(np.asarray(heatmap, np.float32))
    heat = np.where(heat == maxpool3x3(heat), heat, 0).reshape(-1)
    k = min(k, heat.size)
    top = np.argpartition(-heat, k - 1)[:k]
    top = top[np.argsort(-heat[top], kind="stable")]
    c, h, w = heatmap.shape
    labels, cell = np.divmod(top, h * w)
    ys, xs = np.divmod(cell, w)
    cx = xs + offset[0, ys, xs]
    cy = ys + offset[1, ys, xs]
    bw, bh = size[0, ys, xs], size[1, ys, xs]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) * stride
    return Detections(boxes.astype(np.float32), heat[top], labels.astype(np.int64))


def decode_batch(outputs: dict[str, np.ndarray], k: int = TOP_K, stride: int = 4) -> list[Detections]:
    """`decode` of every image of a batch of network outputs (N, ...)."""
    return [decode(outputs["heatmap"][i], outputs["size"][i], outputs["offset"][i], k, stride)
            for i in range(len(outputs["heatmap"]))]


__all__ = ["Detections", "TOP_K", "decode", "decode_batch", "maxpool3x3", "sigmoid"]
