"""The two reproduced networks' structure as numbers, and the bit-width options of every command that
builds a model, without torch: what the Brevitas models (codesign/models) are built from and what the
estimator's synthetic IRs (estimate/synthetic.py) rebuild without them, so neither keeps a copy.
"""
from __future__ import annotations

import argparse

# DiracDeltaNet (Synetgy): stem convs, three stages of Dirac blocks, the last 1×1 conv
DIRAC_STEM_CHANNELS = (32, 64)
DIRAC_STAGE_BLOCKS = (4, 8, 4)
DIRAC_STAGE_CHANNELS = (128, 256, 512)
DIRAC_HEAD_CHANNELS = 1024

# CoDeNet: configurations a..e of the FPGA'21 paper (input size, stem, backbone width)
CODENET_CONFIGS: dict[str, dict] = {
    "a": {"resolution": 256, "stem": "s4", "backbone": "1x"},
    "b": {"resolution": 256, "stem": "s2pool", "backbone": "1x"},
    "c": {"resolution": 512, "stem": "s4", "backbone": "1x"},
    "d": {"resolution": 512, "stem": "s4", "backbone": "2x"},
    "e": {"resolution": 512, "stem": "s2pool", "backbone": "2x"},
}
# stem, three stages, last 1×1 conv (ShuffleNetV2 paper, Table 5)
CODENET_BACKBONE_CHANNELS = {"1x": (24, 116, 232, 464, 1024), "2x": (24, 244, 488, 976, 2048)}
CODENET_STAGE_BLOCKS = (4, 8, 4)
CODENET_NECK_CHANNELS = (256, 128, 64)  # the heads keep the last: 64
CODENET_OUTPUT_STRIDE = 4


def channels(c: float, divisor: int = 4) -> int:
    """Round a width-scaled channel count to a multiple of `divisor` (split + C/4 rotation)."""
    return max(divisor, int(round(c / divisor)) * divisor)


# The bit-width options, one flag per field of models.layers.QuantSpec, for every command that builds a model
QUANT_FLAGS = (("weight_bits", "--weight-bits", "weight bits of the convs (default 4)"),
               ("act_bits", "--act-bits", "activation bits (default 4 DiracDeltaNet, 8 CoDeNet)"),
               ("first_weight_bits", "--first-bits", "weight bits of the first conv (default 8)"),
               ("fc_weight_bits", "--fc-bits", "weight bits of the classifier (default 8)"))


def add_quant_arguments(parser: argparse.ArgumentParser, classifier: bool = True) -> None:
    """--weight-bits, --act-bits, --first-bits and (a classifier's) --fc-bits; unset: the model's own."""
    for field_, flag, help_ in QUANT_FLAGS:
        if classifier or field_ != "fc_weight_bits":
            parser.add_argument(flag, dest=field_, type=int, default=None, help=help_)


def quant_overrides(args: argparse.Namespace) -> dict:
    """The QuantSpec fields given on the command line (add_quant_arguments)."""
    return {f: getattr(args, f) for f, _, _ in QUANT_FLAGS if getattr(args, f, None) is not None}
