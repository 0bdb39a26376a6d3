"""Training and evaluation transforms of one decoded image (uint8 HWC RGB), written with NumPy and
Pillow because torchvision does not import beside the pinned torch.

Randomness comes only from the `numpy.random.Generator` passed in, so a sample's augmentation is a
pure function of its generator's seed: the streaming sets seed one per (run seed, phase, epoch,
image), which makes an epoch independent of the worker count and resumable bit for bit.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageOps

BILINEAR = Image.Resampling.BILINEAR
IMAGENET_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop defaults (Inception's crop)
IMAGENET_RATIO = (3 / 4, 4 / 3)
EVAL_CROP_FRACTION = 224 / 256  # ImageNet evaluation: shorter side to 256, centre 224 crop


def random_resized_crop_box(height: int, width: int, rng: np.random.Generator,
                            scale: tuple[float, float] = IMAGENET_SCALE,
                            ratio: tuple[float, float] = IMAGENET_RATIO) -> tuple[int, int, int, int]:
    """(left, top, crop width, crop height) of a random crop covering `scale` of the image's area at an
    aspect ratio in `ratio` (log-uniform); after 10 misses the largest centred crop within `ratio`
    (the algorithm of torchvision's RandomResizedCrop)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop(image: np.ndarray, size: int, rng: np.random.Generator,
                        scale: tuple[float, float] = IMAGENET_SCALE, hflip: bool = True,
                        ratio: tuple[float, float] = IMAGENET_RATIO) -> np.ndarray:
    """ImageNet-style training crop: a random crop (`random_resized_crop_box`) resized to size × size
    (bilinear, antialiased), then a horizontal flip with probability 0.5 if `hflip`."""
    x, y, w, h = random_resized_crop_box(image.shape[0], image.shape[1], rng, scale, ratio)
    out = Image.fromarray(image).resize((size, size), BILINEAR, box=(x, y, x + w, y + h))
    if hflip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.array(out)  # a writable copy (np.asarray of an image is read-only)


def center_crop(image: np.ndarray, size: int, crop_fraction: float = 1.0) -> np.ndarray:
    """Evaluation view: the centred square of side `crop_fraction` × the shorter side, resized to
    size × size (bilinear) — i.e. shorter side resized to size / crop_fraction, centre size × size
    crop. crop_fraction 1 is what the in-memory folder loader has always done (ImageOps.fit)."""
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction {crop_fraction} is not in (0, 1]")
    bleed = (1 - crop_fraction) / 2  # ImageOps.fit removes this fraction from every edge first
    return np.array(ImageOps.fit(Image.fromarray(image), (size, size), method=BILINEAR, bleed=bleed))


def resize_exact(image: np.ndarray, size: int) -> np.ndarray:
    """The whole image resized to size × size (bilinear, aspect not kept): the detection input, whose
    boxes scale with each axis."""
    return np.array(Image.fromarray(image).resize((size, size), BILINEAR))


def keep_visible_boxes(moved: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (K, 4) moved into a size = (width, height) image: clipped to it; kept (mask) when at
    least a third of their area stays inside."""
    w, h = size
    clipped = np.clip(moved, 0, [w, h, w, h]).astype(np.float32)

    def area(b: np.ndarray) -> np.ndarray:
        return (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)

    return clipped, area(clipped) >= area(moved) / 3


def random_scale_crop_boxes(image: np.ndarray, boxes: np.ndarray, size: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.6, 1.3), hflip: bool = True
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detection training view (CenterNet's random crop): a square window of side u × the longer side
    (u uniform in `scale`) centred at a random point of the image, zero filled where it leaves the
    image, resized to size × size; optional horizontal flip. Returns (image, boxes in the output's
    pixels, keep mask over the input boxes): boxes are clipped and dropped when less than a third of
    their area stays in view."""
    height, width = image.shape[:2]
    side = max(height, width) * rng.uniform(scale[0], scale[1])
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    x0, y0 = cx - side / 2, cy - side / 2
    # EXTENT maps the window onto the output in one resample; outside the image it fills zeros
    out = Image.fromarray(image).transform((size, size), Image.Transform.EXTENT,
                                           (x0, y0, x0 + side, y0 + side), BILINEAR, fillcolor=(0, 0, 0))
    moved = (boxes.astype(np.float64) - [x0, y0, x0, y0]) * (size / side)
    if hflip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        moved[:, [0, 2]] = size - moved[:, [2, 0]]
    clipped, keep = keep_visible_boxes(moved, (size, size))
    return np.array(out), clipped[keep], keep


__all__ = ["EVAL_CROP_FRACTION", "IMAGENET_RATIO", "IMAGENET_SCALE", "center_crop", "keep_visible_boxes",
           "random_resized_crop", "random_resized_crop_box", "random_scale_crop_boxes", "resize_exact"]
