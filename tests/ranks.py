"""Run a function in several processes joined in one gloo group on this machine (DDP on the CPU), as
torchrun would start them: the trainers find the group already there and use it."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Callable


def _rank(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def run_ranks(fn: Callable[..., Any], world: int, *args: Any) -> None:
    """`fn(*args)` in `world` spawned processes (fn must be importable: a module-level function)."""
    import torch.multiprocessing as mp

    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(world, port, fn, args), nprocs=world, join=True)


def assert_resumed_like_whole(out_dir: Path, world: int, train_images: int) -> dict[str, Any]:
    """`whole.pt` (an uninterrupted run) and `parts.pt` (the same run stopped and resumed) in `out_dir`:
    the same weights bit for bit and the same history but for timings, no state or temporary file
    left behind. Returns whole.pt's metadata."""
    import torch

    from codesign.train import load_checkpoint

    whole, meta = load_checkpoint(out_dir / "whole.pt")
    parts, meta_parts = load_checkpoint(out_dir / "parts.pt")
    assert meta["metrics"]["world_size"] == world and meta["metrics"]["train_images"] == train_images
    a, b = whole.state_dict(), parts.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("seconds", "images_per_s")} for e in h]  # noqa: E731
    assert strip(meta["metrics"]["history"]) == strip(meta_parts["metrics"]["history"])
    assert sorted(p.name for p in out_dir.iterdir() if p.suffix in (".pt", ".tmp")) == ["parts.pt", "whole.pt"]
    return meta
