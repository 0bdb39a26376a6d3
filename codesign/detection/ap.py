"""Pascal VOC 2007 average precision: 11-point interpolated AP per class at IoU > 0.5 (AP50).

As the VOC devkit: detections of a class, best score first, are matched to the ground-truth box
of the same image and class they overlap most; IoU > threshold and that box not yet taken → true
positive, else false positive; if that box is difficult the detection is ignored (neither), and
difficult boxes do not count among the positives. Boxes are continuous coordinates (the "+1" of
the devkit is in the VOC loader's conversion). A class without non-difficult ground truth has AP
NaN and is left out of the mean.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..decode import Detections


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) with each of boxes (K, 4)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Mean over t = 0, 0.1, …, 1 of the best precision at recall ≥ t (0 if never reached)."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):  # as the devkit (same float thresholds)
        reached = recall >= t
        ap += (precision[reached].max() if reached.any() else 0.0) / 11
    return float(ap)


def class_ap(detections: Sequence[Detections], gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
             gt_difficult: Sequence[np.ndarray], cls: int, iou_threshold: float = 0.5) -> float:
    """AP of one class over a set of images (lists indexed by image)."""
    gts = [(b[l == cls], d[l == cls]) for b, l, d in zip(gt_boxes, gt_labels, gt_difficult)]
    npos = sum(int((~d).sum()) for _, d in gts)
    if npos == 0:
        return float("nan")
    image_idx, scores, boxes = [], [], []
    for i, det in enumerate(detections):
        keep = det.labels == cls
        image_idx += [i] * int(keep.sum())
        scores.append(det.scores[keep])
        boxes.append(det.boxes[keep])
    if not image_idx:
        return 0.0
    scores, boxes = np.concatenate(scores), np.concatenate(boxes)
    order = np.argsort(-scores, kind="stable")
    taken = [np.zeros(len(b), bool) for b, _ in gts]
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    for rank, j in enumerate(order):
        i = image_idx[j]
        gt_b, gt_d = gts[i]
        if len(gt_b) == 0:
            fp[rank] = 1
            continue
        overlaps = iou(boxes[j], gt_b)
        best = int(overlaps.argmax())
        if overlaps[best] > iou_threshold:
            if gt_d[best]:
                continue  # matched a difficult box: ignored
            if not taken[i][best]:
                tp[rank], taken[i][best] = 1, True
            else:
                fp[rank] = 1
        else:
            fp[rank] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / npos
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc07_ap(recall, precision)


def mean_ap(detections: Sequence[Detections], gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
            gt_difficult: Sequence[np.ndarray], num_classes: int,
            iou_threshold: float = 0.5) -> tuple[float, list[float]]:
    """(mAP in percent over classes with ground truth, per-class AP in percent (NaN: no ground truth))."""
    aps = [100 * class_ap(detections, gt_boxes, gt_labels, gt_difficult, c, iou_threshold)
           for c in range(num_classes)]
    valid = [a for a in aps if not np.isnan(a)]
    return (float(np.mean(valid)) if valid else float("nan")), aps


__all__ = ["class_ap", "iou", "mean_ap", "voc07_ap"]
