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
from .opdef import OPS

FORMAT = "codesign-ir"
# Version 2 added signed (two's complement) activations: a requantized tensor may be signed. A file is
# written as version 1 when it has none (so it stays readable by codesign before version 2, and
# unchanged byte for byte); version 1 files load with their meaning unchanged (a tensor without
# "signed" is unsigned). `ir_version` picks the version a graph needs.
VERSION = 2
READ_VERSIONS = (1, 2)

MIN_BITS, MAX_BITS = 2, 8
# Widest intermediate of the requantizer, acc * M + B + 2^(S-1); the HLS engine maps it to one
# DSP48E2 post-adder (48-bit signed), so the exporter must keep every layer inside it.
REQUANT_BITS = 48
# The requant multiplier's range (docs/integer-contract.md): |M| < 2^23, the engine's multiplier
# operand (requant.h rq_mult_t; hw/layout.py packs it in this many bits). B is bounded by the
# 48-bit intermediate (REQUANT_BITS) and the engine holds all 48 bits.
REQUANT_M_BITS = 24
ACC_LIMIT_BITS = 32
# How a requant rounds a value exactly halfway between two integers: "half_up" (the default, the
# engine's +2^(S-1) then >> S) or "half_even" (QONNX's ROUND; layers imported from QONNX whose
# exact requant can hit a tie carry it, docs/ir.md; the engine runs them when built with `half_even`).
ROUNDINGS = ("half_up", "half_even")


def ir_version(tensors: dict[str, "TensorInfo"]) -> int:
    """The oldest IR version that holds these tensors: 2 with a signed activation (a signed tensor
    of at most MAX_BITS bits; logits and head outputs were signed in version 1 already), else 1."""
    return 2 if any(t.signed and t.bits <= MAX_BITS for t in tensors.values()) else 1


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

    @property
    def min_value(self) -> int:
        """−2^(b−1) for a signed (two's complement) tensor, 0 for an unsigned one."""
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def magnitude(self) -> int:
        """The largest |value| the tensor can hold: 2^(b−1) signed (its minimum), 2^b − 1 unsigned."""
        return max(self.max_value, -self.min_value)


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
_KIND_NAMES = {"i": "an integer type", "f": "a floating-point type"}


def fail(layer: Layer, msg: str) -> None:
    raise IRError(f"layer '{layer.name}' ({layer.op}): {msg}")


def check_bits(where: str, bits: Any) -> None:
    if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise IRError(f"{where}: bit width {bits!r} is outside the supported range {MIN_BITS}..{MAX_BITS}")


def check_weight(layer: Layer, cout: int, cin: int) -> None:
    w = layer.params["weight"]
    if w.shape != (cout, cin):
        fail(layer, f"weight shape {w.shape} != ({cout}, {cin})")
    bits = layer.attrs["weight_bits"]
    check_bits(f"layer '{layer.name}' weights", bits)
    lim = (1 << (bits - 1)) - 1  # narrow range: symmetric around zero
    if w.size and int(np.abs(w).max()) > lim:
        fail(layer, f"weight values exceed the {bits}-bit narrow range ±{lim}")


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
        op = OPS[layer.op]
        n_in, params, attrs = op.n_inputs, op.params, op.attrs
        if n_in is not None and len(layer.inputs) != n_in:
            fail(layer, f"expects {n_in} input(s), has {len(layer.inputs)}")
        if not layer.inputs:
            fail(layer, "has no inputs")
        for src in layer.inputs:
            if src not in defined:
                fail(layer, f"input '{src}' is not produced by an earlier layer")
        if layer.output in defined:
            fail(layer, f"output '{layer.output}' is written twice")
        if layer.output not in t:
            fail(layer, f"output '{layer.output}' has no tensor entry")
        for p, kind in params.items():
            arr = layer.params.get(p)
            if arr is None:
                fail(layer, f"missing parameter '{p}'")
            if not isinstance(arr, np.ndarray) or arr.dtype.kind != kind:
                fail(layer, f"parameter '{p}' has dtype {getattr(arr, 'dtype', type(arr).__name__)}, "
                             f"expected {_KIND_NAMES[kind]}")
        for a in attrs:
            if a not in layer.attrs:
                fail(layer, f"missing attribute '{a}'")
        if op.unsigned_input and t[layer.inputs[0]].signed:
            fail(layer, f"input '{layer.inputs[0]}' is signed and op '{layer.op}' takes only unsigned inputs")
        op.check(graph, layer)
        defined.add(layer.output)
    for o in graph.outputs:
        if o not in defined:
            raise IRError(f"graph output '{o}' is never produced")


