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
from typing import Any, Callable

import numpy as np

from ..decode import detections_from_outputs, head_name
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
