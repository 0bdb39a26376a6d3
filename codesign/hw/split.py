"""Scheduler pass 3: a conv whose weights exceed the engine's weight buffer runs as several calls
by output channel (the ranges come from hw/limits.py split_channels)."""
from __future__ import annotations

from dataclasses import replace

from ..graph import Graph
from .config import HardwareConfig
from .limits import call_geometry, call_mac_inputs, split_channels, split_refusal
from .plan import Call, ScheduleError

def part_name(name: str, a: int, b: int) -> str:
    """The name of the part of call `name` that writes output channels [a, b)."""
    return f"{name}[{a}:{b}]"


def split_wide(graph: Graph, calls: list[Call], hw: HardwareConfig) -> list[Call]:
    """Each conv call whose weights exceed the weight buffer becomes k calls by output channel
    (`split_channels`): every part reads the whole input, loads weight and requant rows [a, b) and
    writes channels [a, b) of the same output tensor. Fused pool, shift, spatial op and upsample are
    per channel; PREPOOL is on the input and runs again in every part. Runs after `place`, so a
    part writes a channel slice of its tensor's view (`call_output_view`)."""
    out: list[Call] = []
    for c in calls:
        parts = [(0, 0)]
        if c.conv:
            _, _, _, cout, _ = call_geometry(graph, c)
            cin = call_mac_inputs(graph, c, hw)  # a k×k conv: its taps' inputs
            wb = graph.layer(c.conv).attrs["weight_bits"]
            parts = split_channels(cin, cout, wb, hw, c.shift)
            if not parts:
                raise ScheduleError(f"layer '{c.name}' does not fit the engine: "
                                    f"{split_refusal(cin, cout, wb, hw, c.shift)}")
        if len(parts) == 1:
            out.append(c)
            continue
        out.extend(replace(c, name=part_name(c.name, a, b), layers=list(c.layers), channels=(a, b), descriptor={})
                   for a, b in parts)
    return out

