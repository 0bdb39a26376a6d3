"""The integer IR: typed layers over quantized tensors, handed from the exporter to everything below.

A `Graph` is a topologically ordered list of `Layer`s. Every tensor has a per-image shape in
HWC order (channels innermost, as the engine stores feature maps), a bit width, a signedness and
one float scale (real value = integer * scale). The arithmetic of every op is defined in
docs/integer-contract.md; `validate` enforces the structural part of that contract so a bad
file fails at load time with a readable message instead of deep inside the executor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CodesignError

FORMAT = "codesign-ir"
VERSION = 1

MIN_BITS, MAX_BITS = 2, 8
# Widest intermediate of the requantizer, acc * M + B + 2^(S-1); the HLS engine maps it to one
# DSP48E2 post-adder (48-bit signed), so the exporter must keep every layer inside it.
REQUANT_BITS = 48
ACC_LIMIT_BITS = 32


class IRError(CodesignError):
    """An IR file or graph that breaks the contract; the message names what and where."""


@dataclass
class TensorInfo:
    shape: tuple[int, int, int]  # H, W, C
    bits: int
    signed: bool
    scale: float

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "bits": self.bits, "signed": self.signed, "scale": self.scale}

    @property
    def max_value(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


@dataclass
class Layer:
    name: str
    op: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)


class Graph:
    """The graph: `outputs` lists the tensors the network returns (a detector has several).

    `Graph(name, input, output, tensors, layers, meta)` takes one output name or a list of them
    as its third argument (or `outputs=`); `graph.output` is the first output, so code written
    for single-output graphs keeps working.
    """

    def __init__(self, name: str, input: str, output: str | list[str] | tuple[str, ...] | None = None,
                 tensors: dict[str, TensorInfo] | None = None, layers: list[Layer] | None = None,
                 meta: dict[str, Any] | None = None, *, outputs: list[str] | None = None):
        if outputs is None:
            if output is None:
                raise TypeError("Graph needs an output (or outputs=[...])")
            outputs = [output] if isinstance(output, str) else list(output)
        elif output is not None:
            raise TypeError("give the graph's output either positionally or as outputs=, not both")
        self.name = name
        self.input = input
        self.outputs: list[str] = list(outputs)
        self.tensors: dict[str, TensorInfo] = tensors if tensors is not None else {}
        self.layers: list[Layer] = layers if layers is not None else []
        self.meta: dict[str, Any] = meta if meta is not None else {}

    @property
    def output(self) -> str:
        """The first (for a classifier: the only) graph output."""
        return self.outputs[0]

    @output.setter
    def output(self, name: str) -> None:
        self.outputs[0] = name

    def __repr__(self) -> str:
        return (f"Graph(name={self.name!r}, input={self.input!r}, outputs={self.outputs!r}, "
                f"{len(self.tensors)} tensors, {len(self.layers)} layers)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (self.name, self.input, self.outputs, self.tensors, self.meta) == \
            (other.name, other.input, other.outputs, other.tensors, other.meta) and \
            len(self.layers) == len(other.layers) and all(_same_layer(a, b) for a, b in zip(self.layers, other.layers))

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def producer(self, tensor: str) -> Layer | None:
        for layer in self.layers:
            if layer.output == tensor:
                return layer
        return None

    def real_values(self, tensor: str, values: np.ndarray) -> np.ndarray:
        """The real numbers a tensor's integers (..., C) stand for: × the per-channel out_scale of
        a conv1x1_head's output (that tensor's own scale is only the largest of them), else × the
        tensor's scale."""
        layer = self.producer(tensor)
        if layer is not None and "out_scale" in layer.params:
            return np.asarray(values) * layer.params["out_scale"]
        return np.asarray(values) * self.tensors[tensor].scale


def _same_layer(a: Layer, b: Layer) -> bool:
    return (a.name, a.op, a.inputs, a.output, a.attrs) == (b.name, b.op, b.inputs, b.output, b.attrs) and \
        a.params.keys() == b.params.keys() and all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


# ---- per-op structural rules -------------------------------------------------------------------

