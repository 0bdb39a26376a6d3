"""QONNX (as `brevitas.export.export_qonnx` writes it) → the integer IR (docs/ir.md, "Importing QONNX").

The file is read by `readers.read_onnx`, checked for what would break the `qonnx` package's own
passes (dynamic shapes, undefined tensors, cycles, no Quant node at all), cleaned with those passes
(cleanup, InferShapes, FoldConstants without the Quant nodes), and then walked node by node in
topological order. A float value between a weighted node (Conv, Gemm, MatMul) and the activation
Quant that ends it is held as a pending accumulator with a per-channel affine map (bias, BN folded
in float64, Mul/Add, ReLU, Clip); the Quant turns it into one IR layer whose requant constants
(M, B, S) are those of `graph.ir.requant_constants`, exactly as the Brevitas exporter derives them.
A depthwise 3×3 Conv with a constant one-hot float kernel (DiracDeltaNet's shift) is the IR `shift`,
and a channel roll (Slices of one tensor concatenated in rotated order) is folded into the `rotate`
of the concat it reads, so our own models import to the IR `codesign export` writes.
Everything the IR cannot express is refused with one line: the node, its op type, its attributes
and what is supported. No torch here: this is the back-end side of the front door.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CodesignError
from ..graph import Graph, IRError, Layer, TensorInfo, accumulator_bound, validate
from ..graph.ir import MAX_BITS, MIN_BITS, requant_constants
from ..graph.opdef import CHANNEL_RANGE, CONCATENATION, op_def
from ..ops.conv import Conv1x1
from ..ops.movement import SHIFT_OFFSETS
from ..readers import read_onnx
from .qonnx_ops import DOMAIN as CODESIGN_DOMAIN, SQUARE_DEFORM

LOGIT_BITS = 32
# Dense k×k kernels the host conv2d is offered for: odd, centred on the output pixel as Brevitas
# and torch pad them; an even kernel's window is off-centre, which nothing here is built or tested for.
CONV2D_KERNELS = (1, 3, 5, 7)
QUANT_OPS = ("Quant",)
SUPPORTED = ("Quant (weights: signed, narrow range, 2..8 bits, per-tensor or per-channel scale; activations: "
             "unsigned, signed after a ReLU, or signed full-range without one (a signed tensor), per-tensor scale, "
             "zero point 0), Conv (dense 1×1; dense k×k for k in "
             "1, 3, 5, 7 with square stride and symmetric padding < k; depthwise 3×3 with padding 1 and stride 1 "
             "or 2; depthwise 3×3 with a constant one-hot float kernel in a shift pattern: "
             f"{', '.join(SHIFT_OFFSETS)}), BatchNormalization, Mul/Add/Sub/Div by a constant, Relu, Clip(0, c), "
             "MaxPool 2×2 stride 2, "
             "GlobalAveragePool/ReduceMean over H and W, Gemm/MatMul on the pooled vector, Concat/Split/Slice along "
             "channels, a channel shuffle (Unsqueeze at axis 2, Concat along it, Reshape into channels), "
             "Flatten/Reshape/Squeeze of a pooled vector, Identity/Dropout, Resize nearest 2× (upsample), "
             f"{SQUARE_DEFORM} ({CODESIGN_DOMAIN}: CoDeNet's deformable 3×3), a dense 1×1 Conv with quantized weights "
             "and no output quantizer as a graph output (a detector head's output)")
# Ops that read a tensor at positions given by another tensor. With positions computed from activations they
# are a deformable convolution's sampling traced into index arithmetic, or ONNX DeformConv (free fractional
# per-tap offsets read bilinearly): neither is the IR's deform3x3, which codesign's CoDeNet exports as its own
# node (qonnx_ops.SquareDeformConv), so such a graph is refused at that node.
SAMPLING_OPS = ("Gather", "GatherElements", "GatherND", "GridSample", "DeformConv", "ScatterElements", "ScatterND")
SAMPLING_REASON = ("a read at positions computed from activations (a deformable convolution's sampling); the IR's "
                   f"limited-range square deform3x3 is the node {CODESIGN_DOMAIN}::{SQUARE_DEFORM}, which "
                   "codesign's DeformConvBNAct exports")
_ROUND_HALF_EVEN = ("ROUND", "HALF_EVEN")
_CLASSIFIER_OPS = ("Gemm", "MatMul")


class QonnxImportError(CodesignError):
    """A QONNX graph the integer IR cannot express, or a file that is not one; one line."""


@dataclass
class _QWeight:
    """A Quant node on a constant: integer weights and their scale (broadcastable to them)."""

    node: str
    values: np.ndarray  # integers (as int64), the ONNX weight's shape
    scale: np.ndarray  # float64, broadcastable to values
    bits: int


@dataclass
class _Pending:
    """A weighted node's float output before its activation quantizer: real = a·(s_in·s_w·acc) + b, then
    ReLU (relu) and an upper clip, per output channel."""

    node: str  # the IR layer's name (the weighted node's)
    op: str  # conv1x1 / conv2d / dwconv3x3 / linear
    src: str  # the IR tensor it reads
    weight: np.ndarray  # int8, the IR op's layout
    s_w: np.ndarray  # (Cout,) float64
    bits: int
    attrs: dict[str, Any]
    shape: tuple[int, int, int]  # output H, W, C
    a: np.ndarray
    b: np.ndarray
    relu: bool = False
    clip_max: float | None = None
    onnx_op: str = ""
    extra: list[str] = field(default_factory=list)  # IR inputs after src (deform3x3: the dilation map)

    @property
    def classifier(self) -> bool:
        """A Gemm/MatMul: its integer logits are an output, never requantized."""
        return self.onnx_op in _CLASSIFIER_OPS


@dataclass
class _State:
    path: Path
    consts: dict[str, np.ndarray]
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    layers: list[Layer] = field(default_factory=list)
    acts: dict[str, str] = field(default_factory=dict)  # ONNX tensor → IR tensor
    weights: dict[str, _QWeight] = field(default_factory=dict)
    pending: dict[str, _Pending] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    inexact: list[str] = field(default_factory=list)
    onnx_names: dict[str, str] = field(default_factory=dict)  # IR tensor → the ONNX tensor it stands for
    half_even: list[str] = field(default_factory=list)
    # a channel shuffle as torch.onnx writes torch.stack(xs, 2).flatten(1, 2): Unsqueeze at axis 2, Concat
    # along it, Reshape back to NCHW. ONNX tensor → the IR activation(s) it stacks
    unsqueezed: dict[str, str] = field(default_factory=dict)
    stacked: dict[str, list[str]] = field(default_factory=dict)


# ---- names ----------------------------------------------------------------------------------------

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.]+")


def ir_name(raw: str, used: set[str], fallback: str) -> str:
    """A readable, unique IR name from a user's node name: characters outside [A-Za-z0-9_.] become '_'
    (hls/names.py makes any IR name a C++ identifier later; this keeps the IR file and messages plain)."""
    base = _NAME_BAD.sub("_", raw).strip("_.")[:60] or fallback
    name, i = base, 1
    while name in used:
        name = f"{base}_{i}"
        i += 1
    used.add(name)
    return name


# ---- refusals -------------------------------------------------------------------------------------

def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode("utf-8", "replace") if isinstance(v, bytes) else (list(v) if isinstance(v, (list, tuple)) else v)
    return out


def _shown(attrs: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(attrs.items()) if not hasattr(v, "SerializeToString")]
    return f" [{', '.join(parts)}]" if parts else ""


def _refuse(st: _State, node: Any, what: str, supported: str = SUPPORTED) -> QonnxImportError:
    return QonnxImportError(f"{st.path}: node '{node.name}' ({node.op_type}){_shown(_attrs(node))}: {what}; "
                            f"supported: {supported}")


# ---- structural checks before qonnx touches the graph ------------------------------------------

def _check_structure(path: Path, model: Any) -> None:
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise QonnxImportError(f"{path}: the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                               "an image classifier has exactly one")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    if len(shape) != 4 or any(not isinstance(d, int) or d <= 0 for d in shape):
        raise QonnxImportError(f"{path}: input '{inputs[0].name}' has shape {shape}; the importer needs a static "
                               "NCHW shape (export with a fixed input_t, no dynamic axes)")
    known = inits | {i.name for i in g.input} | {""}
    producer: dict[str, int] = {}
    for i, n in enumerate(g.node):
        for o in n.output:
            if o in producer or o in known - {""}:
                raise QonnxImportError(f"{path}: tensor '{o}' is written twice (node '{n.name}' ({n.op_type}))")
            producer[o] = i
    for n in g.node:
        for t in n.input:
            if t not in known and t not in producer:
                raise QonnxImportError(f"{path}: node '{n.name}' ({n.op_type}) reads '{t}', which no node, "
                                       "initializer or graph input provides (a missing initializer?)")
    for o in g.output:
        if o.name not in producer and o.name not in known:
            raise QonnxImportError(f"{path}: graph output '{o.name}' is never produced")
    # Kahn's algorithm: nodes left over sit on a cycle (qonnx's SortGraph would loop or fail on them)
    deps = [{producer[t] for t in n.input if t in producer} for n in g.node]
    users: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(i)
    left = [len(d) for d in deps]
    ready = [i for i, k in enumerate(left) if k == 0]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for u in users.get(i, []):
            left[u] -= 1
            if left[u] == 0:
                ready.append(u)
    if done != len(g.node):
        cyc = [g.node[i].name or g.node[i].op_type for i, k in enumerate(left) if k > 0]
        raise QonnxImportError(f"{path}: the graph has a cycle (nodes on or behind it: {', '.join(cyc[:4])}"
                               f"{' …' if len(cyc) > 4 else ''}); ONNX graphs are acyclic")
    if not any(n.op_type in QUANT_OPS for n in g.node):
        ops = sorted({n.op_type for n in g.node})
        raise QonnxImportError(f"{path}: no Quant node: a float ONNX model ({', '.join(ops[:6])}), not QONNX; "
                               "export the quantized Brevitas model with brevitas.export.export_qonnx")


def _clean(path: Path, model: Any) -> Any:
    """The qonnx package's own passes; their failures become one line."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.infer_shapes import InferShapes

    try:
        mw = ModelWrapper(model).cleanup()
        # BatchNormalization stays: `_batchnorm` folds it in float64 as the exporter does (qonnx's
        # BatchNormToAffine computes in float32, which moves some M by one unit)
        # no copy and no cleanup between the passes (qonnx's default for each): its cleanup scans the node
        # list per tensor, and one at the end is the same graph at a fraction of the time
        for t in (InferShapes(), FoldConstants(exclude_op_types=["Quant", "BipolarQuant"]), InferShapes()):
            mw = mw.transform(t, make_deepcopy=False, cleanup=False)
        return mw.cleanup()
    except Exception as e:  # qonnx and onnx raise anything from KeyError to protobuf errors
        first = str(e).splitlines()[0] if str(e) else ""
        raise QonnxImportError(f"{path}: the qonnx package could not clean the graph ({type(e).__name__}: "
                               f"{first[:200]})") from None


