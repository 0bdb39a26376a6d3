"""Ordinary Brevitas networks for the QONNX importer's tests (not codesign's model classes): randomly
initialised, calibrated on random images, exported with brevitas.export.export_qonnx."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

import brevitas.nn as qnn
from brevitas.graph.calibrate import calibration_mode
from brevitas.export import export_qonnx
from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8ActPerTensorFloat, Int8WeightPerTensorFixedPoint,
                            Int8WeightPerTensorFloat, Uint8ActPerTensorFixedPoint, Uint8ActPerTensorFloat)


class Int8WeightPerChannelFixedPoint(Int8WeightPerTensorFixedPoint):
    """Power-of-two weight scale per output channel."""

    scaling_per_output_channel = True


class Int8WeightPerChannelFloat(Int8WeightPerTensorFloat):
    scaling_per_output_channel = True


def quantizers(po2: bool):
    """(per-channel weights, per-tensor weights, unsigned activations): power-of-two or float scales."""
    if po2:
        return Int8WeightPerChannelFixedPoint, Int8WeightPerTensorFixedPoint, Uint8ActPerTensorFixedPoint
    return Int8WeightPerChannelFloat, Int8WeightPerTensorFloat, Uint8ActPerTensorFloat


def _conv(cin, cout, k, stride, w_bits, po2, groups=1, bias=True):
    wq = quantizers(po2)[0]
    return qnn.QuantConv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=bias,
                           weight_quant=wq, weight_bit_width=w_bits)


def _act(a_bits, po2):
    return qnn.QuantReLU(act_quant=quantizers(po2)[2], bit_width=a_bits, return_quant_tensor=False)


# MobileNet-v1 (Howard et al. 2017, Table 1): the 13 depthwise-separable blocks as (output channels in
# units of the stem's width, depthwise stride); the last block at stride 1, as Brevitas's and FINN's.
MOBILENET_V1_BLOCKS = ((2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (16, 2)) + ((16, 1),) * 5 + ((32, 2), (32, 1))
SHORT_BLOCKS = ((2, 1), (2, 2), (2, 2))


class MobileNetV1ish(nn.Module):
    """Dense 3×3 stride-2 stem, depthwise-separable blocks (dw 3×3 + 1×1), global average pool, FC.
    `bn`: a BatchNorm after every conv (float scales only: a BN's γ/σ is not a power of two);
    `blocks`: (channels / width, stride) per block; `stem_bits`: the stem's weight bits (FINN's 8);
    `linear_dw`: the depthwise convs end in a signed quantizer, no ReLU (MobileNetV2's linear
    bottleneck, ShuffleNetV2's depthwise convs): signed activations into the 1×1 convs."""

    def __init__(self, w_bits=4, a_bits=4, po2=True, width=16, classes=10, bn=False, blocks=SHORT_BLOCKS,
                 stem_bits=None, linear_dw=False):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=quantizers(po2)[2], bit_width=8)
        layers = [_conv(3, width, 3, 2, stem_bits or w_bits, po2)]
        layers += [nn.BatchNorm2d(width)] if bn else []
        layers += [_act(a_bits, po2)]
        c = width
        for mult, stride in blocks:
            cout = mult * width
            layers += [_conv(c, c, 3, stride, w_bits, po2, groups=c)] + ([nn.BatchNorm2d(c)] if bn else [])
            dw_act = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint if po2 else Int8ActPerTensorFloat,
                                       bit_width=a_bits, return_quant_tensor=False) if linear_dw else _act(a_bits, po2)
            layers += [dw_act, _conv(c, cout, 1, 1, w_bits, po2)]
            layers += ([nn.BatchNorm2d(cout)] if bn else []) + [_act(a_bits, po2)]
            c = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = qnn.QuantLinear(c, classes, bias=False, weight_quant=quantizers(po2)[1], weight_bit_width=w_bits)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(self.inp(x))), 1))


class VGGish(nn.Module):
    """Stacks of dense 3×3 convs (padding 1) and 2×2 max-pools down to 1×1, FC."""

    def __init__(self, w_bits=4, a_bits=4, po2=True, res=32, classes=10):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=quantizers(po2)[2], bit_width=8)
        layers, c = [], 3
        widths = [8, 16, 16, 32, 32][: int(np.log2(res))]
        for i, cout in enumerate(widths):
            layers += [_conv(c, cout, 3, 1, w_bits, po2), _act(a_bits, po2)]
            if i % 2 == 1:
                layers += [_conv(cout, cout, 3, 1, w_bits, po2), _act(a_bits, po2)]
            layers += [nn.MaxPool2d(2)]
            c = cout
        self.features = nn.Sequential(*layers)
        self.fc = qnn.QuantLinear(c, classes, bias=False, weight_quant=quantizers(po2)[1], weight_bit_width=w_bits)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(self.inp(x)), 1))


def one_hot_kernel(c: int, taps: list[tuple[int, int]]) -> torch.Tensor:
    """(C, 1, 3, 3) depthwise kernel: channel i has a single 1.0 at (row, column) taps[i % len(taps)]."""
    k = torch.zeros(c, 1, 3, 3)
    for i in range(c):
        k[i, 0, taps[i % len(taps)][0], taps[i % len(taps)][1]] = 1.0
    return k


class RolledShift(nn.Module):
    """1×1 conv → channel roll by `roll` (torch.roll of one tensor, no concat) → fixed one-hot depthwise 3×3
    (a shift: float kernel, no quantizer) → 1×1 conv → mean → FC; power-of-two scales, so exact."""

    def __init__(self, taps: list[tuple[int, int]], roll: int = 3, c: int = 10, classes: int = 4):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=quantizers(True)[2], bit_width=8)
        self.c1, self.a1 = _conv(3, c, 1, 1, 4, True), _act(4, True)
        self.c2, self.a2 = _conv(c, c, 1, 1, 4, True), _act(4, True)
        self.fc = qnn.QuantLinear(c, classes, bias=False, weight_quant=quantizers(True)[1], weight_bit_width=8)
        self.register_buffer("kernel", one_hot_kernel(c, taps))
        self.roll = roll

    def forward(self, x):
        x = torch.roll(self.a1(self.c1(self.inp(x))), -self.roll, 1)
        x = torch.nn.functional.conv2d(x, self.kernel, padding=1, groups=x.shape[1])
        return self.fc(self.a2(self.c2(x)).mean((2, 3)))


def calibrated(model: nn.Module, res: int, seed: int = 0, batches: int = 4) -> nn.Module:
    """Random weights and biases (biases off the activation grid, as trained ones are), BN statistics
    and activation scales from random images."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.uniform_(m.bias, -0.2, 0.2)
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(batches):  # BN running statistics
            model(torch.rand(8, 3, res, res))
    model.eval()
    with torch.no_grad(), calibration_mode(model):
        for _ in range(batches):
            model(torch.rand(8, 3, res, res))
    return model


def export(model: nn.Module, path: Path, res: int) -> Path:
    export_qonnx(model, input_t=torch.rand(1, 3, res, res), export_path=str(path))
    return path
