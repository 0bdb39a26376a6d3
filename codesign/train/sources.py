"""Where the trainer's batches come from: one interface, two ways.

- `InMemorySource`: a small set held as uint8 in memory (digits, or a folder loaded whole): index
  batches of a seeded per-epoch shuffle, pixel shift + flip on the tensors. Fast; today's path,
  unchanged bit for bit.
- `StreamingSource`: an image folder decoded and augmented in DataLoader worker processes
  (random resized crop + flip; centre crop for evaluation), pinned memory on a GPU, the shuffle
  sharded across ranks. Memory does not grow with the data set.

Both hand out uint8 NHWC batches (4× less to copy than float), sharded evaluation batches whose
correct/total counts the trainer sums over ranks, and calibration batches that are the same on every
rank.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from ..data import DatasetError, ImageSet
from ..data.folder import FolderDataset
from .distributed import Runtime, ShardSampler, make_loader

EVAL_BATCH = 256
Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 (N, H, W, 3), int64 (N,)


def augment(images: torch.Tensor, shift: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random translation (zero fill) and flip of uint8 NHWC images: stays on the pixel grid."""
    n, h, w, c = images.shape
    if shift:
        padded = images.new_zeros((n, h + 2 * shift, w + 2 * shift, c))
        padded[:, shift:shift + h, shift:shift + w] = images
        offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=gen).tolist()
        images = torch.stack([padded[i, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
    if hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(2), images)
    return images


class InMemorySource:
    """A train and a test `ImageSet` in memory; rank 0 evaluates the whole test set."""

    streaming = False

    def __init__(self, train_set: ImageSet, test_set: ImageSet, rt: Runtime, per_rank: int, seed: int,
                 shift: int, hflip: bool, steps: int | None):
        self.train_set, self.test_set, self.rt = train_set, test_set, rt
        self.shift, self.hflip, self.seed = shift, hflip, seed
        self.images, self.labels = torch.from_numpy(train_set.images), torch.from_numpy(train_set.labels)
        # also the single-process sampler: a seeded shuffle per epoch (set_epoch)
        self.sampler = DistributedSampler(range(len(train_set)), rt.world, rt.rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batches = BatchSampler(self.sampler, per_rank, drop_last=True)  # no tiny last batch for BN
        self.steps = min(len(self.batches), steps or len(self.batches))
        self.gen = torch.Generator()

    class_names = property(lambda self: self.train_set.class_names)
    resolution = property(lambda self: self.train_set.resolution)
    sizes = property(lambda self: (len(self.train_set), len(self.test_set)))

    def start_phase(self, stream: int) -> None:
        self.gen.manual_seed(self.seed + 1000 * self.rt.rank)  # augmentation; every phase starts afresh

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        self.sampler.set_epoch(epoch)
        for step, idx in enumerate(self.batches):
            if step == self.steps:
                return
            yield augment(self.images[idx], self.shift, self.hflip, self.gen), self.labels[idx]

    def test_batches(self) -> Iterator[Batch]:
        if self.rt.main:
            for i in range(0, len(self.test_set), EVAL_BATCH):
                yield (torch.from_numpy(self.test_set.images[i:i + EVAL_BATCH]),
                       torch.from_numpy(self.test_set.labels[i:i + EVAL_BATCH]))

    def calibration_images(self, n: int) -> Iterable[torch.Tensor]:
        sample = self.train_set.take(n)
        return (torch.from_numpy(sample.images[i:i + EVAL_BATCH]) for i in range(0, len(sample), EVAL_BATCH))

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])


def one_line(error: DatasetError) -> DatasetError:
    """A DatasetError raised in a DataLoader worker arrives as "Caught DatasetError in DataLoader worker
    process 0." plus the worker's traceback; the original message is the traceback's last line."""
    text = str(error).strip()
    if text.startswith("Caught "):
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return DatasetError(text)


def checked(loader: Iterable[Any]) -> Iterator[Any]:
    """The batches of `loader`; a worker's DatasetError re-raised as its own one line (`one_line`)."""
    try:
        yield from loader
    except DatasetError as e:
        raise one_line(e) from None


class StreamingSource:
    """Image-folder train and test sets decoded in `workers` DataLoader processes per rank."""

    streaming = True

    def __init__(self, train_set: FolderDataset, test_set: FolderDataset, rt: Runtime, per_rank: int, seed: int,
                 workers: int, steps: int | None):
        self.train_set, self.test_set, self.rt, self.seed, self.workers = train_set, test_set, rt, seed, workers
        self.train_loader = make_loader(train_set, per_rank, rt, train=True, seed=seed, workers=workers)
        self.test_loader = make_loader(test_set, per_rank, rt, train=False, seed=seed, workers=workers)
        self.per_rank = per_rank
        self.steps = min(len(self.train_loader), steps or len(self.train_loader))
        self.stream = 0

    class_names = property(lambda self: self.train_set.class_names)
    resolution = property(lambda self: self.train_set.resolution)
    sizes = property(lambda self: (len(self.train_set), len(self.test_set)))

    def start_phase(self, stream: int) -> None:
        self.stream = stream  # the phase is part of each sample's augmentation seed

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        self.train_set.set_epoch(epoch, self.stream)
        self.train_loader.sampler.set_epoch(epoch)
        self.train_loader.generator.manual_seed(self.seed + epoch)  # worker seeds: a function of the epoch
        for step, batch in enumerate(checked(self.train_loader)):
            if step == self.steps:
                return
            yield batch

    def test_batches(self) -> Iterator[Batch]:
        return checked(self.test_loader)

    def calibration_images(self, n: int) -> Iterable[torch.Tensor]:
        """The first n training images in their evaluation view, the same on every rank."""
        view = FolderDataset(self.train_set.index.take(n), self.train_set.resolution, train=False,
                             crop_fraction=self.test_set.crop_fraction)
        loader = DataLoader(view, batch_size=self.per_rank, sampler=ShardSampler(len(view), 0, 1),
                            num_workers=self.workers, pin_memory=self.rt.cuda)
        return (images for images, _ in checked(loader))

    def state_dict(self) -> dict[str, Any]:
        return {}  # augmentation is a function of (seed, phase, epoch, image): nothing to carry

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


__all__ = ["InMemorySource", "StreamingSource", "augment", "checked", "one_line"]
