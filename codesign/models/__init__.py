"""Torch + Brevitas model definitions; `build_model` is the one way to construct them."""
from __future__ import annotations

from typing import Any

from torch import nn

from .codenet import CODENET_QUANT, CoDeNet
from .diracdeltanet import DiracBlock, DiracDeltaNet, DiracDownBlock
from .layers import ModelConfigError, QuantSpec

MODELS = {"diracdeltanet": DiracDeltaNet, "codenet": CoDeNet}
# Each model's bit widths where its config says nothing: DiracDeltaNet W4A4 (Synetgy), CoDeNet W4A8
# (4-bit per-channel weights, 8-bit activations, 8-bit first-layer weights).
DEFAULT_QUANT = {"diracdeltanet": QuantSpec(), "codenet": CODENET_QUANT}


def build_model(config: dict[str, Any], quantize: bool | None = None) -> nn.Module:
    """Build a model from its `config` dict (as stored in checkpoints).

    config["quant"] holds QuantSpec fields; the ones it leaves out (or all, without "quant") take
    the model's defaults (`DEFAULT_QUANT`). `quantize` overrides config["quant"]["quantize"] (float
    pre-training builds the float twin).
    """
    cfg = dict(config)
    name = cfg.pop("model", None)
    if name not in MODELS:
        raise ModelConfigError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    quant = {**DEFAULT_QUANT[name].to_dict(), **cfg.pop("quant", {})}
    if quantize is not None:
        quant["quantize"] = quantize
    try:
        spec = QuantSpec(**quant)
    except TypeError as e:
        raise ModelConfigError(f"bad quantization settings: {e}") from None
    if "stage_blocks" in cfg:
        cfg["stage_blocks"] = tuple(cfg["stage_blocks"])
    try:
        return MODELS[name](spec=spec, **cfg)
    except TypeError as e:
        raise ModelConfigError(f"bad {name} settings: {e}") from None


__all__ = ["DEFAULT_QUANT", "DiracBlock", "DiracDeltaNet", "DiracDownBlock", "MODELS", "ModelConfigError", "QuantSpec", "build_model"]
