"""A Pascal VOC split streamed: annotations in memory (a few hundred bytes per image), each image decoded
and augmented when a batch asks for it, in DataLoader workers — VOC07+12 trainval at 512² would be
~13 GB as uint8 in memory, its test split ~4 GB.

Training view: CenterNet's random scale crop + horizontal flip with the boxes moved along
(`transforms.random_scale_crop_boxes`), drawn from `folder.sample_rng(seed, phase, epoch, image)`.
Evaluation view: the whole image resized to the input (as `voc.load_detection_set`), boxes scaled.
An unreadable image or one whose size disagrees with its annotation stops the run with one line
naming it (as the streaming folder set does).
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .classification import DatasetError
from .folder import sample_rng
from .transforms import random_scale_crop_boxes, resize_exact
from .voc import AnnotationError, VOCDataset

DETECTION_SCALE = (0.6, 1.3)  # CenterNet's random crop: the window's side over the image's longer side

Sample = tuple[torch.Tensor, np.ndarray, np.ndarray]  # uint8 (R, R, 3), boxes (K, 4) float32, labels (K,)


class VOCStream(Dataset):
    """The images of `voc` (a VOCDataset: its annotations), decoded per sample at resolution²."""

    def __init__(self, voc: VOCDataset, resolution: int, train: bool, seed: int = 0,
                 scale: tuple[float, float] = DETECTION_SCALE, hflip: bool = True, limit: int | None = None):
        self.voc, self.resolution, self.train = voc, resolution, train
        self.seed, self.scale, self.hflip = seed, scale, hflip
        self.n = len(voc) if limit is None else min(limit, len(voc))
        self.epoch = self.stream = 0

    @property
    def class_names(self) -> list[str]:
        return self.voc.class_names

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int, stream: int = 0) -> None:
        self.epoch, self.stream = epoch, stream

    def ground_truth(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """(boxes in input pixels, labels, difficult) of every image, as the evaluation view sees them."""
        anns = self.voc.annotations[:self.n]
        r = self.resolution
        return ([a.boxes * np.array([r / a.width, r / a.height] * 2, np.float32) for a in anns],
                [a.labels for a in anns], [a.difficult for a in anns])

    def __getitem__(self, i: int) -> Sample:
        ann = self.voc.annotations[i]
        try:
            image = self.voc.image(i)
        except AnnotationError as e:  # its two-argument constructor would not survive the worker's re-raise
            raise DatasetError(str(e)) from None
        if self.train:
            pixels, boxes, keep = random_scale_crop_boxes(image, ann.boxes, self.resolution,
                                                          sample_rng(self.seed, self.stream, self.epoch, i),
                                                          self.scale, self.hflip)
            return torch.from_numpy(pixels), boxes, ann.labels[keep]
        r = self.resolution
        boxes = ann.boxes * np.array([r / ann.width, r / ann.height] * 2, np.float32)
        return torch.from_numpy(resize_exact(image, r)), boxes, ann.labels


__all__ = ["DETECTION_SCALE", "VOCStream"]
