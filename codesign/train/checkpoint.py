"""Training checkpoints: the model config (to rebuild the model), its weights and metrics; and the
training state that `--resume` continues from (optimizer, LR schedule, GradScaler, RNG states).

Both hold only tensors and plain values (RNG states included: packed into tensors here), so they
load with `weights_only=True` (no code from the file is ever run). Both are written to a temporary
file beside the target and moved over it (os.replace), so a crash never leaves half a file.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import warnings
from pathlib import Path
from typing import Any, Callable, Collection

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import CodesignError
from ..models import ModelConfigError, build_model
from .distributed import Runtime, gather_objects

FORMAT = "codesign-checkpoint"
VERSION = 1
STATE_FORMAT = "codesign-train-state"
STATE_VERSION = 1
# Options that do not change what a run computes: `--resume` may differ in them from the run it continues.
RUN_ONLY = frozenset({"out", "threads", "progress", "resume", "stop_after", "workers", "device"})


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
    payload = {"format": FORMAT, "version": VERSION, "config": model.config,
               "state_dict": model.state_dict(), "metrics": metrics}
    return _atomic_save(payload, path)


def _atomic_save(payload: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")  # same directory: os.replace is then an atomic rename
    torch.save(payload, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated checkpoint behind
    return path


def _load_payload(path: Path, what: str) -> Any:
    """torch.load(weights_only=True) of `path`; every failure is one CheckpointError line."""
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch's own notes about the pickle would precede our one line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad bytes (RuntimeError, UnpicklingError, EOFError...)
        if "Weights only load failed" in str(e):  # a pickle of objects other than tensors and plain data
            raise CheckpointError(f"{path} is not a readable {what}: corrupt, or holding Python objects "
                                  "beyond tensors and plain data (a weights-only load refuses them; nothing in it "
                                  "was run)") from None
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} is not a readable {what} (corrupt or truncated?): {reason}") from None


def load_checkpoint(path: str | Path, quantize: bool | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint, in eval mode; `meta` is the payload without weights.

    `quantize` overrides the checkpoint's quantization (False loads the float twin).
    """
    path = Path(path)
    payload = _load_payload(path, "checkpoint")
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


def save_training_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write the state `--resume` continues from (tensors and plain values only)."""
    return _atomic_save({"format": STATE_FORMAT, "version": STATE_VERSION, **state}, Path(path))


def load_training_state(path: str | Path) -> dict[str, Any]:
    """The state written by `save_training_state`; a missing, corrupt or foreign file is one line."""
    path = Path(path)
    payload = _load_payload(path, "training state")
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        what = "a model checkpoint, not a training state" if isinstance(payload, dict) and \
            payload.get("format") == FORMAT else "not a codesign training state"
        raise CheckpointError(f"{path} is {what} (--resume takes the .resume.pt file a run writes after "
                              "every epoch)")
    if payload.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: training state version {payload.get('version')!r} is not supported "
                              f"(this codesign reads version {STATE_VERSION})")
    return payload


def rng_state() -> dict[str, Any]:
    """This process's torch (CPU and CUDA), NumPy and Python global generator states, as tensors and
    plain values (a weights-only load accepts them; NumPy's and Python's own tuples hold arrays)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------- --resume, shared by both trainers


def resume_path(out: str | Path) -> Path:
    """Where a run writes the state `--resume` continues from: beside its checkpoint."""
    out = Path(out)
    return out.with_name(out.stem + ".resume.pt")


def to_cpu(value: Any) -> Any:
    """`value` with every tensor in it (nested dicts, lists, tuples) on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def resumable_state(cfg: Any, world: int, run_only: Collection[str] = RUN_ONLY) -> dict[str, Any] | None:
    """The training state `cfg.resume` names ("auto": `<cfg.out>.resume.pt`), checked against this run:
    every setting of the dataclass `cfg` but `run_only` equal, and the same number of processes."""
    if not cfg.resume:
        return None
    path = resume_path(cfg.out) if cfg.resume == "auto" else Path(cfg.resume)
    state = load_training_state(path)
    saved = state.get("config", {})
    mine = dataclasses.asdict(cfg)
    differ = [k for k in mine if k not in run_only and saved.get(k, mine[k]) != mine[k]]
    if differ:
        k = differ[0]
        raise CheckpointError(f"{path} was written by a run with {k}={saved[k]!r}, this one has {k}={mine[k]!r} "
                              f"({len(differ)} setting(s) differ; resume with the same settings)")
    if state.get("world_size") != world:
        raise CheckpointError(f"{path} was written by {state.get('world_size')} process(es), this run has {world} "
                              "(the shuffle and the per-rank batches depend on it)")
    return state


def write_training_state(cfg: Any, rt: Runtime, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Any,
                         scaler: torch.amp.GradScaler, data_state: dict[str, Any], **fields: Any) -> None:
    """Rank 0 writes `<cfg.out>.resume.pt`: the settings, the model, optimizer, LR schedule and scaler, and
    every rank's RNG states and `data_state` (gathered: each rank draws its own streams), plus `fields`
    (phase, epoch, history...). Every rank must call it (the gather is collective)."""
    per_rank = gather_objects({"rng": rng_state(), "data": data_state}, rt)
    if rt.main:
        save_training_state(resume_path(cfg.out), {
            "config": dataclasses.asdict(cfg), "world_size": rt.world, **fields,
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "optimizer": to_cpu(optimizer.state_dict()), "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict(), "ranks": to_cpu(per_rank)})


def restore_training_state(state: dict[str, Any], rank: int, optimizer: torch.optim.Optimizer, schedule: Any,
                           scaler: torch.amp.GradScaler) -> dict[str, Any]:
    """Load what `write_training_state` saved into the optimizer, schedule, scaler and this rank's global
    generators; returns this rank's data state (the caller's data source restores it)."""
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    scaler.load_state_dict(state["scaler"])
    mine = state["ranks"][rank]
    set_rng_state(mine["rng"])
    return mine["data"]


def stopped(out: str | Path, epochs_done: int, rt: Runtime, log: Callable[[str], None]) -> Path:
    """End a run that `--stop-after` stopped; returns the state's path, once rank 0 has written it."""
    path = resume_path(out)
    log(f"stopped after {epochs_done} epoch(s) (--stop-after); continue with --resume ({path})")
    if rt.world > 1:
        dist.barrier()  # rank 0 has written the state before any rank returns
    return path


def add_resume_arguments(parser: Any) -> None:
    """`--resume [STATE]` and `--stop-after N` (an argparse parser; unset: None)."""
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="STATE",
                        help="continue an interrupted run from its training state (default <out>.resume.pt, "
                             "written after every epoch)")
    parser.add_argument("--stop-after", dest="stop_after", type=int, default=None,
                        help="stop after this many epochs in this process (float and QAT together); continue "
                             "later with --resume")
