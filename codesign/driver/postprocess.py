"""What a frame's host output means, pluggable per model type (recorded in the package metadata).

The host layers of the IR (pool, FC, detector heads, …) have already run in NumPy; a postprocess
turns their output into a result. It gets the graph output (H, W, C) integers of one frame, or
{output tensor: (H, W, C)} when the graph has several outputs. Classification and CoDeNet
detection are built in; another model type registers its own:

    @register("mymodel")
    def decode_boxes(outputs: dict[str, np.ndarray], package, top_k) -> MyResult: ...
"""
from __future__ import annotations

from dataclasses import dataclass
import importlib
from typing import Any, Callable

import numpy as np

from ..errors import CodesignError

# (host output(s) of one frame, package, top_k) → result
Postprocess = Callable[[Any, Any, int], Any]
_REGISTRY: dict[str, Postprocess] = {}


def register(model_type: str) -> Callable[[Postprocess], Postprocess]:
    def add(fn: Postprocess) -> Postprocess:
        _REGISTRY[model_type] = fn
        return fn
    return add


def for_model(model_type: str) -> Postprocess:
    """The postprocess registered for `model_type`; classification when none is (it checks the shape)."""
    return _REGISTRY.get(model_type, classify)


@dataclass
class Prediction:
    """Classification of one frame: integer logits (as the golden model computes them) and top-k."""

    logits: np.ndarray  # (num_classes,) int64
    probabilities: np.ndarray  # softmax of logits × output scale
    top: list[tuple[int, str | None, float]]  # (class index, name, probability), best first

    @property
    def class_id(self) -> int:
        return self.top[0][0]

    @property
    def label(self) -> str | None:
        return self.top[0][1]

    def __str__(self) -> str:
        return ", ".join(f"{name or i} ({p:.1%})" for i, name, p in self.top)


@register("diracdeltanet")
def classify(output: np.ndarray, package: Any, top_k: int = 5) -> Prediction:
    if output.size != output.shape[-1]:
        raise CodesignError(f"model type '{package.model_type}': output shape {output.shape} is not a class vector and "
                            "no postprocess is registered for it (codesign.driver.postprocess.register)")
    logits = output.reshape(-1).astype(np.int64)
    z = package.graph.real_values(package.graph.output, logits)
    e = np.exp(z - z.max())
    probs = e / e.sum()
    order = np.argsort(-logits, kind="stable")[:top_k]  # ties → lowest index, like GoldenModel.predict
    names = package.class_names
    return Prediction(logits, probs, [(int(i), names[i] if names else None, float(probs[i])) for i in order])


# ---- detection (CoDeNet) ----------------------------------------------------------------------------

DECODER = "codesign.detection.decode"  # CenterNet decode in NumPy; shipped in the package when present


def head_name(tensor: str) -> str:
    """The head a graph output belongs to: 'heads.heatmap.out' → 'heatmap' (else the tensor name)."""
    parts = tensor.split(".")
    return parts[parts.index("heads") + 1] if "heads" in parts[:-1] else tensor


def _decoder() -> Callable[..., Any] | None:
    """`decode(heatmap, size, offset, k, stride)` of codesign.detection, or None where it is absent."""
    try:
        return getattr(importlib.import_module(DECODER), "decode", None)
    except ImportError:  # not shipped, or its package needs what the board lacks
        return None


@dataclass
class Detection:
    """One frame of a detector: the head outputs as the golden model computes them ({head: (H, W, C)
    integers}) and, when codesign.detection's decoder is available, its top-k boxes (input pixels)."""

    outputs: dict[str, np.ndarray]
    detections: Any | None = None  # codesign.detection.Detections(boxes, scores, labels), best first
    class_names: list[str] | None = None

    def __str__(self) -> str:
        if self.detections is None:
            return "raw head outputs: " + ", ".join(f"{k} {'×'.join(map(str, v.shape))}"
                                                    for k, v in self.outputs.items())
        d = self.detections
        names = self.class_names

        def one(i: int) -> str:
            label = int(d.labels[i])
            x0, y0, x1, y1 = (float(v) for v in d.boxes[i])
            return (f"{names[label] if names and label < len(names) else label} {float(d.scores[i]):.2f} "
                    f"[{x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}]")

        return f"{len(d.scores)} detections" + (": " + "; ".join(one(i) for i in range(min(3, len(d.scores))))
                                                 if len(d.scores) else "")


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
    one `codesign.detection.Detections` per frame (boxes in input pixels), or None where the
    decoder or one of the heatmap/size/offset heads is missing."""
    decode = _decoder()
    names = {head_name(k): k for k in outputs}
    if decode is None or not HEADS <= set(names):
        return None

    def real(head: str) -> np.ndarray:  # integers × their per-channel scale, as (N, C, H, W)
        name = names[head]
        return np.transpose(graph.real_values(name, outputs[name]), (0, 3, 1, 2)).astype(np.float32)

    heat, size, offset = real("heatmap"), real("size"), real("offset")
    stride = input_size // heat.shape[2]
    return [decode(heat[i], size[i], offset[i], k=top_k, stride=stride) for i in range(len(heat))]


@register("codenet")
def detect(outputs: dict[str, np.ndarray], package: Any, top_k: int = 5) -> Detection:
    """CenterNet decode of CoDeNet's heads: sigmoid heatmap, 3×3 peaks, the top_k boxes (in input
    pixels). Without codesign.detection (its decoder), the raw head outputs only."""
    if not isinstance(outputs, dict):
        outputs = {package.graph.output: outputs}
    result = Detection({head_name(k): v for k, v in outputs.items()}, None, package.class_names)
    frames = detections_from_outputs({k: v[None] for k, v in outputs.items()}, package.graph,
                                     package.input_shape[0], top_k)
    if frames is not None:
        result.detections = frames[0]
    return result
