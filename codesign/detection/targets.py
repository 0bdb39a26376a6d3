"""CenterNet training targets: one gaussian peak per object on its class heatmap, plus the box
size and the sub-cell offset of its centre at that peak (Zhou et al., "Objects as Points")."""
from __future__ import annotations

import math

import numpy as np
import torch


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: the largest corner displacement that keeps IoU ≥ min_overlap with the
    box (the smallest root of the three cases: both corners inside, outside, one of each)."""
    a1, b1 = 1, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2, b2 = 4, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, cx: int, cy: int, radius: int) -> None:
    """heatmap (H, W) ← max(heatmap, exp(−d²/2σ²)) in a (2r+1)² window, σ = (2r+1)/6; 1 at the centre."""
    sigma = (2 * radius + 1) / 6
    d = np.arange(-radius, radius + 1)
    g = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma ** 2))
    h, w = heatmap.shape
    y0, y1 = max(0, cy - radius), min(h, cy + radius + 1)
    x0, x1 = max(0, cx - radius), min(w, cx + radius + 1)
    window = g[y0 - cy + radius:y1 - cy + radius, x0 - cx + radius:x1 - cx + radius]
    np.maximum(heatmap[y0:y1, x0:x1], window, out=heatmap[y0:y1, x0:x1])


def centernet_targets(boxes: np.ndarray, labels: np.ndarray, num_classes: int, out_hw: tuple[int, int],
                      stride: int) -> dict[str, np.ndarray]:
    """Targets of one image: boxes (K, 4) in input pixels → heatmap (C, H, W), size (2, H, W)
    (w, h in output cells), offset (2, H, W) (centre − integer cell), mask (H, W) (1 at centres).

    Objects sharing a centre cell keep the last one's size (rare at stride 4)."""
    h, w = out_hw
    heatmap = np.zeros((num_classes, h, w), np.float32)
    size = np.zeros((2, h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    mask = np.zeros((h, w), np.float32)
    for box, label in zip(np.asarray(boxes, np.float32) / stride, labels):
        bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
        if bw <= 0 or bh <= 0:
            continue
        cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
        ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
        draw_gaussian(heatmap[label], ix, iy, max(0, int(gaussian_radius(math.ceil(bh), math.ceil(bw)))))
        size[:, iy, ix] = bw, bh
        offset[:, iy, ix] = cx - ix, cy - iy
        mask[iy, ix] = 1.0
    return {"heatmap": heatmap, "size": size, "offset": offset, "mask": mask}


def batch_targets(boxes: list[np.ndarray], labels: list[np.ndarray], num_classes: int, out_hw: tuple[int, int],
                  stride: int) -> dict[str, torch.Tensor]:
    """`centernet_targets` of every image, stacked into (N, ...) tensors."""
    per_image = [centernet_targets(b, l, num_classes, out_hw, stride) for b, l in zip(boxes, labels)]
    return {k: torch.from_numpy(np.stack([t[k] for t in per_image])) for k in per_image[0]}


__all__ = ["batch_targets", "centernet_targets", "draw_gaussian", "gaussian_radius"]
