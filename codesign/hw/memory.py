"""Memory images of one frame: the engine's inputs placed in fmem, and tensors read back from it."""
from __future__ import annotations

import numpy as np

from . import layout
from .plan import Schedule


def host_pre(schedule: Schedule, graph, image: np.ndarray) -> dict[str, np.ndarray]:
    """What the host writes into fmem before the start: {tensor: (H, W, C) integers}. The image
    itself, or (CoDeNet) the outputs of the host layers that run before the engine (the stem),
    computed by the golden model's own code."""
    if not schedule.host_pre_layers:
        return {name: image for name in schedule.engine_inputs}
    if graph is None:
        raise ValueError("this schedule runs host layers before the engine "
                         f"({', '.join(schedule.host_pre_layers)}): pass the graph to compute them")
    from ..golden import GoldenModel

    model = graph if isinstance(graph, GoldenModel) else GoldenModel(graph)
    values = model.evaluate({model.graph.input: np.asarray(image)[None]}, list(schedule.engine_inputs))
    return {name: v[0] for name, v in values.items()}


def initial_fmem(schedule: Schedule, image: np.ndarray, graph=None) -> np.ndarray:
    """fmem bytes (zeros) with the engine's inputs packed into their buffers: the image (H, W, C
    uint8), or, when host layers run first, their outputs (then `graph` — the IR graph or a
    GoldenModel — is needed to compute them)."""
    hw = schedule.hw
    fmem = np.zeros(schedule.fmem_words * hw.bus_bits // 8, dtype=np.uint8)
    for name, values in host_pre(schedule, graph, image).items():
        write_tensor(schedule, fmem, name, values)
    return fmem


def _buffer_region(schedule: Schedule, view) -> tuple[slice, object]:
    buf = schedule.buffers[view.buffer]
    nb = schedule.hw.bus_bits // 8
    return slice(buf.addr * nb, (buf.addr + buf.words(schedule.hw.bus_bits)) * nb), buf


def _channels(view, cbuf: int) -> np.ndarray:
    return (view.rot + np.arange(view.n) * getattr(view, "stride", 1)) % cbuf


def read_view(schedule: Schedule, fmem: np.ndarray, view) -> np.ndarray:
    """The (H, W, n) integers of a view's channels as they are in `fmem`."""
    region, buf = _buffer_region(schedule, view)
    full = layout.unpack_fmap(fmem[region], buf.h, buf.w, buf.cbuf, buf.store_bits, schedule.hw.bus_bits)
    values = full[..., _channels(view, buf.cbuf)]
    return layout.sign_extend(values, buf.store_bits) if buf.signed else values


def write_view(schedule: Schedule, fmem: np.ndarray, view, values: np.ndarray) -> None:
    region, buf = _buffer_region(schedule, view)
    full = layout.unpack_fmap(fmem[region], buf.h, buf.w, buf.cbuf, buf.store_bits, schedule.hw.bus_bits)
    full[..., _channels(view, buf.cbuf)] = np.asarray(values, np.int64) & ((1 << buf.store_bits) - 1)
    fmem[region] = layout.pack_fmap(full, buf.store_bits, schedule.hw.bus_bits)


def read_tensor(schedule: Schedule, fmem: np.ndarray, name: str) -> np.ndarray:
    """The (H, W, C) integers of IR tensor `name` as the engine left them in `fmem`."""
    return read_view(schedule, fmem, schedule.views[name])


def write_tensor(schedule: Schedule, fmem: np.ndarray, name: str, values: np.ndarray) -> None:
    write_view(schedule, fmem, schedule.views[name], values)


def read_call_output(schedule: Schedule, fmem: np.ndarray, call) -> np.ndarray:
    """What `call` wrote: its output tensor, or for a part of a split call the part's channels."""
    return read_view(schedule, fmem, schedule.output_view(call))


def write_call_output(schedule: Schedule, fmem: np.ndarray, call, values: np.ndarray) -> None:
    """Write the channels `call` writes, taken from `values`, its whole output tensor (H, W, C)."""
    write_view(schedule, fmem, schedule.output_view(call), values[..., call.out_slice])
