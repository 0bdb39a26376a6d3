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
from ..graph.ir import requant_constants
from ..ops.conv import Linear
from ..models.codenet import CoDeNet, Head, NeckBlock, ShuffleBlock, StemConvBNAct
from ..models.deform import DeformConvBNAct, DWConvBNAct, Upsample2x
from ..models.diracdeltanet import DiracBlock, DiracDownBlock
from ..models.layers import ConvBNAct, GlobalAvgPool, InputQuant, QuantFC, Shift

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
    """(scale, bits) of a quantizer whose output must be unsigned (the input, a dilation, the stem)."""
    scale, bits, signed = _act_quant(act, path)
    if signed:
        raise ExportError(f"module '{path}': a signed activation quantizer is not supported here (this "
                          "output must be unsigned)")
    return scale, bits


def _act_quant(act: nn.Module, path: str) -> tuple[float, int, bool]:
    """(scale, bits, signed) of an activation quantizer: a QuantReLU (unsigned), or a signed
    QuantIdentity without a ReLU (a linear layer's output: `models.layers.make_signed_act`)."""
    quant = getattr(act, "act_quant", None)
    if quant is None or not callable(getattr(quant, "scale", None)):
        raise ExportError(f"module '{path}' is not quantized (got {type(act).__name__}); "
                          "export needs a QAT model (Brevitas QuantReLU / QuantIdentity activations)")
    signed = bool(quant.is_signed)
    if signed and not isinstance(act, _signed_act_types()):
        raise ExportError(f"module '{path}' ({type(act).__name__}) has a signed quantizer after a ReLU; "
                          "a signed activation needs a QuantIdentity (no ReLU)")
    if signed and getattr(quant, "is_narrow_range", False):
        raise ExportError(f"module '{path}': a signed activation quantizer must have the full range "
                          "[−2^(b−1), 2^(b−1) − 1] (narrow_range=False), as the requant clamps to it")
    return float(quant.scale().detach().reshape(-1)[0]), int(quant.bit_width().item()), signed


def _signed_act_types() -> tuple[type, ...]:
    import brevitas.nn as qnn

    return (qnn.QuantIdentity,)


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


