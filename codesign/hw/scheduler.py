"""Map the integer IR onto engine calls (layer descriptors) and host ops.

Small passes, each with one job, each taking and returning a `Plan` (`schedule(..., keep=DIR)`
writes each as JSON; `codesign compile --keep-intermediate`):

0. `split_host`: the host ops before the engine (CoDeNet's stem conv) and after it (pool + FC,
   detector heads); everything between runs on the engine.
1. `fuse`: group IR layers into engine calls following the engine's pipeline
   (PREPOOL → CONV → POOL → SPATIAL: shift | dw3×3 | deform3×3 → UPSAMPLE); slices and concats
   are not calls.
2. `place`: give every tensor that lives in DDR a *view* (buffer, rotation, channels). Concat and
   DiracDeltaNet's channel rotation become write addresses; when a concat's pass-through input is
   a slice of a buffer whose other channels are dead by the time the concat's other branches are
   written, the concat is built in place in that buffer — no copy at all. Otherwise the inputs
   that are already elsewhere are copied by a pass-through engine call. ShuffleNet's interleave
   (`concat` with `interleave` g) writes input k with channel stride g at offset k.
   `split_wide` then splits a conv whose weights exceed the engine's weight buffer into several
   calls by output channel, each writing a channel slice of the same view.
3. `emit`: descriptors, packed weights and requant constants, buffer addresses.

The result, `Schedule`, is what the HLS project, the C-simulation and the driver consume.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import CodesignError
from ..graph import Graph, Layer, opdef
from ..graph.opdef import op_def
from . import descriptor, layout
from .config import HardwareConfig

# one of these per call, after the conv / pool (the shift unit or the spatial unit)
SPATIAL_STAGES = (opdef.SHIFT, opdef.SPATIAL)


def stage(layer: Layer) -> str:
    """Where `layer` runs (its op class, codesign/ops): an engine stage, a view, or the host."""
    return op_def(layer.op).stage
DEFAULT_MAX_DILATION = 7  # CoDeNet's R: the spatial unit's line buffer holds 2R + 1 rows
MAX_STRIDE = 8  # largest channel stride of a view (the engine takes 1, 2, 4 or 8)


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
            "descriptor_flags": descriptor.FLAGS,
            "buffers": {k: asdict(v) for k, v in self.buffers.items()},
            "views": {k: asdict(v) for k, v in self.views.items()},
            "calls": [asdict(c) for c in self.calls],
            "host_layers": self.host_layers,
            "host_pre_layers": self.host_pre_layers,
            "engine_inputs": self.engine_inputs,
            "engine_outputs": self.engine_outputs,
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


def split_host(graph: Graph) -> tuple[list[str], list[str]]:
    """(host layers before the engine, host layers after it), each in graph order.

    A host op whose inputs all come from the image or earlier host-pre layers runs before the
    engine (CoDeNet's stem); every other host op runs after it, and nothing on the engine may
    read what it computes.
    """
    pre_out = {graph.input}
    pre: list[str] = []
    post: list[str] = []
    post_out: dict[str, str] = {}
    for layer in graph.layers:
        if stage(layer) == opdef.HOST:
            if all(i in pre_out for i in layer.inputs):
                pre.append(layer.name)
                pre_out.add(layer.output)
            else:
                post.append(layer.name)
                post_out[layer.output] = layer.name
        else:
            for i in layer.inputs:
                if i in post_out:
                    raise ScheduleError(f"layer '{layer.name}' ({layer.op}) reads '{i}', computed by host layer "
                                        f"'{post_out[i]}' after the engine; host ops are only supported at the start "
                                        "and at the end of the network")
    return pre, post


def fuse_all(graph: Graph) -> tuple[list[str], list[Call], list[str]]:
    """Host layers before the engine, the engine calls in execution order, host layers after."""
    pre, post = split_host(graph)
    host = set(pre) | set(post)
    users = _consumers(graph)
    outputs = set(graph.outputs)
    order = {layer.name: i for i, layer in enumerate(graph.layers)}
    producer = {layer.output: layer for layer in graph.layers}

    def sole_user(tensor: str, stages: tuple[str, ...]) -> Layer | None:
        u = users[tensor]
        if len(u) != 1 or stage(u[0]) not in stages or tensor in outputs:
            return None
        if u[0].inputs[0] != tensor:
            return None  # the fused tail must be the feature input (not e.g. a dilation map)
        return u[0]

    def dilation_ready(layer: Layer, first: str) -> bool:
        """Is the layer's second per-pixel input (a dilation map) in memory before the call starting at
        layer `first` runs? True for a layer without one."""
        d = op_def(layer.op).dilation_input(layer)
        src = producer.get(d) if d else None
        return src is None or src.name in host or order[src.name] < order[first]

    def add_spatial(call: Call, layer: Layer) -> None:
        call.layers.append(layer.name)
        if stage(layer) == opdef.SHIFT:
            call.shift = True
        else:
            call.spatial = layer.name
            call.dilation = op_def(layer.op).dilation_input(layer)

    calls: list[Call] = []
    absorbed: set[str] = set()
    for layer in graph.layers:
        if layer.name in absorbed or stage(layer) == opdef.VIEW or layer.name in host:
            continue
        if stage(layer) not in opdef.ENGINE_STAGES:
            raise ScheduleError(f"layer '{layer.name}': op '{layer.op}' has no engine mapping")
        first = layer.name
        call = Call(name=layer.name, layers=[], input=layer.inputs[0], output=layer.output)
        if stage(layer) == opdef.POOL and (nxt := sole_user(layer.output, (opdef.CONV,))):
            call.prepool = True  # pool → conv: the read unit pools, the pooled map never hits DDR
            call.layers.append(layer.name)
            absorbed.add(nxt.name)
            layer = nxt
            call.name = layer.name
        tail: str | None = None
        if stage(layer) in (opdef.CONV, opdef.POOL):
            if stage(layer) == opdef.CONV:
                call.conv = layer.name
            else:
                call.pool = True
            call.layers.append(layer.name)
            tail = layer.output
            if call.conv and (nxt := sole_user(tail, (opdef.POOL,))):
                call.pool, tail = True, nxt.output
                call.layers.append(nxt.name)
                absorbed.add(nxt.name)
            nxt = sole_user(tail, SPATIAL_STAGES)
            # a dilation map is read on the pixel grid before POOL: not fused after one
            if nxt and not (op_def(nxt.op).dilation_input(nxt) and (call.pool or not dilation_ready(nxt, first))):
                add_spatial(call, nxt)
                tail = nxt.output
                absorbed.add(nxt.name)
        elif stage(layer) in SPATIAL_STAGES:
            add_spatial(call, layer)
            tail = layer.output
        else:  # a lone upsample: a copy that writes every pixel to 2×2
            call.upsample = True
            call.layers.append(layer.name)
            tail = layer.output
        if not call.upsample and (nxt := sole_user(tail, (opdef.UPSAMPLE,))):
            call.upsample, tail = True, nxt.output
            call.layers.append(nxt.name)
            absorbed.add(nxt.name)
        call.output = tail
        calls.append(call)
    return pre, calls, post


def fuse(graph: Graph) -> tuple[list[Call], list[str]]:
    """Engine calls in execution order, and the host layers that follow them."""
    _, calls, post = fuse_all(graph)
    return calls, post


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
        if c.dilation:
            readers.setdefault(c.dilation, []).append(i)

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
            if producer.get(name) is not None and op_def(producer[name].op).view == opdef.CHANNEL_RANGE:
                src = producer[name]
                v = view_of(src.inputs[0])
                cb = buffers[v.buffer].cbuf
                views[name] = View(v.buffer, (v.rot + src.attrs["start"] * v.stride) % cb,
                                   src.attrs["stop"] - src.attrs["start"], v.stride)
            else:
                store = 8 if name == graph.input else hw.act_bits
                views[name] = View(new_buffer(name, t[name].shape[2], store).name, 0, t[name].shape[2])
        return views[name]

    def _in_place_base(layer: Layer, offsets: list[int], total: int) -> View | None:
        """The concat built inside the buffer of one of its slice inputs, if that is safe."""
        if layer.attrs.get("interleave", 1) != 1:
            return None  # a slice is contiguous; an interleaved input needs a channel stride
        pending = [i for i in layer.inputs
                   if i not in views and (i not in producer or op_def(producer[i].op).view != opdef.CHANNEL_RANGE)]
        placed = [i for i in layer.inputs if i not in pending]
        if len(placed) != 1 or not all(i in call_of_output for i in pending):
            return None  # exactly one input may already live somewhere; the others must be call outputs
        inp = placed[0]
        v = view_of(inp)
        buf = buffers[v.buffer]
        if buf.cbuf != total or buf.store_bits != hw.act_bits or v.stride != 1:
            return None
        first_write = min(call_of_output[i] for i in pending)
        others = [k for k, kv in views.items() if kv.buffer == v.buffer and k != inp]
        last_read = max((r for k in others for r in readers.get(k, [])), default=-1)
        if last_read >= first_write or any(o in others for o in graph.outputs):
            return None
        return View(v.buffer, (v.rot - offsets[layer.inputs.index(inp)]) % total, total)

    if graph.input in readers or any(graph.input in layer.inputs for layer in graph.layers if stage(layer) == opdef.VIEW):
        view_of(graph.input)  # the image, when the engine reads it (placed first: buffer 0)
    for layer in graph.layers:
        if op_def(layer.op).view != opdef.CONCATENATION:
            continue
        total = t[layer.output].shape[2]
        g = layer.attrs.get("interleave", 1)
        if g == 1:
            offsets = [int(o) for o in np.cumsum([0] + [t[i].shape[2] for i in layer.inputs])[:-1]]
        else:  # input k's channel i goes to i·g + k
            offsets = list(range(g))
        base = _in_place_base(layer, offsets, total)
        if base is None:
            base = View(new_buffer(layer.output, total, hw.act_bits).name, 0, total)
        # Copies run as early as possible: right after the last input is produced.
        when = max((call_of_output.get(i, -1) for i in layer.inputs), default=-1) + 1
        for inp, off in zip(layer.inputs, offsets):
            want = View(base.buffer, (base.rot + off) % total, t[inp].shape[2], g)
            if inp not in views and inp not in call_of_output:
                view_of(inp)  # a slice, the image or a host result: it lives elsewhere, copy it below
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
        if c.dilation:
            view_of(c.dilation)

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
    max_height: int
    max_line: int
    max_weights: int
    weight_bits: int
    act_bits: int
    max_dilation: int = 0  # largest deform3x3 range R (0: no deformable layer)


def _call_geometry(graph: Graph, call: Call) -> tuple[int, int, int, int, int]:
    """(H, W) after the read stage, cin, cout and the widest line (W × C) the engine's line
    buffers hold: pool / shift / spatial (W × cout), PREPOOL (in_w/2 × cin) and the writer's
    UPSAMPLE row (one input row of the output, W_out/2 × cout)."""
    h, w, cin = graph.tensors[call.input].shape
    if call.prepool:
        h, w = h // 2, w // 2
    cout = graph.tensors[call.output].shape[2]
    line = w * cout if (call.pool or call.shift or call.spatial) else 0
    if call.prepool:
        line = max(line, w * cin)
    if call.upsample:
        line = max(line, graph.tensors[call.output].shape[1] // 2 * cout)
    return h, w, cin, cout, line


def _spatial_layer(graph: Graph, call: Call) -> Layer | None:
    return graph.layer(call.spatial) if call.spatial else None


def requirements(graph: Graph, calls: list[Call]) -> Requirements:
    rows = [_call_geometry(graph, c) for c in calls]
    convs = [graph.layer(c.conv) for c in calls if c.conv]
    spatial = [layer for c in calls if (layer := _spatial_layer(graph, c)) is not None]
    act_bits = max(graph.tensors[c.output].bits for c in calls)
    act_bits = max([act_bits] + [graph.tensors[layer.output].bits for layer in convs])
    return Requirements(
        max_channels=max(max(r[2], r[3]) for r in rows),
        max_width=max(graph.tensors[c.input].shape[1] for c in calls),
        max_height=max(graph.tensors[c.input].shape[0] for c in calls),
        max_line=max(max(r[4] for r in rows), 1),
        max_weights=max((int(layer.params["weight"].size) for layer in convs), default=1),
        weight_bits=max((layer.attrs["weight_bits"] for layer in convs + spatial), default=2),
        act_bits=act_bits,
        max_dilation=max((op_def(layer.op).max_dilation(layer) for layer in spatial), default=0),
    )


def check_fits(req: Requirements, hw: HardwareConfig, graph: Graph, calls: list[Call]) -> None:
    """Name the first call that exceeds an engine limit."""
    r_hw = hw_max_dilation(hw)
    for c in calls:
        h, w, cin, cout, line = _call_geometry(graph, c)
        hin, win = graph.tensors[c.input].shape[:2]
        problems = []
        if hin > hw.max_height:
            problems.append(f"height {hin} > max_height {hw.max_height}")
        if max(cin, cout) > hw.max_channels:
            problems.append(f"{max(cin, cout)} channels > max_channels {hw.max_channels}")
        if win > hw.max_width:
            problems.append(f"width {win} > max_width {hw.max_width}")
        if line > hw.max_line:
            problems.append(f"line buffer {line} values > max_line {hw.max_line}")
        if c.conv:
            conv = graph.layer(c.conv)
            if not split_channels(cin, cout, conv.attrs["weight_bits"], hw, c.shift):
                problems.append(_split_refusal(cin, cout, conv.attrs["weight_bits"], hw, c.shift))
            if conv.attrs["weight_bits"] > hw.weight_bits:
                problems.append(f"{conv.attrs['weight_bits']}-bit weights > the MAC array's {hw.weight_bits} bits")
            if graph.tensors[conv.output].bits > hw.act_bits:
                problems.append(f"{graph.tensors[conv.output].bits}-bit activations > act_bits {hw.act_bits}")
        sp = _spatial_layer(graph, c)
        if sp is not None:
            if not hw.spatial_unit:
                problems.append(f"'{sp.name}' ({sp.op}) needs the spatial unit, which this engine is built "
                                "without (spatial_unit: false)")
            if sp.attrs["weight_bits"] > hw.weight_bits:
                problems.append(f"{sp.attrs['weight_bits']}-bit weights of '{sp.name}' > the engine's "
                                f"{hw.weight_bits} bits")
            if op_def(sp.op).max_dilation(sp) > r_hw:
                raise ScheduleError(
                    f"layer '{sp.name}' (deform3x3) needs dilations up to {sp.attrs['max_dilation']}, but the "
                    f"engine's deformable line buffer holds {2 * r_hw + 1} rows (hardware max_dilation {r_hw}, "
                    f"reach ±{r_hw}); build the engine with max_dilation >= {sp.attrs['max_dilation']}")
        if graph.tensors[c.output].bits > hw.act_bits:
            problems.append(f"{graph.tensors[c.output].bits}-bit activations > act_bits {hw.act_bits}")
        if problems:
            raise ScheduleError(f"layer '{c.name}' does not fit the engine: {'; '.join(problems)}")


def _check_engine_tensors(graph: Graph, hw: HardwareConfig, tensors: list[str], what: str) -> None:
    for name in tensors:
        info = graph.tensors[name]
        if name != graph.input and (info.signed or info.bits > hw.act_bits):
            raise ScheduleError(f"tensor '{name}' {what} the engine is {'signed ' if info.signed else ''}"
                                f"{info.bits}-bit; the engine stores unsigned activations of act_bits {hw.act_bits}")


def _weight_tiles(cin: int, cout: int, w_bits: int, hw: HardwareConfig) -> int:
    """Weight-buffer entries of a cin -> cout 1x1 conv of w_bits weights: a PI x PO tile per
    mac_bits-wide slice (conv1x1.h)."""
    return -(-cin // hw.pi) * -(-cout // hw.po) * layout.weight_slices(w_bits, hw.weight_bits, hw.mac_bits)


def _call_weight_tiles(graph: Graph, call: Call, hw: HardwareConfig) -> int:
    _, _, cin, cout, _ = _call_geometry(graph, call)
    return _weight_tiles(cin, cout, graph.layer(call.conv).attrs["weight_bits"], hw)


def _part_fits(cin: int, n: int, w_bits: int, hw: HardwareConfig) -> bool:
    """Do the weights of n output channels (one call) fit the weight buffer and max_weights?"""
    return _weight_tiles(cin, n, w_bits, hw) <= hw.weight_tiles and cin * n <= hw.max_weights


def split_unit(hw: HardwareConfig, shift: bool) -> int:
    """Parts of a split conv start at multiples of this: PO (whole output tiles), or lcm(PO, 5) with a
    fused shift, whose direction shift.h picks by the channel's index in the call mod 5."""
    return math.lcm(hw.po, 5) if shift else hw.po


def split_channels(cin: int, cout: int, w_bits: int, hw: HardwareConfig, shift: bool = False) -> list[tuple[int, int]]:
    """The output-channel ranges [a, b) of the engine calls a cin → cout conv of w_bits weights runs as.

    [(0, cout)] when its weights fit the weight buffer (`_weight_tiles` ≤ hw.weight_tiles) and
    max_weights; else the fewest parts that each fit, with boundaries at multiples of
    `split_unit` and the units shared out as equally as possible (the first parts take the extra
    unit, the last may be short). [] when not even a single unit fits.
    """
    if _part_fits(cin, cout, w_bits, hw):
        return [(0, cout)]
    unit = split_unit(hw, shift)
    units = -(-cout // unit)
    for k in range(2, units + 1):
        bounds = [min(cout, unit * -(-i * units // k)) for i in range(k + 1)]
        parts = list(zip(bounds, bounds[1:]))
        if all(_part_fits(cin, b - a, w_bits, hw) for a, b in parts):
            return parts
    return []


def _split_refusal(cin: int, cout: int, w_bits: int, hw: HardwareConfig, shift: bool) -> str:
    """Why a cin → cout conv fits neither whole nor split by output channel (check_fits's problem)."""
    over = []
    if (tiles := _weight_tiles(cin, cout, w_bits, hw)) > hw.weight_tiles:
        over.append(f"{tiles} weight tiles > the weight buffer's {hw.weight_tiles} (max_wtiles)")
    if cin * cout > hw.max_weights:
        over.append(f"{cin * cout} weights > max_weights {hw.max_weights}")
    unit = min(split_unit(hw, shift), cout)
    why = (f"{' and '.join(over)}, and split by output channel its smallest part ({unit} channels"
           f"{', a multiple of lcm(PO, 5) for its fused shift' if shift else ''}) still needs "
           f"{_weight_tiles(cin, unit, w_bits, hw)} weight tiles ({cin * unit} weights)")
    if shift and _part_fits(cin, min(hw.po, cout), w_bits, hw):
        why += (f"; parts of PO = {hw.po} channels would fit, but the shift picks a channel's direction by its "
                "index in the call mod 5 (shift.h), so a part must start at a multiple of 5")
    return why


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
            _, _, cin, cout, _ = _call_geometry(graph, c)
            wb = graph.layer(c.conv).attrs["weight_bits"]
            parts = split_channels(cin, cout, wb, hw, c.shift)
            if not parts:
                raise ScheduleError(f"layer '{c.name}' does not fit the engine: "
                                    f"{_split_refusal(cin, cout, wb, hw, c.shift)}")
        if len(parts) == 1:
            out.append(c)
            continue
        out.extend(replace(c, name=part_name(c.name, a, b), layers=list(c.layers), channels=(a, b), descriptor={})
                   for a, b in parts)
    return out


def call_output_view(call: Call, views: dict[str, View], buffers: dict[str, Buffer]) -> View:
    """The view `call` writes: its output tensor's, narrowed to channels [a, b) for a part (logical
    channel a of the tensor's view is the part's channel 0)."""
    v = views[call.output]
    if call.channels is None:
        return v
    a, b = call.channels
    return View(v.buffer, (v.rot + a * v.stride) % buffers[v.buffer].cbuf, b - a, v.stride)


# The deepest weight buffer sizing picks: a BRAM36 at its widest is 512 x 72 bits, so a deeper buffer
# costs BRAM in proportion to its depth, while a conv with more entries only re-reads its input once per
# part (split_wide). A user's config may set a deeper max_wtiles.
WEIGHT_TILES_CAP = 512


def weight_tiles_needed(graph: Graph, calls: list[Call], hw: HardwareConfig) -> int:
    """The weight buffer depth (max_wtiles) for graph on hw's array: its largest conv's entries, at
    most WEIGHT_TILES_CAP (a wider conv is split by output channel), and at least what the largest
    smallest part of a split conv needs."""
    need = max((_call_weight_tiles(graph, c, hw) for c in calls if c.conv), default=1)
    if need <= WEIGHT_TILES_CAP:
        return need
    floor = 1
    for c in calls:
        if c.conv:
            _, _, cin, cout, _ = _call_geometry(graph, c)
            floor = max(floor, _weight_tiles(cin, min(split_unit(hw, c.shift), cout),
                                             graph.layer(c.conv).attrs["weight_bits"], hw))
    return max(WEIGHT_TILES_CAP, floor)


def sized_for(graph: Graph, hw: HardwareConfig | None = None) -> HardwareConfig:
    """`hw` (default: the default config) with its buffer limits set to exactly what `graph` needs."""
    calls, _ = fuse(graph)
    req = requirements(graph, calls)
    base = hw or HardwareConfig()
    act = next(b for b in (2, 4, 8) if b >= req.act_bits)
    wb = next(b for b in (2, 4, 8) if b >= req.weight_bits)
    return base.with_(max_channels=req.max_channels, max_width=req.max_width, max_height=req.max_height,
                      max_line=req.max_line,
                      max_weights=req.max_weights, weight_bits=wb, act_bits=act,
                      max_wtiles=weight_tiles_needed(graph, calls, base),
                      spatial_unit=any(c.spatial for c in calls))


def _log2_stride(stride: int, what: str) -> int:
    if stride not in (1, 2, 4, 8):
        raise ScheduleError(f"{what}: channel stride {stride} is not 1, 2, 4 or 8 (an interleave the engine "
                            "cannot write by address)")
    return stride


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
    t = graph.tensors

    def put(chunk: np.ndarray) -> int:
        nonlocal waddr
        start = waddr
        wchunks.append(chunk)
        waddr += chunk.size // word_bytes
        return start

    # A layer's weights and constants are packed once; the parts of a split call address rows of them.
    packed: dict[str, tuple[int, int]] = {}

    for c in calls:
        vin, vout = views[c.input], call_output_view(c, views, buffers)
        first = c.channels[0] if c.channels else 0
        bin_, bout = buffers[vin.buffer], buffers[vout.buffer]
        sp = _spatial_layer(graph, c)
        flags = [n for n, on in (("PREPOOL", c.prepool), ("CONV", bool(c.conv)), ("POOL", c.pool),
                                 ("SHIFT", c.shift), ("IN8", bin_.store_bits == 8), ("UPSAMPLE", c.upsample)) if on]
        if sp is not None:  # what the spatial op's stage needs (its op class)
            flags += op_def(sp.op).engine_flags(sp)
        act_src = c.input if (c.is_copy or not c.conv) else graph.layer(c.conv).output
        d = {"flags": descriptor.flag_bits(*flags), "in_addr": bin_.addr, "in_h": bin_.h, "in_w": bin_.w,
             "in_cbuf": bin_.cbuf, "in_rot": vin.rot, "cin": vin.n, "out_addr": bout.addr,
             "out_cbuf": bout.cbuf, "out_rot": vout.rot, "cout": vout.n, "w_addr": 0, "q_addr": 0,
             "shift": 0, "act_max": (1 << t[act_src].bits) - 1,
             "in_stride": _log2_stride(vin.stride, f"call '{c.name}' input"),
             "out_stride": _log2_stride(vout.stride, f"call '{c.name}' output")}
        if c.conv:
            conv = graph.layer(c.conv)
            pw = layout.weight_slices(conv.attrs["weight_bits"], hw.weight_bits, hw.mac_bits)
            if conv.name not in packed:
                packed[conv.name] = (put(layout.pack_weight_slices(conv.params["weight"], conv.attrs["weight_bits"],
                                                                   hw.mac_bits, hw.bus_bits)),
                                     put(layout.pack_requant(conv.params["mult"], conv.params["bias"], hw.bus_bits)))
            w_base, q_base = packed[conv.name]
            # rows start on a word: output channel `first`'s pw slice rows, constants two words per channel
            d["w_addr"] = w_base + first * pw * layout.weight_row_words(conv.params["weight"].shape[1], hw.mac_bits,
                                                                        hw.bus_bits)
            d["q_addr"] = q_base + first * layout.REQUANT_WORDS
            d["shift"] = conv.attrs["shift"]
            d["w_bits"] = conv.attrs["weight_bits"]  # the MAC array runs one pass per mac_bits slice
        elif vin.n != vout.n:
            raise ScheduleError(f"call '{c.name}': a copy must keep the channel count")
        if sp is not None:
            # spatial weights [9][C] (tap-major rows, like a conv's [Cout][Cin]), then M, B per channel;
            # a part's channels are a column range of [9][C], so each part gets its own [9][b - a]
            d["sw_addr"] = put(layout.pack_weights(np.ascontiguousarray(sp.params["weight"][c.out_slice].T),
                                                   hw.weight_bits, hw.bus_bits))
            if sp.name not in packed:
                packed[sp.name] = (0, put(layout.pack_requant(sp.params["mult"], sp.params["bias"], hw.bus_bits)))
            d["sq_addr"] = packed[sp.name][1] + first * layout.REQUANT_WORDS
            d["s_shift"] = sp.attrs["shift"]
            d["s_act_max"] = (1 << t[sp.output].bits) - 1
            if c.dilation:
                vd = views[c.dilation]
                bd = buffers[vd.buffer]
                if vd.n != 1 or bd.store_bits != hw.act_bits:
                    raise ScheduleError(f"call '{c.name}': the dilation map '{c.dilation}' must be one stored "
                                        "activation channel")
                d.update(d_addr=bd.addr, d_cbuf=bd.cbuf, d_rot=vd.rot, d_max=op_def(sp.op).max_dilation(sp))
        c.descriptor = d
    wmem = np.concatenate(wchunks) if wchunks else np.zeros(word_bytes, dtype=np.uint8)
    return wmem, addr


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
                "buffers": {k: asdict(v) for k, v in self.buffers.items()},
                "views": {k: asdict(v) for k, v in self.views.items()}}


def fuse_pass(graph: Graph, hw: HardwareConfig) -> Plan:
    """Pass 1: host split and fusion into calls, checked against the engine's limits."""
    pre, calls, host = fuse_all(graph)
    if not calls:
        raise ScheduleError("the graph has no layer that runs on the engine")
    check_fits(requirements(graph, calls), hw, graph, calls)
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
    _check_engine_tensors(graph, hw, [n for n in engine_inputs], "written into")
    sched = Schedule(hw, buffers, views, calls, host, engine_outputs[0], wmem, fmem_words, graph.input,
                     host_pre_layers=pre, engine_inputs=engine_inputs, engine_outputs=engine_outputs)
    if keep is not None:
        _keep(Path(keep) / f"{len(PASSES) + 1:02d}-emit.json", sched.to_json())
    return sched


def _keep(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