# op -> (number of inputs or None for >=1, required params with dtype kind, required attrs)
OPS: dict[str, tuple[int | None, dict[str, str], tuple[str, ...]]] = {
    "conv1x1": (1, {"weight": "i", "mult": "i", "bias": "i"}, ("shift", "weight_bits")),
    "shift": (1, {}, ("pattern",)),
    "maxpool2x2": (1, {}, ()),
    "slice": (1, {}, ("start", "stop")),
    "concat": (None, {}, ("rotate",)),
    "globalsumpool": (1, {}, ()),
    "linear": (1, {"weight": "i", "bias": "i"}, ("weight_bits",)),
    # CoDeNet (docs/integer-contract.md): depthwise / deformable 3×3, upsample, stem and heads
    "dwconv3x3": (1, {"weight": "i", "mult": "i", "bias": "i"}, ("shift", "weight_bits", "stride")),
    "deform3x3": (2, {"weight": "i", "mult": "i", "bias": "i"}, ("shift", "weight_bits", "max_dilation")),
    "upsample2x": (1, {}, ()),
    "conv2d": (1, {"weight": "i", "mult": "i", "bias": "i"},
               ("kernel", "stride", "padding", "shift", "weight_bits")),
    "conv1x1_head": (1, {"weight": "i", "bias": "i", "out_scale": "f"}, ("weight_bits",)),
}
SHIFT_PATTERNS = ("dirac5",)
# Ops whose output is requantized to unsigned activations (the shared requant checks).
REQUANT_OPS = ("conv1x1", "dwconv3x3", "deform3x3", "conv2d")
HEAD_BITS = 32  # conv1x1_head outputs: signed integers of at most this many bits
_KIND_NAMES = {"i": "an integer type", "f": "a floating-point type"}


def _fail(layer: Layer, msg: str) -> None:
    raise IRError(f"layer '{layer.name}' ({layer.op}): {msg}")


def _check_bits(where: str, bits: Any) -> None:
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise IRError(f"{where}: bit width {bits!r} is outside the supported range {MIN_BITS}..{MAX_BITS}")


def _check_weight(layer: Layer, cout: int, cin: int) -> None:
    w = layer.params["weight"]
    if w.shape != (cout, cin):
        _fail(layer, f"weight shape {w.shape} != ({cout}, {cin})")
    bits = layer.attrs["weight_bits"]
    _check_bits(f"layer '{layer.name}' weights", bits)
    lim = (1 << (bits - 1)) - 1  # narrow range: symmetric around zero
    if w.size and int(np.abs(w).max()) > lim:
        _fail(layer, f"weight values exceed the {bits}-bit narrow range ±{lim}")


def validate(graph: Graph) -> None:
    """Raise IRError on the first structural violation of the integer contract."""
    t = graph.tensors
    if graph.input not in t:
        raise IRError(f"graph input '{graph.input}' has no tensor entry")
    if not graph.outputs:
        raise IRError("the graph has no outputs")
    if len(set(graph.outputs)) != len(graph.outputs):
        raise IRError(f"graph outputs {graph.outputs} name a tensor twice")
    for o in graph.outputs:
        if o not in t:
            raise IRError(f"graph output '{o}' has no tensor entry")
    for name, info in t.items():
        if len(info.shape) != 3 or any((not isinstance(d, int)) or d <= 0 for d in info.shape):
            raise IRError(f"tensor '{name}': shape {info.shape} is not three positive ints (H, W, C)")
        if not (isinstance(info.scale, float) and np.isfinite(info.scale) and info.scale > 0):
            raise IRError(f"tensor '{name}': scale {info.scale!r} must be a positive finite float")
    inp = t[graph.input]
    if inp.signed or inp.bits != 8:
        raise IRError(f"graph input '{graph.input}' must be unsigned 8-bit (image pixels)")
    defined = {graph.input}
    for layer in graph.layers:
        if layer.op not in OPS:
            raise IRError(f"layer '{layer.name}': unknown op '{layer.op}' (known: {', '.join(sorted(OPS))})")
        n_in, params, attrs = OPS[layer.op]
        if n_in is not None and len(layer.inputs) != n_in:
            _fail(layer, f"expects {n_in} input(s), has {len(layer.inputs)}")
        if not layer.inputs:
            _fail(layer, "has no inputs")
        for src in layer.inputs:
            if src not in defined:
                _fail(layer, f"input '{src}' is not produced by an earlier layer")
        if layer.output in defined:
            _fail(layer, f"output '{layer.output}' is written twice")
        if layer.output not in t:
            _fail(layer, f"output '{layer.output}' has no tensor entry")
        for p, kind in params.items():
            arr = layer.params.get(p)
            if arr is None:
                _fail(layer, f"missing parameter '{p}'")
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != kind:
                _fail(layer, f"parameter '{p}' has dtype {getattr(arr, 'dtype', type(arr).__name__)}, "
                             f"expected {_KIND_NAMES[kind]}")
        for a in attrs:
            if a not in layer.attrs:
                _fail(layer, f"missing attribute '{a}'")
        _validate_op(graph, layer)
        defined.add(layer.output)
    for o in graph.outputs:
        if o not in defined:
            raise IRError(f"graph output '{o}' is never produced")


