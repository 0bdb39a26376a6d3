"""Map the integer IR onto engine calls (layer descriptors) and host ops: the scheduler's passes,
run in order. Each takes and returns a `Plan` (hw/plan.py); `schedule(..., keep=DIR)` writes each
as JSON (`codesign compile --keep-intermediate`), as FINN writes a model after each transformation.

1. fuse (hw/fuse.py): the host ops before the engine (CoDeNet's stem conv) and after it (pool +
   FC, detector heads); the engine's layers grouped into calls along its pipeline. The plan is
   then checked against the engine's limits (hw/limits.py), which name the first call over one.
2. place (hw/place.py): a view (buffer, rotation, channel stride) for every tensor in DDR; concats
   and channel rotations become write addresses, copies are inserted where they cannot.
3. split (hw/split.py): a conv whose weights exceed the weight buffer becomes several calls by
   output channel, each writing a channel slice of the same view.
4. emit (hw/emit.py): descriptors, packed weights and requant constants, buffer addresses.

The result, `Schedule`, is what the HLS project, the C-simulation and the driver consume.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..graph import Graph
from .config import HardwareConfig
from .emit import emit
from .fuse import fuse_all
from .limits import check_engine_tensors, check_fits, requirements
from .place import place
from .plan import Plan, Schedule, ScheduleError
from .split import split_wide


def fuse_pass(graph: Graph, hw: HardwareConfig) -> Plan:
    """Pass 1: host split and fusion into calls, checked against the engine's limits."""
    pre, calls, host = fuse_all(graph)
    if not calls:
        raise ScheduleError("the graph has no layer that runs on the engine")
    check_fits(requirements(graph, calls, hw), hw, graph, calls)
    return Plan(pre, calls, host)


def place_pass(graph: Graph, hw: HardwareConfig, plan: Plan) -> Plan:
    """Pass 2: buffers and views (copies inserted where a view cannot be written in place)."""
    buffers, views, calls = place(graph, plan.calls, hw)
    return Plan(plan.pre, calls, plan.host, buffers, views)


def split_pass(graph: Graph, hw: HardwareConfig, plan: Plan) -> Plan:
    """Pass 3: convs too wide for the weight buffer become calls by output channel."""
    return Plan(plan.pre, split_wide(graph, plan.calls, hw), plan.host, plan.buffers, plan.views)


PASSES = (("fuse", fuse_pass), ("place", place_pass), ("split", split_pass))


def schedule(graph: Graph, hw: HardwareConfig, keep: str | Path | None = None) -> Schedule:
    """The passes in order, then `emit`; with `keep`, each pass's Plan and the final schedule are
    written there as JSON (01-fuse.json … 04-emit.json)."""
    plan: Plan | None = None
    for i, (name, run) in enumerate(PASSES, 1):
        plan = run(graph, hw) if plan is None else run(graph, hw, plan)
        if keep is not None:
            _keep(Path(keep) / f"{i:02d}-{name}.json", plan.to_json())
    assert plan is not None
    pre, calls, host, buffers, views = plan.pre, plan.calls, plan.host, plan.buffers, plan.views
    if len(calls) > hw.max_desc:
        raise ScheduleError(f"{len(calls)} engine calls > max_desc {hw.max_desc}, the descriptors the engine "
                            "walks per frame; raise max_desc in the hardware config")
    wmem, fmem_words = emit(graph, hw, calls, buffers, views)
    # The engine's inputs: the image or what the host computed before the start; its outputs:
    # what the host layers after it read (or the graph outputs themselves).
    pre_out = {graph.layer(n).output for n in pre}
    engine_inputs = [name for name in [graph.input] + [graph.layer(n).output for n in pre] if name in views]
    post_out = {graph.layer(n).output for n in host}
    engine_outputs: list[str] = []
    for name in [i for n in host for i in graph.layer(n).inputs] + list(graph.outputs):
        if name not in post_out and name not in engine_outputs and name not in pre_out and name != graph.input:
            engine_outputs.append(name)
    for name in engine_outputs:
        if name not in views:
            raise ScheduleError(f"tensor '{name}' read by the host is not produced by the engine")
    check_engine_tensors(graph, hw, [n for n in engine_inputs], "written into")
    sched = Schedule(hw, buffers, views, calls, host, engine_outputs[0], wmem, fmem_words, graph.input,
                     host_pre_layers=pre, engine_inputs=engine_inputs, engine_outputs=engine_outputs)
    if keep is not None:
        _keep(Path(keep) / f"{len(PASSES) + 1:02d}-emit.json", sched.to_json())
    return sched


def _keep(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
