"""The dense ops: 1×1 convolution (the MAC array), k×k convolution and the detector's 1×1 heads
(the ARM), the classifier's linear layer (the ARM)."""
from __future__ import annotations

from functools import partial

import numpy as np

from ..golden import ops as kernels
from ..graph.ir import IRError, accumulator_bound, check_requant, check_weight, fail, half_even
from ..graph.opdef import CONV, HOST, OpDef, Step, register

HEAD_BITS = 32  # conv1x1_head outputs: signed integers of at most this many bits
_REQUANT = {"weight": "i", "mult": "i", "bias": "i"}


def requant_inputs(graph, layer, bounds: dict[str, int]) -> tuple[int, np.ndarray, np.ndarray]:
    """The bound of a requantizing op's input (checked against its declared range: validate's 48-bit
    requant bound assumes it) and the op's requant constants (golden/ops.py requant_constants)."""
    x, x_bound = graph.tensors[layer.inputs[0]], bounds[layer.inputs[0]]
    if x_bound > x.magnitude:
        raise IRError(f"layer '{layer.name}' ({layer.op}): input '{layer.inputs[0]}' can reach {x_bound}, "
                      f"beyond its declared {x.bits}-bit range")
    mult_s, offset_s = kernels.requant_constants(layer.params["mult"], layer.params["bias"], layer.attrs["shift"])
    return x_bound, mult_s, offset_s


@register
class Conv1x1(OpDef):
    """y = requant(W x) per pixel: the engine's MAC array."""

    name = "conv1x1"
    params = _REQUANT
    attrs = ("shift", "weight_bits")
    stage = CONV

    def check(self, graph, layer) -> None:
        (h, w, c), out = graph.tensors[layer.inputs[0]].shape, graph.tensors[layer.output]
        if out.shape[:2] != (h, w):
            fail(layer, f"output spatial size {out.shape[:2]} != input {(h, w)}")
        check_weight(layer, out.shape[2], c)
        check_requant(graph, layer, accumulator_bound(layer.params["weight"], graph.tensors[layer.inputs[0]].magnitude))

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        x_bound, mult_s, offset_s = requant_inputs(graph, layer, bounds)
        gemm = kernels.exact_dtype(accumulator_bound(layer.params["weight"], x_bound))
        out = graph.tensors[layer.output]
        fn = partial(kernels.conv1x1, weight_t=kernels.transposed(layer.params["weight"], gemm), mult_s=mult_s,
                     offset_s=offset_s, out_max=out.max_value, half_even=half_even(layer), out_min=out.min_value)
        return (lambda xs: fn(xs[0])), out.magnitude


@register
class Conv2d(OpDef):
    """A dense k×k convolution (CoDeNet's stem), im2col + GEMM + requant: on the engine, the window
    unit feeds the MAC array each output pixel's k·k taps (docs/engine.md, "Window unit")."""

    name = "conv2d"
    params = _REQUANT
    attrs = ("kernel", "stride", "padding", "shift", "weight_bits")
    stage = CONV

    def engine_flags(self, layer) -> tuple[str, ...]:
        return ("KXK",)

    def window(self, layer) -> tuple[int, int, int]:
        return layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["padding"]

    def check(self, graph, layer) -> None:
        (h, w, c), out = graph.tensors[layer.inputs[0]].shape, graph.tensors[layer.output]
        k, s, p = (layer.attrs[a] for a in ("kernel", "stride", "padding"))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (k, s, p)) or k < 1 or s < 1 \
                or not 0 <= p < k:
            fail(layer, f"kernel {k!r}, stride {s!r}, padding {p!r}: need kernel >= 1, stride >= 1, "
                        "0 <= padding < kernel")
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if ho < 1 or wo < 1 or out.shape[:2] != (ho, wo):
            fail(layer, f"output spatial size {out.shape[:2]} != {(ho, wo)}")
        check_weight(layer, out.shape[2], c * k * k)
        check_requant(graph, layer, accumulator_bound(layer.params["weight"], graph.tensors[layer.inputs[0]].magnitude))

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        x_bound, mult_s, offset_s = requant_inputs(graph, layer, bounds)
        a = layer.attrs
        gemm = kernels.exact_dtype(accumulator_bound(layer.params["weight"], x_bound))
        out = graph.tensors[layer.output]
        fn = partial(kernels.conv2d, weight_t=kernels.transposed(layer.params["weight"], gemm), mult_s=mult_s,
                     offset_s=offset_s, out_max=out.max_value, kernel=a["kernel"], stride=a["stride"],
                     padding=a["padding"], half_even=half_even(layer), out_min=out.min_value)
        return (lambda xs: fn(xs[0])), out.magnitude


