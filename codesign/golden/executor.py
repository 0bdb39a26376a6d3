"""Bit-exact NumPy executor of the integer IR (docs/integer-contract.md).

`GoldenModel(graph)` validates the graph and precomputes every layer once (transposed float
weights, the GEMM dtype that keeps each layer exact, requant constants); `run` then streams a
uint8 NHWC batch through the layers. Every feature map is an integer array in the smallest dtype
that holds its range (uint8 activations, int64 logits).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from codesign.graph import Graph, IRError, Layer, accumulator_bound, validate

from . import ops

Step = Callable[[list[np.ndarray]], np.ndarray]


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
        """Bind one layer's constants to its op and record the bound of its output."""
        t = self.graph.tensors
        x_bound = max(self._bound[name] for name in layer.inputs)
        out = t[layer.output]
        p, a = layer.params, layer.attrs
        bound = x_bound  # ops that only move values keep the bound
        if layer.op in ("conv1x1", "dwconv3x3", "deform3x3", "conv2d"):
            x = t[layer.inputs[0]]
            x_bound_0 = self._bound[layer.inputs[0]]
            if x_bound_0 > x.max_value:  # validate's 48-bit requant bound assumes the declared range
                raise IRError(f"layer '{layer.name}' ({layer.op}): input '{layer.inputs[0]}' can reach {x_bound_0}, "
                              f"beyond its declared {x.bits}-bit range")
            mult_s, offset_s = ops.requant_constants(p["mult"], p["bias"], a["shift"])
            if layer.op == "conv1x1":
                gemm = ops.exact_dtype(accumulator_bound(p["weight"], x_bound_0))
                fn = partial(ops.conv1x1, weight_t=_transposed(p["weight"], gemm), mult_s=mult_s,
                             offset_s=offset_s, out_max=out.max_value)
            elif layer.op == "conv2d":
                gemm = ops.exact_dtype(accumulator_bound(p["weight"], x_bound_0))
                fn = partial(ops.conv2d, weight_t=_transposed(p["weight"], gemm), mult_s=mult_s, offset_s=offset_s,
                             out_max=out.max_value, kernel=a["kernel"], stride=a["stride"], padding=a["padding"])
            elif layer.op == "dwconv3x3":
                fn = partial(ops.dwconv3x3, weight=p["weight"], mult_s=mult_s, offset_s=offset_s,
                             out_max=out.max_value, stride=a["stride"])
            else:
                d_bound = self._bound[layer.inputs[1]]
                if d_bound > a["max_dilation"]:
                    raise IRError(f"layer '{layer.name}' (deform3x3): dilation input '{layer.inputs[1]}' can reach "
                                  f"{d_bound} > max_dilation {a['max_dilation']}")
                deform = partial(ops.deform3x3, weight=p["weight"], mult_s=mult_s, offset_s=offset_s,
                                 out_max=out.max_value)
                self._bound[layer.output] = out.max_value
                return lambda xs: deform(xs[0], xs[1])
            bound = out.max_value
        elif layer.op == "linear":
            acc_bound = accumulator_bound(p["weight"], x_bound)
            fn = partial(ops.linear, weight_t=_transposed(p["weight"], ops.exact_dtype(acc_bound)),
                         bias=p["bias"].astype(np.int64))
            bound = acc_bound + int(np.abs(p["bias"].astype(np.int64)).max(initial=0))
        elif layer.op == "conv1x1_head":
            acc_bound = accumulator_bound(p["weight"], x_bound)
            fn = partial(ops.conv1x1_head, weight_t=_transposed(p["weight"], ops.exact_dtype(acc_bound)),
                         bias=p["bias"].astype(np.int64))
            bound = acc_bound + int(np.abs(p["bias"].astype(np.int64)).max(initial=0))
        elif layer.op == "globalsumpool":
            h, w, _ = t[layer.inputs[0]].shape
            bound = x_bound * h * w
            fn = partial(ops.globalsumpool, dtype=np.min_scalar_type(bound))
        elif layer.op == "concat":
            cat = partial(ops.interleave_concat, rotate=a["rotate"], interleave=a.get("interleave", 1))
            self._bound[layer.output] = bound
            return cat
        elif layer.op == "shift":
            fn = ops.shift_dirac5  # validate admits only the dirac5 pattern
        elif layer.op == "maxpool2x2":
            fn = ops.maxpool2x2
        elif layer.op == "upsample2x":
            fn = ops.upsample2x
        elif layer.op == "slice":
            fn = partial(ops.slice_channels, start=a["start"], stop=a["stop"])
        else:  # validate() knows every op; this guards an op added there but not here
            raise IRError(f"layer '{layer.name}': op '{layer.op}' is not implemented by the golden model")
        self._bound[layer.output] = bound
        return lambda xs: fn(xs[0])

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

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Top-1 class per image: argmax of the output logits (ties → lowest index)."""
        out = self.run(images)
        return out.reshape(out.shape[0], math.prod(out.shape[1:])).argmax(axis=1)


def _transposed(weight: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Wᵀ (Cin, Cout), contiguous, in the GEMM dtype: activations (rows, Cin) @ Wᵀ need no copy."""
    return np.ascontiguousarray(weight.T.astype(dtype))


def run(graph: Graph, images: np.ndarray, trace: bool = False
        ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """One-shot `GoldenModel(graph).run(images, trace)`."""
    return GoldenModel(graph).run(images, trace)