def _requant(path: str, xin: TensorInfo, w_int: np.ndarray, s_w: np.ndarray, bn: nn.Module | None,
             conv_bias: torch.Tensor | None, s_out: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(M, B, S) of y = act(BN(conv(x))) / s_out for integer weights `w_int` (scales s_w, per row)."""
    if bn is not None:
        a, b = fold_bn(bn, conv_bias)
    else:
        a = np.ones(w_int.shape[0])
        b = conv_bias.detach().double().numpy() if conv_bias is not None else np.zeros(w_int.shape[0])
    k = xin.scale * s_w * a / s_out
    try:
        return requant_constants(k, b / s_out, accumulator_bound(w_int, xin.magnitude))
    except IRError as e:
        raise ExportError(f"module '{path}': {e}") from None


def _conv(mod: ConvBNAct, path: str, x: str, g: _Builder) -> str:
    conv = mod.conv
    if conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.groups != 1 or conv.padding not in ((0, 0), 0):
        raise ExportError(f"module '{path}.conv': only 1×1 stride-1 dense convolutions map to the engine "
                          f"(got kernel {conv.kernel_size}, stride {conv.stride}, groups {conv.groups})")
    w_int, s_w, w_bits = _quant_weight(conv, f"{path}.conv")
    s_out, a_bits, signed = _act_quant(mod.act, f"{path}.act")
    xin = g.tensors[x]
    m, bias, s = _requant(path, xin, w_int, s_w, mod.bn, conv.bias, s_out)
    h, w, _ = xin.shape
    out = g.tensor(path, (h, w, w_int.shape[0]), a_bits, signed, s_out)
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


def _concat(path: str, xs: list[str], rotate: int, g: _Builder, interleave: int = 1) -> str:
    scales = {g.tensors[x].scale for x in xs}
    if len(scales) != 1:
        raise ExportError(f"module '{path}': concatenated branches have different activation scales "
                          f"{sorted(scales)}; they must share one quantizer")
    h, w, _ = g.tensors[xs[0]].shape
    total = sum(g.tensors[x].shape[2] for x in xs)
    attrs = {"rotate": rotate, **({"interleave": interleave} if interleave != 1 else {})}
    return g.add(path, "concat", xs, g.same_as(path, xs[0], (h, w, total)), attrs)


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
    # a signed input's sum is signed: one more bit for the sign
    bits = max(1, int(t.magnitude * h * w).bit_length()) + int(t.signed)
    out = g.tensor(path, (1, 1, c), bits, t.signed, t.scale / (h * w))
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


# ---- CoDeNet ----------------------------------------------------------------------------------------

def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _check_conv3x3(conv: nn.Module, path: str, depthwise: bool) -> int:
    """The stride of a 3×3 conv with padding 1 (and, if `depthwise`, groups = channels)."""
    k, st, pad, dil = (_pair(getattr(conv, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
    cin, cout, groups = conv.in_channels, conv.out_channels, conv.groups
    ok = k == (3, 3) and pad == (1, 1) and dil == (1, 1) and st[0] == st[1]
    if depthwise:
        ok = ok and groups == cin == cout and st[0] in (1, 2)
    else:
        ok = ok and groups == 1
    if not ok:
        kind = "depthwise 3×3 (groups = channels, stride 1 or 2)" if depthwise else "dense 3×3"
        raise ExportError(f"module '{path}': expected a {kind} convolution with padding 1, got kernel {k}, "
                          f"stride {st}, padding {pad}, dilation {dil}, groups {groups}")
    return int(st[0])


def _dwconv(mod: DWConvBNAct, path: str, x: str, g: _Builder) -> str:
    stride = _check_conv3x3(mod.conv, f"{path}.conv", depthwise=True)
    w_int, s_w, w_bits = _quant_weight(mod.conv, f"{path}.conv")
    s_out, a_bits, signed = _act_quant(mod.act, f"{path}.act")
    xin = g.tensors[x]
    m, bias, s = _requant(path, xin, w_int, s_w, mod.bn, mod.conv.bias, s_out)
    h, w, c = xin.shape
    out = g.tensor(path, ((h - 1) // stride + 1, (w - 1) // stride + 1, c), a_bits, signed, s_out)
    return g.add(path, "dwconv3x3", [x], out, {"shift": s, "weight_bits": w_bits, "stride": stride},
                 {"weight": w_int, "mult": m, "bias": bias})


def _deform(mod: DeformConvBNAct, path: str, x: str, g: _Builder) -> str:
    """offset (1×1 conv c → 1 with bias) → integer dilation d (its requant clamp is the range limit
    R = 2^b − 1) and the square deformable depthwise 3×3 reading [x, d]."""
    xin = g.tensors[x]
    h, w, c = xin.shape
    off = mod.offset
    if _pair(off.kernel_size) != (1, 1) or _pair(off.stride) != (1, 1) or off.groups != 1 or off.out_channels != 1:
        raise ExportError(f"module '{path}.offset': the dilation must come from a 1×1 conv to one channel")
    quant = getattr(mod.dilation_act, "quant", None)
    if quant is None:
        raise ExportError(f"module '{path}.dilation_act' is not quantized; export needs a QAT model")
    d_scale, d_bits = _act_scale_bits(quant, f"{path}.dilation_act.quant")
    r = int(mod.max_dilation)
    if r != (1 << d_bits) - 1:
        raise ExportError(f"module '{path}': max_dilation {r} is not 2^b − 1 for the {d_bits}-bit dilation "
                          "quantizer; the integer contract clamps d with the offset conv's requant, so R must "
                          f"be {(1 << d_bits) - 1}")
    if not math.isclose(d_scale, 1.0, rel_tol=1e-6):
        raise ExportError(f"module '{path}.dilation_act': the dilation quantizer's scale is {d_scale}, not 1.0")
    w_off, s_off, off_bits = _quant_weight(off, f"{path}.offset")
    m, bias, s = _requant(f"{path}.offset", xin, w_off, s_off, None, off.bias, d_scale)
    d = g.tensor(f"{path}.offset", (h, w, 1), d_bits, False, d_scale)
    g.add(f"{path}.offset", "conv1x1", [x], d, {"shift": s, "weight_bits": off_bits},
          {"weight": w_off, "mult": m, "bias": bias})
    _check_conv3x3(mod.dw, f"{path}.dw", depthwise=True)
    if _pair(mod.dw.stride) != (1, 1):
        raise ExportError(f"module '{path}.dw': the deformable conv has stride 1")
    w_int, s_w, w_bits = _quant_weight(mod.dw, f"{path}.dw")
    s_out, a_bits, signed = _act_quant(mod.act, f"{path}.act")
    m, bias, s = _requant(path, xin, w_int, s_w, mod.bn, mod.dw.bias, s_out)
    out = g.tensor(path, (h, w, c), a_bits, signed, s_out)
    return g.add(path, "deform3x3", [x, d], out, {"shift": s, "weight_bits": w_bits, "max_dilation": r},
                 {"weight": w_int, "mult": m, "bias": bias})


def _upsample(mod: Upsample2x, path: str, x: str, g: _Builder) -> str:
    h, w, c = g.tensors[x].shape
    return g.add(path, "upsample2x", [x], g.same_as(path, x, (2 * h, 2 * w, c)))


def _stem(mod: StemConvBNAct, path: str, x: str, g: _Builder) -> str:
    """Dense 3×3 stem conv (padding 1) + BN + act: op `conv2d`, run by the host."""
    conv = mod.conv
    stride = _check_conv3x3(conv, f"{path}.conv", depthwise=False)
    w_int, s_w, w_bits = _quant_weight(conv, f"{path}.conv")  # (Cout, Cin·3·3), order (cin, ky, kx)
    s_out, a_bits = _act_scale_bits(mod.act, f"{path}.act")
    xin = g.tensors[x]
    m, bias, s = _requant(path, xin, w_int, s_w, mod.bn, conv.bias, s_out)
    h, w, _ = xin.shape
    out = g.tensor(path, ((h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1, w_int.shape[0]), a_bits, False, s_out)
    return g.add(path, "conv2d", [x], out,
                 {"kernel": 3, "stride": stride, "padding": 1, "shift": s, "weight_bits": w_bits},
                 {"weight": w_int, "mult": m, "bias": bias})


def _shuffle_block(mod: ShuffleBlock, path: str, x: str, g: _Builder) -> str:
    """ShuffleNetV2 unit: split (stride 1) or two branches (stride 2), joined by a 2-way interleave."""
    c = g.tensors[x].shape[2]
    if mod.branch_proj is None:
        half = c // 2
        passed = _slice(f"{path}.pass", x, 0, half, g)
        branch = _slice(f"{path}.branch", x, half, c, g)
        first = passed
        second = _walk(mod.branch_main, f"{path}.branch_main", branch, g)
    else:
        first = _walk(mod.branch_proj, f"{path}.branch_proj", x, g)
        second = _walk(mod.branch_main, f"{path}.branch_main", x, g)
    if g.tensors[first].shape != g.tensors[second].shape:
        raise ExportError(f"module '{path}': the two halves have shapes {g.tensors[first].shape} and "
                          f"{g.tensors[second].shape}; the interleave needs equal halves")
    return _concat(path, [first, second], 0, g, interleave=2)


def _chain(mod: nn.Module, path: str, x: str, g: _Builder) -> str:
    """A block whose forward applies its children in order (NeckBlock: deform → conv → up)."""
    for name, child in mod.named_children():
        x = _walk(child, f"{path}.{name}" if path else name, x, g)
    return x


def _head_out(conv: nn.Module, path: str, x: str, g: _Builder) -> str:
    """The head's last 1×1 conv (bias, no output quantizer): op `conv1x1_head`, run by the host;
    real value = (acc + bias) · out_scale[c] with out_scale = s_in · s_w[c]."""
    if _pair(conv.kernel_size) != (1, 1) or _pair(conv.stride) != (1, 1) or conv.groups != 1:
        raise ExportError(f"module '{path}': a head's output conv must be a dense 1×1 convolution")
    if getattr(conv, "output_quant", None) is not None and getattr(conv.output_quant, "is_quant_enabled", False):
        raise ExportError(f"module '{path}': a head's output conv must not quantize its output")
    w_int, s_w, w_bits = _quant_weight(conv, path)
    t = g.tensors[x]
    out_scale = t.scale * s_w
    b = conv.bias.detach().double().numpy() if conv.bias is not None else np.zeros(w_int.shape[0])
    bias_int = np.round(b / out_scale).astype(np.int64)
    out = g.tensor(path, (*t.shape[:2], w_int.shape[0]), LOGIT_BITS, True, float(np.max(out_scale)))
    return g.add(path, "conv1x1_head", [x], out, {"weight_bits": w_bits},
                 {"weight": w_int, "bias": bias_int, "out_scale": out_scale.astype(np.float64)})


def _head(mod: Head, path: str, x: str, g: _Builder) -> str:
    x = _walk(mod.conv, f"{path}.conv", x, g)
    x = _walk(mod.dw, f"{path}.dw", x, g)
    return _head_out(mod.out, f"{path}.out", x, g)


def _codenet(mod: CoDeNet, path: str, x: str, g: _Builder) -> list[str]:
    """CoDeNet: backbone → neck → one head per output, graph outputs in the forward's dict order."""
    prefix = f"{path}." if path else ""
    x = _walk(mod.backbone, f"{prefix}backbone", x, g)
    x = _walk(mod.neck, f"{prefix}neck", x, g)
    return [_walk(head, f"{prefix}heads.{name}", x, g) for name, head in mod.heads.items()]


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
    StemConvBNAct: _stem,
    ShuffleBlock: _shuffle_block,
    DWConvBNAct: _dwconv,
    DeformConvBNAct: _deform,
    Upsample2x: _upsample,
    NeckBlock: _chain,
    Head: _head,
    CoDeNet: _codenet,
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
    outputs = out if isinstance(out, list) else [out]
    if not isinstance(out, list) and (not g.layers or g.layers[-1].op != Linear.name):
        raise ExportError("the model must end in a classifier (GlobalAvgPool + QuantFC)")
    graph = Graph(name or config.get("model", "model"), "input", outputs, g.tensors, g.layers,
                  {"model_config": config, "exporter": "codesign.quant.export"})
    try:
        validate(graph)
    except IRError as e:
        raise ExportError(f"exported graph breaks the integer contract: {e}") from None
    return graph
