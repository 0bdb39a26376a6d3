"""What one frame asks of the engine and the host: the scheduler's calls as plain geometry.

`workload(graph, act_bits)` runs the scheduler's fusion and placement passes (the same calls,
views and buffers the HLS engine will execute) and keeps only what the cost model needs. It does
not pack weights or check the engine limits, so any `HardwareConfig` can be estimated from one
`Workload` (exploration sweeps many); `fits(graph, hw)` in `explore.py` does the limit check.
A `Workload` is small and picklable, which is what the exploration's worker processes receive.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Graph
from ..graph.stats import layer_macs
from ..hw.config import HardwareConfig
from ..hw.scheduler import HOST_OPS, fuse, place


@dataclass(frozen=True)
class CallWork:
    """One engine call of one frame (names follow the scheduler's `Call`)."""

    name: str
    layers: tuple[str, ...]
    conv: bool
    prepool: bool
    pool: bool
    shift: bool
    in_h: int  # input buffer height (before PREPOOL)
    in_w: int
    in_cbuf: int
    in_rot: int
    cin: int
    in_store_bits: int  # 8 for the image buffer, act_bits otherwise
    in_value_bits: int  # bits of the values read (8 for the image)
    out_cbuf: int
    out_rot: int
    cout: int
    out_bits: int
    weight_bits: int  # the conv layer's weight bits (0 for a copy)
    macs: int
    reads_graph_input: bool

    @property
    def h1(self) -> int:  # conv grid
        return self.in_h // 2 if self.prepool else self.in_h

    @property
    def w1(self) -> int:
        return self.in_w // 2 if self.prepool else self.in_w

    @property
    def h2(self) -> int:  # output grid
        return self.h1 // 2 if self.pool else self.h1

    @property
    def w2(self) -> int:
        return self.w1 // 2 if self.pool else self.w1

    @property
    def flags(self) -> str:
        names = [n for n, on in (("PREPOOL", self.prepool), ("CONV", self.conv), ("POOL", self.pool),
                                 ("SHIFT", self.shift)) if on]
        return "+".join(names) or "COPY"


@dataclass(frozen=True)
class HostWork:
    """A layer that runs on the ARM after the engine (global pool, FC)."""

    name: str
    op: str
    macs: int  # multiply-accumulates (FC) or additions (pooling) per frame
    weights: int


@dataclass(frozen=True)
class Workload:
    name: str
    calls: tuple[CallWork, ...]
    host: tuple[HostWork, ...]
    image_shape: tuple[int, int, int]  # H, W, C of the graph input (8-bit)
    engine_output_bytes: int  # packed bytes the host reads back per frame (at bus_bits=128)
    engine_output_shape: tuple[int, int, int]
    # Concatenations (DiracDeltaNet's block outputs): (name, H, W, C, bits). Where the engine writes
    # them by address these cost nothing; with shuffle_on_cpu the ARM copies each one.
    concats: tuple[tuple[str, int, int, int, int], ...]
    act_bits: int
    macs: int = 0  # per frame, engine + host
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def engine_macs(self) -> int:
        return sum(c.macs for c in self.calls)


def workload(graph: Graph, act_bits: int = 4) -> Workload:
    """Engine calls and host work of one frame of `graph`, placed as the scheduler places them."""
    hw = HardwareConfig(act_bits=act_bits)
    calls, host = fuse(graph)
    buffers, views, calls = place(graph, calls, hw)
    t = graph.tensors
    out: list[CallWork] = []
    for c in calls:
        vin, vout = views[c.input], views[c.output]
        bin_, bout = buffers[vin.buffer], buffers[vout.buffer]
        conv = graph.layer(c.conv) if c.conv else None
        out.append(CallWork(
            name=c.name, layers=tuple(c.layers), conv=conv is not None, prepool=c.prepool, pool=c.pool,
            shift=c.shift, in_h=bin_.h, in_w=bin_.w, in_cbuf=bin_.cbuf, in_rot=vin.rot, cin=vin.n,
            in_store_bits=bin_.store_bits, in_value_bits=t[c.input].bits, out_cbuf=bout.cbuf, out_rot=vout.rot,
            cout=vout.n, out_bits=t[c.output].bits, weight_bits=conv.attrs["weight_bits"] if conv else 0,
            macs=layer_macs(graph, conv) if conv else 0, reads_graph_input=c.input == graph.input))
    host_work = []
    for name in host:
        layer = graph.layer(name)
        if layer.op not in HOST_OPS:  # pragma: no cover - fuse() only returns host ops
            continue
        if layer.op == "linear":
            host_work.append(HostWork(name, layer.op, layer_macs(graph, layer), int(layer.params["weight"].size)))
        else:
            h, w, c = t[layer.inputs[0]].shape
            host_work.append(HostWork(name, layer.op, h * w * c, 0))
    engine_output = graph.layer(host[0]).inputs[0] if host else graph.output
    ob = buffers[views[engine_output].buffer]
    concats = tuple((layer.name, *t[layer.output].shape, t[layer.output].bits)
                    for layer in graph.layers if layer.op == "concat")
    total = sum(c.macs for c in out) + sum(h.macs for h in host_work if h.op == "linear")
    return Workload(name=graph.name, calls=tuple(out), host=tuple(host_work), image_shape=t[graph.input].shape,
                    engine_output_bytes=ob.words(128) * 16, engine_output_shape=(ob.h, ob.w, ob.cbuf),
                    concats=concats, act_bits=act_bits, macs=total)