# ---- helpers ---------------------------------------------------------------------------------------

def _const(st: _State, name: str) -> np.ndarray | None:
    return st.consts.get(name)


def _scalar_int(st: _State, node: Any, name: str, what: str) -> int:
    v = _const(st, name)
    if v is None or v.size != 1 or float(v.reshape(-1)[0]) != int(v.reshape(-1)[0]):
        raise _refuse(st, node, f"{what} is not a constant integer")
    return int(v.reshape(-1)[0])


def _per_channel(st: _State, node: Any, c: np.ndarray, n: int, rank: int) -> np.ndarray:
    """A constant broadcast over the channel axis (axis 1 of NCHW or of (N, C)) as (n,) float64."""
    if c.size == 1:
        return np.full(n, float(c.reshape(-1)[0]))
    shape = list(c.shape)
    lead = [1] * (rank - len(shape)) + shape  # numpy broadcasting aligns on the right
    if c.size != n or len(lead) != rank or lead[1] != n:
        raise _refuse(st, node, f"constant of shape {tuple(c.shape)} is not per channel of {n} channels")
    return c.reshape(-1).astype(np.float64)


def _quant_params(st: _State, node: Any) -> tuple[np.ndarray, int, bool, bool, str]:
    a = _attrs(node)
    scale = _const(st, node.input[1])
    zp = _const(st, node.input[2])
    if scale is None or zp is None:
        raise _refuse(st, node, "scale and zero point must be constants")
    bits = _scalar_int(st, node, node.input[3], "bit width")
    if np.any(zp != 0):
        raise _refuse(st, node, f"zero point {zp.reshape(-1)[:4].tolist()} is not 0 (the IR's tensors have none)")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise _refuse(st, node, "scale must be positive and finite")
    mode = str(a.get("rounding_mode", "ROUND")).upper()
    return scale, bits, bool(a.get("signed", 1)), bool(a.get("narrow", 0)), mode


