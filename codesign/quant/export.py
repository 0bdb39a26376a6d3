"""Export a trained Brevitas model to the integer IR (docs/integer-contract.md).

The exporter walks the model's module tree: containers are entered, every supported block has an
export rule, and anything else is refused with its module path and type. Tensor names are the
module paths that produce them, so a trace of the torch model lines up with the golden trace.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import CodesignError
from ..graph import Graph, IRError, Layer, TensorInfo, accumulator_bound, validate
from ..graph.ir import REQUANT_BITS
from ..models.diracdeltanet import DiracBlock, DiracDownBlock
from ..models.layers import ConvBNAct, GlobalAvgPool, InputQuant, QuantFC, Shift

M_BITS = 24  # |M| < 2^23: the multiplier fits a DSP48E2 27-bit port with room for its sign
B_LIMIT_BITS = 40
LOGIT_BITS = 32


class ExportError(CodesignError):
    """The model cannot be expressed in the integer IR; the message names the module."""


class _Builder:
    """Accumulates tensors and layers while the module tree is walked."""

    def __init__(self, input_hw: tuple[int, int]):
        self.tensors: dict[str, TensorInfo] = {}
        self.layers: list[Layer] = []
        self.input_hw = input_hw

    def tensor(self, name: str, shape: tuple[int, int, int], bits: int, signed: bool, scale: float) -> str:
        if name in self.tensors:
            raise ExportError(f"two layers produce a tensor named '{name}'")
        self.tensors[name] = TensorInfo(tuple(int(s) for s in shape), int(bits), bool(signed), float(scale))
        return name

    def same_as(self, name: str, src: str, shape: tuple[int, int, int] | None = None) -> str:
        """A tensor with `src`'s bits, signedness and scale (value-preserving ops)."""
        t = self.tensors[src]
        return self.tensor(name, shape or t.shape, t.bits, t.signed, t.scale)

    def add(self, name: str, op: str, inputs: list[str], output: str, attrs: dict | None = None,
            params: dict[str, np.ndarray] | None = None) -> str:
        self.layers.append(Layer(name, op, inputs, output, attrs or {}, params or {}))
        return output


def _act_scale_bits(act: nn.Module, path: str) -> tuple[float, int]:
    quant = getattr(act, "act_quant", None)
    if quant is None or not callable(getattr(quant, "scale", None)):
        raise ExportError(f"module '{path}' is not quantized (got {type(act).__name__}); "
                          "export needs a QAT model (Brevitas QuantReLU activations)")
    return float(quant.scale().detach().reshape(-1)[0]), int(quant.bit_width().item())


