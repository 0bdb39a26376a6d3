"""Bit-exact comparison of an engine implementation against the golden model, per call and end to end.

An executor is any function (descriptor table, wmem, fmem) → fmem: the functional simulator, the
C-simulation library, or the driver's device. On a mismatch the report names the first call,
layer, channel and pixel that differ.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..graph import Graph
from . import descriptor
from .memory import initial_fmem, read_call_output, read_tensor
from .plan import Schedule

Executor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Mismatch:
    call: str
    layers: list[str]
    tensor: str
    channel: int
    pixel: tuple[int, int]
    expected: int
    got: int
    differing: int  # number of differing values in this tensor

    def __str__(self) -> str:
        return (f"MISMATCH in call '{self.call}' (layers {', '.join(self.layers)}): tensor '{self.tensor}' "
                f"channel {self.channel} pixel (h={self.pixel[0]}, w={self.pixel[1]}): expected {self.expected}, "
                f"got {self.got} ({self.differing} values differ)")


@dataclass
class VerifyReport:
    calls_checked: int = 0
    values_checked: int = 0
    mismatch: Mismatch | None = None
    logits_equal: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatch is None and self.logits_equal is not False


def first_mismatch(expected: np.ndarray, got: np.ndarray) -> tuple[int, int, int, int, int, int] | None:
    """(h, w, c, expected, got, count) of the first differing value in HWC order, or None."""
    diff = expected.astype(np.int64) != got.astype(np.int64)
    if not diff.any():
        return None
    h, w, c = (int(i) for i in np.argwhere(diff)[0])
    return h, w, c, int(expected[h, w, c]), int(got[h, w, c]), int(diff.sum())


def verify(schedule: Schedule, graph: Graph, image: np.ndarray, executor: Executor, per_call: bool = True,
           progress: Callable[[Iterable], Iterable] = lambda it: it) -> VerifyReport:
    """Run one frame through `executor`, call by call (per_call) or as one table, against golden.

    The host layers run as the deployed system runs them: the ones before the engine (CoDeNet's
    stem) fill fmem, the ones after it (pool + FC, detector heads) finish the frame from the
    engine's outputs; `logits_equal` says whether every graph output then equals the golden one.
    """
    from ..golden import GoldenModel

    model = GoldenModel(graph)
    _, trace = model.run(image[None], trace=True)
    report = VerifyReport()
    fmem = initial_fmem(schedule, image, model)
    table = schedule.descriptor_table
    width = len(descriptor.FIELDS)

    def check_tensor(call, tensor: str, source: str, part: bool = False) -> bool:
        # a part of a split call wrote channels [a, b) of its tensor: compare those, name the tensor's channel
        got = read_call_output(schedule, fmem, call) if part else read_tensor(schedule, fmem, tensor)
        sl = call.out_slice if part else slice(None)
        report.calls_checked += 1
        report.values_checked += got.size
        found = first_mismatch(trace[source][0][..., sl], got)
        if found:
            h, w, c, e, g, n = found
            if not part and call is not None and call.channels:  # whole tensor: blame the part that wrote c
                call = next((p for p in schedule.calls if p.output == tensor and p.channels
                             and p.channels[0] <= c < p.channels[1]), call)
            report.mismatch = Mismatch(call.name if call else tensor, call.layers if call else [], tensor,
                                       c + (sl.start or 0), (h, w), e, g, n)
            return False
        return True

    def check(call_index: int) -> bool:
        call = schedule.calls[call_index]
        tensor = call.output
        source = tensor if tensor in trace else call.input  # a copy call holds its input's values
        return check_tensor(call, tensor, source, part=True)

    if per_call:
        for i in progress(range(len(schedule.calls))):
            fmem = executor(table[i * width:(i + 1) * width], schedule.wmem, fmem)
            if not check(i):
                return report
    else:
        fmem = executor(table, schedule.wmem, fmem)
        # Buffers are reused in place, so only each tensor's final occupant can be read back: check
        # the engine outputs (what the host consumes).
        for name in schedule.engine_outputs:
            call = next((c for c in schedule.calls if c.output == name), None)
            if not check_tensor(call, name, name):
                return report
    outputs = run_host_outputs(schedule, model, {n: read_tensor(schedule, fmem, n) for n in schedule.engine_outputs})
    report.logits_equal = all(np.array_equal(outputs[name], trace[name][0]) for name in graph.outputs)
    return report


def run_host_outputs(schedule: Schedule, graph, engine_outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every graph output (H, W, C) from the engine's outputs {tensor: (H, W, C)}: the host layers
    after the engine, exactly as the golden model runs them. `graph`: the IR graph or a GoldenModel."""
    from ..golden import GoldenModel

    model = graph if isinstance(graph, GoldenModel) else GoldenModel(graph)
    values = model.evaluate({k: np.asarray(v)[None] for k, v in engine_outputs.items()})
    return {k: v[0] for k, v in values.items()}


def run_host(schedule: Schedule, graph: Graph, engine_output: np.ndarray) -> np.ndarray:
    """The host layers (pool, FC, …) on the engine's output, exactly as the golden model runs them."""
    from ..golden import GoldenModel

    return GoldenModel(graph).run_from(schedule.engine_output, engine_output[None])[0]
