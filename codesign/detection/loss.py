"""CenterNet loss: penalty-reduced focal loss on the heatmap, L1 on size and offset at centres."""
from __future__ import annotations

import torch
import torch.nn.functional as F

SIZE_WEIGHT = 0.1  # CenterNet's weights
OFFSET_WEIGHT = 1.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's focal loss (α = 2, β = 4), summed and divided by the number of peaks.

    log-sigmoids keep it finite for any logit (CenterNet clamps the probability instead)."""
    p = torch.sigmoid(logits)
    pos = target.eq(1).float()
    pos_loss = F.logsigmoid(logits) * (1 - p) ** alpha * pos
    neg_loss = F.logsigmoid(-logits) * p ** alpha * (1 - target) ** beta * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the object centres (mask (N, H, W)), both channels summed."""
    m = mask.unsqueeze(1)
    return (F.l1_loss(pred * m, target * m, reduction="sum")) / mask.sum().clamp(min=1)


def detection_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                   size_weight: float = SIZE_WEIGHT, offset_weight: float = OFFSET_WEIGHT
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (floats, for logging)."""
    parts = {"heatmap": focal_loss(outputs["heatmap"], targets["heatmap"]),
             "size": masked_l1(outputs["size"], targets["size"], targets["mask"]),
             "offset": masked_l1(outputs["offset"], targets["offset"], targets["mask"])}
    total = parts["heatmap"] + size_weight * parts["size"] + offset_weight * parts["offset"]
    return total, {k: float(v.detach()) for k, v in parts.items()}


__all__ = ["detection_loss", "focal_loss", "masked_l1"]
