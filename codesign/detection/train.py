"""Detection training: float pre-training of CoDeNet, then W4A8 QAT from its weights, then one
checkpoint (`codesign.train.checkpoint`), as the classification trainer does for DiracDeltaNet.

One process or data-parallel under torchrun, as the classifier trainer (`codesign.train.distributed`):
gloo on CPU, NCCL on GPUs, the batch size global (each of W ranks takes batch_size // W), BN on each
rank's own batch statistics with rank 0's buffers broadcast before every forward (DDP's default), the
training set sharded, evaluation sharded too: each rank decodes its share of the test images, the
detections are gathered in image order and every rank scores the same list (AP50 is not a sum of
per-shard figures, so the detections travel, not the scores). Rank 0 prints and writes files. On the
CPU or a GPU (`--device`; the float phase under fp16 autocast + GradScaler on a GPU, QAT in fp32).

After every epoch rank 0 writes `<out>.resume.pt` (weights, optimizer, LR schedule, GradScaler, every
rank's RNG states, the in-memory augmentation generator, phase and epoch); `--resume` continues from it,
and a run resumed in the QAT phase takes the QAT weights (calibrated scales included) from the state,
not from a new calibration. On the CPU the result is bit-identical to the uninterrupted run.

Data: a VOC-format directory, or "synthetic" — the synthetic shapes set (`codesign.data.synthetic_voc`),
generated into a temporary directory for the run.
In memory (the default; the synthetic preset): images resized to the input once, augmented by a
random horizontal flip and translation (zero fill), boxes moved with the pixels. Streamed
(`--loader stream`, the `voc` preset): each image decoded in DataLoader workers, CenterNet's random
scale crop + flip (`data/voc_stream.py`), targets drawn in the workers too.
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
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..data.classification import to_input
from ..data.synthetic_voc import DEMO_SET, write_synthetic_voc
from ..data.transforms import keep_visible_boxes
from ..data.voc import DetectionSet, VOCDataset, load_detection_set
from ..data.voc_stream import VOCStream
from ..errors import CodesignError
from ..architectures import add_quant_arguments, quant_overrides
from ..models.codenet import OUTPUT_STRIDE
from ..train.checkpoint import (RUN_ONLY as TRAIN_RUN_ONLY, add_resume_arguments, resumable_state, resume_path,
                                save_checkpoint, stopped)
from ..models.deform import DeformConvBNAct
from ..train.distributed import (Runtime, add_runtime_arguments, all_sum, broadcast_buffers, data_parallel,
                                 default_workers, gather_objects, init_runtime, make_loader, sync_replicas)
from ..train.sources import checked
from ..train.phases import Run, float_then_qat
from ..train.trainer import LOADERS
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
RUN_ONLY = TRAIN_RUN_ONLY | {"draw"}  # drawing the examples changes no weight


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
    batch_size: int = 32  # global across DDP ranks
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
    loader: str = "memory"  # "memory": resize the splits once and keep them; "stream": decode per batch
    workers: int | None = None  # stream: DataLoader worker processes (None: the host's CPUs)
    steps_per_epoch: int | None = None  # cap on the batches of an epoch (quick runs, tests)
    device: str | None = None  # "cpu", "cuda", "cuda:N"; None: the GPU when there is one
    amp: bool | None = None  # fp16 autocast + GradScaler in the float phase; None: on a GPU only
    resume: str | None = None  # a training state to continue from ("auto": <out>.resume.pt)
    stop_after: int | None = None  # stop after this many epochs in this process (continue with --resume)


# CoDeNet config a at width 0.5, 128², on 2000 synthetic images (1200 train / 400 test), one CPU
# thread, ~8.7 min: float AP50 75.9 / 78.8 / 46.7 %, W4A8 QAT 76.5 / 77.8 / 46.1 % for seeds 0 / 1 / 2
# (docs/codenet.md). With 25 float epochs two of four runs stalled near 25 %.
SYNTHETIC_PRESET = DetectionTrainConfig()
# CoDeNet config c (1×, 512², W4A8) on Pascal VOC: train on VOC07+12 trainval (the split list the user
# makes, ImageSets/Main/trainval.txt), test on VOC07 test. Sources (docs/training.md, "Presets"): the
# authors' README trains the float model with `--input_res 512 --num_epochs 90 --lr_step 50,70` and
# CenterNet's defaults (Adam, lr 1.25e-4 "for batch size 32", batch 32; random scale crop + flip). Kept:
# 90 epochs, batch 32, lr 1.25e-4, the crop. Ours, not theirs: AdamW with warm-up and cosine decay
# instead of the ÷10 steps at 50 and 70; the QAT phase (their quantized command is written for COCO —
# lr 5e-4, batch 128, 270 epochs — and marked by the authors as to be double-checked, so we do not
# claim it): 30 epochs at lr / 10.
VOC_PRESET = DetectionTrainConfig(
    model={"model": "codenet", "config": "c", "width": 1.0}, dataset="", train_split="trainval",
    test_split="test", resolution=512, float_epochs=90, qat_epochs=30, batch_size=32, lr=1.25e-4,
    weight_decay=1e-4, hflip=True, loader="stream", out="checkpoints/codenet-voc.pt")
DETECTION_PRESETS = {"synthetic": SYNTHETIC_PRESET, "voc": VOC_PRESET}


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
        clipped, keep = keep_visible_boxes(b + np.array([dx, dy, dx, dy], np.float32), (w, h))
        new_boxes.append(clipped[keep])
        new_labels.append(labels[i][keep])
    return out, new_boxes, new_labels


def _decode(model: nn.Module, images: np.ndarray | torch.Tensor, device: torch.device | None) -> list[Detections]:
    out = model(to_input(images).to(device or "cpu"))
    return decode_batch({k: v.float().cpu().numpy() for k, v in out.items()}, stride=OUTPUT_STRIDE)


def predict(model: nn.Module, images: np.ndarray, batch_size: int = 64,
            device: torch.device | None = None) -> list[Detections]:
    """Detections of uint8 NHWC images (model in eval mode, on `device`; NumPy decode)."""
    model.eval()
    detections: list[Detections] = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            detections += _decode(model, images[i:i + batch_size], device)
    return detections


def evaluate_ap(model: nn.Module, data: DetectionSet, batch_size: int = 64,
                device: torch.device | None = None) -> tuple[float, list[float]]:
    """VOC07 AP50 in percent (mean, per class) of `model` on `data`."""
    detections = predict(model, data.images, batch_size, device)
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


class DetectionCollate:
    """Stacks streamed samples and draws their CenterNet targets — in the DataLoader worker, so the
    main process only runs the model (a class, not a closure: workers may need to pickle it)."""

    def __init__(self, num_classes: int, out_hw: tuple[int, int], train: bool):
        self.num_classes, self.out_hw, self.train = num_classes, out_hw, train

    def __call__(self, samples: list) -> tuple[torch.Tensor, Any]:
        images = torch.stack([s[0] for s in samples])
        if not self.train:
            return images, None
        return images, batch_targets([s[1] for s in samples], [s[2] for s in samples], self.num_classes,
                                     self.out_hw, OUTPUT_STRIDE)


def _in_image_order(mine: list[Detections], n: int, rt: Runtime) -> list[Detections]:
    """Every rank's detections of its shard (images rank, rank + W, ...), gathered into image order."""
    if rt.world == 1:
        return mine
    out: list[Detections] = [None] * n  # type: ignore[list-item]
    for rank, part in enumerate(gather_objects(mine, rt)):
        out[rank::rt.world] = part
    return out


