"""What one frame asks of the engine and the host: the scheduler's calls as plain geometry.

`workload(graph, act_bits)` runs the scheduler's fusion and placement passes (the same calls,
views and buffers the HLS engine will execute) and keeps only what the cost model needs. It does
not pack weights or check the engine limits, so any `HardwareConfig` can be estimated from one
`Workload` (exploration sweeps many); `fits(graph, hw)` in `explore.py` does the limit check.
A `Workload` is small and picklable, which is what the exploration's worker processes receive.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..graph import Graph
from ..graph.stats import layer_macs
from ..hw.config import HardwareConfig
from ..graph.opdef import CONCATENATION, op_def
from ..hw.fuse import fuse_all
from ..hw.place import place


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
    # CoDeNet additions (docs/engine.md): the spatial unit, strided views, upsample on write.
    spatial: str = ""  # "" | "dw" (depthwise 3×3) | "deform" (square deformable 3×3)
    stride2: bool = False  # DW with stride 2
    upsample: bool = False  # every output pixel written to 2×2
    in_stride: int = 1  # channel stride of the input view
    out_stride: int = 1  # channel stride of the output view
    spatial_macs: int = 0  # MACs of the spatial layer (9 per output channel-pixel)
    spatial_weight_bits: int = 0
    d_cbuf: int = 0  # DEFORM: channels of the dilation map's buffer (read one word per pixel)
    d_store_bits: int = 0
    max_dilation: int = 0  # DEFORM: the layer's range R (the spatial unit's reach)
    copy: bool = False  # a pass-through copy inserted by the scheduler (no IR layer)
    reads_host_output: bool = False  # its input is written by a host op before the engine (the stem)
    # A k×k conv (conv2d) through the window unit: kernel (0: a 1×1 conv or none), stride, padding
    kernel: int = 0
    kstride: int = 1
    pad: int = 0

    @property
    def h1(self) -> int:  # conv grid (after PREPOOL or the k×k window)
        if self.kernel:
            return (self.in_h + 2 * self.pad - self.kernel) // self.kstride + 1
        return self.in_h // 2 if self.prepool else self.in_h

    @property
    def w1(self) -> int:
        if self.kernel:
            return (self.in_w + 2 * self.pad - self.kernel) // self.kstride + 1
        return self.in_w // 2 if self.prepool else self.in_w

    def mac_cin(self, pi: int) -> int:
        """The MAC array's inputs per pixel: cin, or k·k taps of ⌈cin/PI⌉ PI-vectors (hw/limits.py
        mac_inputs)."""
        return self.kernel ** 2 * -(-self.cin // pi) * pi if self.kernel else self.cin

    @property
    def hp(self) -> int:  # after POOL (what the spatial unit reads)
        return self.h1 // 2 if self.pool else self.h1

    @property
    def wp(self) -> int:
        return self.w1 // 2 if self.pool else self.w1

    @property
    def h2(self) -> int:  # spatial unit's output grid (STRIDE2 halves it)
        return (self.hp - 1) // 2 + 1 if self.stride2 else self.hp

    @property
    def w2(self) -> int:
        return (self.wp - 1) // 2 + 1 if self.stride2 else self.wp

    @property
    def h3(self) -> int:  # written grid (UPSAMPLE doubles it)
        return 2 * self.h2 if self.upsample else self.h2

    @property
    def w3(self) -> int:
        return 2 * self.w2 if self.upsample else self.w2

    @property
    def flags(self) -> str:
        names = [n for n, on in (("PREPOOL", self.prepool), ("KXK", self.kernel > 0), ("CONV", self.conv),
                                 ("POOL", self.pool),
                                 ("SHIFT", self.shift),
                                                 ("DW", self.spatial == "dw"), ("DEFORM", self.spatial == "deform"),
                                                 ("STRIDE2", self.stride2), ("UPSAMPLE", self.upsample)) if on]
        return "+".join(names) or "COPY"


@dataclass(frozen=True)
class HostWork:
    """A layer that runs on the ARM: after the engine (global pool, FC, CoDeNet's heads' last 1×1 +
    decode) or, with `pre`, before it (CoDeNet's stem conv2d)."""

    name: str
    op: str
    macs: int  # multiply-accumulates (FC, conv) or additions (pooling) per frame
    weights: int
    pre: bool = False
    out_elems: int = 0  # elements of its output (decode work of a head; stem output copied to fmem)
    out_bits: int = 0
    in_shape: tuple[int, int, int] = (0, 0, 0)  # H, W, C of its (first) input
    decode: bool = False  # a detector head: the ARM decodes boxes from its output (OpDef.host_decode)


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


def windows_on_host(wl: Workload) -> Workload:
    """`wl` as a flow that runs the k×k convs reading the image on the ARM (CoDeNet's published
    stem): each becomes host work before the engine, and a pool fused after it a pool-only engine
    call on the conv's output (what the scheduler made of them before the window unit)."""
    host: list[HostWork] = []
    calls: list[CallWork] = []
    for c in wl.calls:
        if not (c.kernel and c.reads_graph_input):
            calls.append(c)
            continue
        elems = c.h1 * c.w1 * c.cout
        host.append(HostWork(c.name, "conv2d", c.macs, c.cout * c.cin * c.kernel ** 2, pre=True, out_elems=elems,
                             out_bits=c.out_bits, in_shape=(c.in_h, c.in_w, c.cin)))
        if len(c.layers) > 1:  # the stages fused after the conv: their own call on its output
            calls.append(replace(c, name=c.layers[1], layers=c.layers[1:], conv=False, kernel=0, kstride=1, pad=0,
                                 in_h=c.h1, in_w=c.w1, in_cbuf=c.cout, in_rot=0, cin=c.cout,
                                 in_store_bits=wl.act_bits, in_value_bits=c.out_bits, weight_bits=0, macs=0,
                                 reads_graph_input=False, reads_host_output=True))
    return replace(wl, calls=tuple(calls), host=tuple(host) + wl.host)


def workload(graph: Graph, act_bits: int = 4) -> Workload:
    """Engine calls and host work of one frame of `graph`, placed as the scheduler places them."""
    hw = HardwareConfig(act_bits=act_bits)
    pre, calls, host = fuse_all(graph)
    buffers, views, calls = place(graph, calls, hw)
    t = graph.tensors
    pre_out = {graph.input} | {graph.layer(n).output for n in pre}
    out: list[CallWork] = []
    for c in calls:
        vin, vout = views[c.input], views[c.output]
        bin_, bout = buffers[vin.buffer], buffers[vout.buffer]
        conv = graph.layer(c.conv) if c.conv else None
        sp = graph.layer(c.spatial) if c.spatial else None
        # A pass-through copy's output is not an IR tensor: it carries its input's values.
        out_t = t[c.input] if c.is_copy or c.output not in t else t[c.output]
        dbuf = buffers[views[c.dilation].buffer] if c.dilation else None
        win = op_def(conv.op).window(conv) if conv is not None else None
        out.append(CallWork(
            name=c.name, layers=tuple(c.layers), conv=conv is not None, prepool=c.prepool, pool=c.pool,
            shift=c.shift, in_h=bin_.h, in_w=bin_.w, in_cbuf=bin_.cbuf, in_rot=vin.rot, cin=vin.n,
            in_store_bits=bin_.store_bits, in_value_bits=t[c.input].bits, out_cbuf=bout.cbuf, out_rot=vout.rot,
            cout=vout.n, out_bits=out_t.bits, weight_bits=conv.attrs["weight_bits"] if conv else 0,
            macs=(layer_macs(graph, conv) if conv else 0) + (layer_macs(graph, sp) if sp else 0),
            reads_graph_input=c.input == graph.input,
            spatial=op_def(sp.op).spatial_kind if sp else "",
            stride2=bool(sp is not None and "STRIDE2" in op_def(sp.op).engine_flags(sp)),
            upsample=c.upsample, in_stride=max(1, vin.stride), out_stride=max(1, vout.stride),
            spatial_macs=layer_macs(graph, sp) if sp else 0, spatial_weight_bits=sp.attrs["weight_bits"] if sp else 0,
            d_cbuf=dbuf.cbuf if dbuf else 0, d_store_bits=dbuf.store_bits if dbuf else 0,
            max_dilation=op_def(sp.op).max_dilation(sp) if sp is not None else 0, copy=c.is_copy,
            reads_host_output=c.input in pre_out and c.input != graph.input,
            **(dict(kernel=win[0], kstride=win[1], pad=win[2]) if win else {})))
    host_work = []
    for name, is_pre in [(n, True) for n in pre] + [(n, False) for n in host]:
        layer = graph.layer(name)
        o = t[layer.output]
        n_out = o.shape[0] * o.shape[1] * o.shape[2]
        shape_in = tuple(t[layer.inputs[0]].shape)
        weights = int(layer.params["weight"].size) if "weight" in layer.params else 0
        # the ARM's work: the MACs of a layer with weights, else one add per input value (globalsumpool)
        work = layer_macs(graph, layer) if weights else shape_in[0] * shape_in[1] * shape_in[2]
        host_work.append(HostWork(name, layer.op, work, weights, is_pre, n_out, o.bits, shape_in,
                                  decode=op_def(layer.op).host_decode))
    # What the host reads back: every engine tensor a host layer (or the graph's output) needs.
    back: list[str] = []
    for name in host:
        for i in graph.layer(name).inputs:
            if i not in back and i not in pre_out and i in views:
                back.append(i)
    if not host:
        back = [o for o in graph.outputs if o in views]
    back_buffers = list(dict.fromkeys(views[n].buffer for n in back))
    out_bytes = sum(buffers[b].words(128) * 16 for b in back_buffers)
    ob = buffers[back_buffers[0]] if back_buffers else buffers[views[graph.output].buffer]
    concats = tuple((layer.name, *t[layer.output].shape, t[layer.output].bits)
                    for layer in graph.layers if op_def(layer.op).view == CONCATENATION)
    total = sum(c.macs for c in out) + sum(h.macs for h in host_work if h.weights)
    return Workload(name=graph.name, calls=tuple(out), host=tuple(host_work), image_shape=t[graph.input].shape,
                    engine_output_bytes=out_bytes, engine_output_shape=(ob.h, ob.w, ob.cbuf),
                    concats=concats, act_bits=act_bits, macs=total)
