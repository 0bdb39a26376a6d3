"""DiracDeltaNet (Synetgy, FPGA'19): only 1×1 convolutions; every 3×3 is a zero-parameter shift.

Reference configuration (DESIGN.md §7): 224² input, stem 1×1 3→32, pool, shift, 1×1 32→64,
pool, shift; stages of 4/8/4 blocks at 128/256/512 channels (28²/14²/7²); 1×1 to 1024; global
average pool; FC. 330 M MACs, 3.3 M parameters.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..architectures import (DIRAC_HEAD_CHANNELS as HEAD_CHANNELS,
                             DIRAC_STAGE_BLOCKS as STAGE_BLOCKS,
                             DIRAC_STAGE_CHANNELS as STAGE_CHANNELS,
                             DIRAC_STEM_CHANNELS as STEM_CHANNELS)
from .layers import (ConvBNAct, GlobalAvgPool, InputQuant, ModelConfigError, QuantFC, QuantSpec, Shift,
                     channels, make_act, rotate_channels)


class DiracBlock(nn.Module):
    """Normal block: split channels in half; the first half passes; the second goes through
    1×1 (C/2→C), shift, 1×1 (C→C/2); concat; rotate channels by C/4."""

    def __init__(self, c: int, spec: QuantSpec, trunk_act: nn.Module):
        super().__init__()
        self.half = c // 2
        self.rotate = c // 4
        self.expand = ConvBNAct(self.half, c, spec)
        self.shift = Shift()
        self.project = ConvBNAct(c, self.half, spec, act=trunk_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        passed, branch = x[:, : self.half], x[:, self.half:]
        branch = self.project(self.shift(self.expand(branch)))
        return rotate_channels(torch.cat([passed, branch], dim=1), self.rotate)


class DiracDownBlock(nn.Module):
    """Downsample block: skip = 2×2 pool, 1×1 (Cin→Cout/2); main = 1×1 (Cin→Cout), pool, shift,
    1×1 (Cout→Cout/2); concat; rotate by Cout/4."""

    def __init__(self, cin: int, cout: int, spec: QuantSpec, trunk_act: nn.Module):
        super().__init__()
        self.rotate = cout // 4
        self.skip_pool = nn.MaxPool2d(2)
        self.skip = ConvBNAct(cin, cout // 2, spec, act=trunk_act)
        self.expand = ConvBNAct(cin, cout, spec)
        self.pool = nn.MaxPool2d(2)
        self.shift = Shift()
        self.project = ConvBNAct(cout, cout // 2, spec, act=trunk_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(self.skip_pool(x))
        main = self.project(self.shift(self.pool(self.expand(x))))
        return rotate_channels(torch.cat([skip, main], dim=1), self.rotate)


class DiracDeltaNet(nn.Sequential):
    """The whole classifier as a flat sequence of exportable blocks; `config` rebuilds it."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0, resolution: int = 224,
                 spec: QuantSpec | None = None, stage_blocks: tuple[int, ...] = STAGE_BLOCKS):
        spec = spec or QuantSpec()
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ModelConfigError(f"num_classes={num_classes!r} must be an integer >= 2")
        if not 0 < width <= 4:
            raise ModelConfigError(f"width={width!r} must be in (0, 4]")
        downsamples = 2 + len(stage_blocks)  # two stem pools + one per stage
        if resolution % (1 << downsamples) or resolution <= 0:
            raise ModelConfigError(f"resolution={resolution} must be a positive multiple of {1 << downsamples}")
        s1, s2 = (channels(c * width) for c in STEM_CHANNELS)
        stage_c = [channels(c * width) for c in STAGE_CHANNELS[: len(stage_blocks)]]
        head_c = channels(HEAD_CHANNELS * width)
        trunk_act = make_act(spec)  # one quantizer for every tensor that enters a concat

        layers: list[tuple[str, nn.Module]] = [
            ("input", InputQuant(spec)),
            ("stem1", ConvBNAct(3, s1, spec, weight_bits=spec.first_weight_bits)),
            ("stem1_pool", nn.MaxPool2d(2)),
            ("stem1_shift", Shift()),
            ("stem2", ConvBNAct(s1, s2, spec)),
            ("stem2_pool", nn.MaxPool2d(2)),
            ("stem2_shift", Shift()),
        ]
        cin = s2
        for si, (n, c) in enumerate(zip(stage_blocks, stage_c), start=1):
            layers.append((f"stage{si}_0", DiracDownBlock(cin, c, spec, trunk_act)))
            layers += [(f"stage{si}_{b}", DiracBlock(c, spec, trunk_act)) for b in range(1, n)]
            cin = c
        layers += [
            ("head", ConvBNAct(cin, head_c, spec)),
            ("avgpool", GlobalAvgPool()),
            ("fc", QuantFC(head_c, num_classes, spec)),
        ]
        super().__init__(OrderedDict(layers))
        self.config = {"model": "diracdeltanet", "num_classes": num_classes, "width": width,
                       "resolution": resolution, "stage_blocks": list(stage_blocks), "quant": spec.to_dict()}
