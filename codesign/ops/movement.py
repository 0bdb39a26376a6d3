"""Ops that move or reduce values without weights: the Dirac shift, 2×2 max-pool and 2× upsample
(engine stages), channel slices and concatenations (views: addresses, no computation), and the
global sum pool before the classifier (the ARM)."""
from __future__ import annotations

from functools import partial

import numpy as np

from ..golden import ops as kernels
from ..graph.ir import fail
from ..graph.opdef import CHANNEL_RANGE, CONCATENATION, POOL, SHIFT, UPSAMPLE, VIEW, OpDef, Step, register

# Where output channel c reads, as (dy, dx) offsets chosen by c mod len(pattern): out[h, w, c] = x[h+dy, w+dx, c]
# (docs/integer-contract.md, "Shift"). The QONNX importer recognises a fixed one-hot depthwise kernel by it.
SHIFT_OFFSETS: dict[str, tuple[tuple[int, int], ...]] = {
    "dirac5": ((-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)),  # above, left, centre, right, below
}
SHIFT_PATTERNS = tuple(SHIFT_OFFSETS)


def _keeps_quantizer(graph, layer) -> None:
    x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.output]
    if (out.bits, out.signed, out.scale) != (x.bits, x.signed, x.scale):
        fail(layer, "output must keep the input's bits, signedness and scale")


def _same(fn) -> Step:
    """A step of a single-input op that keeps the values' bound."""
    return lambda xs: fn(xs[0])


@register
class Shift(OpDef):
    """DiracDeltaNet's shift: each channel moved one pixel by c mod 5 (docs/integer-contract.md)."""

    name = "shift"
    attrs = ("pattern",)
    stage = SHIFT

    def check(self, graph, layer) -> None:
        _keeps_quantizer(graph, layer)
        if layer.attrs["pattern"] not in SHIFT_PATTERNS:
            fail(layer, f"unknown shift pattern {layer.attrs['pattern']!r}")
        if graph.tensors[layer.output].shape != graph.tensors[layer.inputs[0]].shape:
            fail(layer, "shift must keep the shape")

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        return _same(kernels.shift_dirac5), bounds[layer.inputs[0]]  # check admits only dirac5


class _Resample(OpDef):
    """A per-channel spatial resampling that keeps the values' quantizer: the output shape from the input's."""

    def out_shape(self, h: int, w: int, c: int) -> tuple[int, int, int]:
        raise NotImplementedError

    def kernel(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check(self, graph, layer) -> None:
        _keeps_quantizer(graph, layer)
        want = self.out_shape(*graph.tensors[layer.inputs[0]].shape)
        if graph.tensors[layer.output].shape != want or min(want) < 1:
            fail(layer, f"output shape {graph.tensors[layer.output].shape} != {want}")

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        return _same(self.kernel), bounds[layer.inputs[0]]


@register
class MaxPool2x2(_Resample):
    name = "maxpool2x2"
    stage = POOL

    def out_shape(self, h, w, c):
        return h // 2, w // 2, c

    def kernel(self, x):
        return kernels.maxpool2x2(x)


@register
class Upsample2x(_Resample):
    """Nearest-neighbour 2× upsample: the engine's writer stores each pixel to 2×2."""

    name = "upsample2x"
    stage = UPSAMPLE

    def out_shape(self, h, w, c):
        return 2 * h, 2 * w, c

    def kernel(self, x):
        return kernels.upsample2x(x)


@register
class Slice(OpDef):
    """Channels [start, stop) of the input: a view (an offset into the input's buffer)."""

    name = "slice"
    attrs = ("start", "stop")
    stage = VIEW
    view = CHANNEL_RANGE

    def check(self, graph, layer) -> None:
        _keeps_quantizer(graph, layer)
        h, w, c = graph.tensors[layer.inputs[0]].shape
        a, b = layer.attrs["start"], layer.attrs["stop"]
        if not (isinstance(a, int) and isinstance(b, int) and 0 <= a < b <= c):
            fail(layer, f"channel range [{a}, {b}) invalid for {c} channels")
        if graph.tensors[layer.output].shape != (h, w, b - a):
            fail(layer, f"output shape {graph.tensors[layer.output].shape} != {(h, w, b - a)}")

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        return _same(partial(kernels.slice_channels, start=layer.attrs["start"], stop=layer.attrs["stop"])), \
            bounds[layer.inputs[0]]


@register
class Concat(OpDef):
    """Inputs side by side in channels, rotated by `rotate` (DiracDeltaNet's C/4 rotation) or interleaved
    g ways (ShuffleNet's shuffle): a view, each input written at its place in one buffer."""

    name = "concat"
    n_inputs = None
    attrs = ("rotate",)
    stage = VIEW
    view = CONCATENATION

    def check(self, graph, layer) -> None:
        t = graph.tensors
        ins = [t[i] for i in layer.inputs]
        x, out = ins[0], t[layer.output]
        h, w, _ = x.shape
        for name, i in zip(layer.inputs, ins):
            if (i.bits, i.signed, i.scale) != (x.bits, x.signed, x.scale) or i.shape[:2] != (h, w):
                fail(layer, f"input '{name}' differs from '{layer.inputs[0]}' in bits, scale or spatial "
                            "size; concatenated branches must share one quantizer")
        total = sum(i.shape[2] for i in ins)
        if out.shape != (h, w, total):
            fail(layer, f"output shape {out.shape} != {(h, w, total)}")
        r = layer.attrs["rotate"]
        if not isinstance(r, int) or not 0 <= r < total:
            fail(layer, f"rotate {r!r} outside 0..{total - 1}")
        g = layer.attrs.get("interleave", 1)
        if not isinstance(g, int) or isinstance(g, bool) or g < 1:
            fail(layer, f"interleave {g!r} must be a positive integer")
        if g > 1 and (len(ins) != g or len({i.shape[2] for i in ins}) != 1):
            fail(layer, f"interleave {g} needs {g} inputs of equal channel count, got {[i.shape[2] for i in ins]}")
        if (out.bits, out.signed, out.scale) != (x.bits, x.signed, x.scale):
            fail(layer, "output must keep the inputs' bits, signedness and scale")

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        return (partial(kernels.interleave_concat, rotate=layer.attrs["rotate"],
                        interleave=layer.attrs.get("interleave", 1)),
                max(bounds[i] for i in layer.inputs))


@register
class GlobalSumPool(OpDef):
    """Σ over the pixels per channel (the classifier's average pool without the division), on the ARM."""

    name = "globalsumpool"

    def check(self, graph, layer) -> None:
        c = graph.tensors[layer.inputs[0]].shape[2]
        if graph.tensors[layer.output].shape != (1, 1, c):
            fail(layer, f"output shape {graph.tensors[layer.output].shape} != (1, 1, {c})")

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        x = graph.tensors[layer.inputs[0]]
        h, w, _ = x.shape
        bound = bounds[layer.inputs[0]] * h * w
        # a signed input's sums can be negative: a signed dtype that holds −bound..bound
        dtype = np.min_scalar_type(-bound) if x.signed else np.min_scalar_type(bound)
        return _same(partial(kernels.globalsumpool, dtype=dtype)), bound
