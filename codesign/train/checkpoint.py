"""Training checkpoints: the model config (to rebuild the model), its weights and metrics.

A checkpoint holds only tensors and JSON-like values, so it loads with `weights_only=True`
(no code from the file is ever run).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CodesignError
from ..models import ModelConfigError, build_model

FORMAT = "codesign-checkpoint"
VERSION = 1


class CheckpointError(CodesignError):
    """A checkpoint that cannot be read or does not fit its own model config."""


def is_quantizer_key(key: str) -> bool:
    """Keys that only a Brevitas model has (act_quant., weight_quant., ... sub-modules)."""
    return any(part.endswith("_quant") for part in key.split("."))


def load_weights(model: nn.Module, state_dict: dict[str, Any]) -> None:
    """Load `state_dict` into `model`, tolerating only quantizer keys that one side lacks.

    This is how float weights enter the QAT model (its quantizers then calibrate from data) and
    how a QAT checkpoint can be loaded into the float twin.
    """
    own = model.state_dict()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        if key in own and own[key].shape != value.shape:
            raise CheckpointError(f"state dict does not match the model: {key} has shape {tuple(value.shape)}, "
                                  f"the model expects {tuple(own[key].shape)}")
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not is_quantizer_key(k)]
    unexpected = [k for k in result.unexpected_keys if not is_quantizer_key(k)]
    if missing or unexpected:
        parts = [f"{what} {len(keys)} keys (e.g. {keys[0]})"
                 for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise CheckpointError(f"state dict does not match the model: {', '.join(parts)}")


def save_checkpoint(path: str | Path, model: nn.Module, metrics: dict[str, Any]) -> Path:
    """Write `model` (rebuildable from `model.config`) and JSON-able `metrics` to `path`."""
    json.dumps(metrics)  # fail now, not at load time, on values weights_only loading would refuse
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, "config": model.config,
               "state_dict": model.state_dict(), "metrics": metrics}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind
    return path


def load_checkpoint(path: str | Path, quantize: bool | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint, in eval mode; `meta` is the payload without weights.

    `quantize` overrides the checkpoint's quantization (False loads the float twin).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch's own notes about the pickle would precede our one line
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad bytes (RuntimeError, UnpicklingError, EOFError...)
        if "Weights only load failed" in str(e):  # a pickle of objects other than tensors and plain data
            raise CheckpointError(f"{path} is not a readable checkpoint: corrupt, or holding Python objects "
                                  "beyond tensors and plain data (a weights-only load refuses them; nothing in it "
                                  "was run)") from None
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a codesign checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is not supported "
                              f"(this codesign reads version {VERSION})")
    config, state_dict = payload.get("config"), payload.get("state_dict")
    if not isinstance(config, dict) or not isinstance(state_dict, dict):
        raise CheckpointError(f"{path}: checkpoint lacks its model config or state dict")
    try:
        model = build_model(config, quantize=quantize)
        load_weights(model, state_dict)
    except (ModelConfigError, CheckpointError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model.eval(), meta
