"""Map the integer IR onto engine calls (layer descriptors) and host ops.

Three small passes, each with one job:

1. `fuse`: group IR layers into engine calls following the engine's pipeline
   (PREPOOL → CONV → POOL → SHIFT); slices and concats are not calls.
2. `place`: give every tensor that lives in DDR a *view* (buffer, rotation, channels). Concat and
   DiracDeltaNet's channel rotation become write addresses; when a concat's pass-through input is
   a slice of a buffer whose other channels are dead by the time the concat's other branches are
   written, the concat is built in place in that buffer — no copy at all. Otherwise the inputs
   that are already elsewhere are copied by a pass-through engine call.
3. `emit`: descriptors, packed weights and requant constants, buffer addresses.

The result, `Schedule`, is what the HLS project, the C-simulation and the driver consume.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import CodesignError
from ..graph import Graph, Layer
from . import descriptor, layout
from .config import HardwareConfig

ENGINE_OPS = ("conv1x1", "maxpool2x2", "shift")
VIEW_OPS = ("slice", "concat")
HOST_OPS = ("globalsumpool", "linear")


class ScheduleError(CodesignError):
    """The graph does not fit this engine configuration; the message names the layer."""


@dataclass(frozen=True)
class View:
    buffer: str
    rot: int
    n: int


@dataclass
class Buffer:
    name: str
    h: int
    w: int
    cbuf: int
    store_bits: int
    addr: int = 0  # word offset in fmem

    def words(self, bus_bits: int) -> int:
        return layout.fmap_words(self.h, self.w, self.cbuf, self.store_bits, bus_bits)


@dataclass
class Call:
    """One engine call: optional prepool, conv (or copy), pool, shift; writes `output`."""

    name: str
    layers: list[str]
    input: str  # IR tensor read
    output: str  # IR tensor written (the last fused layer's output)
    prepool: bool = False
    conv: str | None = None  # name of the conv1x1 layer
    pool: bool = False
    shift: bool = False
    descriptor: dict[str, int] = field(default_factory=dict)

    @property
    def is_copy(self) -> bool:
        """A pass-through call inserted by placement; its output is not an IR tensor."""
        return not self.layers


@dataclass
class Schedule:
    hw: HardwareConfig
    buffers: dict[str, Buffer]
    views: dict[str, View]  # IR tensor → where it lives in fmem
    calls: list[Call]
    host_layers: list[str]  # run on the ARM after the engine, in order
    engine_output: str  # the tensor the host reads back
    wmem: np.ndarray  # bytes
    fmem_words: int
    graph_input: str

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
            "descriptor_flags": descriptor.FLAGS,
            "buffers": {k: asdict(v) for k, v in self.buffers.items()},
            "views": {k: asdict(v) for k, v in self.views.items()},
            "calls": [asdict(c) for c in self.calls],
            "host_layers": self.host_layers,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True)


# ---- pass 1: fusion -----------------------------------------------------------------------------

def _consumers(graph: Graph) -> dict[str, list[Layer]]:
    users: dict[str, list[Layer]] = {t: [] for t in graph.tensors}
    for layer in graph.layers:
        for t in layer.inputs:
            users[t].append(layer)
    return users


def fuse(graph: Graph) -> tuple[list[Call], list[str]]:
    """Engine calls in execution order, and the host layers that follow them."""
    users = _consumers(graph)
    producer = {layer.output: layer for layer in graph.layers}

    def sole_user(tensor: str, op: str) -> Layer | None:
        u = users[tensor]
        return u[0] if len(u) == 1 and u[0].op == op and tensor != graph.output else None

    calls: list[Call] = []
    host: list[str] = []
    absorbed: set[str] = set()
    for layer in graph.layers:
        if layer.name in absorbed or layer.op in VIEW_OPS:
            continue
        if layer.op in HOST_OPS:
            host.append(layer.name)
            continue
        if host:
            raise ScheduleError(f"layer '{layer.name}' ({layer.op}) follows host layer '{host[-1]}'; "
                                "host ops are only supported at the end of the network")
        if layer.op not in ENGINE_OPS:
            raise ScheduleError(f"layer '{layer.name}': op '{layer.op}' has no engine mapping")
        call = Call(name=layer.name, layers=[], input=layer.inputs[0], output=layer.output)
        if layer.op == "maxpool2x2" and (nxt := sole_user(layer.output, "conv1x1")):
            call.prepool = True  # pool → conv: the read unit pools, the pooled map never hits DDR
            call.layers.append(layer.name)
            absorbed.add(nxt.name)
            layer = nxt
            call.name = layer.name
        if layer.op == "conv1x1":
            call.conv = layer.name
            call.layers.append(layer.name)
            tail = layer.output
            if nxt := sole_user(tail, "maxpool2x2"):
                call.pool, tail = True, nxt.output
                call.layers.append(nxt.name)
                absorbed.add(nxt.name)
            if nxt := sole_user(tail, "shift"):
                call.shift, tail = True, nxt.output
                call.layers.append(nxt.name)
                absorbed.add(nxt.name)
            call.output = tail
        elif layer.op == "maxpool2x2":
            call.pool = True
            call.layers.append(layer.name)
            tail = layer.output
            if nxt := sole_user(tail, "shift"):
                call.shift, tail = True, nxt.output
                call.layers.append(nxt.name)
                absorbed.add(nxt.name)
            call.output = tail
        else:  # a lone shift
            call.shift = True
            call.layers.append(layer.name)
        calls.append(call)
    return calls, host


# ---- pass 2: placement --------------------------------------------------------------------------

def place(graph: Graph, calls: list[Call], hw: HardwareConfig) -> tuple[dict[str, Buffer], dict[str, View], list[Call]]:
    """Views for every DDR tensor; returns buffers, views and the calls with copies inserted."""
    t = graph.tensors
    producer = {layer.output: layer for layer in graph.layers}
    call_of_output = {c.output: i for i, c in enumerate(calls)}
    # Index of the call that produces each tensor read by a later call, and readers per tensor.
    readers: dict[str, list[float]] = {}
    for i, c in enumerate(calls):
        readers.setdefault(c.input, []).append(i)

    buffers: dict[str, Buffer] = {}
    views: dict[str, View] = {}
    copies: list[tuple[int, Call]] = []  # (insert before call index, copy call)

    def new_buffer(name: str, cbuf: int, store_bits: int) -> Buffer:
        h, w, _ = t[name].shape
        buf = Buffer(f"buf{len(buffers)}", h, w, cbuf, store_bits)
        buffers[buf.name] = buf
        return buf

    def view_of(name: str) -> View:
        """Place `name` in its own buffer unless it already has a view."""
        if name not in views:
            if producer.get(name) is not None and producer[name].op == "slice":
                src = producer[name]
                v = view_of(src.inputs[0])
                cb = buffers[v.buffer].cbuf
                views[name] = View(v.buffer, (v.rot + src.attrs["start"]) % cb, src.attrs["stop"] - src.attrs["start"])
            else:
                store = 8 if name == graph.input else hw.act_bits
                views[name] = View(new_buffer(name, t[name].shape[2], store).name, 0, t[name].shape[2])
        return views[name]

    def _in_place_base(layer: Layer, offsets: list[int], total: int) -> View | None:
        """The concat built inside the buffer of one of its slice inputs, if that is safe."""
        pending = [i for i in layer.inputs if i not in views and producer[i].op != "slice"]
        placed = [i for i in layer.inputs if i not in pending]
        if len(placed) != 1 or not all(i in call_of_output for i in pending):
            return None  # exactly one input may already live somewhere; the others must be call outputs
        inp = placed[0]
        v = view_of(inp)
        buf = buffers[v.buffer]
        if buf.cbuf != total or buf.store_bits != hw.act_bits:
            return None
        first_write = min(call_of_output[i] for i in pending)
        others = [k for k, kv in views.items() if kv.buffer == v.buffer and k != inp]
        last_read = max((r for k in others for r in readers.get(k, [])), default=-1)
        if last_read >= first_write or graph.output in others:
            return None
        return View(v.buffer, (v.rot - offsets[layer.inputs.index(inp)]) % total, total)

    view_of(graph.input)
    for layer in graph.layers:
        if layer.op != "concat":
            continue
        total = t[layer.output].shape[2]
        offsets = [int(o) for o in np.cumsum([0] + [t[i].shape[2] for i in layer.inputs])[:-1]]
        base = _in_place_base(layer, offsets, total)
        if base is None:
            base = View(new_buffer(layer.output, total, hw.act_bits).name, 0, total)
        # Copies run as early as possible: right after the last input is produced.
        when = max((call_of_output.get(i, -1) for i in layer.inputs), default=-1) + 1
        for inp, off in zip(layer.inputs, offsets):
            want = View(base.buffer, (base.rot + off) % total, t[inp].shape[2])
            if inp not in views:
                views[inp] = want  # its producer writes straight into the concat
            elif views[inp] != want:  # already elsewhere: a pass-through engine call copies it
                copy = Call(name=f"{layer.name}.copy{len(copies)}", layers=[], input=inp,
                            output=f"{layer.name}.copy{len(copies)}")
                views[copy.output] = want
                copies.append((when, copy))
                readers.setdefault(inp, []).append(when - 0.5)
        views[layer.output] = View(base.buffer, (base.rot + layer.attrs["rotate"]) % total, total)
    for c in calls:
        view_of(c.input)
        view_of(c.output)

    ordered = list(calls)
    for when, copy in sorted(copies, key=lambda x: -x[0]):
        ordered.insert(min(when, len(ordered)), copy)
    return buffers, views, ordered


# ---- pass 3: emission ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Requirements:
    """The smallest engine buffers that hold this schedule (what `hw` must provide)."""

    max_channels: int
    max_width: int
    max_line: int
    max_weights: int
    weight_bits: int
    act_bits: int


def _call_geometry(graph: Graph, call: Call) -> tuple[int, int, int, int, int]:
    """(H, W) after the read stage, cin, cout and the widest line (W × C) the pool/shift units hold."""
    h, w, cin = graph.tensors[call.input].shape
    if call.prepool:
        h, w = h // 2, w // 2
    cout = graph.tensors[call.output].shape[2]
    line = w * cout if (call.pool or call.shift) else 0
    return h, w, cin, cout, line


def requirements(graph: Graph, calls: list[Call]) -> Requirements:
    rows = [_call_geometry(graph, c) for c in calls]
    convs = [graph.layer(c.conv) for c in calls if c.conv]
    act_bits = max(graph.tensors[c.output].bits for c in calls)
    return Requirements(
        max_channels=max(max(r[2], r[3]) for r in rows),
        max_width=max(graph.tensors[c.input].shape[1] for c in calls),
        max_line=max(max(r[4] for r in rows), 1),
        max_weights=max((int(layer.params["weight"].size) for layer in convs), default=1),
        weight_bits=max((layer.attrs["weight_bits"] for layer in convs), default=2),
        act_bits=act_bits,
    )


def check_fits(req: Requirements, hw: HardwareConfig, graph: Graph, calls: list[Call]) -> None:
    """Name the first call that exceeds an engine limit."""
    for c in calls:
        h, w, cin, cout, line = _call_geometry(graph, c)
        win = graph.tensors[c.input].shape[1]
        problems = []
        if max(cin, cout) > hw.max_channels:
            problems.append(f"{max(cin, cout)} channels > max_channels {hw.max_channels}")
        if win > hw.max_width:
            problems.append(f"width {win} > max_width {hw.max_width}")
        if line > hw.max_line:
            problems.append(f"line buffer {line} values > max_line {hw.max_line}")
        if c.conv:
            conv = graph.layer(c.conv)
            if conv.params["weight"].size > hw.max_weights:
                problems.append(f"{conv.params['weight'].size} weights > max_weights {hw.max_weights}")
            if conv.attrs["weight_bits"] > hw.weight_bits:
                problems.append(f"{conv.attrs['weight_bits']}-bit weights > the MAC array's {hw.weight_bits} bits")
        if graph.tensors[c.output].bits > hw.act_bits:
            problems.append(f"{graph.tensors[c.output].bits}-bit activations > act_bits {hw.act_bits}")
        if problems:
            raise ScheduleError(f"layer '{c.name}' does not fit the engine: {'; '.join(problems)}")


def sized_for(graph: Graph, hw: HardwareConfig | None = None) -> HardwareConfig:
    """`hw` (default: the default config) with its buffer limits set to exactly what `graph` needs."""
    calls, _ = fuse(graph)
    req = requirements(graph, calls)
    base = hw or HardwareConfig()
    act = next(b for b in (2, 4, 8) if b >= req.act_bits)
    wb = next(b for b in (2, 4, 8) if b >= req.weight_bits)
    return base.with_(max_channels=req.max_channels, max_width=req.max_width, max_line=req.max_line,
                      max_weights=req.max_weights, weight_bits=wb, act_bits=act)


def emit(graph: Graph, hw: HardwareConfig, calls: list[Call], buffers: dict[str, Buffer],
         views: dict[str, View]) -> tuple[np.ndarray, int]:
    """Fill in descriptors; returns (wmem bytes, fmem size in words)."""
    addr = 0
    for buf in buffers.values():
        buf.addr = addr
        addr += buf.words(hw.bus_bits)
    word_bytes = hw.bus_bits // 8
    wchunks: list[np.ndarray] = []
    waddr = 0

    def put(chunk: np.ndarray) -> int:
        nonlocal waddr
        start = waddr
        wchunks.append(chunk)
        waddr += chunk.size // word_bytes
        return start

    for c in calls:
        vin, vout = views[c.input], views[c.output]
        bin_, bout = buffers[vin.buffer], buffers[vout.buffer]
        flags = [n for n, on in (("PREPOOL", c.prepool), ("CONV", bool(c.conv)), ("POOL", c.pool),
                                 ("SHIFT", c.shift), ("IN8", bin_.store_bits == 8)) if on]
        d = {"flags": descriptor.flag_bits(*flags), "in_addr": bin_.addr, "in_h": bin_.h, "in_w": bin_.w,
             "in_cbuf": bin_.cbuf, "in_rot": vin.rot, "cin": vin.n, "out_addr": bout.addr,
             "out_cbuf": bout.cbuf, "out_rot": vout.rot, "cout": vout.n, "w_addr": 0, "q_addr": 0,
             "shift": 0, "act_max": (1 << graph.tensors[c.input if c.is_copy else c.output].bits) - 1}
        if c.conv:
            conv = graph.layer(c.conv)
            d["w_addr"] = put(layout.pack_weights(conv.params["weight"], hw.weight_bits, hw.bus_bits))
            d["q_addr"] = put(layout.pack_requant(conv.params["mult"], conv.params["bias"], hw.bus_bits))
            d["shift"] = conv.attrs["shift"]
        elif vin.n != vout.n:
            raise ScheduleError(f"call '{c.name}': a copy must keep the channel count")
        c.descriptor = d
    wmem = np.concatenate(wchunks) if wchunks else np.zeros(word_bytes, dtype=np.uint8)
    return wmem, addr


def schedule(graph: Graph, hw: HardwareConfig) -> Schedule:
    calls, host = fuse(graph)
    if not calls:
        raise ScheduleError("the graph has no layer that runs on the engine")
    check_fits(requirements(graph, calls), hw, graph, calls)
    buffers, views, calls = place(graph, calls, hw)
    wmem, fmem_words = emit(graph, hw, calls, buffers, views)
    engine_output = graph.layer(host[0]).inputs[0] if host else graph.output
    if engine_output not in views:
        raise ScheduleError(f"tensor '{engine_output}' read by the host is not produced by the engine")
    return Schedule(hw, buffers, views, calls, host, engine_output, wmem, fmem_words, graph.input)