def _evaluate(model: nn.Module, data: "_Memory | _Stream", rt: Runtime) -> tuple[float, list[float]]:
    """VOC07 AP50 (mean, per class) over the whole test set: each rank decodes its shard (of the model
    itself, not its DDP wrapper: shards of unequal length must not meet in DDP's collectives)."""
    broadcast_buffers(model, rt)  # every rank evaluates rank 0's model (BN statistics included)
    model.eval()
    detections: list[Detections] = []
    with torch.no_grad():
        for images in data.test_batches():
            detections += _decode(model, images, rt.device)
    boxes, labels, difficult = data.ground_truth()
    detections = _in_image_order(detections, len(boxes), rt)
    return mean_ap(detections, boxes, labels, difficult, len(data.class_names))


class _Memory:
    """The splits in memory: a seeded permutation per epoch, shift + flip augmentation (unchanged).

    Under DDP every rank draws the permutation and the augmentation of the whole global batch from the
    same generator and keeps its share: the generators stay in step on all ranks, and a global batch is
    the same whatever the number of ranks (augmenting is pixel copies, cheap beside the model)."""

    def __init__(self, train_set: DetectionSet, test_set: DetectionSet, cfg: DetectionTrainConfig, rt: Runtime):
        self.train_set, self.test_set, self.cfg, self.rt = train_set, test_set, cfg, rt
        self.per_rank = max(1, cfg.batch_size // rt.world)
        full = len(train_set) // (self.per_rank * rt.world)
        self.steps = min(full, cfg.steps_per_epoch or full)
        self.rng = np.random.default_rng(cfg.seed)

    class_names = property(lambda self: self.train_set.class_names)
    sizes = property(lambda self: (len(self.train_set), len(self.test_set)))

    def start_phase(self, phase: str) -> None:
        self.rng = np.random.default_rng(self.cfg.seed + (1000 if phase == "qat" else 0))

    def batches(self, epoch: int) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        data, cfg, n = self.train_set, self.cfg, self.per_rank * self.rt.world
        order = self.rng.permutation(len(data))
        out_hw = (data.resolution // OUTPUT_STRIDE,) * 2
        mine = slice(self.rt.rank * self.per_rank, (self.rt.rank + 1) * self.per_rank)
        for step in range(self.steps):
            idx = order[step * n:(step + 1) * n]
            images, boxes, labels = augment(data.images[idx], [data.boxes[i] for i in idx],
                                            [data.labels[i] for i in idx], cfg.shift, cfg.hflip, self.rng)
            yield images[mine], batch_targets(boxes[mine], labels[mine], len(data.class_names), out_hw,
                                              OUTPUT_STRIDE)

    def test_batches(self) -> Iterator[np.ndarray]:
        shard = self.test_set.images[self.rt.rank::self.rt.world]
        return (shard[i:i + 64] for i in range(0, len(shard), 64))

    def ground_truth(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        return self.test_set.boxes, self.test_set.labels, self.test_set.difficult

    def calibration_images(self, n: int) -> Iterator[np.ndarray]:
        sample = self.train_set.take(n)
        return (sample.images[i:i + 64] for i in range(0, len(sample), 64))

    def examples(self, n: int) -> DetectionSet:
        return self.test_set

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}  # plain dict of ints and strings: a weights-only load takes it

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class _Stream:
    """The splits streamed through DataLoader workers (`VOCStream`), targets drawn in the workers."""

    def __init__(self, root: str | Path, cfg: DetectionTrainConfig, resolution: int, rt: Runtime):
        self.cfg, self.rt = cfg, rt
        self.train_set = VOCStream(VOCDataset(root, cfg.train_split), resolution, train=True, seed=cfg.seed,
                                   hflip=cfg.hflip, limit=cfg.subset)
        self.test_set = VOCStream(VOCDataset(root, cfg.test_split), resolution, train=False, limit=cfg.subset)
        self.workers = default_workers(rt) if cfg.workers is None else cfg.workers
        self.per_rank = max(1, cfg.batch_size // rt.world)
        out_hw = (resolution // OUTPUT_STRIDE,) * 2
        n = len(self.train_set.class_names)
        # DistributedSampler (a seeded shuffle split across ranks, full batches) and ShardSampler (rank::W)
        self.train_loader = make_loader(self.train_set, self.per_rank, rt, train=True, seed=cfg.seed,
                                        workers=self.workers, collate_fn=DetectionCollate(n, out_hw, True))
        self.test_loader = make_loader(self.test_set, self.per_rank, rt, train=False, seed=cfg.seed,
                                       workers=self.workers, collate_fn=DetectionCollate(n, out_hw, False))
        self.steps = min(len(self.train_loader), cfg.steps_per_epoch or len(self.train_loader))
        self.stream = 0

    class_names = property(lambda self: self.train_set.class_names)
    sizes = property(lambda self: (len(self.train_set), len(self.test_set)))

    def start_phase(self, phase: str) -> None:
        self.stream = 1 if phase == "qat" else 0

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        self.train_set.set_epoch(epoch, self.stream)
        self.train_loader.sampler.set_epoch(epoch)
        self.train_loader.generator.manual_seed(self.cfg.seed + epoch)  # worker seeds: a function of the epoch
        for step, batch in enumerate(checked(self.train_loader)):
            if step == self.steps:
                return
            yield batch

    def test_batches(self) -> Iterator[torch.Tensor]:
        return (images for images, _ in checked(self.test_loader))

    def ground_truth(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        return self.test_set.ground_truth()

    def calibration_images(self, n: int) -> Iterator[torch.Tensor]:
        """The first n training images in their evaluation view (resized whole)."""
        view = VOCStream(self.train_set.voc, self.train_set.resolution, train=False, limit=n)
        loader = make_loader(view, 64, Runtime(), train=False, seed=0, workers=self.workers,
                             collate_fn=DetectionCollate(len(self.class_names), (1, 1), False))
        return (images for images, _ in checked(loader))

    def examples(self, n: int) -> DetectionSet:
        """The first n test images in memory (for drawing)."""
        samples = [self.test_set[i] for i in range(min(n, len(self.test_set)))]
        anns = self.test_set.voc.annotations[:len(samples)]
        return DetectionSet(np.stack([s[0].numpy() for s in samples]), [s[1] for s in samples],
                            [s[2] for s in samples], [a.difficult for a in anns], self.class_names,
                            [a.image_id for a in anns])

    def state_dict(self) -> dict[str, Any]:
        return {}  # augmentation is a function of (seed, phase, epoch, image): nothing to carry

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _fit(model: nn.Module, phase: str, epochs: int, lr: float, run: Run) -> float | None:
    """Train for `epochs` (warm-up, then cosine decay to 0); returns the final test AP50, or None when
    `stop_after` stopped the run (its state is saved)."""
    from tqdm import tqdm

    cfg, rt, data = run.cfg, run.rt, run.data
    steps_per_epoch = data.steps
    global_batch = data.per_rank * rt.world
    if steps_per_epoch == 0:
        raise CodesignError(f"{data.sizes[0]} training images do not fill one batch of {global_batch}")
    amp = (rt.cuda if cfg.amp is None else cfg.amp) and phase == "float"  # Brevitas' QAT stays fp32
    if amp and not rt.cuda:
        raise CodesignError("--amp needs a CUDA device (fp16 autocast + GradScaler)")
    model.to(rt.device)
    resumed = run.resumed(phase)
    if resumed:  # the weights of the epoch it stopped after (QAT: calibrated and trained scales included)
        model.load_state_dict({k: v.to(rt.device) for k, v in resumed["model"].items()})
    net = data_parallel(model, rt)
    optimizer = torch.optim.AdamW(param_groups(model, lr, cfg.weight_decay), lr=lr)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=amp)
    total = epochs * steps_per_epoch
    warmup = min(WARMUP_STEPS, total // 10) if phase == "float" else 0

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    data.start_phase(phase)
    ap, start_epoch = float("nan"), 0
    if resumed:
        start_epoch, ap = run.restore(resumed, optimizer, schedule, scaler)
    elif epochs == 0:
        ap = _evaluate(model, data, rt)[0]
    for epoch in range(start_epoch + 1, epochs + 1):
        if run.stopping():
            return None
        start = time.perf_counter()
        net.train()
        sums = {"loss": 0.0, "heatmap": 0.0, "size": 0.0, "offset": 0.0}
        bar = tqdm(total=steps_per_epoch * global_batch, desc=f"{phase} {epoch}/{epochs}", unit="img",
                   unit_scale=True, leave=False, disable=not (cfg.progress and rt.main and sys.stderr.isatty()))
        for step, (images, targets) in enumerate(data.batches(epoch)):
            x = to_input(images).to(rt.device, non_blocking=True)
            targets = {k: v.to(rt.device, non_blocking=True) for k, v in targets.items()}
            with torch.autocast(rt.device.type, dtype=torch.float16, enabled=amp):
                outputs = net(x)
            # the loss in fp32: the focal loss sums a whole heatmap of log-sigmoids. Under DDP each rank
            # normalises by its own objects and DDP averages the gradients (CenterNet's multi-GPU does the same)
            loss, parts = detection_loss({k: v.float() for k, v in outputs.items()}, targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones (all-reduced: same on all ranks)
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            sums["loss"] += float(loss.detach())
            for k, v in parts.items():
                sums[k] += v
            bar.update(global_batch)
            bar.set_postfix(loss=f"{sums['loss'] / (step + 1):.3f}", refresh=False)
        bar.close()
        if rt.world > 1:  # the mean over ranks of each rank's losses
            sums = dict(zip(sums, (v / rt.world for v in all_sum(list(sums.values()), rt))))
        seconds = time.perf_counter() - start
        ap = _evaluate(model, data, rt)[0]
        entry = {"phase": phase, "epoch": epoch, **{k: round(v / steps_per_epoch, 5) for k, v in sums.items()},
                 "ap50": round(ap, 3), "seconds": round(time.perf_counter() - start, 2),
                 "images_per_s": round(steps_per_epoch * global_batch / max(seconds, 1e-9), 1)}
        run.history.append(entry)
        run.log(f"{phase} epoch {epoch}/{epochs}: loss {entry['loss']:.4f} (heatmap {entry['heatmap']:.3f}, "
                f"size {entry['size']:.3f}, offset {entry['offset']:.3f}), AP50 {ap:.2f} % ({entry['seconds']:.1f} s, "
                f"{entry['images_per_s']:.0f} images/s)")
        run.epochs_done += 1
        run.save_state(phase, epoch, model, optimizer, schedule, scaler, ap)
    if rt.world > 1:
        sync_replicas(model)
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


def _model_config(cfg: DetectionTrainConfig, class_names: list[str], resolution: int) -> dict[str, Any]:
    model_cfg = dict(cfg.model)
    model_cfg.setdefault("model", "codenet")
    n = len(class_names)
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


def _check_config(cfg: DetectionTrainConfig) -> int:
    """Refuse what cannot run before reading data; returns the resolution."""
    resolution = cfg.resolution or cfg.model.get("resolution")
    if not resolution:
        raise CodesignError("no input resolution: set it in the model config or the train config")
    if cfg.loader not in LOADERS:
        raise CodesignError(f"unknown loader {cfg.loader!r} (use one of: {', '.join(LOADERS)})")
    if not cfg.dataset:
        raise CodesignError("no data set: give --dataset (a Pascal VOC directory: JPEGImages/, Annotations/, "
                            "ImageSets/Main/<split>.txt)")
    if cfg.loader == "stream" and cfg.dataset == SYNTHETIC:
        raise CodesignError(f"--loader stream reads a VOC directory; '{SYNTHETIC}' is generated in memory")
    return resolution


def train_detection(cfg: DetectionTrainConfig, log: Callable[[str], None] = print) -> Path:
    """Float pre-training, then QAT from its weights; writes the QAT checkpoint (rank 0) and returns its path
    on every rank, or the training state's path when `stop_after` ended the run early."""
    resolution = _check_config(cfg)
    rt = init_runtime(cfg.device)
    log = log if rt.main else (lambda msg: None)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        start = time.perf_counter()
        state = resumable_state(cfg, rt.world, RUN_ONLY)
        data: _Memory | _Stream
        if cfg.loader == "stream":
            data = _Stream(cfg.dataset, cfg, resolution, rt)
        else:
            data = _Memory(*load_data(cfg, resolution), cfg, rt)
        model_cfg = _model_config(cfg, data.class_names, resolution)
        n_train, n_test = data.sizes
        log(f"{cfg.dataset}: {n_train} train / {n_test} test images, {resolution}×{resolution}, "
            f"{len(data.class_names)} classes, {'streamed' if cfg.loader == 'stream' else 'in memory'}; "
            f"{rt.world} process(es) on {rt.device.type}"
            + (f", resuming {state['phase']} epoch {state['epoch']}" if state else ""))
        run = Run(cfg, rt, data, model_cfg, log, state, "ap50")
        result = float_then_qat(run, _fit, CALIBRATION_IMAGES)
        if result is None:
            return stopped(cfg.out, run.epochs_done, rt, log)
        qat_model, qat_ap = result
        _, per_class = _evaluate(qat_model, data, rt)
        qat_model.cpu()

        out = Path(cfg.out)
        if rt.main:
            wall = time.perf_counter() - start
            metrics = {"float_ap50": run.float_score, "qat_ap50": qat_ap,
                       "qat_class_ap50": {name: (None if math.isnan(a) else round(a, 3))
                                          for name, a in zip(data.class_names, per_class)},
                       "epochs": {"float": cfg.float_epochs, "qat": cfg.qat_epochs}, "history": run.history,
                       "world_size": rt.world, "wall_s": round(wall, 1), "train_images": n_train,
                       "test_images": n_test, "class_names": data.class_names,
                       "train_config": dataclasses.asdict(cfg)}
            save_checkpoint(out, qat_model, metrics)
            resume_path(out).unlink(missing_ok=True)  # the run is complete: nothing left to resume
            log(f"float AP50 {run.float_score:.2f} %, QAT AP50 {qat_ap:.2f} % in {wall:.0f} s; wrote {out}")
            if cfg.draw:
                paths = draw_examples(qat_model, data.examples(cfg.draw), cfg.draw,
                                      out.with_suffix("").with_name(out.stem + "-detections"))
                log(f"drew {len(paths)} test images to {paths[0].parent}")
        if rt.world > 1:
            dist.barrier()  # every rank leaves together, after rank 0 has written its files
        return out
    finally:
        if rt.created:
            dist.destroy_process_group()


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
    opt("batch_size", int, "global batch size (split across DDP ranks)")
    opt("lr", float, "peak learning rate of float training (AdamW, cosine decay)")
    opt("qat_lr", float, "peak learning rate of QAT (default lr / 10)")
    opt("weight_decay", float, "weight decay of conv weights")
    opt("shift", int, "augmentation: random translation by up to this many pixels (0: off)")
    opt("seed", int, "random seed (synthetic data, init, shuffling, augmentation)")
    opt("threads", int, "torch CPU threads per process")
    opt("subset", int, "use only the first n images of each split")
    opt("draw", int, "draw the detections on the first n test images (PNG next to the checkpoint)")
    parser.add_argument("--loader", choices=LOADERS, default=None,
                        help="memory: resize the splits once and keep them (default); stream: decode and augment "
                             "per batch in DataLoader workers (random scale crop + flip; the voc preset)")
    add_runtime_arguments(parser)
    add_resume_arguments(parser)
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