def _quant_weight(module: nn.Module, path: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer weights (Cout, Cin), per-output-channel scales (Cout,) and bit width."""
    if not hasattr(module, "quant_weight"):
        raise ExportError(f"module '{path}' ({type(module).__name__}) has float weights; "
                          "export needs a QAT model (Brevitas QuantConv2d/QuantLinear)")
    qw = module.quant_weight()
    w_int = qw.int().detach().cpu().numpy().reshape(qw.value.shape[0], -1)
    scale = qw.scale.detach().cpu().double().numpy().reshape(-1)
    if scale.size == 1:
        scale = np.full(w_int.shape[0], scale[0])
    return w_int.astype(np.int8), scale, int(qw.bit_width.item())


def fold_bn(bn: nn.BatchNorm2d, conv_bias: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm (eval statistics) as y = a·x + b per channel, in float64."""
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    gamma = bn.weight.detach().double() if bn.weight is not None else torch.ones_like(var)
    beta = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(var)
    a = gamma / torch.sqrt(var + bn.eps)
    b = beta - a * mean
    if conv_bias is not None:
        b = b + a * conv_bias.detach().double()
    return a.numpy(), b.numpy()


def requant_constants(k: np.ndarray, b: np.ndarray, acc_max: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer M, B and shift S with M·2^-S ≈ k and B·2^-S ≈ b, as precise as the contract allows."""
    for s in range(REQUANT_BITS - 2, 0, -1):
        m = np.round(k * 2.0 ** s)
        bb = np.round(b * 2.0 ** s)
        m_max = float(np.abs(m).max(initial=0))
        b_max = float(np.abs(bb).max(initial=0))
        if m_max >= 2 ** (M_BITS - 1) or b_max >= 2 ** B_LIMIT_BITS:
            continue
        if acc_max * m_max + b_max + 2 ** (s - 1) >= 2 ** (REQUANT_BITS - 1):
            continue
        return m.astype(np.int64), bb.astype(np.int64), s
    raise ExportError("requantization constants do not fit the 48-bit intermediate at any shift")


def _conv(mod: ConvBNAct, path: str, x: str, g: _Builder) -> str:
    conv = mod.conv
    if conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.groups != 1 or conv.padding not in ((0, 0), 0):
        raise ExportError(f"module '{path}.conv': only 1×1 stride-1 dense convolutions map to the engine "
                          f"(got kernel {conv.kernel_size}, stride {conv.stride}, groups {conv.groups})")
    w_int, s_w, w_bits = _quant_weight(conv, f"{path}.conv")
    s_out, a_bits = _act_scale_bits(mod.act, f"{path}.act")
    xin = g.tensors[x]
    a, b = fold_bn(mod.bn, conv.bias)
    k = xin.scale * s_w * a / s_out
    acc_max = accumulator_bound(w_int, xin.max_value)
    try:
        m, bias, s = requant_constants(k, b / s_out, acc_max)
    except ExportError as e:
        raise ExportError(f"module '{path}': {e}") from None
    h, w, _ = xin.shape
    out = g.tensor(path, (h, w, w_int.shape[0]), a_bits, False, s_out)
    return g.add(path, "conv1x1", [x], out, {"shift": s, "weight_bits": w_bits},
                 {"weight": w_int, "mult": m, "bias": bias})


def _shift(mod: Shift, path: str, x: str, g: _Builder) -> str:
    return g.add(path, "shift", [x], g.same_as(path, x), {"pattern": mod.pattern})


def _maxpool(mod: nn.MaxPool2d, path: str, x: str, g: _Builder) -> str:
    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    if (pair(mod.kernel_size), pair(mod.stride or mod.kernel_size), pair(mod.padding), pair(mod.dilation),
            mod.ceil_mode) != ((2, 2), (2, 2), (0, 0), (1, 1), False):
        raise ExportError(f"module '{path}': only 2×2 stride-2 max-pool without padding maps to the engine")
    h, w, c = g.tensors[x].shape
    return g.add(path, "maxpool2x2", [x], g.same_as(path, x, (h // 2, w // 2, c)))


def _slice(path: str, x: str, start: int, stop: int, g: _Builder) -> str:
    h, w, _ = g.tensors[x].shape
    return g.add(path, "slice", [x], g.same_as(path, x, (h, w, stop - start)), {"start": start, "stop": stop})


def _concat(path: str, xs: list[str], rotate: int, g: _Builder) -> str:
    scales = {g.tensors[x].scale for x in xs}
    if len(scales) != 1:
        raise ExportError(f"module '{path}': concatenated branches have different activation scales "
                          f"{sorted(scales)}; they must share one quantizer")
    h, w, _ = g.tensors[xs[0]].shape
    total = sum(g.tensors[x].shape[2] for x in xs)
    return g.add(path, "concat", xs, g.same_as(path, xs[0], (h, w, total)), {"rotate": rotate})


def _dirac_block(mod: DiracBlock, path: str, x: str, g: _Builder) -> str:
    c = g.tensors[x].shape[2]
    passed = _slice(f"{path}.pass", x, 0, mod.half, g)
    branch = _slice(f"{path}.branch", x, mod.half, c, g)
    branch = _conv(mod.expand, f"{path}.expand", branch, g)
    branch = _shift(mod.shift, f"{path}.shift", branch, g)
    branch = _conv(mod.project, f"{path}.project", branch, g)
    return _concat(path, [passed, branch], mod.rotate, g)


def _dirac_down_block(mod: DiracDownBlock, path: str, x: str, g: _Builder) -> str:
    skip = _maxpool(mod.skip_pool, f"{path}.skip_pool", x, g)
    skip = _conv(mod.skip, f"{path}.skip", skip, g)
    main = _conv(mod.expand, f"{path}.expand", x, g)
    main = _maxpool(mod.pool, f"{path}.pool", main, g)
    main = _shift(mod.shift, f"{path}.shift", main, g)
    main = _conv(mod.project, f"{path}.project", main, g)
    return _concat(path, [skip, main], mod.rotate, g)


def _input(mod: InputQuant, path: str, x: str, g: _Builder) -> str:
    scale, bits = _act_scale_bits(mod.quant, path)
    if bits != 8 or not math.isclose(scale, 1 / 255, rel_tol=1e-6):
        raise ExportError(f"module '{path}': the input quantizer must be 8-bit with scale 1/255")
    g.tensors[x].scale = scale  # the float32 value the fake-quant model really uses
    return x


def _avgpool(mod: GlobalAvgPool, path: str, x: str, g: _Builder) -> str:
    t = g.tensors[x]
    h, w, c = t.shape
    bits = max(1, int(t.max_value * h * w).bit_length())
    out = g.tensor(path, (1, 1, c), bits, False, t.scale / (h * w))
    return g.add(path, "globalsumpool", [x], out)


def _fc(mod: QuantFC, path: str, x: str, g: _Builder) -> str:
    t = g.tensors[x]
    if t.shape[:2] != (1, 1):
        raise ExportError(f"module '{path}': the classifier needs a pooled (1×1) input, got {t.shape[:2]}")
    w_int, s_w, w_bits = _quant_weight(mod.fc, f"{path}.fc")
    if np.ptp(s_w) != 0:
        raise ExportError(f"module '{path}': the classifier needs one per-tensor weight scale")
    out_scale = t.scale * float(s_w[0])
    bias = mod.fc.bias.detach().double().numpy() if mod.fc.bias is not None else np.zeros(w_int.shape[0])
    bias_int = np.round(bias / out_scale).astype(np.int64)
    out = g.tensor(path, (1, 1, w_int.shape[0]), LOGIT_BITS, True, out_scale)
    return g.add(path, "linear", [x], out, {"weight_bits": w_bits}, {"weight": w_int, "bias": bias_int})


def _passthrough(mod: nn.Module, path: str, x: str, g: _Builder) -> str:
    return x  # inference no-ops (Dropout, Identity, Flatten of a pooled tensor)


EXPORTERS: dict[type, Callable[[nn.Module, str, str, _Builder], str]] = {
    InputQuant: _input,
    ConvBNAct: _conv,
    Shift: _shift,
    nn.MaxPool2d: _maxpool,
    DiracBlock: _dirac_block,
    DiracDownBlock: _dirac_down_block,
    GlobalAvgPool: _avgpool,
    QuantFC: _fc,
    nn.Dropout: _passthrough,
    nn.Identity: _passthrough,
    nn.Flatten: _passthrough,
}


def _walk(mod: nn.Module, path: str, x: str, g: _Builder) -> str:
    rule = EXPORTERS.get(type(mod))
    if rule is not None:
        return rule(mod, path, x, g)
    # A Sequential subclass that overrides forward() computes something else: refuse it below.
    if isinstance(mod, nn.Sequential) and type(mod).forward is nn.Sequential.forward:
        for name, child in mod.named_children():
            x = _walk(child, f"{path}.{name}" if path else name, x, g)
        return x
    supported = ", ".join(sorted(t.__name__ for t in EXPORTERS))
    raise ExportError(f"unsupported module '{path or '<root>'}' ({type(mod).__name__}); "
                      f"supported: nn.Sequential of {supported}")


def export_model(model: nn.Module, resolution: int | None = None, name: str | None = None) -> Graph:
    """Integer IR of a trained QAT model (evaluated with its BN running statistics)."""
    config = getattr(model, "config", {})
    res = resolution or config.get("resolution")
    if not res:
        raise ExportError("the input resolution is unknown: pass resolution=")
    was_training = model.training
    model.eval()
    try:
        g = _Builder((res, res))
        x = g.tensor("input", (res, res, 3), 8, False, 1 / 255)
        with torch.no_grad():
            out = _walk(model, "", x, g)
    finally:
        model.train(was_training)
    if not g.layers or g.layers[-1].op != "linear":
        raise ExportError("the model must end in a classifier (GlobalAvgPool + QuantFC)")
    graph = Graph(name or config.get("model", "model"), "input", out, g.tensors, g.layers,
                  {"model_config": config, "exporter": "codesign.quant.export"})
    try:
        validate(graph)
    except IRError as e:
        raise ExportError(f"exported graph breaks the integer contract: {e}") from None
    return graph
