"""CenterNet decode in NumPy, exactly as it runs on the ARM after the engine (no torch: the board's
driver, the agreement reports and the trainer's evaluation all use it).

sigmoid of the heatmap logits → keep the 3×3 local maxima → the top K (score, class, cell) →
box = ((cell + offset) ∓ size / 2) × stride in input pixels (continuous coordinates).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .errors import CodesignError

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


# ---- a detector graph's heads ----------------------------------------------------------------------

def head_name(tensor: str) -> str:
    """The head a graph output belongs to: 'heads.heatmap.out' → 'heatmap' (else the tensor name)."""
    parts = tensor.split(".")
    return parts[parts.index("heads") + 1] if "heads" in parts[:-1] else tensor


HEADS = {"heatmap", "size", "offset"}  # CenterNet's heads, as CoDeNet names them


def is_detector(graph: Any) -> bool:
    """Whether the graph's outputs are CenterNet heads (decoded to boxes) rather than class scores."""
    return HEADS <= {head_name(name) for name in graph.outputs}


def detector_classes(graph: Any) -> int:
    """The number of classes of a detector graph: its heatmap head's channels."""
    name = next(n for n in graph.outputs if head_name(n) == "heatmap")
    return graph.tensors[name].shape[-1]


def check_detector_classes(graph: Any, class_names: list[str], source: str) -> None:
    """A data set's classes must be the detector's (AP is computed per heatmap channel)."""
    n = detector_classes(graph)
    if len(class_names) != n:
        raise CodesignError(f"{source} has {len(class_names)} classes but the detector's heatmap has {n}")


def detections_from_outputs(outputs: dict[str, np.ndarray], graph: Any, input_size: int, top_k: int
                            ) -> list[Any] | None:
    """CenterNet decode of a batch of integer head outputs ({graph output: (N, H, W, C)}) into
    one `Detections` per frame (boxes in input pixels), or None where one of the
    heatmap/size/offset heads is missing."""
    names = {head_name(k): k for k in outputs}
    if not HEADS <= set(names):
        return None

    def real(head: str) -> np.ndarray:  # integers × their per-channel scale, as (N, C, H, W)
        name = names[head]
        return np.transpose(graph.real_values(name, outputs[name]), (0, 3, 1, 2)).astype(np.float32)

    heat, size, offset = real("heatmap"), real("size"), real("offset")
    stride = input_size // heat.shape[2]
    return [decode(heat[i], size[i], offset[i], k=top_k, stride=stride) for i in range(len(heat))]