def check_requant(graph: Graph, layer: Layer, acc_max: int) -> None:
    """The requant contract shared by every op that ends in `requant` (docs/integer-contract.md)."""
    x, out = graph.tensors[layer.inputs[0]], graph.tensors[layer.output]
    cout = out.shape[2]
    check_bits(f"tensor '{layer.output}'", out.bits)
    check_bits(f"tensor '{layer.inputs[0]}'", x.bits)
    for p in ("mult", "bias"):
        if layer.params[p].shape != (cout,):
            fail(layer, f"'{p}' shape {layer.params[p].shape} != ({cout},)")
    if layer.attrs.get("rounding", "half_up") not in ROUNDINGS:
        fail(layer, f"rounding {layer.attrs['rounding']!r} is not one of {', '.join(ROUNDINGS)}")
    s = layer.attrs["shift"]
    if not isinstance(s, int) or not 1 <= s < REQUANT_BITS - 1:
        fail(layer, f"requant shift {s!r} outside 1..{REQUANT_BITS - 2}")
    if acc_max >= 1 << (ACC_LIMIT_BITS - 1):
        fail(layer, f"accumulator bound {acc_max} does not fit {ACC_LIMIT_BITS} bits")
    m = np.abs(layer.params["mult"].astype(np.int64))
    b = np.abs(layer.params["bias"].astype(np.int64))
    if m.size and int(m.max()) >= 1 << (REQUANT_M_BITS - 1):
        c = int(np.argmax(m))
        fail(layer, f"requant multiplier M of channel {c} = {int(layer.params['mult'][c])}: |M| must be "
                    f"< 2^{REQUANT_M_BITS - 1} (the engine's {REQUANT_M_BITS}-bit multiplier)")
    worst = int(acc_max) * int(m.max(initial=0)) + int(b.max(initial=0)) + (1 << (s - 1))
    if worst >= 1 << (REQUANT_BITS - 1):
        fail(layer, f"requant intermediate bound {worst} does not fit {REQUANT_BITS} signed bits")


B_LIMIT_BITS = 40  # requant_constants keeps |B| < 2^40 (docs/integer-contract.md), well inside the 48 bits


def requant_constants(k: np.ndarray, b: np.ndarray, acc_max: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer M, B and shift S with M·2^-S ≈ k and B·2^-S ≈ b, as precise as the contract allows.

    Both front doors use it (the Brevitas exporter and the QONNX importer), so it lives with the IR
    and imports no torch. IRError when no shift keeps the 48-bit intermediate."""
    for s in range(REQUANT_BITS - 2, 0, -1):
        m = np.round(k * 2.0 ** s)
        bb = np.round(b * 2.0 ** s)
        m_max = float(np.abs(m).max(initial=0))
        b_max = float(np.abs(bb).max(initial=0))
        if m_max >= 2 ** (REQUANT_M_BITS - 1) or b_max >= 2 ** B_LIMIT_BITS:
            continue
        if acc_max * m_max + b_max + 2 ** (s - 1) >= 2 ** (REQUANT_BITS - 1):
            continue
        return m.astype(np.int64), bb.astype(np.int64), s
    raise IRError("requantization constants do not fit the 48-bit intermediate at any shift")


def half_even(layer: Layer) -> bool:
    """Does this requantizing layer round ties to even (attr `rounding`, default half_up)?"""
    return layer.attrs.get("rounding", "half_up") == "half_even"


def accumulator_bound(weight: np.ndarray, x_max: int) -> int:
    """Largest |sum_i w[o, i] * x[i]| over all outputs o and all inputs |x| <= x_max (pass a
    tensor's `magnitude`: a signed tensor's bound is its minimum, −2^(b−1))."""
    if weight.size == 0:
        return 0
    return int(np.abs(weight.astype(np.int64)).sum(axis=1).max()) * int(x_max)
