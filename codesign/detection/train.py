"""Detection training: float pre-training of CoDeNet, then W4A8 QAT from its weights, then one
checkpoint (`codesign.train.checkpoint`), as the classification trainer does for DiracDeltaNet.

Single process (no DDP). Data: a VOC-format directory, or "synthetic" — the synthetic shapes set
(`codesign.data.synthetic_voc`), generated into a temporary directory for the run.
Augmentation: random horizontal flip and translation (zero fill), boxes moved with the pixels.
Optimiser: AdamW with a short warm-up and cosine decay; CenterNet loss; AP50 (VOC07) on the test
split after every epoch, decoded by the NumPy decoder the ARM runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..data.classification import to_input
from ..data.synthetic_voc import DEMO_SET, write_synthetic_voc
from ..data.voc import DetectionSet, load_detection_set
from ..errors import CodesignError
from ..models import build_model
from ..architectures import add_quant_arguments, quant_overrides
from ..models.codenet import OUTPUT_STRIDE
from ..train.checkpoint import load_weights, save_checkpoint
from ..models.deform import DeformConvBNAct
from ..train.trainer import calibrate
from .ap import mean_ap
from ..decode import Detections, decode_batch
from .draw import draw_detections
from .loss import detection_loss
from .targets import batch_targets

SYNTHETIC = "synthetic"
CALIBRATION_IMAGES = 256
WARMUP_STEPS = 50
GRAD_CLIP = 10.0  # the dilation's straight-through gradient can spike early on
# The dilation convs learn at 1/100 of the lr (DCN also trains its offset convs slower): at the
# full lr a 1×1 conv over hundreds of channels moves d by whole pixels every step; on the 4×4 and
# 8×8 maps of a 128² input the dilations then ran to R, where every tap but the centre reads
# zero padding and the straight-through gradient is 0, so they never came back.
OFFSET_LR_MULT = 0.01


@dataclass
class DetectionTrainConfig:
    """Everything a detection run depends on (stored in the checkpoint's metrics).

    `model` is a `build_model` config (num_classes defaults to the data set's; `resolution`
    here overrides the model's); its "quant" defaults to W4A8 with 8-bit first-layer weights.
    """

    model: dict[str, Any] = field(default_factory=lambda: {"model": "codenet", "config": "a", "width": 0.5})
    dataset: str = SYNTHETIC
    synthetic_images: int = DEMO_SET["num_images"]  # for dataset "synthetic" (60 % train, 20 % test)
    train_split: str = "train"
    test_split: str = "test"
    resolution: int | None = 128
    float_epochs: int = 40
    qat_epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-3
    qat_lr: float | None = None  # None: lr / 10
    weight_decay: float = 1e-4  # conv weights only
    shift: int = 8  # augmentation: random translation by up to this many pixels
    hflip: bool = True
    seed: int = 0
    out: str = "checkpoints/codenet.pt"
    threads: int | None = None
    subset: int | None = None  # only the first n images of each split
    progress: bool = True
    draw: int = 0  # write the QAT model's detections on the first n test images as PNG (next to `out`)


# CoDeNet config a at width 0.5, 128², on 2000 synthetic images (1200 train / 400 test), one CPU
# thread, ~8.7 min: float AP50 75.9 / 78.8 / 46.7 %, W4A8 QAT 76.5 / 77.8 / 46.1 % for seeds 0 / 1 / 2
# (docs/codenet.md). With 25 float epochs two of four runs stalled near 25 %.
SYNTHETIC_PRESET = DetectionTrainConfig()
DETECTION_PRESETS = {"synthetic": SYNTHETIC_PRESET}


def augment(images: np.ndarray, boxes: list[np.ndarray], labels: list[np.ndarray], shift: int, hflip: bool,
            rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Random flip and translation of uint8 NHWC images and their boxes; boxes are clipped and
    dropped when less than a third of their area stays in the image."""
    n, h, w, _ = images.shape
    out = np.zeros_like(images)
    new_boxes, new_labels = [], []
    for i in range(n):
        img, b = images[i], boxes[i].copy()
        if hflip and rng.random() < 0.5:
            img = img[:, ::-1]
            b[:, [0, 2]] = w - b[:, [2, 0]]
        dy, dx = rng.integers(-shift, shift + 1, 2) if shift else (0, 0)
        out[i, max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = \
            img[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        moved = b + np.array([dx, dy, dx, dy], np.float32)
        clipped = np.clip(moved, 0, [w, h, w, h]).astype(np.float32)
        area = lambda x: (x[:, 2] - x[:, 0]).clip(0) * (x[:, 3] - x[:, 1]).clip(0)  # noqa: E731
        keep = area(clipped) >= area(moved) / 3
        new_boxes.append(clipped[keep])
        new_labels.append(labels[i][keep])
    return out, new_boxes, new_labels


def predict(model: nn.Module, images: np.ndarray, batch_size: int = 64) -> list[Detections]:
    """Detections of uint8 NHWC images (model in eval mode, NumPy decode)."""
    model.eval()
    detections: list[Detections] = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            out = model(to_input(images[i:i + batch_size]))
            detections += decode_batch({k: v.numpy() for k, v in out.items()}, stride=OUTPUT_STRIDE)
    return detections


def evaluate_ap(model: nn.Module, data: DetectionSet, batch_size: int = 64) -> tuple[float, list[float]]:
    """VOC07 AP50 in percent (mean, per class) of `model` on `data`."""
    detections = predict(model, data.images, batch_size)
    return mean_ap(detections, data.boxes, data.labels, data.difficult, len(data.class_names))


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Weight decay on conv weights only (not BN, biases, quantizer scales); the deformable
    blocks' offset convs at lr · OFFSET_LR_MULT."""
    offset = {id(p) for m in model.modules() if isinstance(m, DeformConvBNAct) for p in m.offset.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if (id(p) in offset) == is_offset and (p.ndim > 1) == decay],
               "weight_decay": weight_decay if decay else 0.0, "lr": lr * (OFFSET_LR_MULT if is_offset else 1.0)}
              for is_offset in (False, True) for decay in (True, False)]
    return [g for g in groups if g["params"]]


def _fit(model: nn.Module, phase: str, epochs: int, lr: float, cfg: DetectionTrainConfig, train_set: DetectionSet,
         test_set: DetectionSet, history: list[dict], log: Callable[[str], None]) -> float:
    """Train for `epochs` (warm-up, then cosine decay to 0); returns the final test AP50."""
    from tqdm import tqdm

    steps_per_epoch = len(train_set) // cfg.batch_size
    if steps_per_epoch == 0:
        raise CodesignError(f"{len(train_set)} training images do not fill one batch of {cfg.batch_size}")
    optimizer = torch.optim.AdamW(param_groups(model, lr, cfg.weight_decay), lr=lr)
    total = epochs * steps_per_epoch
    warmup = min(WARMUP_STEPS, total // 10) if phase == "float" else 0

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    rng = np.random.default_rng(cfg.seed + (1000 if phase == "qat" else 0))
    out_hw = (train_set.resolution // OUTPUT_STRIDE,) * 2
    num_classes = len(train_set.class_names)
    ap = evaluate_ap(model, test_set)[0] if epochs == 0 else float("nan")
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        order = rng.permutation(len(train_set))
        sums = {"loss": 0.0, "heatmap": 0.0, "size": 0.0, "offset": 0.0}
        bar = tqdm(range(steps_per_epoch), desc=f"{phase} {epoch}/{epochs}", leave=False,
                   disable=not (cfg.progress and sys.stderr.isatty()))
        for step in bar:
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            images, boxes, labels = augment(train_set.images[idx], [train_set.boxes[i] for i in idx],
                                            [train_set.labels[i] for i in idx], cfg.shift, cfg.hflip, rng)
            targets = batch_targets(boxes, labels, num_classes, out_hw, OUTPUT_STRIDE)
            loss, parts = detection_loss(model(to_input(images)), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            optimizer.step()
            schedule.step()
            sums["loss"] += float(loss.detach())
            for k, v in parts.items():
                sums[k] += v
            bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.3f}")
        ap = evaluate_ap(model, test_set)[0]
        entry = {"phase": phase, "epoch": epoch, **{k: round(v / steps_per_epoch, 5) for k, v in sums.items()},
                 "ap50": round(ap, 3), "seconds": round(time.perf_counter() - start, 2)}
        history.append(entry)
        log(f"{phase} epoch {epoch}/{epochs}: loss {entry['loss']:.4f} (heatmap {entry['heatmap']:.3f}, "
            f"size {entry['size']:.3f}, offset {entry['offset']:.3f}), AP50 {ap:.2f} % ({entry['seconds']:.1f} s)")
    return ap


def load_data(cfg: DetectionTrainConfig, resolution: int) -> tuple[DetectionSet, DetectionSet]:
    """(train, test) splits, in memory at the input resolution."""
    def load(root: str | Path) -> tuple[DetectionSet, DetectionSet]:
        return (load_detection_set(root, cfg.train_split, resolution, limit=cfg.subset),
                load_detection_set(root, cfg.test_split, resolution, limit=cfg.subset))

    if cfg.dataset != SYNTHETIC:
        return load(cfg.dataset)
    with tempfile.TemporaryDirectory(prefix="codesign-synthetic-voc-") as tmp:
        return load(write_synthetic_voc(tmp, cfg.synthetic_images, resolution, seed=cfg.seed))


def _model_config(cfg: DetectionTrainConfig, data: DetectionSet, resolution: int) -> dict[str, Any]:
    model_cfg = dict(cfg.model)
    model_cfg.setdefault("model", "codenet")
    n = len(data.class_names)
    if model_cfg.setdefault("num_classes", n) != n:
        raise CodesignError(f"model has num_classes={model_cfg['num_classes']} but {cfg.dataset} has {n} classes")
    model_cfg["resolution"] = resolution
    return model_cfg


def draw_examples(model: nn.Module, data: DetectionSet, n: int, out_dir: Path) -> list[Path]:
    """PNGs of the model's detections (and the ground truth, white) on the first n images."""
    scale = max(1, 256 // data.resolution)
    return [draw_detections(data.images[i], det, data.class_names, out_dir / f"{data.ids[i]}.png",
                            ground_truth=data.boxes[i], scale=scale)
            for i, det in enumerate(predict(model, data.images[:n]))]


def train_detection(cfg: DetectionTrainConfig, log: Callable[[str], None] = print) -> Path:
    """Float pre-training, then QAT from its weights; writes and returns the QAT checkpoint."""
    resolution = cfg.resolution or cfg.model.get("resolution")
    if not resolution:
        raise CodesignError("no input resolution: set it in the model config or the train config")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    train_set, test_set = load_data(cfg, resolution)
    model_cfg = _model_config(cfg, train_set, resolution)
    log(f"{cfg.dataset}: {len(train_set)} train / {len(test_set)} test images, {resolution}×{resolution}, "
        f"{len(train_set.class_names)} classes")
    history: list[dict] = []

    torch.manual_seed(cfg.seed)
    float_model = build_model(model_cfg, quantize=False)
    float_ap = _fit(float_model, "float", cfg.float_epochs, cfg.lr, cfg, train_set, test_set, history, log)

    qat_model = build_model(model_cfg, quantize=True)
    load_weights(qat_model, float_model.state_dict())
    calibrate(qat_model, train_set.take(CALIBRATION_IMAGES), batch_size=64)
    qat_lr = cfg.qat_lr if cfg.qat_lr is not None else cfg.lr / 10
    qat_ap = _fit(qat_model, "qat", cfg.qat_epochs, qat_lr, cfg, train_set, test_set, history, log)
    _, per_class = evaluate_ap(qat_model, test_set)

    out = Path(cfg.out)
    wall = time.perf_counter() - start
    metrics = {"float_ap50": float_ap, "qat_ap50": qat_ap,
               "qat_class_ap50": {name: (None if math.isnan(a) else round(a, 3))
                                  for name, a in zip(train_set.class_names, per_class)},
               "epochs": {"float": cfg.float_epochs, "qat": cfg.qat_epochs}, "history": history,
               "wall_s": round(wall, 1), "train_images": len(train_set), "test_images": len(test_set),
               "class_names": train_set.class_names, "train_config": dataclasses.asdict(cfg)}
    save_checkpoint(out, qat_model, metrics)
    log(f"float AP50 {float_ap:.2f} %, QAT AP50 {qat_ap:.2f} % in {wall:.0f} s; wrote {out}")
    if cfg.draw:
        paths = draw_examples(qat_model, test_set, cfg.draw, out.with_suffix("").with_name(out.stem + "-detections"))
        log(f"drew {len(paths)} test images to {paths[0].parent}")
    return out


def add_detection_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `codesign train --model codenet`; unset options take the preset's value.

    --model itself is left to the caller (it chooses this trainer); --config and --width build
    the CoDeNet model config, --model-config gives any other build_model settings as JSON."""
    from ..models.codenet import CODENET_CONFIGS
    from ..train.trainer import model_spec

    def opt(name: str, type_: Callable, help_: str) -> None:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=type_, default=None, help=help_)

    parser.add_argument("--preset", default="synthetic", choices=sorted(DETECTION_PRESETS),
                        help="defaults to start from")
    parser.add_argument("--config", choices=sorted(CODENET_CONFIGS), default=None, help="CoDeNet configuration a..e")
    opt("width", float, "channel multiplier (1.0: the paper's model)")
    add_quant_arguments(parser, classifier=False)
    opt("model_config", model_spec, "extra CoDeNet settings as JSON or a .json file (e.g. max_dilation, quant)")
    opt("dataset", str, f"'{SYNTHETIC}' (generated shapes) or a Pascal VOC directory")
    opt("synthetic_images", int, f"images of the '{SYNTHETIC}' data set")
    opt("train_split", str, "split to train on (ImageSets/Main/<split>.txt)")
    opt("test_split", str, "split to evaluate on")
    opt("resolution", int, "input resolution (multiple of 32)")
    opt("float_epochs", int, "epochs of float pre-training")
    opt("qat_epochs", int, "epochs of quantization-aware fine-tuning")
    opt("batch_size", int, "batch size")
    opt("lr", float, "peak learning rate of float training (AdamW, cosine decay)")
    opt("qat_lr", float, "peak learning rate of QAT (default lr / 10)")
    opt("weight_decay", float, "weight decay of conv weights")
    opt("shift", int, "augmentation: random translation by up to this many pixels (0: off)")
    opt("seed", int, "random seed (synthetic data, init, shuffling, augmentation)")
    opt("threads", int, "torch CPU threads")
    opt("subset", int, "use only the first n images of each split")
    opt("draw", int, "draw the detections on the first n test images (PNG next to the checkpoint)")
    parser.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None, help="random flips")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    parser.add_argument("-o", "--out", default=None, help="checkpoint to write")


def detection_config_from_args(args: argparse.Namespace) -> DetectionTrainConfig:
    """The preset with every option given on the command line replaced."""
    preset = DETECTION_PRESETS[getattr(args, "preset", None) or "synthetic"]
    names = {f.name for f in dataclasses.fields(DetectionTrainConfig)} - {"model"}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    model = {**preset.model, **(getattr(args, "model_config", None) or {})}
    for key in ("config", "width"):
        if getattr(args, key, None) is not None:
            model[key] = getattr(args, key)
    if quant := quant_overrides(args):  # --act-bits etc. over the model config's quant
        model["quant"] = {**model.get("quant", {}), **quant}
    model["model"] = "codenet"
    return dataclasses.replace(preset, model=model, **given)


def run_detection_from_args(args: argparse.Namespace) -> Path:
    return train_detection(detection_config_from_args(args))


__all__ = ["DETECTION_PRESETS", "DetectionTrainConfig", "SYNTHETIC_PRESET", "add_detection_train_arguments",
           "augment", "detection_config_from_args", "param_groups", "draw_examples", "evaluate_ap", "predict",
           "run_detection_from_args", "train_detection"]
