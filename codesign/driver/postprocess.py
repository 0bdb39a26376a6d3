"""What a frame's host output means, pluggable per model type (recorded in the package metadata).

The host layers of the IR (pool, FC, …) have already run in NumPy; a postprocess turns their
output into a result. Classification is built in; a detection model registers its own decoder:

    @register("codenet")
    def decode_boxes(output: np.ndarray, package) -> Detections: ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import CodesignError

Postprocess = Callable[[np.ndarray, Any, int], Any]  # (host output of one frame, package, top_k) → result
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
    z = logits * package.graph.tensors[package.graph.output].scale
    e = np.exp(z - z.max())
    probs = e / e.sum()
    order = np.argsort(-logits, kind="stable")[:top_k]  # ties → lowest index, like GoldenModel.predict
    names = package.class_names
    return Prediction(logits, probs, [(int(i), names[i] if names else None, float(probs[i])) for i in order])
