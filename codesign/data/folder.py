"""Streaming image-folder data sets: the file list is indexed once, images are decoded and
augmented when a batch asks for them (in DataLoader worker processes), so memory does not grow
with the data set (ImageNet's 1.28 M training images would be ~190 GB as uint8 in memory).

Layout (as torchvision's ImageFolder): root/<class>/*.jpg|jpeg|png, or root/train/<class>/... and
root/val/<class>/... for a fixed split; class names are the sorted directory names. Without
train/ and val/, each class is split 80/20 with the seed (`stratified_split`), as the in-memory
loader does.

The index holds the relative paths in one byte buffer with offsets (~40 bytes per ImageNet image,
~50 MB for its training set, shared copy-on-write with forked workers: no per-path Python object
whose reference count would copy pages into every worker) and the labels as int32.

A corrupt image is refused with one line naming it when a batch reaches it (`DatasetError`): the
index does not decode 1.28 M files up front, and skipping would change which images an epoch sees
(and break `--resume`'s bit-identical continuation). Delete or fix the file and resume.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch.utils.data import Dataset

from ..images import ImageError, load_image_file
from .classification import DatasetError, check_split, stratified_split
from .transforms import EVAL_CROP_FRACTION, IMAGENET_SCALE, center_crop, random_resized_crop

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _class_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"dataset directory {root} does not exist (built-in data sets: digits)")
    with os.scandir(root) as entries:
        dirs = sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))
    if not dirs:
        raise DatasetError(f"{root} has no class sub-directories (expected {root}/<class>/*.png|jpg)")
    return dirs


def _image_names(class_dir: Path) -> list[str]:
    """Sorted image file names of one class (scandir: no stat per file on most file systems)."""
    with os.scandir(class_dir) as entries:
        names = sorted(e.name for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
                       and not e.name.startswith(".") and e.is_file())
    if not names:
        raise DatasetError(f"class directory {class_dir} has no images ({'/'.join(IMAGE_SUFFIXES)})")
    return names


@dataclass
class FileIndex:
    """One split of an image folder: the i-th image is root / path(i) with label labels[i]."""

    root: Path
    blob: np.ndarray  # uint8: every relative path, UTF-8, back to back
    offsets: np.ndarray  # int64 (N + 1,): path i is blob[offsets[i]:offsets[i + 1]]
    labels: np.ndarray  # int32 (N,)
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> Path:
        return self.root / bytes(self.blob[self.offsets[i]:self.offsets[i + 1]]).decode("utf-8")

    def paths(self) -> list[Path]:
        return [self.path(i) for i in range(len(self))]

    def take(self, n: int | None) -> Self:
        """The first `n` images (a random sample: the split order is shuffled); all for None."""
        if n is None or n >= len(self):
            return self
        return FileIndex(self.root, self.blob[:self.offsets[n]], self.offsets[:n + 1], self.labels[:n],
                         self.class_names)


def index_image_folder(root: str | Path, split: str = "train", seed: int = 0) -> FileIndex:
    """The files of `split` in a fixed, seeded, shuffled order (the in-memory loader's order)."""
    check_split(split)
    root = Path(root)
    presplit = (root / "train").is_dir() and (root / "val").is_dir()
    class_names = [d.name for d in _class_dirs(root / "train" if presplit else root)]
    split_root = (root / ("train" if split == "train" else "val")) if presplit else root
    rel: list[str] = []
    labels: list[int] = []
    for d in _class_dirs(split_root):
        if d.name not in class_names:
            raise DatasetError(f"class {d.name!r} of {split_root} is not a class of {root / 'train'}")
        names = _image_names(d)
        prefix = os.path.relpath(d, root)
        rel += [os.path.join(prefix, n) for n in names]
        labels += [class_names.index(d.name)] * len(names)
    label_arr = np.asarray(labels, dtype=np.int64)
    if presplit:
        idx = np.random.default_rng(seed).permutation(len(rel))
    else:
        idx = stratified_split(label_arr, split, seed)
    encoded = [rel[i].encode("utf-8") for i in idx]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), np.uint8).copy()
    return FileIndex(root, blob, offsets, label_arr[idx].astype(np.int32), class_names)


def sample_rng(seed: int, stream: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation: a function of the run's seed, a stream (training
    phase), the epoch and the image only, so any worker, rank or resumed run draws the same crop."""
    return np.random.default_rng([seed, stream, epoch, index])


class FolderDataset(Dataset):
    """Decoded, resized uint8 (R, R, 3) images and int labels of a `FileIndex`, produced on demand.

    train=True: random resized crop (area fraction in `scale`) and a horizontal flip, from
    `sample_rng(seed, stream, epoch, i)` (call `set_epoch` before each epoch's DataLoader iterator is
    created; workers are started per epoch, so they see it). train=False: the centre crop of
    `crop_fraction` of the shorter side (ImageNet: 0.875, i.e. resize 256 → crop 224).
    """

    def __init__(self, index: FileIndex, resolution: int, train: bool, seed: int = 0,
                 scale: tuple[float, float] = IMAGENET_SCALE, hflip: bool = True,
                 crop_fraction: float = EVAL_CROP_FRACTION):
        self.index, self.resolution, self.train = index, resolution, train
        self.seed, self.scale, self.hflip, self.crop_fraction = seed, scale, hflip, crop_fraction
        self.stream = 0
        self.epoch = 0

    @property
    def class_names(self) -> list[str]:
        return self.index.class_names

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int, stream: int = 0) -> None:
        self.epoch, self.stream = epoch, stream

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path = self.index.path(i)
        try:
            image = load_image_file(path, 3)
        except ImageError as e:
            raise DatasetError(str(e)) from None
        if self.train:
            rng = sample_rng(self.seed, self.stream, self.epoch, i)
            pixels = random_resized_crop(image, self.resolution, rng, self.scale, self.hflip)
        else:
            pixels = center_crop(image, self.resolution, self.crop_fraction)
        return torch.from_numpy(pixels), int(self.index.labels[i])


__all__ = ["FileIndex", "FolderDataset", "IMAGE_SUFFIXES", "index_image_folder", "sample_rng"]
