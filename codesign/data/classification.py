"""Image-classification data sets held in memory as uint8 pixels.

Images are kept as the integers the hardware sees (NHWC uint8, RGB); the torch models take
`pixels / 255` in NCHW (`to_input`). Every loader returns its split in a shuffled (seeded) order,
so the first n images of a split are a random sample of it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Self, Sequence

import numpy as np
import torch

from ..errors import CodesignError
from ..images import ImageError, load_image_file, load_images

SPLITS = ("train", "test")
TEST_FRACTION = 0.2


class DatasetError(CodesignError):
    """A data set that cannot be found or read; the message names the path."""


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC pixels → the float NCHW model input (pixels / 255)."""
    x = torch.as_tensor(images)
    return x.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


class PerImageData:
    """What image data sets share: a dataclass whose `images` and every per-image field (all but
    `class_names`) are indexed by image."""

    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def resolution(self) -> int:
        return self.images.shape[1]

    def to_tensor(self) -> torch.Tensor:
        """All images as the float NCHW model input (pixels / 255)."""
        return to_input(self.images)

    def take(self, n: int | None) -> Self:
        """The first `n` images (a random sample: splits are shuffled); all of them for None."""
        if n is None or n >= len(self):
            return self
        return dataclasses.replace(self, **{f.name: getattr(self, f.name)[:n] for f in dataclasses.fields(self)
                                            if f.name != "class_names"})


@dataclass
class ImageSet(PerImageData):
    """`images`: (N, H, W, 3) uint8 RGB; `labels`: (N,) int64 indices into `class_names`."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] != 3:
            raise DatasetError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise DatasetError(f"{len(self.images)} images but labels of shape {self.labels.shape}")
        self.labels = self.labels.astype(np.int64, copy=False)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r} (use one of: {', '.join(SPLITS)})")


def stratified_split(labels: np.ndarray, split: str, seed: int = 0,
                     test_fraction: float = TEST_FRACTION) -> np.ndarray:
    """Indices of `split` in a fixed, seeded, per-class split; returned in a shuffled order.

    ceil(test_fraction · N) images go to test, shared among classes in proportion to their size
    (largest remainders get the leftovers), so every class keeps its share in both splits.
    """
    check_split(split)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    n_test = math.ceil(test_fraction * len(labels) - 1e-9)
    quota = n_test * counts / len(labels)
    per_class = np.floor(quota).astype(int)
    leftovers = np.argsort(-(quota - per_class), kind="stable")[: n_test - per_class.sum()]
    per_class[leftovers] += 1
    chosen = []
    for c, k in zip(classes, per_class):
        idx = rng.permutation(np.flatnonzero(labels == c))
        chosen.append(idx[:k] if split == "test" else idx[k:])
    return rng.permutation(np.concatenate(chosen))


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise DatasetError("the digits data set needs scikit-learn (pip install scikit-learn)") from None
    digits = sk_load_digits()
    return digits.images, digits.target


def load_digits(resolution: int = 32, split: str = "train", seed: int = 0) -> ImageSet:
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, no download).

    Values 0..16 are scaled to 0..255, upsampled bilinearly (align_corners=False) to
    resolution × resolution, rounded to uint8 and replicated to 3 channels. The stratified 80/20
    split gives 1437 train / 360 test images.
    """
    check_split(split)
    images, target = _sklearn_digits()
    idx = stratified_split(target, split, seed)
    gray = torch.from_numpy(images[idx]).float().mul(255.0 / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
    if resolution != gray.shape[-1]:
        gray = torch.nn.functional.interpolate(gray, size=(resolution, resolution), mode="bilinear",
                                               align_corners=False)
    pixels = gray.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).expand(-1, -1, -1, 3)
    return ImageSet(np.ascontiguousarray(pixels.numpy()), target[idx],
                    [str(c) for c in range(10)])


FIT = "fit"  # training: the shorter side resized to the resolution (bilinear), the centre cropped


def load_image(path: str | Path, resolution: int, resize: str = FIT) -> np.ndarray:
    """One image file → (resolution, resolution, 3) uint8 RGB. resize "fit" (training): the shorter side
    is resized to `resolution` (bilinear), then the centre is cropped; otherwise the one image policy
    of the inference tools (codesign/images.py: refuse another size, or nearest / bilinear)."""
    from .transforms import center_crop

    if resize != FIT:
        return load_images([path], (resolution, resolution, 3), resize)[0]
    try:
        image = load_image_file(path, 3)  # codesign/images.py: the one reader (bombs, corrupt files)
    except ImageError as e:
        raise DatasetError(str(e)) from None
    return center_crop(image, resolution)


def load_image_files(paths: Sequence[str | Path], resolution: int, resize: str = FIT) -> np.ndarray:
    """Image files → (N, resolution, resolution, 3) uint8 (`load_image`)."""
    if not paths:
        return np.zeros((0, resolution, resolution, 3), np.uint8)
    return np.stack([load_image(p, resolution, resize) for p in paths])


def load_image_folder(root: str | Path, resolution: int, split: str = "train", seed: int = 0,
                      resize: str = FIT) -> ImageSet:
    """An ImageFolder tree, root/<class>/*.jpg|png, decoded into memory; class names are the sorted
    directory names (`folder.index_image_folder`; `folder.FolderDataset` streams it instead).

    If root/train and root/val exist they are the train and test splits (val's classes must be
    train's); otherwise each class is split 80/20 with `seed` (`stratified_split`).
    """
    from .folder import index_image_folder  # folder.py builds on this module's split and errors

    index = index_image_folder(root, split, seed)
    images = load_image_files(index.paths(), resolution, resize)
    return ImageSet(images, index.labels.astype(np.int64), index.class_names)


def load_dataset(name_or_path: str | Path, resolution: int, split: str = "train", seed: int = 0,
                 resize: str = FIT) -> ImageSet:
    """'digits' (built in) or the path of an ImageFolder directory (its images loaded with `resize`:
    "fit" for training, the inference tools' policy otherwise)."""
    if str(name_or_path) == "digits":
        return load_digits(resolution, split, seed)
    return load_image_folder(name_or_path, resolution, split, seed, resize)
