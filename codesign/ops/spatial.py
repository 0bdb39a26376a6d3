"""The 3×3 ops of the engine's spatial unit: depthwise (stride 1 or 2) and CoDeNet's deformable
convolution with a per-pixel dilation (docs/integer-contract.md)."""
from __future__ import annotations

from functools import partial

from ..golden import ops as kernels
from ..graph.ir import IRError, accumulator_bound, check_requant, check_weight, fail, half_even
from ..graph.opdef import SPATIAL, OpDef, Step, register
from .conv import requant_inputs

_REQUANT = {"weight": "i", "mult": "i", "bias": "i"}


@register
class DWConv3x3(OpDef):
    """Depthwise 3×3, zero padding 1, stride 1 or 2, requantized: y[c] = requant(Σ_k W[c, k] x_k[c])."""

    name = "dwconv3x3"
    params = _REQUANT
    attrs = ("shift", "weight_bits", "stride")
    stage = SPATIAL
    spatial_kind = "dw"

    def check(self, graph, layer) -> None:
        x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.output]
        h, w, c = x.shape
        s = layer.attrs["stride"]
        if s not in (1, 2) or isinstance(s, bool):
            fail(layer, f"stride {s!r} is not 1 or 2")
        want = ((h - 1) // s + 1, (w - 1) // s + 1, c)
        if out.shape != want:
            fail(layer, f"output shape {out.shape} != {want}")
        check_weight(layer, c, 9)
        check_requant(graph, layer, accumulator_bound(layer.params["weight"], x.magnitude))

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        _, mult_s, offset_s = requant_inputs(graph, layer, bounds)
        out = graph.tensors[layer.output]
        fn = partial(kernels.dwconv3x3, weight=layer.params["weight"], mult_s=mult_s, offset_s=offset_s,
                     out_max=out.max_value, stride=layer.attrs["stride"], half_even=half_even(layer),
                     out_min=out.min_value)
        return (lambda xs: fn(xs[0])), out.magnitude

    def engine_flags(self, layer) -> tuple[str, ...]:
        return ("DW", "STRIDE2") if layer.attrs["stride"] == 2 else ("DW",)


@register
class Deform3x3(OpDef):
    """Depthwise 3×3 whose taps sit at ±d(pixel) (input 2: the dilation map, 0..max_dilation)."""

    name = "deform3x3"
    n_inputs = 2
    params = _REQUANT
    attrs = ("shift", "weight_bits", "max_dilation")
    stage = SPATIAL
    spatial_kind = "deform"

    def check(self, graph, layer) -> None:
        x, d, out = (graph.tensors[n] for n in (*layer.inputs, layer.output))
        h, w, c = x.shape
        r = layer.attrs["max_dilation"]
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            fail(layer, f"max_dilation {r!r} must be a positive integer")
        if d.shape != (h, w, 1) or d.signed:
            fail(layer, f"dilation input '{layer.inputs[1]}' must be unsigned (H, W, 1) = {(h, w, 1)}, "
                        f"got {'signed ' if d.signed else ''}{d.shape}")
        if d.max_value > r:
            fail(layer, f"dilation input '{layer.inputs[1]}' holds values up to {d.max_value} ({d.bits} bits) "
                        f"> max_dilation {r}")
        if out.shape != x.shape:
            fail(layer, f"output shape {out.shape} != input {x.shape}")
        check_weight(layer, c, 9)
        check_requant(graph, layer, accumulator_bound(layer.params["weight"], x.magnitude))

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        _, mult_s, offset_s = requant_inputs(graph, layer, bounds)
        d_bound = bounds[layer.inputs[1]]
        if d_bound > layer.attrs["max_dilation"]:
            raise IRError(f"layer '{layer.name}' (deform3x3): dilation input '{layer.inputs[1]}' can reach "
                          f"{d_bound} > max_dilation {layer.attrs['max_dilation']}")
        out = graph.tensors[layer.output]
        fn = partial(kernels.deform3x3, weight=layer.params["weight"], mult_s=mult_s, offset_s=offset_s,
                     out_max=out.max_value, half_even=half_even(layer), out_min=out.min_value)
        return (lambda xs: fn(xs[0], xs[1])), out.magnitude

    def engine_flags(self, layer) -> tuple[str, ...]:
        return ("DEFORM",)

    def dilation_input(self, layer) -> str | None:
        return layer.inputs[1]

    def max_dilation(self, layer) -> int:
        return layer.attrs["max_dilation"]
