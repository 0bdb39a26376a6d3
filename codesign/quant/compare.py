"""Agreement between the Brevitas fake-quant model and the integer golden model.

The two differ only where a value lies within float error of a rounding boundary or on a tie
(round-half-even in Brevitas, round-half-up in the contract). This measures how often: per
requantized layer, the share of activations whose integers are identical, and end to end the
top-1 agreement and both accuracies (classifiers) or the share of equal boxes and both AP50s
(detectors).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import CodesignError
from ..data.voc import DetectionSet
from ..detection.ap import iou
from ..decode import Detections
from ..golden import GoldenModel
from ..graph import Graph
from ..models.codenet import StemConvBNAct
from ..models.deform import DeformConvBNAct, DWConvBNAct
from ..models.layers import ConvBNAct

# Modules whose output is one requantized activation tensor of the IR, named like the module.
QUANTIZED_BLOCKS = (ConvBNAct, DWConvBNAct, DeformConvBNAct, StemConvBNAct)


def layer_lines(layer_identical: dict[str, float]) -> list[str]:
    """The report lines of the per-layer agreement, the lowest last."""
    width = max(map(len, layer_identical), default=0) + 2
    lowest = min(layer_identical, key=layer_identical.get)
    return (["identical activations per requantized layer:"]
            + [f"  {name:<{width}} {100 * share:8.3f} %" for name, share in layer_identical.items()]
            + [f"lowest: {lowest} {100 * layer_identical[lowest]:.3f} %"])


@dataclass
class AgreementReport:
    images: int
    top1_agreement: float
    fakequant_accuracy: float | None
    golden_accuracy: float | None
    layer_identical: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        lines = [f"images: {self.images}",
                 f"top-1 agreement golden vs fake-quant: {100 * self.top1_agreement:.2f} %"]
        if self.fakequant_accuracy is not None:
            lines.append(f"accuracy: fake-quant {100 * self.fakequant_accuracy:.2f} %, "
                         f"golden {100 * self.golden_accuracy:.2f} %")
        return "\n".join(lines + layer_lines(self.layer_identical))


def fakequant_trace(model: nn.Module, images: np.ndarray, batch_size: int = 256
                    ) -> tuple[np.ndarray | dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model's float outputs (an array, or {head: array} for a detector; NCHW) and the
    integer output (NHWC) of every requantized block (`QUANTIZED_BLOCKS`) of the fake-quant model."""
    paths = {mod: name for name, mod in model.named_modules() if isinstance(mod, QUANTIZED_BLOCKS)}
    captured: dict[str, list[np.ndarray]] = {name: [] for name in paths.values()}

    def hook(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        scale = float(mod.act.act_quant.scale().reshape(-1)[0])
        ints = torch.round(out / scale).to(torch.int64).permute(0, 2, 3, 1).numpy()
        captured[paths[mod]].append(ints)

    handles = [m.register_forward_hook(hook) for m in paths]
    model.eval()
    outputs: list = []
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float() / 255.0
                out = model(x)
                outputs.append({k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else out.numpy())
    finally:
        for h in handles:
            h.remove()
    if outputs and isinstance(outputs[0], dict):
        merged = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
    else:
        merged = np.concatenate(outputs)
    return merged, {k: np.concatenate(v) for k, v in captured.items()}


def layer_agreement(fq_layers: dict[str, np.ndarray], trace: dict[str, np.ndarray]) -> dict[str, float]:
    """Per requantized layer, the share of identical integers in the two models."""
    shares = {}
    for name, fq in fq_layers.items():
        if name not in trace:
            raise CodesignError(f"the IR has no tensor '{name}' of the checkpoint's model: is it exported from it?")
        shares[name] = float(np.mean(fq == trace[name].astype(np.int64)))
    return shares


def compare(model: nn.Module, graph: Graph, images: np.ndarray, labels: np.ndarray | None = None
            ) -> AgreementReport:
    fq_logits, fq_layers = fakequant_trace(model, images)
    g_logits, trace = GoldenModel(graph).run(images, trace=True)
    fq_top1 = fq_logits.argmax(axis=1)
    g_top1 = g_logits.reshape(len(images), -1).argmax(axis=1)
    acc = (lambda p: float(np.mean(p == labels))) if labels is not None else (lambda p: None)
    return AgreementReport(len(images), float(np.mean(fq_top1 == g_top1)), acc(fq_top1), acc(g_top1),
                           layer_agreement(fq_layers, trace))


@dataclass
class DetectionAgreement:
    """Golden vs fake-quant detector: of the confident boxes (score ≥ min_score) of either model,
    how many the other model also outputs (`count_equal_boxes`); both models' AP50; per-layer
    agreement."""

    images: int
    boxes: int
    equal_boxes: int
    min_score: float
    min_iou: float
    fakequant_ap50: float | None
    golden_ap50: float | None
    layer_identical: dict[str, float] = field(default_factory=dict)

    @property
    def box_agreement(self) -> float | None:
        """The share of equal boxes; None when neither model has a box with score ≥ min_score."""
        return self.equal_boxes / self.boxes if self.boxes else None

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "box_agreement": self.box_agreement}

    def format(self) -> str:
        share = "undefined" if self.box_agreement is None else f"{100 * self.box_agreement:.2f} %"
        lines = [f"images: {self.images}",
                 f"equal boxes golden vs fake-quant: {self.equal_boxes}/{self.boxes} = {share} "
                 f"(boxes with score ≥ {self.min_score} in either model; same class, IoU ≥ {self.min_iou}, "
                 f"score within {SCORE_TOLERANCE})"]
        if self.fakequant_ap50 is not None:
            lines.append(f"AP50 (VOC07): fake-quant {self.fakequant_ap50:.2f} %, golden {self.golden_ap50:.2f} %")
        return "\n".join(lines + layer_lines(self.layer_identical))


# Two detections are equal when they have the same class, boxes overlapping with IoU ≥ min_iou
# (0.9 by default: a 10-px box shifted by half a pixel) and scores within SCORE_TOLERANCE. Why
# not identical: given the same inputs, every golden layer equals the fake-quant layer on all but
# ~1 in 10^5 values (float error in Brevitas, the 23-bit requant multiplier), but over CoDeNet's
# ~60 8-bit layers those ±1 seeds spread, so the heads differ a little (docs/codenet.md).
SCORE_TOLERANCE = 0.05
MIN_IOU = 0.9


def count_equal_boxes(a: Sequence[Detections], b: Sequence[Detections], min_score: float,
                      min_iou: float = MIN_IOU) -> tuple[int, int]:
    """(boxes scoring ≥ min_score in a and in b, how many of them have an equal box among all the
    other list's detections: same class, IoU ≥ min_iou, score within SCORE_TOLERANCE). Counted in
    both directions, so a confident box only one model outputs lowers the agreement either way.
    a and b hold one `Detections` per image, for the same images."""
    if len(a) != len(b):
        raise ValueError(f"{len(a)} and {len(b)} images of detections")
    total = equal = 0
    for x, y in zip(a, b):
        for ref, oth in ((x, y), (y, x)):
            keep = ref.scores >= min_score
            total += int(keep.sum())
            for box, score, label in zip(ref.boxes[keep], ref.scores[keep], ref.labels[keep]):
                same = (oth.labels == label) & (np.abs(oth.scores - score) <= SCORE_TOLERANCE)
                if not same.any():
                    continue
                with np.errstate(invalid="ignore", divide="ignore"):  # degenerate boxes of an untrained size head
                    overlap = iou(box, oth.boxes[same]) >= min_iou
                identical = np.abs(oth.boxes[same] - box).max(axis=1) <= 1e-3
                equal += bool((overlap | identical).any())
    return total, equal


def compare_detection(model: nn.Module, graph: Graph, data: DetectionSet, min_score: float = 0.1, min_iou: float = MIN_IOU,
                      batch_size: int = 32) -> DetectionAgreement:
    """Fake-quant vs golden on a `codesign.data.voc.DetectionSet` (AP50 needs its ground truth),
    in batches so the golden trace of every tensor stays small."""
    from ..detection import TOP_K, decode_batch, mean_ap
    from ..decode import check_detector_classes, detections_from_outputs
    from ..models.codenet import OUTPUT_STRIDE

    check_detector_classes(graph, data.class_names, "the data set")
    golden = GoldenModel(graph)
    fq_dets: list = []
    g_dets: list = []
    same: dict[str, float] = {}
    for i in range(0, len(data.images), batch_size):
        images = data.images[i:i + batch_size]
        fq_out, fq_layers = fakequant_trace(model, images, batch_size)
        _, trace = golden.run(images, trace=True)
        for name, share in layer_agreement(fq_layers, trace).items():
            same[name] = same.get(name, 0.0) + share * len(images)
        fq_dets += decode_batch(fq_out, stride=OUTPUT_STRIDE)
        frames = detections_from_outputs({k: trace[k] for k in graph.outputs}, graph, data.resolution, TOP_K)
        if frames is None:
            raise CodesignError(f"graph '{graph.name}' has no heatmap/size/offset outputs to decode")
        g_dets += frames
    boxes, equal = count_equal_boxes(fq_dets, g_dets, min_score, min_iou)
    ap = (lambda d: mean_ap(d, data.boxes, data.labels, data.difficult, len(data.class_names))[0])
    return DetectionAgreement(len(data.images), boxes, equal, min_score, min_iou, ap(fq_dets), ap(g_dets),
                              {k: v / len(data.images) for k, v in same.items()})
