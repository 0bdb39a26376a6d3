"""Cycle-counted C-simulation: one frame through the counting engine, per call and per frame.

The C-simulation library counts, for every engine call, each dataflow process's pipelined-loop
iterations × II + depth and each m_axi burst's latency (hls_templates/engine/cycles.h). This
module runs one frame, attaches the counts to the schedule's calls and turns them into the
figures the tools print: cycles per call and per frame, FPS at the configured clock, and the
MAC array's utilisation. Every figure assumes the synthesis tool meets the pragma IIs (DESIGN §8);
the next check is a Vitis synthesis report.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..figures import CYCLE_COUNTED
from ..graph import Graph
from ..graph.stats import layer_macs
from ..hw.memory import initial_fmem
from ..hw.plan import Schedule
from .csim import CsimEngine

LABEL = CYCLE_COUNTED


@dataclass
class CallCount:
    """One engine call's count: cycles per stage (process) and the call's total."""

    name: str
    flags: str
    stages: dict[str, int]
    total: int
    macs: int  # MACs of the call's 1×1 conv (what the PI×PO array computes)
    coupling: int = 0  # what stalls between the stages add to the slowest one (cycles.h, "Coupling")


@dataclass
class CycleReport:
    model: str
    pi: int
    po: int
    clock_mhz: float
    calls: list[CallCount]
    stages: tuple[str, ...]
    label: str = LABEL
    meta: dict = field(default_factory=dict)

    @property
    def frame_cycles(self) -> int:
        return sum(c.total for c in self.calls)

    @property
    def fps(self) -> float:
        """Engine-only frames per second at the configured clock (host work and control not included)."""
        return self.clock_mhz * 1e6 / self.frame_cycles if self.frame_cycles else float("inf")

    @property
    def mac_utilisation(self) -> float:
        """Useful 1×1 MACs over what the PI×PO array could do in the frame's cycles."""
        return sum(c.macs for c in self.calls) / (self.pi * self.po * self.frame_cycles) if self.frame_cycles else 0.0

    def stage_totals(self) -> dict[str, int]:
        return {s: sum(c.stages[s] for c in self.calls) for s in self.stages}

    def table(self) -> str:
        shown = [s for s in self.stages if any(c.stages[s] for c in self.calls)]
        head = f"{'call':<26}{'flags':<24}" + "".join(f"{s:>9}" for s in shown) + f"{'coupling':>9}{'total':>10}"
        rows = [head]
        for c in self.calls:
            rows.append(f"{c.name[:25]:<26}{c.flags[:23]:<24}" + "".join(f"{c.stages[s]:>9}" for s in shown)
                        + f"{c.coupling:>9}{c.total:>10}")
        return "\n".join(rows)

    def summary(self) -> str:
        return (f"{self.model}: {len(self.calls)} engine calls, {self.frame_cycles:,} cycles per frame = "
                f"{self.fps:.1f} FPS engine-only at {self.clock_mhz:g} MHz, MAC utilisation "
                f"{self.mac_utilisation:.1%} ({self.pi}x{self.po}) [{self.label}]")

    def to_json(self) -> dict:
        return {"label": self.label, "model": self.model, "pi": self.pi, "po": self.po, "clock_mhz": self.clock_mhz,
                "frame_cycles": self.frame_cycles, "fps_engine": self.fps, "mac_utilisation": self.mac_utilisation,
                "stage_totals": self.stage_totals(), "calls": [asdict(c) for c in self.calls], **self.meta}

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")
        return path


def _flags(descriptor_flags: int) -> str:
    from ..hw import descriptor

    return "+".join(n for n, b in sorted(descriptor.FLAGS.items(), key=lambda x: x[1]) if descriptor_flags >> b & 1)


def count_frame(sched: Schedule, graph: Graph, engine: CsimEngine, image: np.ndarray) -> CycleReport:
    """Run one frame (the whole descriptor table in one start) and return its cycle count."""
    engine(sched.descriptor_table, sched.wmem, initial_fmem(sched, image, graph))
    counts = engine.last_cycles()
    if len(counts) != len(sched.calls):
        raise RuntimeError(f"the engine counted {len(counts)} calls, the schedule has {len(sched.calls)}")
    calls = []
    for call, row in zip(sched.calls, counts):
        macs = layer_macs(graph, graph.layer(call.conv)) if call.conv else 0
        if call.channels:  # a part of a split conv: its share of the output channels
            macs = macs * (call.channels[1] - call.channels[0]) // graph.tensors[graph.layer(call.conv).output].shape[2]
        calls.append(CallCount(call.name, _flags(call.descriptor["flags"]),
                               {s: row[s] for s in engine.stages}, row["total"], macs,
                               row["coupling"]))
    return CycleReport(graph.name, sched.hw.pi, sched.hw.po, sched.hw.clock_mhz, calls, engine.stages)


def count_project(project: str | Path) -> CycleReport:
    """The cycle count of one frame of a compiled project (its testbench image)."""
    from .project import test_image
    from .simulate import load_project_schedule

    project = Path(project)
    sched, graph = load_project_schedule(project)
    return count_frame(sched, graph, CsimEngine(project, sched.hw.bus_bits), test_image(graph))
