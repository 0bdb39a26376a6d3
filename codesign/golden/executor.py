"""Bit-exact NumPy executor of the integer IR (docs/integer-contract.md).

`GoldenModel(graph)` validates the graph and precomputes every layer once (transposed float
weights, the GEMM dtype that keeps each layer exact, requant constants); `run` then streams a
uint8 NHWC batch through the layers. Every feature map is an integer array in the smallest dtype
that holds its range (uint8 activations, int64 logits).
"""
from __future__ import annotations

import math

import numpy as np

from codesign.graph import Graph, IRError, Layer, validate
from codesign.graph.opdef import Step, op_def

class GoldenInputError(ValueError):
    """Input images the model cannot take; the message says what was given and what is expected."""


class GoldenModel:
    """The integer graph, prepared for repeated execution."""

    def __init__(self, graph: Graph):
        validate(graph)
        self.graph = graph
        h, w, c = graph.tensors[graph.input].shape
        self.input_shape = (h, w, c)
        # Largest magnitude each tensor can hold, propagated from the 0..255 input: it picks every
        # GEMM's exact dtype and the sums' integer dtype (the IR does not bound sum bit widths).
        self._bound: dict[str, int] = {graph.input: 255}
        self._steps: list[tuple[Layer, Step]] = [(layer, self._prepare(layer)) for layer in graph.layers]
        # After its last reader a tensor can be dropped (unless traced), which keeps a 224² batch small.
        self._last_use = {name: i for i, layer in enumerate(graph.layers) for name in layer.inputs}

    def _prepare(self, layer: Layer) -> Step:
        """Bind one layer's constants to its op (its class in codesign/ops) and record its output's bound."""
        step, self._bound[layer.output] = op_def(layer.op).prepare(self.graph, layer, self._bound)
        return step

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        """Return the images as uint8 NHWC, or raise GoldenInputError with one readable line."""
        arr = np.asarray(images)
        expects = f"the model expects (N, {', '.join(map(str, self.input_shape))}) uint8"
        if arr.ndim != 4 or arr.shape[1:] != self.input_shape:
            raise GoldenInputError(f"input images have shape {arr.shape}; {expects}")
        if arr.dtype.kind not in "ui":
            raise GoldenInputError(f"input images have dtype {arr.dtype}; {expects} (integer pixels 0..255)")
        if arr.dtype != np.uint8 and arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi > 255:
                raise GoldenInputError(f"input images hold values {lo}..{hi}; {expects} (pixels 0..255)")
        return arr.astype(np.uint8)  # a copy: the trace and outputs never alias the caller's array

    def _execute(self, images: np.ndarray, trace: bool) -> dict[str, np.ndarray]:
        g = self.graph
        keep = set(g.outputs)
        env = {g.input: self._check_images(images)}
        for i, (layer, step) in enumerate(self._steps):
            env[layer.output] = step([env[name] for name in layer.inputs])
            if not trace:
                for name in set(layer.inputs):
                    if self._last_use[name] == i and name not in keep:
                        del env[name]
        return env

    def run(self, images: np.ndarray, trace: bool = False
            ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Execute on a uint8 (N, H, W, C) batch; returns the (first) output tensor (N, H, W, C) as
        integers, or (output, {tensor name: integer array}) holding every tensor when `trace` is set."""
        env = self._execute(images, trace)
        return (env[self.graph.output], env) if trace else env[self.graph.output]

    def run_outputs(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every graph output, {name: (N, H, W, C) integers}, in the graph's output order."""
        env = self._execute(images, False)
        return {name: env[name] for name in self.graph.outputs}

    def evaluate(self, values: dict[str, np.ndarray], wanted: list[str] | None = None) -> dict[str, np.ndarray]:
        """The tensors `wanted` (default: the graph outputs) from the given tensor values, running only
        the layers they need. This is how the host runs its part of a frame: the layers before the
        engine (from the image) and after it (from the tensors the engine leaves in memory)."""
        producer = {layer.output: i for i, (layer, _) in enumerate(self._steps)}
        need: set[int] = set()
        stack = list(wanted if wanted is not None else self.graph.outputs)
        while stack:
            name = stack.pop()
            if name in values:
                continue
            if name not in producer:
                raise IRError(f"tensor '{name}' is neither given nor produced by a layer")
            i = producer[name]
            if i not in need:
                need.add(i)
                stack.extend(self._steps[i][0].inputs)
        env = {k: np.asarray(v) for k, v in values.items()}
        for i in sorted(need):
            layer, step = self._steps[i]
            env[layer.output] = step([env[name] for name in layer.inputs])
        return {name: env[name] for name in (wanted if wanted is not None else self.graph.outputs)}

    def run_from(self, tensor: str, values: np.ndarray) -> np.ndarray:
        """Run only the layers after `tensor`'s producer, given its (N, H, W, C) values.

        This is how the host finishes a frame the engine started (pool, FC), with the same code.
        """
        g = self.graph
        start = next((i for i, (layer, _) in enumerate(self._steps) if layer.output == tensor), None)
        if start is None and tensor != g.input:
            raise IRError(f"no layer produces tensor '{tensor}'")
        env = {tensor: np.asarray(values)}
        for layer, step in self._steps[(start + 1 if start is not None else 0):]:
            missing = [name for name in layer.inputs if name not in env]
            if missing:
                raise IRError(f"layer '{layer.name}' needs '{missing[0]}', which is computed before '{tensor}'")
            env[layer.output] = step([env[name] for name in layer.inputs])
        return env[g.output]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """The graph's input quantizer on float NCHW input as the user's framework feeds it: uint8 NHWC.

        q = round_half_even(clip(x / scale, 0, max)) in float32, as QONNX's Quant (and Brevitas) compute
        it; scale and max from an imported graph's meta (`float_input`), else the input tensor's scale
        and 255 (codesign's own models: pixels / 255)."""
        spec = self.graph.meta.get("float_input") or {}
        scale = np.float32(spec.get("scale", self.graph.tensors[self.graph.input].scale))
        top = int(spec.get("max", 255))
        h, w, c = self.input_shape
        arr = np.asarray(x)
        if arr.ndim != 4 or arr.shape[1:] != (c, h, w) or arr.dtype.kind not in "fiu":
            raise GoldenInputError(f"float input has shape {arr.shape} and dtype {arr.dtype}; the model expects "
                                   f"(N, {c}, {h}, {w}) real numbers (NCHW)")
        v = np.clip(arr.astype(np.float32) / scale, 0, top)
        if not np.all(np.isfinite(v)):
            raise GoldenInputError("float input holds NaN")
        rounded = np.round(v) if spec.get("rounding", "half_even") == "half_even" else np.floor(v + np.float32(0.5))
        return np.ascontiguousarray(rounded.astype(np.uint8).transpose(0, 2, 3, 1))

    def run_float(self, x: np.ndarray) -> np.ndarray:
        """Float in, float out, as the framework's graph is used: quantize the NCHW input (`quantize_input`),
        run the integer model, and return the first output's real values in the graph's layout, float32:
        (N, C) for a classifier, (N, C, H, W) for a feature map (or an imported graph's own output shape)."""
        out = self.run(self.quantize_input(x))
        real = self.graph.real_values(self.graph.output, out).astype(np.float32)
        n, h, w, c = real.shape
        shapes = self.graph.meta.get("float_outputs")
        nchw = np.ascontiguousarray(real.transpose(0, 3, 1, 2))
        if shapes:
            return nchw.reshape(n, *shapes[0]["shape"])
        return nchw.reshape(n, c) if (h, w) == (1, 1) else nchw

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Top-1 class per image: argmax of the output logits (ties → lowest index)."""
        out = self.run(images)
        return out.reshape(out.shape[0], math.prod(out.shape[1:])).argmax(axis=1)


def run(graph: Graph, images: np.ndarray, trace: bool = False
        ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """One-shot `GoldenModel(graph).run(images, trace)`."""
    return GoldenModel(graph).run(images, trace)
