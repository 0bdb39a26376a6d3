"""Memory images of one frame: the input image placed in fmem, and tensors read back from it."""
from __future__ import annotations

import numpy as np

from . import layout
from .scheduler import Schedule


def initial_fmem(schedule: Schedule, image: np.ndarray) -> np.ndarray:
    """fmem bytes (zeros) with `image` (H, W, C uint8) packed into the input buffer."""
    hw = schedule.hw
    fmem = np.zeros(schedule.fmem_words * hw.bus_bits // 8, dtype=np.uint8)
    write_tensor(schedule, fmem, schedule.graph_input, image)
    return fmem


def _buffer_region(schedule: Schedule, name: str) -> tuple[slice, object]:
    view = schedule.views[name]
    buf = schedule.buffers[view.buffer]
    nb = schedule.hw.bus_bits // 8
    return slice(buf.addr * nb, (buf.addr + buf.words(schedule.hw.bus_bits)) * nb), buf


def read_tensor(schedule: Schedule, fmem: np.ndarray, name: str) -> np.ndarray:
    """The (H, W, C) integers of IR tensor `name` as the engine left them in `fmem`."""
    region, buf = _buffer_region(schedule, name)
    view = schedule.views[name]
    full = layout.unpack_fmap(fmem[region], buf.h, buf.w, buf.cbuf, buf.store_bits, schedule.hw.bus_bits)
    return full[..., layout.view_channels(buf.cbuf, view.rot, view.n)]


def write_tensor(schedule: Schedule, fmem: np.ndarray, name: str, values: np.ndarray) -> None:
    region, buf = _buffer_region(schedule, name)
    view = schedule.views[name]
    full = layout.unpack_fmap(fmem[region], buf.h, buf.w, buf.cbuf, buf.store_bits, schedule.hw.bus_bits)
    full[..., layout.view_channels(buf.cbuf, view.rot, view.n)] = values
    fmem[region] = layout.pack_fmap(full, buf.store_bits, schedule.hw.bus_bits)
