"""What the scheduler's passes hand each other and what they produce: engine calls, buffers and
views of them, the `Plan` between passes and the final `Schedule` (hw/scheduler.py runs the passes).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import CodesignError
from ..graph import Layer, opdef
from ..graph.opdef import op_def
from . import descriptor, layout
from .config import HardwareConfig

# one of these per call, after the conv / pool (the shift unit or the spatial unit)
SPATIAL_STAGES = (opdef.SHIFT, opdef.SPATIAL)


def stage(layer: Layer) -> str:
    """Where `layer` runs (its op class, codesign/ops): an engine stage, a view, or the host."""
    return op_def(layer.op).stage


DEFAULT_MAX_DILATION = 7  # CoDeNet's R: the spatial unit's line buffer holds 2R + 1 rows


def hw_max_dilation(hw: HardwareConfig) -> int:
    """The largest dilation the engine's deformable unit holds (hardware config `max_dilation`)."""
    return int(getattr(hw, "max_dilation", DEFAULT_MAX_DILATION))


class ScheduleError(CodesignError):
    """The graph does not fit this engine configuration; the message names the layer."""


@dataclass(frozen=True)
class View:
    """n logical channels of a buffer: logical j ↔ physical (rot + j·stride) mod cbuf."""

    buffer: str
    rot: int
    n: int
    stride: int = 1

    def channels(self, cbuf: int) -> np.ndarray:
        return (self.rot + np.arange(self.n) * self.stride) % cbuf


@dataclass
class Buffer:
    name: str
    h: int
    w: int
    cbuf: int
    store_bits: int
    addr: int = 0  # word offset in fmem
    signed: bool = False  # two's complement values (a signed activation; every view of it shares it)

    def words(self, bus_bits: int) -> int:
        return layout.fmap_words(self.h, self.w, self.cbuf, self.store_bits, bus_bits)


@dataclass
class Call:
    """One engine call: optional prepool, conv (or copy), pool, spatial op (shift, depthwise or
    deformable 3×3), upsample; writes `output`."""

    name: str
    layers: list[str]
    input: str  # IR tensor read
    output: str  # IR tensor written (the last fused layer's output)
    prepool: bool = False
    conv: str | None = None  # name of the conv1x1 layer
    pool: bool = False
    shift: bool = False
    descriptor: dict[str, int] = field(default_factory=dict)
    spatial: str | None = None  # name of the dwconv3x3 / deform3x3 layer
    dilation: str | None = None  # the IR tensor deform3x3 reads its dilations from (second input view)
    upsample: bool = False
    # A part of a wide conv split by output channel (`split_wide`): the call writes channels
    # [a, b) of `output` only (None: all of them). Every part re-reads the whole input.
    channels: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.channels is not None:  # from schedule.json: a list
            self.channels = (int(self.channels[0]), int(self.channels[1]))

    @property
    def is_copy(self) -> bool:
        """A pass-through call inserted by placement; its output is not an IR tensor."""
        return not self.layers

    @property
    def out_slice(self) -> slice:
        """The channels of `output` this call writes (all of them unless it is a part)."""
        return slice(*self.channels) if self.channels else slice(None)


@dataclass
class Schedule:
    hw: HardwareConfig
    buffers: dict[str, Buffer]
    views: dict[str, View]  # IR tensor → where it lives in fmem
    calls: list[Call]
    host_layers: list[str]  # run on the ARM after the engine, in order
    engine_output: str  # the (first) tensor the host reads back
    wmem: np.ndarray  # bytes
    fmem_words: int
    graph_input: str
    host_pre_layers: list[str] = field(default_factory=list)  # run on the ARM before the engine, in order
    engine_inputs: list[str] = field(default_factory=list)  # tensors the host writes into fmem
    engine_outputs: list[str] = field(default_factory=list)  # every tensor the host reads back

    def __post_init__(self) -> None:
        # A schedule from before CoDeNet (e.g. an old schedule.json) has one input and one output.
        if not self.engine_inputs:
            self.engine_inputs = [self.graph_input]
        if not self.engine_outputs:
            self.engine_outputs = [self.engine_output]

    def output_view(self, call: Call) -> View:
        """Where `call` writes: the view of its output tensor, or of its part's channels."""
        return call_output_view(call, self.views, self.buffers)

    @property
    def descriptor_table(self) -> np.ndarray:
        return descriptor.encode([c.descriptor for c in self.calls])

    def to_json(self) -> dict:
        return {
            "hw": self.hw.to_dict(),
            "graph_input": self.graph_input,
            "engine_output": self.engine_output,
            "fmem_words": self.fmem_words,
            "wmem_bytes": int(self.wmem.size),
            "descriptor_fields": list(descriptor.FIELDS),
            "descriptor_flags": descriptor.engine_flags(self.hw.signed_acts),
            "buffers": {k: buffer_json(v) for k, v in self.buffers.items()},
            "views": {k: asdict(v) for k, v in self.views.items()},
            "calls": [asdict(c) for c in self.calls],
            "host_layers": self.host_layers,
            "host_pre_layers": self.host_pre_layers,
            "engine_inputs": self.engine_inputs,
            "engine_outputs": self.engine_outputs,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)


def buffer_json(buf: Buffer) -> dict:
    """A buffer's fields; `signed` only when set, so an unsigned design's schedule.json is unchanged."""
    d = asdict(buf)
    if not buf.signed:
        del d["signed"]
    return d


def call_output_view(call: Call, views: dict[str, View], buffers: dict[str, Buffer]) -> View:
    """The view `call` writes: its output tensor's, narrowed to channels [a, b) for a part (logical
    channel a of the tensor's view is the part's channel 0)."""
    v = views[call.output]
    if call.channels is None:
        return v
    a, b = call.channels
    return View(v.buffer, (v.rot + a * v.stride) % buffers[v.buffer].cbuf, b - a, v.stride)


# The deepest weight buffer sizing picks: a BRAM36 at its widest is 512 x 72 bits, so a deeper buffer


@dataclass
class Plan:
    """The schedule between passes: host layers, engine calls and, once placed, buffers and views.
    `schedule(..., keep=DIR)` writes it after every pass (DIR/01-fuse.json, …), as FINN writes a
    model after each transformation."""

    pre: list[str]
    calls: list[Call]
    host: list[str]
    buffers: dict[str, Buffer] = field(default_factory=dict)
    views: dict[str, View] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"host_pre_layers": self.pre, "host_layers": self.host, "calls": [asdict(c) for c in self.calls],
                "buffers": {k: buffer_json(v) for k, v in self.buffers.items()},
                "views": {k: asdict(v) for k, v in self.views.items()}}

