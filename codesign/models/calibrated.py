"""A QAT model with random weights, calibrated on random images: for tests and benchmarks, where
what matters is the arithmetic and the speed, not what the network has learned.

BN statistics (cumulative average) and activation scales are set by a few forward passes in
train mode, so activations are neither all zero nor all saturated; deformable blocks' offset
convs are drawn so that the dilations spread over several values (else every pixel gets d = 1
and the deformable path is not exercised).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import build_model


def random_calibrated_model(config: dict[str, Any], seed: int = 0, steps: int = 6, batch: int = 8,
                            calibration_resolution: int | None = None) -> nn.Module:
    """`build_model(config)` (QAT) with random weights, calibrated by `steps` batches of `batch`
    random uint8 images at `calibration_resolution` (default: the model's), one torch thread
    (tiny convs: more threads only spin). Deterministic for a given seed. Returns it in eval mode."""
    torch.manual_seed(seed)
    model = build_model(config)
    for name, mod in model.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = None  # cumulative average: calibrated in a few steps
        if name.endswith(".offset") and isinstance(getattr(mod, "weight", None), torch.Tensor):
            nn.init.normal_(mod.weight, std=0.3)
            nn.init.constant_(mod.bias, 2.0)
    res = calibration_resolution or model.config["resolution"]
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for _ in range(steps):
                model(torch.randint(0, 256, (batch, 3, res, res)).float() / 255)
    finally:
        torch.set_num_threads(threads)
    return model.eval()


__all__ = ["random_calibrated_model"]