def _validate_op(graph: Graph, layer: Layer) -> None:
    t = graph.tensors
    ins = [t[i] for i in layer.inputs]
    out = t[layer.output]
    x = ins[0]
    h, w, c = x.shape
    if layer.op in ("conv1x1", "shift", "maxpool2x2", "slice", "globalsumpool", "linear", "dwconv3x3",
                    "deform3x3", "upsample2x", "conv2d", "conv1x1_head") and x.signed:
        _fail(layer, f"input '{layer.inputs[0]}' must be unsigned")
    if layer.op == "conv1x1":
        cout = out.shape[2]
        if out.shape[:2] != (h, w):
            _fail(layer, f"output spatial size {out.shape[:2]} != input {(h, w)}")
        _check_weight(layer, cout, c)
        _check_requant(graph, layer, accumulator_bound(layer.params["weight"], x.max_value))
    elif layer.op == "dwconv3x3":
        s = layer.attrs["stride"]
        if s not in (1, 2) or isinstance(s, bool):
            _fail(layer, f"stride {s!r} is not 1 or 2")
        want = ((h - 1) // s + 1, (w - 1) // s + 1, c)
        if out.shape != want:
            _fail(layer, f"output shape {out.shape} != {want}")
        _check_weight(layer, c, 9)
        _check_requant(graph, layer, accumulator_bound(layer.params["weight"], x.max_value))
    elif layer.op == "deform3x3":
        d = ins[1]
        r = layer.attrs["max_dilation"]
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            _fail(layer, f"max_dilation {r!r} must be a positive integer")
        if d.shape != (h, w, 1) or d.signed:
            _fail(layer, f"dilation input '{layer.inputs[1]}' must be unsigned (H, W, 1) = {(h, w, 1)}, "
                         f"got {'signed ' if d.signed else ''}{d.shape}")
        if d.max_value > r:
            _fail(layer, f"dilation input '{layer.inputs[1]}' holds values up to {d.max_value} ({d.bits} bits) "
                         f"> max_dilation {r}")
        if out.shape != x.shape:
            _fail(layer, f"output shape {out.shape} != input {x.shape}")
        _check_weight(layer, c, 9)
        _check_requant(graph, layer, accumulator_bound(layer.params["weight"], x.max_value))
    elif layer.op == "conv2d":
        k, s, p = (layer.attrs[a] for a in ("kernel", "stride", "padding"))
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (k, s, p)) or k < 1 or s < 1 \
                or not 0 <= p < k:
            _fail(layer, f"kernel {k!r}, stride {s!r}, padding {p!r}: need kernel >= 1, stride >= 1, "
                         "0 <= padding < kernel")
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if ho < 1 or wo < 1 or out.shape[:2] != (ho, wo):
            _fail(layer, f"output spatial size {out.shape[:2]} != {(ho, wo)}")
        _check_weight(layer, out.shape[2], c * k * k)
        _check_requant(graph, layer, accumulator_bound(layer.params["weight"], x.max_value))
    elif layer.op == "conv1x1_head":
        cout = out.shape[2]
        if out.shape[:2] != (h, w):
            _fail(layer, f"output spatial size {out.shape[:2]} != input {(h, w)}")
        _check_weight(layer, cout, c)
        for p in ("bias", "out_scale"):
            if layer.params[p].shape != (cout,):
                _fail(layer, f"'{p}' shape {layer.params[p].shape} != ({cout},)")
        sc = layer.params["out_scale"]
        if not (np.all(np.isfinite(sc)) and np.all(sc > 0)):
            _fail(layer, "'out_scale' must hold positive finite floats")
        if not out.signed or not 2 <= out.bits <= HEAD_BITS:
            _fail(layer, f"output must be signed, at most {HEAD_BITS} bits")
        bound = accumulator_bound(layer.params["weight"], x.max_value) + \
            int(np.abs(layer.params["bias"].astype(np.int64)).max(initial=0))
        if bound > out.max_value:
            _fail(layer, f"output bound {bound} does not fit its {out.bits}-bit signed tensor")
    elif layer.op == "upsample2x":
        if (out.bits, out.signed, out.scale) != (x.bits, x.signed, x.scale):
            _fail(layer, "output must keep the input's bits, signedness and scale")
        if out.shape != (2 * h, 2 * w, c):
            _fail(layer, f"output shape {out.shape} != {(2 * h, 2 * w, c)}")
    elif layer.op in ("shift", "slice", "maxpool2x2"):
        if (out.bits, out.signed, out.scale) != (x.bits, x.signed, x.scale):
            _fail(layer, "output must keep the input's bits, signedness and scale")
        if layer.op == "shift":
            if layer.attrs["pattern"] not in SHIFT_PATTERNS:
                _fail(layer, f"unknown shift pattern {layer.attrs['pattern']!r}")
            if out.shape != x.shape:
                _fail(layer, "shift must keep the shape")
        elif layer.op == "maxpool2x2":
            if out.shape != (h // 2, w // 2, c) or h < 2 or w < 2:
                _fail(layer, f"output shape {out.shape} != {(h // 2, w // 2, c)}")
        else:
            a, b = layer.attrs["start"], layer.attrs["stop"]
            if not (isinstance(a, int) and isinstance(b, int) and 0 <= a < b <= c):
                _fail(layer, f"channel range [{a}, {b}) invalid for {c} channels")
            if out.shape != (h, w, b - a):
                _fail(layer, f"output shape {out.shape} != {(h, w, b - a)}")
    elif layer.op == "concat":
        for name, i in zip(layer.inputs, ins):
            if (i.bits, i.signed, i.scale) != (x.bits, x.signed, x.scale) or i.shape[:2] != (h, w):
                _fail(layer, f"input '{name}' differs from '{layer.inputs[0]}' in bits, scale or spatial "
                             "size; concatenated branches must share one quantizer")
        total = sum(i.shape[2] for i in ins)
        if out.shape != (h, w, total):
            _fail(layer, f"output shape {out.shape} != {(h, w, total)}")
        r = layer.attrs["rotate"]
        if not isinstance(r, int) or not 0 <= r < total:
            _fail(layer, f"rotate {r!r} outside 0..{total - 1}")
        g = layer.attrs.get("interleave", 1)
        if not isinstance(g, int) or isinstance(g, bool) or g < 1:
            _fail(layer, f"interleave {g!r} must be a positive integer")
        if g > 1 and (len(ins) != g or len({i.shape[2] for i in ins}) != 1):
            _fail(layer, f"interleave {g} needs {g} inputs of equal channel count, got "
                         f"{[i.shape[2] for i in ins]}")
        if (out.bits, out.signed, out.scale) != (x.bits, x.signed, x.scale):
            _fail(layer, "output must keep the inputs' bits, signedness and scale")
    elif layer.op == "globalsumpool":
        if out.shape != (1, 1, c):
            _fail(layer, f"output shape {out.shape} != (1, 1, {c})")
    elif layer.op == "linear":
        cout = out.shape[2]
        if out.shape != (1, 1, cout) or x.shape[:2] != (1, 1):
            _fail(layer, "linear maps a (1, 1, Cin) tensor to (1, 1, Cout)")
        _check_weight(layer, cout, c)
        if layer.params["bias"].shape != (cout,):
            _fail(layer, f"'bias' shape {layer.params['bias'].shape} != ({cout},)")


def _check_requant(graph: Graph, layer: Layer, acc_max: int) -> None:
    """The requant contract shared by every op that ends in `requant` (docs/integer-contract.md)."""
    x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.output]
    cout = out.shape[2]
    _check_bits(f"tensor '{layer.output}'", out.bits)
    _check_bits(f"tensor '{layer.inputs[0]}'", x.bits)
    if out.signed:
        _fail(layer, "requantized output must be unsigned (ReLU)")
    for p in ("mult", "bias"):
        if layer.params[p].shape != (cout,):
            _fail(layer, f"'{p}' shape {layer.params[p].shape} != ({cout},)")
    s = layer.attrs["shift"]
    if not isinstance(s, int) or not 1 <= s < REQUANT_BITS - 1:
        _fail(layer, f"requant shift {s!r} outside 1..{REQUANT_BITS - 2}")
    if acc_max >= 1 << (ACC_LIMIT_BITS - 1):
        _fail(layer, f"accumulator bound {acc_max} does not fit {ACC_LIMIT_BITS} bits")
    m = np.abs(layer.params["mult"].astype(np.int64))
    b = np.abs(layer.params["bias"].astype(np.int64))
    worst = int(acc_max) * int(m.max(initial=0)) + int(b.max(initial=0)) + (1 << (s - 1))
    if worst >= 1 << (REQUANT_BITS - 1):
        _fail(layer, f"requant intermediate bound {worst} does not fit {REQUANT_BITS} signed bits")


def accumulator_bound(weight: np.ndarray, x_max: int) -> int:
    """Largest |sum_i w[o, i] * x[i]| over all outputs o and all inputs 0 <= x <= x_max."""
    if weight.size == 0:
        return 0
    return int(np.abs(weight.astype(np.int64)).sum(axis=1).max()) * int(x_max)
