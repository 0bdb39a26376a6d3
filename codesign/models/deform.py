"""Deformable 3×3 convolutions, sampled by hand (gather + bilinear; no torchvision), and the
co-designed limited-range square deformable convolution of CoDeNet.

A 3×3 deformable convolution reads tap k ∈ {−1, 0, 1}² of output pixel p not at p + k but at a
learned position. The family differs along four axes (CoDeNet's float ablation, DESIGN.md §7):

- full (every input channel to every output) vs depthwise (channel c reads only channel c);
- free per-tap offsets p + k + Δ_k(p) (18 values per pixel from a 3×3 conv, as DCN) vs the
  fixed square shape p + k·d(p) (one dilation per pixel from a 1×1 conv);
- fractional positions read by bilinear interpolation vs positions rounded to the pixel grid;
- unbounded vs bounded: a square dilation limited to [0, R], a free displacement k + Δ limited
  to [−R, R]², so every read stays inside the (2R+1)² window a line buffer of 2R+1 rows holds.

`DeformConv3x3` builds any member (float only, for ablations). The member the engine runs is
depthwise + square + rounded + bounded: `square_deform`, wrapped with BN and the activation
quantizer in `DeformConvBNAct`. Reads outside the image are 0 (zero padding) everywhere.

Rounded positions are trained with a straight-through estimator: the forward pass is the exact
integer gather; the backward pass gives the position the gradient of bilinear interpolation
around the rounded position — the central difference (x[q+1] − x[q−1]) / 2, the mean of the
bilinear slopes on the two sides of the grid point q.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ModelConfigError, QuantSpec, make_act

MAX_DILATION = 7  # CoDeNet's R: a 15-row line buffer

# Tap k = (ky, kx) of the 3×3 window in weight order: weight[..., ky + 1, kx + 1].
TAPS_Y = (-1, -1, -1, 0, 0, 0, 1, 1, 1)
TAPS_X = (-1, 0, 1, -1, 0, 1, -1, 0, 1)


def _taps(ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ky, kx), each shaped (1, 9, 1, 1) to broadcast against (N, 9, H, W) positions."""
    ky = torch.tensor(TAPS_Y, dtype=ref.dtype, device=ref.device).view(1, 9, 1, 1)
    kx = torch.tensor(TAPS_X, dtype=ref.dtype, device=ref.device).view(1, 9, 1, 1)
    return ky, kx


