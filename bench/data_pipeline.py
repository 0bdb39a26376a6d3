"""Training input pipeline speed: the streaming folder path (JPEG decode + random resized crop + flip
in DataLoader workers) with 1 and 2 workers, beside the in-memory path (uint8 images already at
224², pixel shift + flip on the tensors), measured side by side in one run.

The folder is written first: JPEGs of ImageNet's typical sizes (500×375, 375×500, 500×333, 640×480;
quality 90; smooth content plus noise, ~50-100 KB each like ImageNet's). Each figure is decoded +
augmented uint8 224² images per second over whole epochs, worker start-up included (workers start
every epoch), the best of `--repeats` epochs. No model runs: this is the rate the data can be fed.

    python bench/data_pipeline.py [--images 512] [--batch 64] [--workers 1 2] [--repeats 2] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import BatchSampler, RandomSampler

from codesign.data.folder import FolderDataset, index_image_folder
from codesign.train.distributed import Runtime, make_loader
from codesign.train.sources import augment

SIZES = [(375, 500), (500, 375), (333, 500), (480, 640)]  # (h, w)
RESOLUTION = 224


def write_folder(root: Path, n: int, classes: int = 8, seed: int = 0) -> int:
    """n JPEGs in `classes` class folders; returns the bytes written."""
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(n):
        h, w = SIZES[i % len(SIZES)]
        coarse = Image.fromarray(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), np.int16)
        pixels = np.clip(smooth + rng.integers(-12, 13, (h, w, 3)), 0, 255).astype(np.uint8)
        d = root / f"class{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{i:06d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        total += path.stat().st_size
    return total


def streaming_rate(root: Path, batch: int, workers: int, repeats: int) -> float:
    data = FolderDataset(index_image_folder(root, "train"), RESOLUTION, train=True, scale=(0.08, 1.0))
    loader = make_loader(data, batch, Runtime(), train=True, seed=0, workers=workers)
    best = 0.0
    for epoch in range(repeats):
        data.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)
        start, n = time.perf_counter(), 0
        for images, _ in loader:
            n += len(images)
        best = max(best, n / (time.perf_counter() - start))
    return best


def in_memory_rate(n: int, batch: int, repeats: int) -> float:
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (n, RESOLUTION, RESOLUTION, 3), dtype=np.uint8))
    gen = torch.Generator().manual_seed(0)
    best = 0.0
    for _ in range(repeats):
        start, count = time.perf_counter(), 0
        for idx in BatchSampler(RandomSampler(range(n), generator=gen), batch, drop_last=True):
            count += len(augment(images[idx], 2, True, gen))
        best = max(best, count / (time.perf_counter() - start))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    torch.set_num_threads(1)  # the main process only collects batches; the workers decode
    with tempfile.TemporaryDirectory(prefix="codesign-bench-data-") as tmp:
        size = write_folder(Path(tmp), args.images)
        print(f"{args.images} JPEGs ({size / args.images / 1024:.0f} KB each on average) → uint8 {RESOLUTION}², "
              f"batch {args.batch}, {os.cpu_count()} CPUs on this host")
        memory = in_memory_rate(args.images, args.batch, args.repeats)
        rows = {"in_memory_images_per_s": round(memory, 1)}
        print(f"in memory (shift + flip on uint8 tensors): {memory:9.1f} images/s")
        for w in args.workers:
            rate = streaming_rate(Path(tmp), args.batch, w, args.repeats)
            rows[f"stream_{w}_workers_images_per_s"] = round(rate, 1)
            rows[f"stream_{w}_workers_ratio_to_memory"] = round(rate / memory, 4)
            print(f"streamed, {w} worker(s) (decode + random resized crop + flip): {rate:9.1f} images/s "
                  f"({rate / memory:.3f}× the in-memory path)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
