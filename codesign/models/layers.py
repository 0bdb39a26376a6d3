"""Building blocks shared by the codesign models, each in a float and a Brevitas-quantized form.

A model is built twice from the same code: first with `QuantSpec(quantize=False)` for float
pre-training, then quantized for QAT, loading the float weights (the parameter names match).
Every block here has an exporter in `codesign/quant/export.py`; anything else in a model is
refused there by name.
"""
from __future__ import annotations


import functools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..architectures import channels
from ..errors import CodesignError

MIN_BITS, MAX_BITS = 2, 8

INPUT_SCALE = 1.0 / 255.0  # the network input is uint8 pixels / 255


class ModelConfigError(CodesignError):
    """A model configuration that codesign cannot build or quantize."""


@dataclass(frozen=True)
class QuantSpec:
    """Bit widths of a model; `quantize=False` builds the float twin used for pre-training."""

    quantize: bool = True
    weight_bits: int = 4
    act_bits: int = 4
    first_weight_bits: int = 8
    fc_weight_bits: int = 8

    def __post_init__(self) -> None:
        for name in ("weight_bits", "act_bits", "first_weight_bits", "fc_weight_bits"):
            bits = getattr(self, name)
            if not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
                raise ModelConfigError(f"{name}={bits!r} is outside the supported range {MIN_BITS}..{MAX_BITS}")

    def to_dict(self) -> dict:
        return asdict(self)


def make_act(spec: QuantSpec) -> nn.Module:
    """ReLU followed by an unsigned per-tensor activation quantizer (learned scale)."""
    if not spec.quantize:
        return nn.ReLU()
    import brevitas.nn as qnn
    from brevitas.quant import Uint8ActPerTensorFloat

    return qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=spec.act_bits)


def make_signed_act(spec: QuantSpec) -> nn.Module:
    """No ReLU: a signed per-tensor activation quantizer (learned scale), integers in
    [−2^(A−1), 2^(A−1) − 1] — the output of a linear layer (ShuffleNetV2's depthwise convs, a
    MobileNetV2 linear bottleneck), stored two's complement by the engine (docs/integer-contract.md)."""
    if not spec.quantize:
        return nn.Identity()
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFloat

    return qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=spec.act_bits)


class InputQuant(nn.Module):
    """Marks the input as uint8 pixels / 255: an 8-bit quantizer with the constant scale 1/255."""

    def __init__(self, spec: QuantSpec):
        super().__init__()
        if spec.quantize:
            import brevitas.nn as qnn
            from brevitas.quant import Uint8ActPerTensorFloat

            self.quant = qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=8,
                                           scaling_impl_type="const", scaling_init=1.0)
        else:
            self.quant = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(x)


class ConvBNAct(nn.Module):
    """1×1 convolution (no bias) → BatchNorm → ReLU + activation quantizer.

    `act` may be a module shared with other ConvBNActs: branches that are concatenated must use
    one quantizer so they share a scale (docs/integer-contract.md).
    """

    def __init__(self, cin: int, cout: int, spec: QuantSpec, act: nn.Module | None = None,
                 weight_bits: int | None = None):
        super().__init__()
        if spec.quantize:
            import brevitas.nn as qnn
            from brevitas.quant import Int8WeightPerChannelFloat

            self.conv = qnn.QuantConv2d(cin, cout, 1, bias=False, weight_quant=Int8WeightPerChannelFloat,
                                        weight_bit_width=weight_bits or spec.weight_bits)
        else:
            self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act if act is not None else make_act(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


# Tap (row, column) of the 3×3 window each `c mod 5` group reads: above, left, centre, right, below.
DIRAC5_TAPS = ((0, 1), (1, 0), (1, 1), (1, 2), (2, 1))


@functools.lru_cache(maxsize=64)
def dirac5_kernel(c: int) -> torch.Tensor:
    """The shift as a fixed one-hot depthwise 3×3 kernel (C, 1, 3, 3); cached, do not modify."""
    taps = torch.tensor(DIRAC5_TAPS)[torch.arange(c) % 5]
    k = torch.zeros(c, 1, 3, 3)
    k[torch.arange(c), 0, taps[:, 0], taps[:, 1]] = 1.0
    return k


class Shift(nn.Module):
    """Zero-parameter spatial shift replacing a 3×3 depthwise convolution (zero padding).

    Channel c reads its neighbour chosen by c mod 5: 0 above, 1 left, 2 itself, 3 right, 4 below.
    Computed as a depthwise convolution with a one-hot kernel: exact in float (one tap times 1.0),
    and it exports to QONNX as a single depthwise Conv that FINN and hls4ml understand.
    """

    pattern = "dirac5"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = dirac5_kernel(x.shape[1]).to(device=x.device, dtype=x.dtype)
        return F.conv2d(x, kernel, padding=1, groups=x.shape[1])


class GlobalAvgPool(nn.Module):
    """Average over H×W, (N, C, H, W) → (N, C). Exported as an integer sum (scale / (H·W))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class QuantFC(nn.Module):
    """Classifier: weights quantized with one per-tensor scale, float bias (integer at export)."""

    def __init__(self, cin: int, cout: int, spec: QuantSpec):
        super().__init__()
        if spec.quantize:
            import brevitas.nn as qnn
            from brevitas.quant import Int8WeightPerTensorFloat

            self.fc = qnn.QuantLinear(cin, cout, bias=True, weight_quant=Int8WeightPerTensorFloat,
                                      weight_bit_width=spec.fc_weight_bits)
        else:
            self.fc = nn.Linear(cin, cout, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def rotate_channels(x: torch.Tensor, r: int) -> torch.Tensor:
    """out[:, c] = x[:, (c + r) mod C] — the concat's channel rotation (shuffle)."""
    return torch.roll(x, shifts=-r, dims=1) if r else x


__all__ = ["ConvBNAct", "GlobalAvgPool", "InputQuant", "ModelConfigError", "QuantFC", "QuantSpec", "Shift",
           "channels", "dirac5_kernel", "make_act", "make_signed_act", "rotate_channels"]
