"""CoDeNet (FPGA'21): a CenterNet detector on ShuffleNetV2 with a limited-range square
deformable neck, W4A8 (DESIGN.md §7, docs/codenet.md).

- Stem (on the ARM, 8-bit weights): dense 3×3 conv 3→24, stride 4 (configs a, c, d) or stride 2
  followed by a 2×2/s2 max-pool (b, e; ShuffleNetV2 uses a 3×3/s2 pool, the engine's pool is 2×2).
- Backbone: ShuffleNetV2 stages of 4/8/4 `ShuffleBlock`s, channels 116/232/464 (1×) or
  244/488/976 (2×), then a 1×1 conv to 1024 (1×) or 2048 (2×); output stride 32.
- Neck: three `NeckBlock`s [square deformable depthwise 3×3 → BN → ReLU, 1×1 → BN → ReLU,
  nearest 2× upsample], to 256, 128, 64 channels; output stride 4.
- Heads (CenterNet): heatmap (num_classes), size (2), offset (2); each 1×1 64→64, depthwise 3×3,
  1×1 with bias whose output is not quantized.

1.59 M parameters and 1.14 G MACs for config c (512², 20 classes). The backbone's depthwise convs
are linear as published (BN, then a signed 8-bit quantizer; `dw_relu=True` adds the ReLU that the
unsigned-only engine once required); every other activation is unsigned (after a ReLU).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..architectures import (CODENET_BACKBONE_CHANNELS as BACKBONE_CHANNELS,
                             CODENET_CONFIGS,
                             CODENET_NECK_CHANNELS as NECK_CHANNELS,
                             CODENET_OUTPUT_STRIDE as OUTPUT_STRIDE,
                             CODENET_STAGE_BLOCKS as STAGE_BLOCKS)
from .deform import MAX_DILATION, DeformConvBNAct, DWConvBNAct, Upsample2x, quant_conv
from .layers import ConvBNAct, InputQuant, ModelConfigError, QuantSpec, channels, make_act, make_signed_act

# name → input resolution, stem ("s4": 3×3 stride 4; "s2pool": 3×3 stride 2 + 2×2 max-pool),
# backbone size (1× or 2× ShuffleNetV2). Paper AP50 on VOC07 test: 51.1 / 55.1 / 61.7 / 67.1 / 69.7.

HEATMAP_BIAS = -2.19  # CenterNet: sigmoid(-2.19) ≈ 0.1, so the focal loss starts stable
CODENET_QUANT = QuantSpec(weight_bits=4, act_bits=8, first_weight_bits=8)


def interleave_channels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ShuffleNet's concat + channel shuffle (2 groups): out[:, 2i] = a[:, i], out[:, 2i+1] = b[:, i].

    In the engine each branch is written at channel offset 0 or 1 with channel stride 2.
    """
    return torch.stack((a, b), dim=2).flatten(1, 2)


