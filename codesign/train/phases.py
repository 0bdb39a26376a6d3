"""The two phases both trainers run, and where a run stands between them: float pre-training of the
float twin, then calibration of the activation scales, then QAT from the float weights; resumable
after any epoch (`checkpoint.write_training_state`), in either phase.

The trainers differ in their data, loss and figure of merit (top-1, AP50): each passes its own
`fit(model, phase, epochs, lr, run)`; the sequence, the seeding and the state's bookkeeping are here.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..data import to_input
from ..data.classification import PerImageData
from ..models import build_model
from .checkpoint import load_weights, restore_training_state, write_training_state
from .distributed import Runtime, seed_rank


@dataclass
class Run:
    """What the phases of one run share: where it stands, for the training state and `stop_after`.

    `metric` names the figure in the state ("acc", "ap50"; the float phase's as "float_<metric>");
    `data` has `state_dict`/`load_state_dict` (its generators) and `calibration_images(n)`."""

    cfg: Any  # a trainer's config: seed, lr, qat_lr, float_epochs, qat_epochs, stop_after, out
    rt: Runtime
    data: Any
    model_config: dict[str, Any]
    log: Callable[[str], None]
    state: dict[str, Any] | None  # the training state resumed from, None for a fresh run
    metric: str
    history: list[dict] = field(default_factory=list)
    float_score: float = math.nan
    epochs_done: int = 0  # in this process (stop_after counts these)

    def __post_init__(self) -> None:
        if self.state:
            self.history, self.float_score = list(self.state["history"]), self.state["float_" + self.metric]

    def stopping(self) -> bool:
        return self.cfg.stop_after is not None and self.epochs_done >= self.cfg.stop_after

    def resumed(self, phase: str) -> dict[str, Any] | None:
        """The training state when it was written in `phase` (then the run continues that phase)."""
        return self.state if self.state and self.state["phase"] == phase else None

    def restore(self, resumed: dict[str, Any], optimizer: torch.optim.Optimizer, schedule: Any,
                scaler: torch.amp.GradScaler) -> tuple[int, float]:
        """Optimizer, schedule, scaler, this rank's generators and data state from `resumed`; returns
        (the epoch it was written after, the figure then)."""
        self.data.load_state_dict(restore_training_state(resumed, self.rt.rank, optimizer, schedule, scaler))
        return resumed["epoch"], resumed[self.metric]

    def save_state(self, phase: str, epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                   schedule: Any, scaler: torch.amp.GradScaler, score: float) -> None:
        """Rank 0 writes where the run stands after `epoch` of `phase`, with every rank's RNG and data state."""
        write_training_state(self.cfg, self.rt, model, optimizer, schedule, scaler, self.data.state_dict(),
                             model_config=self.model_config, phase=phase, epoch=epoch, history=self.history,
                             **{self.metric: score, "float_" + self.metric: self.float_score})


Fit = Callable[[nn.Module, str, int, float, Run], "float | None"]


def float_then_qat(run: Run, fit: Fit, calibration_images: int) -> tuple[nn.Module, float] | None:
    """Float pre-training, calibration on the first `calibration_images` training images (the same on
    every rank), QAT; returns (the QAT model, its figure), or None when `stop_after` stopped the run.
    A run resumed in the QAT phase takes the QAT weights (calibrated scales included) from its state."""
    cfg, rt = run.cfg, run.rt
    torch.manual_seed(cfg.seed)  # same initial weights everywhere (DDP also broadcasts rank 0's)
    float_model = build_model(run.model_config, quantize=False)
    seed_rank(cfg.seed, rt.rank)
    if not run.resumed("qat"):
        float_score = fit(float_model, "float", cfg.float_epochs, cfg.lr, run)
        if float_score is None:
            return None
        run.float_score = float_score
        qat_model = build_model(run.model_config, quantize=True)  # its weights come from the float model
        load_weights(qat_model, float_model.cpu().state_dict())
        qat_model.to(rt.device)
        calibrate(qat_model, run.data.calibration_images(calibration_images), device=rt.device)
    else:
        qat_model = build_model(run.model_config, quantize=True)  # the training state holds its weights
    qat_lr = cfg.qat_lr if cfg.qat_lr is not None else cfg.lr / 10
    qat_score = fit(qat_model, "qat", cfg.qat_epochs, qat_lr, run)
    return None if qat_score is None else (qat_model, qat_score)


def calibrate(model: nn.Module, data: PerImageData | Iterable[torch.Tensor], batch_size: int = 256,
              device: torch.device | None = None) -> None:
    """Initialise every activation scale from the float activations of `data` (Brevitas
    calibration: a true average of per-batch statistics, BN in eval mode), so QAT trains the
    learned scales from its first step. Without it, Brevitas collects statistics during the first
    300 training calls of each quantizer; on a small data set that is most of the QAT run.

    `data`: images in memory, or uint8 NHWC batches (a streaming source's calibration images)."""
    with warnings.catch_warnings():  # brevitas.graph's import warns about optional packages
        warnings.simplefilter("ignore")
        from brevitas.graph.calibrate import calibration_mode

    if isinstance(data, PerImageData):
        batches: Iterable[torch.Tensor] = (torch.from_numpy(data.images[i:i + batch_size])
                                           for i in range(0, len(data), batch_size))
    else:
        batches = data
    model.eval()
    with torch.no_grad(), calibration_mode(model):
        for images in batches:
            model(to_input(images).to(device or "cpu"))


__all__ = ["Fit", "Run", "calibrate", "float_then_qat"]
