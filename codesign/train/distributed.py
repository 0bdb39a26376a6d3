"""Where training runs: the device, the process group under torchrun, per-rank seeds, sharded loaders
and the reductions that gather a figure over all ranks.

Under torchrun (WORLD_SIZE > 1) each process joins the group that torchrun's rendezvous set up
(env://): NCCL when the ranks train on GPUs, gloo on CPU. `--device cuda` then means the GPU of
the process's LOCAL_RANK, so one node's G processes take its G GPUs.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..errors import CodesignError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")
MAX_WORKERS = 8  # DataLoader workers per rank when not given: decode-bound beyond that on most hosts


class DeviceError(CodesignError):
    """A device that this machine does not have."""


@dataclass
class Runtime:
    """This process's place: its rank among `world`, its device, whether it created the group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    created: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def resolve_device(spec: str | None, local_rank: int = 0) -> torch.device:
    """'auto' (None): this rank's GPU when CUDA is available, else the CPU; 'cpu'; 'cuda' (the GPU of
    `local_rank`); 'cuda:N'. A GPU that is not there is a DeviceError, not a CUDA traceback."""
    spec = (spec or "auto").strip().lower()
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    if spec != "cuda" and not (spec.startswith("cuda:") and spec[5:].isdigit()):
        raise DeviceError(f"unknown device {spec!r} (use one of: {', '.join(DEVICES)})")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec}: no CUDA GPU is available here (torch {torch.__version__}, "
                          f"CUDA build {torch.version.cuda or 'none'}); use --device cpu")
    index = local_rank if spec == "cuda" else int(spec[5:])
    if index >= torch.cuda.device_count():
        raise DeviceError(f"--device {spec}: GPU {index} does not exist ({torch.cuda.device_count()} visible)")
    return torch.device("cuda", index)


def init_runtime(device: str | None = None) -> Runtime:
    """Join torchrun's process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPU); pick the device.
    A group that already exists (a caller's) is used as it is."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_available() and dist.is_initialized():
        return Runtime(dist.get_rank(), dist.get_world_size(), local_rank, dev, False)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo",
                                device_id=dev if dev.type == "cuda" else None)
        return Runtime(dist.get_rank(), dist.get_world_size(), local_rank, dev, True)
    return Runtime(0, 1, local_rank, dev, False)


def seed_rank(seed: int, rank: int) -> None:
    """Seed torch (CPU and CUDA), NumPy's and Python's global generators for this rank: ranks draw
    different streams (dropout-like noise must not repeat across replicas), runs repeat."""
    s = seed + 1000 * rank
    torch.manual_seed(s)
    np.random.seed(s % 2**32)
    random.seed(s)


def default_workers(rt: Runtime) -> int:
    """DataLoader workers per rank: this host's CPUs shared by its ranks, at most MAX_WORKERS."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(MAX_WORKERS, cpus // max(1, local_world) - 1))


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ... in order: every image evaluated exactly once over all ranks
    (DistributedSampler would pad the last shard with repeats, which counts them twice)."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = range(rank, n, world)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_loader(dataset: Dataset, batch_size: int, rt: Runtime, *, train: bool, seed: int, workers: int,
                collate_fn: Any = None) -> DataLoader:
    """A DataLoader over this rank's share of `dataset`: for training, a seeded shuffle of the whole
    set per epoch split across ranks (DistributedSampler; call `.sampler.set_epoch`), full batches
    only; for evaluation, a contiguous shard. Pinned memory when feeding a GPU. Workers are started
    per epoch (not persistent), so a `set_epoch` on the dataset reaches them."""
    if train:
        sampler: Sampler[int] = DistributedSampler(dataset, rt.world, rt.rank, shuffle=True, seed=seed,
                                                   drop_last=True)
    else:
        sampler = ShardSampler(len(dataset), rt.rank, rt.world)
    kwargs: dict[str, Any] = {"collate_fn": collate_fn} if collate_fn is not None else {}
    if workers > 0:
        kwargs["prefetch_factor"] = 4
        if "fork" in multiprocessing.get_all_start_methods():
            # workers start every epoch: forked they start at once; spawned (the default inside a process that
            # torch.multiprocessing.spawn started) each re-imports torch and codesign, seconds per epoch
            kwargs["multiprocessing_context"] = "fork"
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=train, num_workers=workers,
                      pin_memory=rt.cuda, generator=torch.Generator().manual_seed(seed), **kwargs)


def all_sum(values: list[float], rt: Runtime) -> list[float]:
    """`values` summed over all ranks (float64 on the CPU: exact for counts)."""
    t = torch.tensor(values, dtype=torch.float64)
    if rt.world > 1:
        if dist.get_backend() == "nccl":
            t = t.to(rt.device)
        dist.all_reduce(t)
    return t.cpu().tolist()


def broadcast_buffers(model: nn.Module, rt: Runtime) -> None:
    """Rank 0's buffers (BN running statistics) everywhere: each rank's last forward updated its own."""
    if rt.world > 1:
        for buf in model.buffers():
            dist.broadcast(buf, src=0)


def data_parallel(model: nn.Module, rt: Runtime) -> nn.Module:
    """`model` under DDP when there are several ranks (itself otherwise). broadcast_buffers stays on: rank 0's
    buffers (BN running statistics, Brevitas' statistics) reach every replica before each forward, while
    BN normalises with each rank's own batch statistics."""
    if rt.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[rt.device.index] if rt.cuda else None)


def sync_replicas(model: nn.Module) -> None:
    """After DDP training: take rank 0's buffers (each rank's last forward updated its own BN
    running statistics) and check that the parameters agree. DDP keeps parameters equal only if
    every rank applies the same update; e.g. a Brevitas activation scale initialised from
    per-rank statistics (without broadcast_buffers) would diverge silently."""
    for buf in model.buffers():
        dist.broadcast(buf, src=0)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)  # every rank fails together, rank 0 saves nothing
    if diff > 0:
        raise RuntimeError(f"DDP replicas diverged: parameters differ by up to {diff.item():g} between ranks")


def gather_objects(value: Any, rt: Runtime) -> list[Any]:
    """`value` of every rank, in rank order (all ranks get the list)."""
    if rt.world == 1:
        return [value]
    out: list[Any] = [None] * rt.world
    dist.all_gather_object(out, value)
    return out


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both trainers take for where and how fast they run (unset: None, the config's value)."""
    parser.add_argument("--device", default=None, help="cpu, cuda (under torchrun: the GPU of LOCAL_RANK) or "
                                                        "cuda:N; default: a GPU if there is one")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="fp16 mixed precision in the float phase; default: on a GPU (QAT is always fp32)")
    parser.add_argument("--workers", type=int, default=None,
                        help="stream: DataLoader worker processes per rank (default: the host's CPUs shared by "
                             "its ranks)")
    parser.add_argument("--steps-per-epoch", dest="steps_per_epoch", type=int, default=None,
                        help="at most this many batches per epoch (quick runs)")


__all__ = ["DEVICES", "DeviceError", "Runtime", "ShardSampler", "add_runtime_arguments", "all_sum", "broadcast_buffers",
           "data_parallel", "default_workers",
           "gather_objects", "init_runtime", "make_loader", "resolve_device", "seed_rank", "sync_replicas"]