def _grid(n: int, h: int, w: int, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates p = (y, x), shaped (1, 1, H, 1) and (1, 1, 1, W)."""
    y = torch.arange(h, dtype=ref.dtype, device=ref.device).view(1, 1, h, 1)
    x = torch.arange(w, dtype=ref.dtype, device=ref.device).view(1, 1, 1, w)
    return y, x


def gather(x: torch.Tensor, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) read at integer positions iy, ix (N, K, H', W') → (N, C, K, H', W');
    positions outside the image read 0. The positions are shared by all channels."""
    n, c, h, w = x.shape
    iy, ix = torch.broadcast_tensors(iy.long(), ix.long())
    k, ho, wo = iy.shape[1:]
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    flat = torch.where(inside, iy * w + ix, h * w)  # index h·w is the zero appended below
    source = F.pad(x.reshape(n, c, h * w), (0, 1))
    index = flat.reshape(iy.shape[0], 1, -1).expand(n, c, -1)
    return source.gather(2, index).reshape(n, c, k, ho, wo)


def bilinear_sample(x: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """x read at fractional positions (N, K, H', W') by bilinear interpolation → (N, C, K, H', W').

    Each of the four neighbours outside the image contributes 0 (as F.grid_sample with
    align_corners=True and zero padding). Differentiable in x and in the positions.
    """
    y0, x0 = py.detach().floor(), px.detach().floor()
    fy, fx = (py - y0).unsqueeze(1), (px - x0).unsqueeze(1)
    out = 0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            out = out + gather(x, y0 + dy, x0 + dx) * (wy * wx)
    return out


def central_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂x/∂y, ∂x/∂x) as (x[q+1] − x[q−1]) / 2 along each axis, zero padding."""
    p = F.pad(x, (1, 1, 1, 1))
    return (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2, (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2


def rounded_sample(x: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """x read at the rounded positions (exact gather; round half to even, as torch and Brevitas),
    with the straight-through gradient of the module docstring flowing to py and px."""
    iy, ix = py.detach().round(), px.detach().round()
    out = gather(x, iy, ix)
    if not (torch.is_grad_enabled() and (py.requires_grad or px.requires_grad)):
        return out
    slopes = gather(torch.cat(central_differences(x.detach()), dim=1), iy, ix)
    sy, sx = slopes.chunk(2, dim=1)
    # (p − p.detach()) is exactly 0: the forward value is the gather's; only the gradient changes.
    return out + (py - py.detach()).unsqueeze(1) * sy + (px - px.detach()).unsqueeze(1) * sx


def apply_taps(samples: torch.Tensor, weight: torch.Tensor, depthwise: bool) -> torch.Tensor:
    """Σ over taps (and input channels unless depthwise) of samples (N, C, 9, H, W) × weight.

    weight: (C, 1, 3, 3) depthwise or (Cout, C, 3, 3) full, the layout of nn.Conv2d."""
    if depthwise:
        return torch.einsum("nckhw,ck->nchw", samples, weight.reshape(weight.shape[0], 9))
    return torch.einsum("nckhw,ock->nohw", samples, weight.reshape(weight.shape[0], weight.shape[1], 9))


def square_positions(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tap positions p + k·d of the square window, (N, 9, H, W), for dilations d (N, 1, H, W)."""
    ky, kx = _taps(d)
    y, x = _grid(*d.shape[:1], *d.shape[2:], d)
    return y + ky * d, x + kx * d


def square_deform(x: torch.Tensor, d: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The co-designed op: depthwise 3×3 whose tap k of pixel p reads x[p + k·d(p)], zero padding.

    x: (N, C, H, W); d: (N, 1, H, W) integer-valued dilations (rounded here if not); weight:
    (C, 1, 3, 3). d = 1 everywhere is a plain depthwise 3×3 convolution (padding 1); d = 0 reads
    the centre pixel nine times. The gradient reaches d through the straight-through estimator.
    """
    if weight.shape != (x.shape[1], 1, 3, 3):
        raise ModelConfigError(f"square_deform needs a depthwise 3×3 weight ({x.shape[1]}, 1, 3, 3), "
                               f"got {tuple(weight.shape)}")
    py, px = square_positions(d)
    return apply_taps(rounded_sample(x, py, px), weight, depthwise=True)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity gradient backward."""
    return x + (x.round() - x).detach()


def dilation_bits(max_dilation: int) -> int:
    return max(1, math.ceil(math.log2(max_dilation + 1)))


def _check_max_dilation(max_dilation: int) -> None:
    if not (isinstance(max_dilation, int) and 1 <= max_dilation <= 15):
        raise ModelConfigError(f"max_dilation={max_dilation!r} must be an integer in 1..15 "
                               "(the line buffer holds 2R+1 rows)")


class DilationQuant(nn.Module):
    """Makes the offset conv's output an integer dilation d ∈ [0, R].

    QAT: `quant` is a Brevitas QuantReLU with the constant scale 1.0 and ceil(log2(R+1)) bits
    (so its integers are the dilations), its output then clamped to R (a no-op when R = 2^b − 1,
    e.g. the default R = 7). Float: clamp to [0, R] and round with a straight-through estimator
    (`quant` is None). Both round half to even and pass no gradient outside [0, R].
    """

    def __init__(self, max_dilation: int, spec: QuantSpec):
        super().__init__()
        _check_max_dilation(max_dilation)
        self.max_dilation = max_dilation
        self.quant: nn.Module | None = None
        if spec.quantize:
            import brevitas.nn as qnn
            from brevitas.quant import Uint8ActPerTensorFloat

            bits = dilation_bits(max_dilation)
            # const scaling_init is the largest representable value: 2^b − 1 integers of scale 1.0
            self.quant = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=bits,
                                       scaling_impl_type="const", scaling_init=float(2 ** bits - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.quant is None:
            return ste_round(x.clamp(0, self.max_dilation))
        d = self.quant(x)
        # R = 2^b − 1 (the default, and what `codesign export` requires): the quantizer's own range; no clamp
        # node in the exported graph
        return d if self.max_dilation >= 2 ** dilation_bits(self.max_dilation) - 1 else d.clamp(max=self.max_dilation)


def _conv_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The weight a conv computes with: fake-quantized for a Brevitas layer, else the parameter."""
    if not hasattr(conv, "quant_weight"):
        return conv.weight
    qw = conv.quant_weight()
    return getattr(qw, "value", qw)  # a plain tensor while Brevitas calibration disables quantization


def quant_conv(cin: int, cout: int, k: int, spec: QuantSpec, *, stride: int = 1, groups: int = 1,
                bias: bool = False, weight_bits: int | None = None) -> nn.Conv2d:
    """k×k conv (padding k // 2): per-output-channel quantized weights in QAT, nn.Conv2d in float."""
    if spec.quantize:
        import brevitas.nn as qnn
        from brevitas.quant import Int8WeightPerChannelFloat

        return qnn.QuantConv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=bias,
                               weight_quant=Int8WeightPerChannelFloat,
                               weight_bit_width=weight_bits or spec.weight_bits)
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=bias)


class DeformConvBNAct(nn.Module):
    """Limited-range square deformable depthwise 3×3 → BN → ReLU + activation quantizer.

    offset: 1×1 conv c → 1 (with bias) on the block input; dilation_act: `DilationQuant`, the
    integer dilation d ∈ [0, max_dilation]; dw: the depthwise 3×3 weights (its own forward is
    never called: `square_deform` reads them; stride 1, padding 1, as a d = 1 conv would use).
    The offset conv starts at weight 0, bias 1 — every pixel d = 1, a plain depthwise conv — so
    training starts from the regular network and learns where to look further (as DCN starts
    from zero offsets).
    """

    def __init__(self, c: int, spec: QuantSpec, max_dilation: int = MAX_DILATION):
        super().__init__()
        _check_max_dilation(max_dilation)
        self.offset = quant_conv(c, 1, 1, spec, bias=True)
        nn.init.zeros_(self.offset.weight)
        nn.init.ones_(self.offset.bias)
        self.dilation_act = DilationQuant(max_dilation, spec)
        self.dw = quant_conv(c, c, 3, spec, groups=c)
        self.bn = nn.BatchNorm2d(c)
        self.act = make_act(spec)

    @property
    def max_dilation(self) -> int:
        return self.dilation_act.max_dilation

    def dilation(self, x: torch.Tensor) -> torch.Tensor:
        """The integer dilation map (N, 1, H, W) this block uses for input x."""
        return self.dilation_act(self.offset(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, weight = self.dilation(x), _conv_weight(self.dw)
        if torch.onnx.is_in_onnx_export():  # one QONNX node, not the tracer's index arithmetic
            from ..importers.qonnx_ops import DOMAIN, SQUARE_DEFORM

            y = torch.onnx.ops.symbolic(f"{DOMAIN}::{SQUARE_DEFORM}", (x, d, weight),
                                        {"max_dilation": self.max_dilation}, dtype=x.dtype, shape=x.shape, version=1)
        else:
            y = square_deform(x, d, weight)
        return self.act(self.bn(y))


class DeformConv3x3(nn.Module):
    """Any member of the deformable 3×3 family (float; for ablations, not exported).

    depthwise: channel c reads only channel c (cout = cin); square: positions p + k·d with one
    dilation per pixel from a 1×1 conv, else free offsets p + k + Δ_k from a 3×3 conv (18
    channels); rounded: integer positions (straight-through gradient), else bilinear;
    bound: R limits d to [0, R] (square) or k + Δ to [−R, R]² (free); None leaves it free
    (a square d is still kept ≥ 0). Offsets start at the regular 3×3 grid (Δ = 0, d = 1).
    `DeformConv3x3(c, c, depthwise=True, square=True, rounded=True, bound=7)` computes what
    `DeformConvBNAct` does before its BN.
    """

    def __init__(self, cin: int, cout: int, *, depthwise: bool = True, square: bool = True,
                 rounded: bool = True, bound: int | None = MAX_DILATION):
        super().__init__()
        if depthwise and cin != cout:
            raise ModelConfigError(f"a depthwise deformable conv keeps the channels (got {cin} → {cout})")
        if bound is not None:
            _check_max_dilation(bound)
        self.depthwise, self.square, self.rounded, self.bound = depthwise, square, rounded, bound
        self.offset = nn.Conv2d(cin, 1, 1) if square else nn.Conv2d(cin, 18, 3, padding=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.constant_(self.offset.bias, 1.0 if square else 0.0)
        self.weight = nn.Parameter(torch.empty(cout, 1 if depthwise else cin, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default init

    def positions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tap positions (N, 9, H, W) for input x, bounds applied (not yet rounded)."""
        off = self.offset(x)
        if self.square:
            d = off.clamp(0, self.bound) if self.bound is not None else off.clamp(min=0)
            return square_positions(d)
        ky, kx = _taps(off)
        ry, rx = ky + off[:, :9], kx + off[:, 9:]  # displacement of each tap from p
        if self.bound is not None:
            ry, rx = ry.clamp(-self.bound, self.bound), rx.clamp(-self.bound, self.bound)
        y, x_ = _grid(off.shape[0], *off.shape[2:], off)
        return y + ry, x_ + rx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        py, px = self.positions(x)
        samples = rounded_sample(x, py, px) if self.rounded else bilinear_sample(x, py, px)
        return apply_taps(samples, self.weight, self.depthwise)


class DWConvBNAct(nn.Module):
    """Depthwise 3×3 (padding 1, stride 1 or 2, no bias) → BN → ReLU + activation quantizer.

    ShuffleNetV2 leaves its depthwise conv linear; we add the ReLU (co-design choice) so every
    tensor the engine writes is an unsigned activation (docs/codenet.md measures the cost).
    """

    def __init__(self, c: int, stride: int, spec: QuantSpec, act: nn.Module | None = None):
        super().__init__()
        if stride not in (1, 2):
            raise ModelConfigError(f"depthwise stride {stride!r} is not 1 or 2")
        self.conv = quant_conv(c, c, 3, spec, stride=stride, groups=c)
        self.bn = nn.BatchNorm2d(c)
        self.act = act if act is not None else make_act(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Upsample2x(nn.Module):
    """Nearest-neighbour 2× upsample: out[y, x] = in[y // 2, x // 2] (an exact copy)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():  # the same values as one ONNX Resize (nearest, scale 2)
            return F.interpolate(x, scale_factor=2, mode="nearest")
        # training keeps repeat_interleave: interpolate's backward sums the four copies' gradients in
        # another order, and those last-bit differences change a trained model's results
        return x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)


__all__ = ["DWConvBNAct", "DeformConv3x3", "DeformConvBNAct", "DilationQuant", "MAX_DILATION", "Upsample2x",
           "apply_taps", "bilinear_sample", "central_differences", "gather", "quant_conv", "rounded_sample",
           "square_deform", "square_positions", "ste_round"]
