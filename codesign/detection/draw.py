"""Detections drawn on an image, written as PNG (Pillow)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..decode import Detections

GROUND_TRUTH_COLOUR = (255, 255, 255)


def class_colour(label: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class (golden-angle hues)."""
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.9, 1.0)
    return int(255 * r), int(255 * g), int(255 * b)


def draw_detections(image: np.ndarray, detections: Detections, class_names: Sequence[str], path: str | Path,
                    score_threshold: float = 0.3, ground_truth: np.ndarray | None = None, scale: int = 1) -> Path:
    """Boxes with score ≥ threshold (class colour, "name score") and optional ground-truth boxes
    (thin white) on `image` (H, W, 3) uint8, enlarged `scale` times (nearest) for small inputs."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(image)
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(im)
    if ground_truth is not None:
        for box in np.asarray(ground_truth, float) * scale:
            draw.rectangle(box.tolist(), outline=GROUND_TRUTH_COLOUR, width=1)
    for box, score, label in zip(detections.boxes, detections.scores, detections.labels):
        if score < score_threshold:
            continue
        colour = class_colour(int(label))
        x0, y0, x1, y1 = (np.asarray(box, float) * scale).tolist()
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=2)
        draw.text((x0 + 2, max(0.0, y0 - 11)), f"{class_names[int(label)]} {score:.2f}", fill=colour)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="PNG")
    return path


__all__ = ["class_colour", "draw_detections"]