class StemConvBNAct(nn.Module):
    """Dense 3×3 conv (padding 1, no bias, `first_weight_bits` weights) → BN → ReLU + quantizer."""

    def __init__(self, cin: int, cout: int, stride: int, spec: QuantSpec):
        super().__init__()
        self.conv = quant_conv(cin, cout, 3, spec, stride=stride, weight_bits=spec.first_weight_bits)
        self.bn = nn.BatchNorm2d(cout)
        self.act = make_act(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class ShuffleBlock(nn.Module):
    """ShuffleNetV2 unit. Stride 1: split channels in half, the first half passes, the second
    goes through `branch_main`. Stride 2: `branch_proj` (depthwise s2, 1×1) and `branch_main`
    (1×1, depthwise s2, 1×1) both read the whole input. The two halves are interleaved.

    `out_act` quantizes both halves (they are concatenated, so they share one scale); pass the
    stage's shared quantizer, since a stride-1 block's passed half is the previous block's output.
    `dw_relu=False` (the default) keeps ShuffleNetV2's linear depthwise conv: BN, then a signed
    activation quantizer; `dw_relu=True` adds a ReLU (the unsigned-only engine's old co-design choice).
    """

    def __init__(self, cin: int, cout: int, stride: int, spec: QuantSpec, out_act: nn.Module | None = None,
                 dw_relu: bool = False):
        super().__init__()
        if cout % 2 or (stride == 1 and cin != cout):
            raise ModelConfigError(f"ShuffleBlock {cin}→{cout} stride {stride}: a stride-1 block keeps its "
                                   "channels and the output splits in two equal halves")
        self.stride = stride
        half = cout // 2
        out_act = out_act if out_act is not None else make_act(spec)

        def dw(c: int) -> DWConvBNAct:
            return DWConvBNAct(c, stride, spec, act=None if dw_relu else make_signed_act(spec))

        self.branch_proj = nn.Sequential(dw(cin), ConvBNAct(cin, half, spec, act=out_act)) if stride == 2 else None
        self.branch_main = nn.Sequential(ConvBNAct(cin if stride == 2 else half, half, spec), dw(half),
                                         ConvBNAct(half, half, spec, act=out_act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch_proj is None:
            passed, x = x.chunk(2, dim=1)
            return interleave_channels(passed, self.branch_main(x))
        return interleave_channels(self.branch_proj(x), self.branch_main(x))


class NeckBlock(nn.Module):
    """Square deformable depthwise 3×3 → 1×1 → nearest 2× upsample."""

    def __init__(self, cin: int, cout: int, spec: QuantSpec, max_dilation: int = MAX_DILATION):
        super().__init__()
        self.deform = DeformConvBNAct(cin, spec, max_dilation)
        self.conv = ConvBNAct(cin, cout, spec)
        self.up = Upsample2x()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.conv(self.deform(x)))


class Head(nn.Module):
    """CenterNet head: 1×1 → depthwise 3×3 → 1×1 with bias; `out` has quantized weights and a
    float, unquantized output (logits / regressions decoded on the ARM)."""

    def __init__(self, c: int, cout: int, spec: QuantSpec, bias_init: float = 0.0):
        super().__init__()
        self.conv = ConvBNAct(c, c, spec)
        self.dw = DWConvBNAct(c, 1, spec)
        self.out = quant_conv(c, cout, 1, spec, bias=True)
        nn.init.constant_(self.out.bias, bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dw(self.conv(x)))


class CoDeNet(nn.Module):
    """CenterNet detector; forward returns {"heatmap": (N, C, H/4, W/4) logits, "size": (N, 2, ..),
    "offset": (N, 2, ..)}, sizes and offsets in output-grid cells (×4 for input pixels).

    config: "a".."e" (`CODENET_CONFIGS`); resolution: input size (default: the config's);
    width: a multiplier on every channel count (1.0 is the paper's model; small widths for tests).
    """

    def __init__(self, num_classes: int = 20, config: str = "c", width: float = 1.0, resolution: int | None = None,
                 spec: QuantSpec | None = None, max_dilation: int = MAX_DILATION, dw_relu: bool = False):
        super().__init__()
        spec = spec or CODENET_QUANT
        if config not in CODENET_CONFIGS:
            raise ModelConfigError(f"unknown CoDeNet config {config!r} (use one of: {', '.join(CODENET_CONFIGS)})")
        if not (isinstance(num_classes, int) and num_classes >= 1):
            raise ModelConfigError(f"num_classes={num_classes!r} must be a positive integer")
        if not 0 < width <= 4:
            raise ModelConfigError(f"width={width!r} must be in (0, 4]")
        cfg = CODENET_CONFIGS[config]
        resolution = resolution or cfg["resolution"]
        if not isinstance(resolution, int) or resolution <= 0 or resolution % 32:
            raise ModelConfigError(f"resolution={resolution!r} must be a positive multiple of 32 (backbone stride)")
        stem_c, *stage_c, last_c = BACKBONE_CHANNELS[cfg["backbone"]]
        # As in ShuffleNetV2 (every width) and CoDeNet's 2× model the stem keeps its 24 channels:
        # it is cheap, runs on the ARM, and at width 0.5 a 12-channel stride-4 stem cost AP.
        stage_c, last_c = [channels(c * width) for c in stage_c], channels(last_c * width)
        neck_c = [channels(c * width) for c in NECK_CHANNELS]

        layers: list[tuple[str, nn.Module]] = [("input", InputQuant(spec))]
        if cfg["stem"] == "s4":
            layers.append(("stem", StemConvBNAct(3, stem_c, 4, spec)))
        else:
            layers += [("stem", StemConvBNAct(3, stem_c, 2, spec)), ("stem_pool", nn.MaxPool2d(2))]
        cin = stem_c
        for si, (n, c) in enumerate(zip(STAGE_BLOCKS, stage_c), start=2):
            stage_act = make_act(spec)  # shared by every concatenated half of the stage
            for b in range(n):
                layers.append((f"stage{si}_{b}", ShuffleBlock(cin, c, 2 if b == 0 else 1, spec, stage_act, dw_relu)))
                cin = c
        layers.append(("conv5", ConvBNAct(cin, last_c, spec)))
        self.backbone = nn.Sequential(OrderedDict(layers))
        self.neck = nn.Sequential(OrderedDict(
            (f"neck{i}", NeckBlock(a, b, spec, max_dilation))
            for i, (a, b) in enumerate(zip([last_c] + neck_c[:-1], neck_c), start=1)))
        self.heads = nn.ModuleDict({"heatmap": Head(neck_c[-1], num_classes, spec, HEATMAP_BIAS),
                                    "size": Head(neck_c[-1], 2, spec), "offset": Head(neck_c[-1], 2, spec)})
        self.num_classes = num_classes
        self.config = {"model": "codenet", "num_classes": num_classes, "config": config, "width": width,
                       "resolution": resolution, "max_dilation": max_dilation, "dw_relu": dw_relu,
                       "quant": spec.to_dict()}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.neck(self.backbone(x))
        return {name: head(features) for name, head in self.heads.items()}


__all__ = ["CODENET_CONFIGS", "CODENET_QUANT", "CoDeNet", "Head", "NeckBlock", "OUTPUT_STRIDE", "ShuffleBlock",
           "StemConvBNAct", "interleave_channels"]