def _int_range(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    """qonnx's min_int / max_int."""
    if signed:
        return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - int(narrow)


def _round(v: np.ndarray, mode: str) -> np.ndarray:
    return np.round(v) if mode in _ROUND_HALF_EVEN else np.floor(v + 0.5)


def ties_reachable(mult: np.ndarray, bias: np.ndarray, shift: int) -> bool:
    """Can some integer acc give acc·M + B ≡ 2^(S−1) (mod 2^S), a value exactly halfway, in any channel?
    acc·M ≡ r (mod 2^S) is solvable iff gcd(M, 2^S) divides r."""
    mod = 1 << shift
    for m, b in zip(mult.tolist(), bias.tolist()):
        r = ((1 << (shift - 1)) - b) % mod
        g = math.gcd(abs(m), mod) if m else mod
        if r % g == 0:
            return True
    return False


# ---- node rules ------------------------------------------------------------------------------------

def _quant(st: _State, node: Any, graph_input: str, onnx_shape: list[int], meta: dict) -> None:
    scale, bits, signed, narrow, mode = _quant_params(st, node)
    src, out = node.input[0], node.output[0]
    if mode not in _ROUND_HALF_EVEN + ("HALF_UP",):
        raise _refuse(st, node, f"rounding mode {mode}", "ROUND (half to even), HALF_EVEN, HALF_UP")
    if src in st.consts:  # a weight quantizer
        if not MIN_BITS <= bits <= MAX_BITS:
            raise _refuse(st, node, f"weights of {bits} bits", f"weights of {MIN_BITS}..{MAX_BITS} bits")
        if not signed:
            raise _refuse(st, node, "unsigned weights", "signed narrow-range weights (Brevitas Int*Weight quantizers)")
        w = st.consts[src].astype(np.float32)
        lo, hi = _int_range(signed, narrow, bits)
        # as qonnx computes it (float32): the same integers the executor's Conv multiplies
        q = _round(np.clip(w / scale.astype(np.float32), lo, hi), mode).astype(np.int64)
        if q.size and int(q.min()) < -hi:
            raise _refuse(st, node, f"weight value {int(q.min())} outside the symmetric range ±{hi}",
                          "narrow-range weights (narrow=1), as the engine's signed weights are symmetric")
        st.weights[out] = _QWeight(node.name, q, scale.astype(np.float32).astype(np.float64), bits)
        return
    if scale.size != 1:
        raise _refuse(st, node, f"per-channel activation scale ({scale.size} values)",
                      "one scale per activation tensor")
    s = float(np.float32(scale.reshape(-1)[0]))
    if src == graph_input:
        if signed or bits > 8:
            raise _refuse(st, node, f"{'signed ' if signed else ''}{bits}-bit input quantizer",
                          "an unsigned input quantizer of at most 8 bits (the IR's input is uint8)")
        if graph_input in st.acts:
            raise _refuse(st, node, "the graph input is quantized twice", "one input Quant")
        name = ir_name(graph_input, st.used, "input")
        c, h, w = onnx_shape[1:]
        st.tensors[name] = TensorInfo((h, w, c), 8, False, s)
        st.acts[out] = name
        st.acts[graph_input] = name
        meta["input"] = {"onnx_name": graph_input, "layout": "NCHW", "shape": [c, h, w], "scale": s,
                         "max": _int_range(False, narrow, bits)[1], "rounding": "half_even" if mode in _ROUND_HALF_EVEN
                         else "half_up"}
        return
    if src in st.acts:  # an identity quantizer on an activation
        t = st.tensors[st.acts[src]]
        lo, hi = _int_range(signed, narrow, bits)
        if s == t.scale and lo <= 0 and hi >= t.max_value and not t.signed:
            st.acts[out] = st.acts[src]  # the same grid and a wider range: it changes nothing
            return
        raise _refuse(st, node, f"re-quantizing activation '{src}' (scale {t.scale:g}, {t.bits} bits) to scale {s:g}, "
                      f"{bits} bits with no layer in between", "an identity quantizer that keeps the scale and range")
    p = st.pending.get(src)
    if p is None:
        raise _refuse(st, node, f"input '{src}' is neither a weight, the graph input nor a layer's output")
    if p.classifier:
        raise _refuse(st, node, "a quantizer after the classifier (Gemm/MatMul)",
                      "an unquantized classifier output (its integer logits are the graph output)")
    _emit_requant(st, node, p, s, bits, signed, narrow, mode, out)


def _emit_requant(st: _State, node: Any, p: _Pending, s_out: float, bits: int, signed: bool, narrow: bool,
                  mode: str, out: str) -> None:
    lo, hi = _int_range(signed, narrow, bits)
    out_signed = lo < 0 and not p.relu  # a linear layer's signed output (a signed tensor of the IR)
    if out_signed and (narrow or p.clip_max is not None or not MIN_BITS <= bits <= MAX_BITS):
        raise _refuse(st, node, f"a signed {bits}-bit activation{' (narrow range)' if narrow else ''}"
                      f"{' under a Clip' if p.clip_max is not None else ''}",
                      f"signed activations of {MIN_BITS}..{MAX_BITS} bits with the full range "
                      "[−2^(b−1), 2^(b−1) − 1] (narrow=0; the requant clamps to it)")
    if p.clip_max is not None:
        hi = min(hi, int(_round(np.float32(p.clip_max) / np.float32(s_out), mode)))
    a_bits = bits if out_signed else hi.bit_length()
    if (not out_signed and hi != (1 << a_bits) - 1) or not MIN_BITS <= a_bits <= MAX_BITS:
        raise _refuse(st, node, f"the output range 0..{hi} (after ReLU/Clip) is not 0..2^A−1 for A in "
                      f"{MIN_BITS}..{MAX_BITS}", "quantizer ranges the requant clamp can express")
    x = st.tensors[p.src]
    k = x.scale * p.s_w * p.a / s_out
    bq = p.b / s_out
    try:
        m, b, shift = requant_constants(k, bq, accumulator_bound(p.weight, x.magnitude))
    except IRError as e:
        raise _refuse(st, node, str(e)) from None
    exact = bool(np.all(m * 2.0 ** -shift == k) and np.all(b * 2.0 ** -shift == bq))
    attrs = dict(p.attrs, shift=shift, weight_bits=p.bits)
    if not exact:
        st.inexact.append(p.node)  # an approximated M/2^S: half-even or half-up makes no sense to insist on
    elif mode in _ROUND_HALF_EVEN and ties_reachable(m, b, shift):
        attrs["rounding"] = "half_even"
        st.half_even.append(p.node)
    st.tensors[p.node] = TensorInfo(p.shape, a_bits, out_signed, s_out)
    st.layers.append(Layer(p.node, p.op, [p.src, *p.extra], p.node, attrs,
                           {"weight": p.weight.astype(np.int8), "mult": m, "bias": b}))
    st.acts[out] = p.node
    st.onnx_names[p.node] = out


def _weight_scale_per_out(st: _State, node: Any, qw: _QWeight, cout: int, axis: int) -> np.ndarray:
    s = qw.scale
    if s.size == 1:
        return np.full(cout, float(s.reshape(-1)[0]))
    flat = np.moveaxis(np.broadcast_to(s, qw.values.shape), axis, 0).reshape(cout, -1)
    if not np.all(flat == flat[:, :1]):
        raise _refuse(st, node, "a weight scale that varies within an output channel",
                      "per-tensor or per-output-channel weight scales")
    return flat[:, 0].astype(np.float64)


def _conv(st: _State, node: Any) -> None:
    a = _attrs(node)
    x_name = node.input[0]
    if x_name not in st.acts:
        raise _refuse(st, node, f"input '{x_name}' is not a quantized activation (no Quant node before it)")
    qw = st.weights.get(node.input[1])
    if qw is None:
        if node.input[1] in st.consts:
            _fixed_shift(st, node, a)
            return
        raise _refuse(st, node, "float weights (no Quant node on them)")
    src = st.acts[x_name]
    h, w, cin = st.tensors[src].shape
    wt = qw.values
    cout, cin_g, kh, kw = wt.shape
    group = int(a.get("group", 1))
    strides = list(a.get("strides", [1, 1]))
    pads = list(a.get("pads", [0, 0, 0, 0]))
    dil = list(a.get("dilations", [1, 1]))
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        raise _refuse(st, node, f"auto_pad {a['auto_pad']}", "explicit pads")
    square = kh == kw and len(set(strides)) == 1 and len(set(pads)) == 1
    s, p = strides[0], pads[0]
    if dil != [1, 1]:
        raise _refuse(st, node, f"dilation {dil}", "dilation 1 (the engine's windows are dense)")
    if group == cin == cout and cin_g == 1 and group > 1:
        if (kh, kw) != (3, 3) or pads != [1, 1, 1, 1] or strides not in ([1, 1], [2, 2]):
            raise _refuse(st, node, f"depthwise {kh}×{kw} stride {strides} pads {pads}",
                          "depthwise 3×3 with padding 1 and stride 1 or 2")
        op, weight, attrs = "dwconv3x3", wt.reshape(cout, 9), {"stride": s}
        shape = ((h - 1) // s + 1, (w - 1) // s + 1, cout)
    elif group != 1:
        raise _refuse(st, node, f"grouped convolution ({group} groups of {cin} channels)",
                      "dense (group 1) or depthwise (group = channels) convolutions")
    elif not square or kh not in CONV2D_KERNELS or not 0 <= p < kh:
        raise _refuse(st, node, f"kernel {kh}×{kw}, strides {strides}, pads {pads}",
                      f"square kernels {', '.join(map(str, CONV2D_KERNELS))} with equal strides and symmetric "
                      "padding smaller than the kernel")
    elif (kh, s, p) == (1, 1, 0):
        op, weight, attrs, shape = "conv1x1", wt.reshape(cout, cin), {}, (h, w, cout)
    else:
        op, weight = "conv2d", wt.reshape(cout, cin * kh * kw)
        attrs = {"kernel": kh, "stride": s, "padding": p}
        shape = ((h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1, cout)
    if min(shape) < 1:
        raise _refuse(st, node, f"output size {shape[:2]} from input {h}×{w}")
    s_w = _weight_scale_per_out(st, node, qw, cout, 0)
    b = np.zeros(cout)
    if len(node.input) > 2 and node.input[2]:
        bias = _const(st, node.input[2])
        if bias is None:
            raise _refuse(st, node, "a bias that is not a constant")
        b = bias.astype(np.float64).reshape(-1)
    name = ir_name(node.name, st.used, op)
    st.pending[node.output[0]] = _Pending(name, op, src, weight, s_w, qw.bits, attrs, shape, np.ones(cout), b,
                                          onnx_op=node.op_type)


def _one_hot_taps(w: np.ndarray) -> list[tuple[int, int]] | None:
    """Per channel of a (C, 1, 3, 3) kernel the (dy, dx) of its single tap of exactly 1.0, or None when some
    channel is not one-hot with weight 1 (then it scales or mixes values: a real conv, not a move)."""
    flat = w.reshape(w.shape[0], 9)
    if not np.all((flat == 0) | (flat == 1)) or not np.all((flat == 1).sum(axis=1) == 1):
        return None
    return [(int(k) // 3 - 1, int(k) % 3 - 1) for k in np.argmax(flat, axis=1)]


def _fixed_shift(st: _State, node: Any, a: dict[str, Any]) -> None:
    """A depthwise 3×3 Conv with a constant float one-hot kernel moves each channel by one pixel: exact on the
    integer grid, so it is the IR `shift` (no requant) when its taps follow one of the IR's patterns."""
    src = st.acts[node.input[0]]
    h, w, c = st.tensors[src].shape
    wt = st.consts[node.input[1]]
    bias = _const(st, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    geometry = (wt.shape == (c, 1, 3, 3) and int(a.get("group", 1)) == c and list(a.get("pads", [0] * 4)) == [1] * 4
                and list(a.get("strides", [1, 1])) == [1, 1] and list(a.get("dilations", [1, 1])) == [1, 1]
                and a.get("auto_pad", "NOTSET") in ("NOTSET", ""))
    taps = _one_hot_taps(wt) if geometry else None
    if taps is None or (bias is not None and np.any(bias != 0)):
        raise _refuse(st, node, "float weights (no Quant node on them)",
                      "quantized weights, or a bias-free depthwise 3×3 stride-1 padding-1 kernel that is one-hot "
                      "with weight 1 per channel (a shift)")
    name = ir_name(node.name, st.used, "shift")
    if all(t == (0, 0) for t in taps):  # every channel reads itself: the identity
        st.acts[node.output[0]] = src
        return
    pattern = next((p for p, offs in SHIFT_OFFSETS.items() if taps == [offs[i % len(offs)] for i in range(c)]), None)
    if pattern is None:
        first = next(i for i in range(c) if taps[i] != SHIFT_OFFSETS["dirac5"][i % 5])
        raise _refuse(st, node, f"a one-hot shift whose channel {first} reads offset (dy, dx) = {taps[first]}, "
                      "which no IR shift pattern has",
                      "shift patterns " + "; ".join(f"{p}: channel c reads {list(o)}[c mod {len(o)}]"
                                                    for p, o in SHIFT_OFFSETS.items()))
    t = st.tensors[src]
    st.tensors[name] = TensorInfo((h, w, c), t.bits, t.signed, t.scale)
    st.layers.append(Layer(name, "shift", [src], name, {"pattern": pattern}))
    st.acts[node.output[0]] = name


def _square_deform(st: _State, node: Any) -> None:
    """codesign's SquareDeformConv(x, d, weight): a pending `deform3x3` whose second input is the dilation map,
    an unsigned integer activation of scale 1 whose range 0..2^b − 1 is max_dilation (the IR clamps d with the
    offset conv's requant, as `codesign export` writes it)."""
    if len(node.input) != 3 or node.input[0] not in st.acts or node.input[1] not in st.acts:
        raise _refuse(st, node, "inputs that are not (a quantized activation, a quantized dilation map, weights)")
    qw = st.weights.get(node.input[2])
    src, dmap = st.acts[node.input[0]], st.acts[node.input[1]]
    h, w, c = st.tensors[src].shape
    d = st.tensors[dmap]
    r = int(_attrs(node).get("max_dilation", 0))
    if qw is None or qw.values.shape != (c, 1, 3, 3):
        raise _refuse(st, node, "weights that are not quantized depthwise 3×3 weights of the input's channels")
    if d.shape != (h, w, 1) or d.signed or d.scale != 1.0 or d.max_value != r:
        raise _refuse(st, node, f"a dilation map {d.shape}, {'signed' if d.signed else 'unsigned'}, scale {d.scale:g}, "
                      f"0..{d.max_value}, for max_dilation {r}",
                      "one unsigned channel of scale 1 whose quantizer's range 0..2^b − 1 is max_dilation")
    name = ir_name(node.name, st.used, "deform3x3")
    st.pending[node.output[0]] = _Pending(name, "deform3x3", src, qw.values.reshape(c, 9),
                                          _weight_scale_per_out(st, node, qw, c, 0), qw.bits, {"max_dilation": r},
                                          (h, w, c), np.ones(c), np.zeros(c), onnx_op=node.op_type, extra=[dmap])


def _nearest_source(out_size: int, in_size: int, a: dict[str, Any]) -> list[int] | None:
    """The input index each output index of a nearest Resize reads (ONNX Resize's coordinate transform and
    nearest rounding), or None for modes not written out here."""
    mode = a.get("coordinate_transformation_mode", "half_pixel")
    scale = out_size / in_size
    xs = []
    for o in range(out_size):
        if mode == "asymmetric":
            x = o / scale
        elif mode in ("half_pixel", "pytorch_half_pixel"):
            x = (o + 0.5) / scale - 0.5
        else:
            return None
        nearest = a.get("nearest_mode", "round_prefer_floor")
        if nearest == "floor":
            i = math.floor(x)
        elif nearest == "ceil":
            i = math.ceil(x)
        elif nearest == "round_prefer_floor":  # halves go down
            i = math.floor(x) if x - math.floor(x) == 0.5 else math.floor(x + 0.5)
        elif nearest == "round_prefer_ceil":
            i = math.floor(x + 0.5)
        else:
            return None
        xs.append(min(max(i, 0), in_size - 1))
    return xs


def _resize(st: _State, node: Any, out_shape: list[int]) -> None:
    """Resize of a quantized activation to twice its size, nearest: the IR `upsample2x` (an exact copy)."""
    src = st.acts.get(node.input[0])
    a = _attrs(node)
    if src is None:
        raise _refuse(st, node, "a resize before the activation quantizer")
    h, w, c = st.tensors[src].shape
    doubled = list(out_shape) == [out_shape[0], c, 2 * h, 2 * w] if len(out_shape) == 4 else False
    if a.get("mode", "nearest") != "nearest" or not doubled or \
            _nearest_source(2 * h, h, a) != [i // 2 for i in range(2 * h)] or \
            _nearest_source(2 * w, w, a) != [i // 2 for i in range(2 * w)]:
        raise _refuse(st, node, f"a resize of {h}×{w} to {out_shape[2:]} that is not out[y, x] = in[y // 2, x // 2]",
                      "nearest 2× upsampling (torch: F.interpolate(scale_factor=2, mode='nearest'))")
    name = ir_name(node.name, st.used, "upsample2x")
    t = st.tensors[src]
    st.tensors[name] = TensorInfo((2 * h, 2 * w, c), t.bits, t.signed, t.scale)
    st.layers.append(Layer(name, "upsample2x", [src], name))
    st.acts[node.output[0]] = name


def _batchnorm(st: _State, node: Any) -> None:
    """BatchNormalization (inference) of a pending accumulator, folded into its per-channel map in float64:
    a = γ/sqrt(var + eps), b = β − a·μ, the exporter's `fold_bn`, so the requant constants come out equal."""
    p = st.pending.get(node.input[0])
    if p is None:
        raise _refuse(st, node, "a batch norm that does not follow a Conv/Gemm (before its quantizer)",
                      "BatchNormalization between a Conv and its activation Quant")
    if p.relu or p.clip_max is not None:
        raise _refuse(st, node, "a batch norm after the activation (ReLU/Clip) and before the quantizer")
    params = [_const(st, i) for i in node.input[1:5]]
    if len(node.output) > 1 and any(node.output[1:]) or any(v is None for v in params) or \
            any(v.size != p.shape[2] for v in params):
        raise _refuse(st, node, "a batch norm that is not inference-mode with constant per-channel parameters")
    gamma, beta, mean, var = (v.reshape(-1).astype(np.float64) for v in params)
    # ONNX stores eps as float32; the framework's eps is a decimal (torch: 1e-5): take the shortest decimal
    # that rounds to that float32, the value the exporter folds with
    eps = float(str(np.float32(_attrs(node).get("epsilon", 1e-5))))
    a = gamma / np.sqrt(var + eps)
    b = beta - a * mean
    p.a, p.b = p.a * a, p.b * a + b
    st.pending[node.output[0]] = p


def _gemm(st: _State, node: Any) -> None:
    a = _attrs(node)
    x_name = node.input[0]
    src = st.acts.get(x_name)
    if src is None or st.tensors[src].shape[:2] != (1, 1):
        raise _refuse(st, node, f"input '{x_name}' is not a pooled, quantized (1×1×C) vector",
                      "a classifier (Gemm/MatMul) on the global average pool's output")
    qw = st.weights.get(node.input[1])
    if qw is None:
        raise _refuse(st, node, "float weights (no Quant node on them)")
    if float(a.get("alpha", 1.0)) != 1.0 or int(a.get("transA", 0)) != 0:
        raise _refuse(st, node, "alpha ≠ 1 or transA", "Gemm with alpha 1, transA 0")
    trans_b = int(a.get("transB", 0)) if node.op_type == "Gemm" else 0
    wt = qw.values if trans_b else qw.values.T
    if wt.ndim != 2 or wt.shape[1] != st.tensors[src].shape[2]:
        raise _refuse(st, node, f"weight shape {qw.values.shape} for {st.tensors[src].shape[2]} inputs")
    cout = wt.shape[0]
    s_w = _weight_scale_per_out(st, node, qw, cout, 0 if trans_b else 1)
    b = np.zeros(cout)
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        c = _const(st, node.input[2])
        if c is None:
            raise _refuse(st, node, "a bias that is not a constant")
        b = _per_channel(st, node, c, cout, 2) * float(a.get("beta", 1.0))
    name = ir_name(node.name, st.used, "linear")
    st.pending[node.output[0]] = _Pending(name, "linear", src, wt, s_w, qw.bits, {}, (1, 1, cout), np.ones(cout),
                                          b, onnx_op=node.op_type)


def _finish_linear(st: _State, p: _Pending, where: str) -> str:
    """The classifier's integer logits: one scale for the whole output (docs/integer-contract.md)."""
    x = st.tensors[p.src]
    scale = x.scale * p.s_w * p.a
    if p.relu or p.clip_max is not None or np.ptp(scale) != 0 or scale[0] <= 0:
        raise QonnxImportError(f"{st.path}: classifier '{p.node}' ({p.onnx_op}): a per-channel weight scale, a "
                               f"negative or per-channel multiplier, or an activation after it ({where}); supported: "
                               "one weight scale for the whole classifier, its bias, no activation")
    out_scale = float(scale[0])
    bias = np.round(p.b / out_scale).astype(np.int64)
    st.tensors[p.node] = TensorInfo((1, 1, p.weight.shape[0]), LOGIT_BITS, True, out_scale)
    st.layers.append(Layer(p.node, "linear", [p.src], p.node, {"weight_bits": p.bits},
                           {"weight": p.weight.astype(np.int8), "bias": bias}))
    return p.node


def _finish_head(st: _State, p: _Pending, where: str) -> str:
    """A detector head's output: a dense 1×1 conv with its bias and no quantizer after it, op `conv1x1_head`
    (run by the host): real value = (acc + bias) · out_scale[c], out_scale = s_in · s_w[c], as `codesign export`
    writes it."""
    if p.op != Conv1x1.name or p.relu or p.clip_max is not None or np.any(p.a != 1):
        raise QonnxImportError(f"{st.path}: graph output '{where}' comes from '{p.node}' ({p.onnx_op}) without an "
                               "output quantizer; supported: outputs that are quantized activations, the "
                               "classifier's logits, or a dense 1×1 conv's (bias, no BN or activation: a head)")
    out_scale = st.tensors[p.src].scale * p.s_w
    bias = np.round(p.b / out_scale).astype(np.int64)
    st.tensors[p.node] = TensorInfo((*p.shape[:2], p.weight.shape[0]), LOGIT_BITS, True, float(np.max(out_scale)))
    st.layers.append(Layer(p.node, "conv1x1_head", [p.src], p.node, {"weight_bits": p.bits},
                           {"weight": p.weight.astype(np.int8), "bias": bias, "out_scale": out_scale}))
    return p.node


def _affine(st: _State, node: Any) -> bool:
    """Mul/Add/Sub/Div of a pending accumulator by a constant: fold it into the per-channel map."""
    ins = list(node.input)
    consts = [i for i in ins if i in st.consts]
    dyn = [i for i in ins if i not in st.consts]
    if len(dyn) != 1 or len(consts) != 1 or dyn[0] not in st.pending:
        return False
    p = st.pending[dyn[0]]
    if p.relu or p.clip_max is not None:
        raise _refuse(st, node, "an affine map after the activation (ReLU/Clip) and before the quantizer")
    rank = 2 if p.classifier else 4
    c = _per_channel(st, node, st.consts[consts[0]], p.shape[2], rank)
    kind = node.op_type
    if kind in ("Sub", "Div") and ins[0] != dyn[0]:
        raise _refuse(st, node, "a constant minus / divided by a layer's output", "x − c and x / c")
    if kind == "Mul":
        p.a, p.b = p.a * c, p.b * c
    elif kind == "Div":
        p.a, p.b = p.a / c, p.b / c
    elif kind == "Add":
        p.b = p.b + c
    else:
        p.b = p.b - c
    st.pending[node.output[0]] = p
    return True


def _maxpool(st: _State, node: Any) -> None:
    a = _attrs(node)
    src = st.acts.get(node.input[0])
    if src is None:
        raise _refuse(st, node, "a max-pool before the activation quantizer",
                      "MaxPool on a quantized activation (put the pool after the QuantReLU)")
    ok = (list(a.get("kernel_shape", [])) == [2, 2] and list(a.get("strides", [1, 1])) == [2, 2]
          and not any(a.get("pads", [0, 0, 0, 0])) and not a.get("ceil_mode", 0)
          and list(a.get("dilations", [1, 1])) == [1, 1])
    if not ok:
        raise _refuse(st, node, "a max-pool other than 2×2 stride 2", "MaxPool 2×2 stride 2, no padding, floor mode")
    h, w, c = st.tensors[src].shape
    name = ir_name(node.name, st.used, "maxpool")
    t = st.tensors[src]
    st.tensors[name] = TensorInfo((h // 2, w // 2, c), t.bits, t.signed, t.scale)
    st.layers.append(Layer(name, "maxpool2x2", [src], name))
    st.acts[node.output[0]] = name


def _global_pool(st: _State, node: Any) -> None:
    src = st.acts.get(node.input[0])
    if src is None:
        raise _refuse(st, node, "an average pool before the activation quantizer")
    if node.op_type == "ReduceMean":
        a = _attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            ax = _const(st, node.input[1])
            axes = None if ax is None else ax.reshape(-1).tolist()
        if axes is None or sorted(int(v) % 4 for v in axes) != [2, 3]:
            raise _refuse(st, node, f"a mean over axes {axes}", "a mean over H and W (global average pool)")
    t = st.tensors[src]
    h, w, c = t.shape
    name = ir_name(node.name, st.used, "globalsumpool")
    # the integer sum, with the 1/(H·W) in its scale: the next layer's scale ratio absorbs it
    st.tensors[name] = TensorInfo((1, 1, c), max(1, (t.max_value * h * w).bit_length()), False, t.scale / (h * w))
    st.layers.append(Layer(name, "globalsumpool", [src], name))
    st.acts[node.output[0]] = name


def _channels(st: _State, node: Any) -> None:
    """Concat / Split / Slice along the channel axis: the IR's views."""
    a = _attrs(node)
    kind = node.op_type
    if kind == "Concat" and all(i in st.unsqueezed for i in node.input):
        srcs = [st.unsqueezed[i] for i in node.input]
        ts = [st.tensors[x] for x in srcs]
        if int(a.get("axis", 0)) % 5 != 2 or len({(t.scale, t.bits, t.signed, t.shape) for t in ts}) != 1:
            raise _refuse(st, node, "a stack that is not of equal, equally quantized activations right after "
                                    "the channel axis", "torch.stack((a, b, ...), dim=2) of one quantizer's tensors")
        st.stacked[node.output[0]] = srcs
        return
    if kind == "Concat":
        srcs = [st.acts.get(i) for i in node.input]
        if None in srcs or int(a.get("axis", 1)) % 4 != 1:
            raise _refuse(st, node, "a concatenation that is not of quantized activations along channels")
        ts = [st.tensors[s] for s in srcs]
        if len({(t.scale, t.bits, t.signed, t.shape[:2]) for t in ts}) != 1:
            raise _refuse(st, node, "inputs with different scales, bit widths or sizes",
                          "concatenated branches that share one quantizer (Brevitas: one shared QuantReLU/QuantIdentity)")
        name = ir_name(node.name, st.used, "concat")
        t = ts[0]
        st.tensors[name] = TensorInfo((*t.shape[:2], sum(x.shape[2] for x in ts)), t.bits, t.signed, t.scale)
        st.layers.append(Layer(name, "concat", list(srcs), name, {"rotate": 0}))
        st.acts[node.output[0]] = name
        return
    src = st.acts.get(node.input[0])
    if src is None:
        raise _refuse(st, node, "a channel split before the activation quantizer")
    t = st.tensors[src]
    c = t.shape[2]
    if kind == "Split":
        if int(a.get("axis", 0)) % 4 != 1:
            raise _refuse(st, node, "a split that is not along channels")
        sizes = a.get("split")
        if sizes is None and len(node.input) > 1 and node.input[1]:
            sc = _const(st, node.input[1])
            sizes = None if sc is None else sc.reshape(-1).tolist()
        if sizes is None:
            n = len(node.output)
            sizes = [c // n] * n if c % n == 0 else None
        if sizes is None or sum(sizes) != c:
            raise _refuse(st, node, f"split sizes {sizes} for {c} channels")
        ranges = list(zip(np.cumsum([0] + sizes[:-1]).tolist(), np.cumsum(sizes).tolist()))
        outs = list(node.output)
    else:  # Slice
        starts, ends = (_const(st, node.input[i]) for i in (1, 2))
        axes = _const(st, node.input[3]) if len(node.input) > 3 and node.input[3] else np.array([0])
        steps = _const(st, node.input[4]) if len(node.input) > 4 and node.input[4] else np.array([1])
        if any(v is None for v in (starts, ends, axes, steps)) or axes.size != 1 or int(axes[0]) % 4 != 1 \
                or int(steps[0]) != 1:
            raise _refuse(st, node, "a slice that is not one constant channel range with step 1")
        lo, hi = int(starts[0]), int(ends[0])
        lo, hi = (lo + c if lo < 0 else lo), (hi + c if hi < 0 else min(hi, c))
        ranges, outs = [(lo, hi)], [node.output[0]]
    for (lo, hi), out in zip(ranges, outs):
        if not 0 <= lo < hi <= c:
            raise _refuse(st, node, f"channel range [{lo}, {hi}) of {c} channels")
        name = ir_name(f"{node.name}_{lo}_{hi}" if len(outs) > 1 else node.name, st.used, "slice")
        st.tensors[name] = TensorInfo((*t.shape[:2], hi - lo), t.bits, t.signed, t.scale)
        st.layers.append(Layer(name, "slice", [src], name, {"start": lo, "stop": hi}))
        st.acts[out] = name


def _rotation(st: _State, layer: Layer, producer: dict[str, Layer], uses: dict[str, int]) -> tuple[str, int] | None:
    """(x, r) when concat `layer` joins slices of one tensor x that are used nowhere else, in cyclic order
    [a, C) [0, a) (torch.roll as torch.onnx writes it, or any contiguous wrap-around cut): then its output
    is x rotated by r = a + its own rotate (docs/integer-contract.md: out[c] = x[(c + r) mod C])."""
    if op_def(layer.op).view != CONCATENATION or layer.attrs.get("interleave", 1) != 1:
        return None
    cuts = [producer.get(i) for i in layer.inputs]
    if any(c is None or op_def(c.op).view != CHANNEL_RANGE or uses[c.output] != 1 for c in cuts) \
            or len({c.inputs[0] for c in cuts}) != 1:
        return None
    x = cuts[0].inputs[0]
    total = st.tensors[x].shape[2]
    ranges = [(c.attrs["start"], c.attrs["stop"]) for c in cuts]
    if sum(b - a for a, b in ranges) != total or any(ranges[i][1] % total != ranges[i + 1][0]
                                                      for i in range(len(ranges) - 1)):
        return None
    return x, (ranges[0][0] + layer.attrs["rotate"]) % total


def _fold_rotations(st: _State, outputs: list[str]) -> list[str]:
    """Fold every channel roll into the concat that made its input (or into a one-input concat), dropping its
    slices: the IR's concat rotates by address, so a roll costs nothing there (the exporter writes it so)."""
    while True:
        producer = {lay.output: lay for lay in st.layers}
        uses = {t: outputs.count(t) for t in st.tensors}
        for lay in st.layers:
            for i in lay.inputs:
                uses[i] += 1
        hit = next(((lay, rot) for lay in st.layers if (rot := _rotation(st, lay, producer, uses))), None)
        if hit is None:
            return outputs
        roll, (x, r) = hit
        drop = {producer[i].name for i in roll.inputs}
        base = producer.get(x)
        if base is not None and op_def(base.op).view == CONCATENATION and uses[x] == len(roll.inputs) \
                and x not in outputs:
            base.attrs["rotate"] = (base.attrs["rotate"] + r) % st.tensors[x].shape[2]
            drop.add(roll.name)
            new = x  # the roll's readers read the rotated concat
        elif r == 0:
            drop.add(roll.name)
            new = x  # the slices put x back together unchanged
        else:
            roll.inputs, roll.attrs = [x], {"rotate": r}
            new = roll.output
        for t in [lay.output for lay in st.layers if lay.name in drop]:
            if t != new:
                del st.tensors[t]
        st.layers = [lay for lay in st.layers if lay.name not in drop]
        if new != roll.output:
            for lay in st.layers:
                lay.inputs = [new if i == roll.output else i for i in lay.inputs]
            outputs = [new if o == roll.output else o for o in outputs]
            st.acts = {k: (new if v == roll.output else v) for k, v in st.acts.items()}


def _unsqueeze(st: _State, node: Any) -> None:
    """Unsqueeze of an activation at axis 2 (NC1HW): the first half of a channel shuffle."""
    axes = _attrs(node).get("axes")
    if axes is None and len(node.input) > 1:
        ax = _const(st, node.input[1])
        axes = None if ax is None else ax.reshape(-1).tolist()
    if node.input[0] not in st.acts or axes is None or [int(v) % 5 for v in axes] != [2]:
        raise _refuse(st, node, f"an unsqueeze at axes {axes}",
                      "Unsqueeze at axis 2 of a quantized activation, stacked and reshaped into channels (a channel "
                      "shuffle)")
    st.unsqueezed[node.output[0]] = st.acts[node.input[0]]


def _interleave(st: _State, node: Any, shape: list[int]) -> None:
    """Reshape of a stack (N, C, g, H, W) to (N, g·C, H, W): channel i·g + k is input k's channel i, the IR
    concat's `interleave` g (ShuffleNetV2's concat + channel shuffle)."""
    srcs = st.stacked[node.input[0]]
    h, w, c = st.tensors[srcs[0]].shape
    if list(shape[1:]) != [len(srcs) * c, h, w]:
        raise _refuse(st, node, f"a reshape of a stack of {len(srcs)}×{c} channels to {shape}",
                      f"the reshape of the stack into {len(srcs) * c} channels of {h}×{w} (a channel shuffle)")
    t = st.tensors[srcs[0]]
    name = ir_name(node.name, st.used, "concat")
    st.tensors[name] = TensorInfo((h, w, len(srcs) * c), t.bits, t.signed, t.scale)
    st.layers.append(Layer(name, "concat", list(srcs), name, {"rotate": 0, **({"interleave": len(srcs)}
                                                                                 if len(srcs) > 1 else {})}))
    st.acts[node.output[0]] = name


def _walk(st: _State, mw: Any, meta: dict) -> list[str]:
    g = mw.graph
    graph_input = g.input[0].name
    onnx_shape = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    for node in g.node:  # before the walk: named as what it is, not as the index arithmetic in front of it
        positions = node.input[1:] if node.op_type != "DeformConv" else node.input[2:3]
        if node.op_type in SAMPLING_OPS and any(i and i not in st.consts for i in positions):
            raise _refuse(st, node, SAMPLING_REASON, f"no data-dependent reads other than {SQUARE_DEFORM}")
    for node in g.node:
        kind = node.op_type
        ins = [i for i in node.input if i]
        if kind in QUANT_OPS:
            _quant(st, node, graph_input, onnx_shape, meta)
        elif graph_input in ins and graph_input not in st.acts:
            raise _refuse(st, node, "reads the float graph input directly",
                          "a graph input quantized by one unsigned Quant node of at most 8 bits")
        elif kind == "Conv":
            _conv(st, node)
        elif kind == SQUARE_DEFORM and node.domain == CODESIGN_DOMAIN:
            _square_deform(st, node)
        elif kind == "Resize":
            _resize(st, node, list(mw.get_tensor_shape(node.output[0]) or []))
        elif kind in ("Gemm", "MatMul"):
            _gemm(st, node)
        elif kind == "BatchNormalization":
            _batchnorm(st, node)
        elif kind in ("Mul", "Add", "Sub", "Div"):
            if not _affine(st, node):
                if kind == "Add" and all(i in st.acts for i in ins):
                    raise _refuse(st, node, "an elementwise Add of two activations (a residual connection)",
                                  "no elementwise ops between activations yet (the IR has no add op)")
                raise _refuse(st, node, "an elementwise op that is not a constant per-channel affine map after a "
                                        "Conv/Gemm")
        elif kind == "Relu":
            if ins[0] in st.pending:
                st.pending[ins[0]].relu = True
                st.pending[node.output[0]] = st.pending[ins[0]]
            elif ins[0] in st.acts and not st.tensors[st.acts[ins[0]]].signed:
                st.acts[node.output[0]] = st.acts[ins[0]]  # unsigned already: ReLU changes nothing
            else:
                raise _refuse(st, node, f"input '{ins[0]}' is neither a layer's output nor a quantized activation")
        elif kind == "Clip":
            p = st.pending.get(ins[0])
            lo = _const(st, node.input[1]) if len(node.input) > 1 and node.input[1] else None
            hi = _const(st, node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if p is None or (lo is not None and float(lo.reshape(-1)[0]) != 0.0) or \
                    (hi is not None and lo is None) or (hi is not None and hi.size != 1):
                raise _refuse(st, node, "a clip that is not Clip(0, c) between a Conv and its quantizer",
                              "Clip(0, c) (ReLU6-style) before an activation Quant")
            p.relu = True
            if hi is not None:
                c = float(hi.reshape(-1)[0])
                p.clip_max = c if p.clip_max is None else min(p.clip_max, c)
            st.pending[node.output[0]] = p
        elif kind == "MaxPool":
            _maxpool(st, node)
        elif kind in ("GlobalAveragePool", "ReduceMean"):
            _global_pool(st, node)
        elif kind == "Unsqueeze":
            _unsqueeze(st, node)
        elif kind in ("Reshape", "Flatten") and ins[0] in st.stacked:
            _interleave(st, node, list(mw.get_tensor_shape(node.output[0]) or []))
        elif kind in ("Concat", "Split", "Slice"):
            _channels(st, node)
        elif kind in ("Flatten", "Reshape", "Squeeze", "Identity", "Dropout"):
            src = st.acts.get(ins[0])
            pooled = src is not None and st.tensors[src].shape[:2] == (1, 1)
            if kind in ("Identity", "Dropout") and ins[0] in st.pending:
                st.pending[node.output[0]] = st.pending[ins[0]]
            elif src is not None and (pooled or kind in ("Identity", "Dropout")):
                st.acts[node.output[0]] = src
            else:
                raise _refuse(st, node, "a reshape of a feature map (a channel shuffle or flatten before pooling?)",
                              "Flatten/Reshape of the pooled (1×1×C) vector")
        else:
            raise _refuse(st, node, "no IR op for it")
    outputs = []
    for o in g.output:
        if o.name in st.pending:
            p = st.pending[o.name]
            outputs.append(_finish_linear(st, p, f"output '{o.name}'") if p.classifier else _finish_head(st, p, o.name))
        elif o.name in st.acts:
            outputs.append(st.acts[o.name])
        else:
            raise QonnxImportError(f"{st.path}: graph output '{o.name}' is not produced by a mapped layer")
    return outputs


def import_qonnx(path: str | Path, name: str | None = None) -> Graph:
    """The integer IR of a QONNX file; QonnxImportError (one line) for anything it cannot express."""
    path = Path(path)
    model = read_onnx(path, "ONNX model", QonnxImportError)
    _check_structure(path, model)
    mw = _clean(path, model)
    consts = {i.name: mw.get_initializer(i.name) for i in mw.graph.initializer}
    st = _State(path, {k: np.asarray(v) for k, v in consts.items()})
    meta: dict[str, Any] = {}
    outputs = _fold_rotations(st, _walk(st, mw, meta))
    if "input" not in meta:
        raise QonnxImportError(f"{path}: the graph input '{mw.graph.input[0].name}' has no Quant node; supported: an "
                               "unsigned input quantizer of at most 8 bits (Brevitas QuantIdentity)")
    out_shapes = []
    for o in mw.graph.output:
        dims = [d.dim_value for d in o.type.tensor_type.shape.dim]
        out_shapes.append({"onnx_name": o.name, "shape": dims[1:]})
    meta = {"importer": "codesign.importers.qonnx", "source": path.name, "float_input": meta["input"],
            "float_outputs": out_shapes, "inexact_requant": st.inexact, "half_even": st.half_even, "onnx_tensors": st.onnx_names}
    graph = Graph(name or ir_name(path.stem, set(), "model"), st.acts[mw.graph.input[0].name],
                  outputs, st.tensors, st.layers, meta)
    try:
        validate(graph)
    except IRError as e:
        raise QonnxImportError(f"{path}: the imported graph breaks the integer contract: {e}") from None
    return graph