def _biased_bound(layer, x_bound: int) -> tuple[int, int]:
    acc = accumulator_bound(layer.params["weight"], x_bound)
    return acc, acc + int(np.abs(layer.params["bias"].astype(np.int64)).max(initial=0))


@register
class Conv1x1Head(OpDef):
    """A detector head's last 1×1 conv: W x + b, signed, with a float scale per output channel
    (CenterNet's heatmap / size / offset); the ARM runs it and decodes boxes from it."""

    name = "conv1x1_head"
    params = {"weight": "i", "bias": "i", "out_scale": "f"}
    attrs = ("weight_bits",)
    host_decode = True

    def check(self, graph, layer) -> None:
        x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.output]
        (h, w, c), cout = x.shape, out.shape[2]
        if out.shape[:2] != (h, w):
            fail(layer, f"output spatial size {out.shape[:2]} != input {(h, w)}")
        check_weight(layer, cout, c)
        for p in ("bias", "out_scale"):
            if layer.params[p].shape != (cout,):
                fail(layer, f"'{p}' shape {layer.params[p].shape} != ({cout},)")
        sc = layer.params["out_scale"]
        if not (np.all(np.isfinite(sc)) and np.all(sc > 0)):
            fail(layer, "'out_scale' must hold positive finite floats")
        if not out.signed or not 2 <= out.bits <= HEAD_BITS:
            fail(layer, f"output must be signed, at most {HEAD_BITS} bits")
        if _biased_bound(layer, x.magnitude)[1] > out.max_value:
            fail(layer, f"output bound {_biased_bound(layer, x.magnitude)[1]} does not fit its {out.bits}-bit "
                        "signed tensor")

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        acc, bound = _biased_bound(layer, bounds[layer.inputs[0]])
        fn = partial(kernels.conv1x1_head, weight_t=kernels.transposed(layer.params["weight"], kernels.exact_dtype(acc)),
                     bias=layer.params["bias"].astype(np.int64))
        return (lambda xs: fn(xs[0])), bound


@register
class Linear(OpDef):
    """The classifier: (1, 1, Cin) → W x + b, exact integers (the logits), on the ARM."""

    name = "linear"
    params = {"weight": "i", "bias": "i"}
    attrs = ("weight_bits",)
    stage = HOST

    def check(self, graph, layer) -> None:
        x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.output]
        cout = out.shape[2]
        if out.shape != (1, 1, cout) or x.shape[:2] != (1, 1):
            fail(layer, "linear maps a (1, 1, Cin) tensor to (1, 1, Cout)")
        check_weight(layer, cout, x.shape[2])
        if layer.params["bias"].shape != (cout,):
            fail(layer, f"'bias' shape {layer.params['bias'].shape} != ({cout},)")

    def prepare(self, graph, layer, bounds) -> tuple[Step, int]:
        acc, bound = _biased_bound(layer, bounds[layer.inputs[0]])
        fn = partial(kernels.linear, weight_t=kernels.transposed(layer.params["weight"], kernels.exact_dtype(acc)),
                     bias=layer.params["bias"].astype(np.int64))
        return (lambda xs: fn(xs[0])), bound
