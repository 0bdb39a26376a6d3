"""Cycle and latency model of the engine, its control and the ARM host (docs/estimator.md).

Per engine call (one frame):

    compute   = max over the dataflow stages (reader, MAC array, pool, shift, writer) of their
                cycles; the MAC array takes H1·W1·ceil(cin/PI)·ceil(cout/PO) cycles at II = 1, so
                a Cout that is not a multiple of PO costs a whole tile
    memory    = feature-map bytes (reads, writes, read-modify-write of partly covered words) / DDR
    dataflow  = max(compute, memory) + fill (pipeline depth, DDR latency, pool/shift line rows)
    call      = descriptor fetch + weight/requant load (before the dataflow region) + dataflow

A frame or batch adds the control style and the host work:

    per_layer  : the host starts every call and polls its done bit (PYNQ register reads), and does
                 everything else (shuffle copies, stem, FC) in between: nothing overlaps
    descriptor : one start and one done-poll per batch; the engine runs the batch's calls back to
                 back from the descriptor table while the host post-processes the previous batch
                 and prepares the next, so host and engine overlap in steady state
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..graph import Graph
from ..figures import CYCLE_COUNTED, MODELED, PAPER_PRESET
from ..hw import descriptor
from ..hw.config import Board, HardwareConfig
from ..hw.layout import weight_slices
from ..hw.limits import split_channels
from ..hw.plan import hw_max_dilation
from ..hw.split import part_name
from .params import ModelParams
from .workload import CallWork, HostWork, Workload, windows_on_host, workload

CONTROL_STYLES = ("descriptor", "per_layer")
MICROARCHS = ("engine", "ideal", "codenet")
DESC_BYTES = descriptor.WORDS * 4
# Dataflow stages of one call, as the counting C-simulation names them (hls_templates/engine/cycles.h)
ENGINE_STAGES = ("read", "unpack", "prepool", "window", "mac", "requant", "pool", "shift", "spatial", "pack", "prefetch",
                 "write")
# Pipeline depth of each stage's main loop (what a stage adds to the call as the fill when it is not the
# slowest one): the order of magnitude the units state; the count uses the exact constants.
STAGE_FILL = {"read": 3, "unpack": 3, "prepool": 3, "window": 3, "mac": 9, "requant": 7, "pool": 3, "shift": 3, "spatial": 10,
              "pack": 3, "prefetch": 2, "write": 3}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def view_words(cbuf: int, rot: int, n: int, lanes: int, stride: int = 1) -> tuple[int, int]:
    """(words a view touches per pixel, how many of those it covers only partly).

    Logical channel j of the view is physical channel (rot + j·stride) mod cbuf (docs/engine.md);
    a strided view (ShuffleNet's 2-way interleave) covers every word it touches only partly.
    """
    if n <= 0:
        return 0, 0
    nwords = _cdiv(cbuf, lanes)
    cover = [0] * nwords
    if stride <= 1 and n >= cbuf:
        cover = [min(lanes, cbuf - k * lanes) for k in range(nwords)]
    else:
        for j in range(n):
            cover[((rot + j * max(1, stride)) % cbuf) // lanes] += 1
    touched = partial = 0
    for k, cov in enumerate(cover):
        if cov:
            touched += 1
            partial += cov < min(lanes, cbuf - k * lanes)
    return touched, partial


@dataclass
class CallEstimate:
    """One engine call of one frame; times in seconds."""

    name: str
    flags: str
    layers: list[str]
    macs: int
    passes: int
    cycles: dict[str, int]  # per dataflow stage
    compute_cycles: int
    fill_cycles: int
    read_bytes: int
    write_bytes: int
    rmw_bytes: int
    weight_bytes: int
    compute_s: float
    memory_s: float
    weight_s: float
    overhead_s: float  # descriptor fetch + fill
    engine_s: float  # the call on the engine, one frame, weights loaded
    control_s: float = 0.0  # host control time not hidden by the engine, per frame
    time_s: float = 0.0  # per frame, as it contributes to the frame time
    bound: str = "compute"
    ops: int = 0
    dram_bytes: int = 0
    on_host: bool = False
    starts: int = 1  # engine starts: > 1 when the host splits the layer (ModelParams.max_call_cout)

    @property
    def intensity(self) -> float:
        return self.ops / self.dram_bytes if self.dram_bytes else float("inf")

    @property
    def gops(self) -> float:
        return self.ops / self.engine_s / 1e9 if self.engine_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(intensity=self.intensity, gops=self.gops)
        return d


@dataclass
class FrameEstimate:
    """A batch of `batch` frames through engine + host; FPS is the steady-state rate."""

    hw: HardwareConfig
    board: Board
    params: ModelParams
    batch: int
    control: str
    shuffle_on_cpu: bool
    calls: list[CallEstimate]
    engine_s: float  # engine busy time per batch
    control_s: float  # host control (register accesses) per batch
    host_s: dict[str, float]  # host work per batch, by item
    latency_s: float  # one batch, start to last result
    period_s: float  # steady-state time per batch
    macs: int  # per frame
    meta: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.batch / self.period_s

    @property
    def label(self) -> str:
        """What the figures are (DESIGN §8): the model of the engine as written, or of another design."""
        if self.meta.get("engine_cycles"):
            return f"{CYCLE_COUNTED} engine; host and control {MODELED}"
        if self.params.microarch == "engine":
            return MODELED
        return f"{PAPER_PRESET}: microarch '{self.params.microarch}', not the generated engine"

    @property
    def frame_ms(self) -> float:
        return 1e3 * self.period_s / self.batch

    @property
    def latency_ms(self) -> float:
        return 1e3 * self.latency_s

    @property
    def peak_gops(self) -> float:
        return 2 * self.hw.pi * self.hw.po * self.hw.clock_mhz * 1e6 / 1e9

    @property
    def gops(self) -> float:
        """Delivered network throughput: 2·MACs per frame × FPS."""
        return 2 * self.macs * self.fps / 1e9

    @property
    def host_total_s(self) -> float:
        return sum(self.host_s.values())

    def to_dict(self) -> dict[str, Any]:
        return {"hw": self.hw.to_dict(), "board": self.board.name, "params": self.params.to_dict(),
                "batch": self.batch, "control": self.control, "shuffle_on_cpu": self.shuffle_on_cpu,
                "fps": self.fps, "frame_ms": self.frame_ms, "latency_ms": self.latency_ms,
                "engine_ms_per_batch": 1e3 * self.engine_s, "control_ms_per_batch": 1e3 * self.control_s,
                "host_ms_per_batch": {k: 1e3 * v for k, v in self.host_s.items()},
                "period_ms": 1e3 * self.period_s, "macs_per_frame": self.macs, "gops": self.gops,
                "peak_gops": self.peak_gops, "calls": [c.to_dict() for c in self.calls], "meta": self.meta,
                "label": self.label}

    def summary(self) -> str:
        host = ", ".join(f"{k} {1e3 * v:.2f}" for k, v in self.host_s.items() if v)
        return (f"{self.hw.pi}x{self.hw.po} @ {self.hw.clock_mhz:g} MHz, {self.control} control, batch {self.batch}"
                f"{', shuffle on CPU' if self.shuffle_on_cpu else ''}: {self.fps:.1f} FPS [{self.label}] "
                f"({self.frame_ms:.2f} ms/frame, batch latency {self.latency_ms:.2f} ms); per batch: engine "
                f"{1e3 * self.engine_s:.2f} ms, control {1e3 * self.control_s:.2f} ms, host [{host}] ms")

    def table(self) -> str:
        rows = [f"{'call':<22} {'flags':<22} {'MMACs':>7} {'cycles':>8} {'comp us':>8} {'mem us':>7} "
                f"{'wgt us':>7} {'ctrl us':>8} {'time us':>8} {'GOP/s':>7}  bound"]
        for c in self.calls:
            rows.append(f"{c.name:<22} {c.flags:<22} {c.macs / 1e6:>7.2f} {c.compute_cycles:>8} "
                        f"{1e6 * c.compute_s:>8.1f} {1e6 * c.memory_s:>7.1f} {1e6 * c.weight_s:>7.1f} "
                        f"{1e6 * c.control_s:>8.1f} {1e6 * c.time_s:>8.1f} {c.gops:>7.1f}  {c.bound}")
        return "\n".join(rows)


# ---- one call -------------------------------------------------------------------------------------

def _passes(c: CallWork, hw: HardwareConfig, p: ModelParams) -> int:
    """Bit-serial passes when operands are wider than the MAC array (e.g. an 8-bit stem)."""
    if not c.conv:
        return 1
    mac = p.mac_in_bits or hw.mac_bits
    # the engine slices the input at its stored width (conv1x1.h: 8 for the image, else A bits); the
    # paper presets model their own arrays, sized by the values' width
    x_bits = c.in_store_bits if p.microarch == "engine" else c.in_value_bits
    return _cdiv(c.weight_bits, min(hw.weight_bits, mac)) * _cdiv(x_bits, mac)


def _chunk(c: CallWork, cout: int) -> CallWork:
    """`c` restricted to `cout` of its output channels (a depthwise-only call: of its input channels too)."""
    share = dict(cout=cout, out_cbuf=cout, out_rot=0, out_stride=1, macs=c.macs * cout // c.cout,
                 spatial_macs=c.spatial_macs * cout // c.cout)
    if not c.conv:
        share.update(cin=cout, in_cbuf=cout, in_rot=0, in_stride=1)
    return replace(c, **share)


# CallEstimate fields that add up when a layer runs as several engine calls (`_merge`); the others are
# taken from the first part (name, flags, layers, passes, on_host), or merged below (cycles, bound).
MERGE_SUMMED = ("macs", "compute_cycles", "fill_cycles", "read_bytes", "write_bytes", "rmw_bytes", "weight_bytes",
                "compute_s", "memory_s", "weight_s", "overhead_s", "engine_s", "control_s", "time_s", "ops",
                "dram_bytes", "starts")
MERGE_FIRST = ("name", "flags", "layers", "passes", "on_host")


def _merge(parts: list[CallEstimate]) -> CallEstimate:
    """One layer run as several engine calls: times, bytes and cycles add up."""
    first = parts[0]
    summed: dict[str, Any] = {name: sum(getattr(x, name) for x in parts) for name in MERGE_SUMMED}
    summed["cycles"] = {k: sum(x.cycles[k] for x in parts) for k in first.cycles}
    summed["bound"] = max(parts, key=lambda x: x.engine_s).bound
    return replace(first, **summed)


def call_parts(c: CallWork, p: ModelParams) -> list[CallWork]:
    """The engine calls `c` runs as: itself, or ≤ `max_call_cout`-channel parts when the host splits it."""
    m = p.max_call_cout
    if m and c.cout > m:
        return [_chunk(c, min(m, c.cout - i)) for i in range(0, c.cout, m)]
    return [c]


def _part(c: CallWork, a: int, b: int) -> CallWork:
    """The part of `c` that the scheduler's split by output channel runs for channels [a, b) (`split_wide`):
    the whole input, b − a outputs written at channel a of the same output view."""
    n = b - a
    return replace(c, name=part_name(c.name, a, b), cout=n, out_rot=(c.out_rot + a * c.out_stride) % c.out_cbuf,
                   macs=c.macs * n // c.cout, spatial_macs=c.spatial_macs * n // c.cout)


def engine_parts(c: CallWork, hw: HardwareConfig) -> list[CallWork]:
    """The engine calls the scheduler makes of `c` on `hw`: a conv whose weights exceed the weight buffer
    is split by output channel (hw/limits.py split_channels). A conv that cannot be split is left
    whole (the scheduler refuses it; the estimate is then of a call that does not fit)."""
    if not c.conv:
        return [c]
    parts = split_channels(c.mac_cin(hw.pi), c.cout, c.weight_bits, hw, c.shift)
    return [_part(c, a, b) for a, b in parts] if len(parts) > 1 else [c]


def _notebook_call(c: CallWork, hw: HardwareConfig) -> CallWork:
    """`c` as CoDeNet's artifact notebook runs it (ModelParams.full_calls): its `conv()` wrapper passes
    skip1 = skip3 = deform = 0 to every call, so the engine always runs the 1×1 (IC → OC; on a
    depthwise-only layer an IC → IC one) and then the depthwise 3×3 (deformable addressing off)."""
    if c.copy or not (c.conv or c.spatial):
        return c
    changes: dict[str, Any] = {}
    if not c.conv:  # a depthwise-only call (cin == cout) gets a cin → cin 1×1
        changes.update(conv=True, weight_bits=hw.weight_bits)
    if c.spatial != "dw":
        changes.update(spatial="dw", spatial_weight_bits=c.spatial_weight_bits or hw.weight_bits)
    return replace(c, **changes) if changes else c


@dataclass
class StageCycles:
    """One call's dataflow stages as cycles.h counts them: each stage's own cycles, and of those the
    phases that read no input (stall: stop the stages before) or write no output (starve: idle the
    stages after); LOAD before the dataflow region and the words it reads."""

    cycles: dict[str, int]
    stall: dict[str, int]
    starve: dict[str, int]
    load: int
    load_words: int

    def coupled(self) -> dict[str, int]:
        """Each running stage's cycles plus the stalls after it and the starves before it (cycles.h,
        "Coupling")."""
        order = list(self.cycles)
        return {s: self.cycles[s] + sum(self.stall[t] for t in order[i + 1:]) + sum(self.starve[t] for t in order[:i])
                for i, s in enumerate(order) if self.cycles[s]}


def engine_stage_cycles(c: CallWork, hw: HardwareConfig, passes: int) -> StageCycles:
    """The dataflow stages of one call as the loops of hls_templates/engine are written: every stage one
    flat II = 1 loop (the unit's header names the trip count), every m_axi burst its latency. The
    counting C-simulation is the reference (tests/test_cycles.py)."""
    lat = hw.axi_latency_cycles
    nci, nco = _cdiv(c.cin, hw.pi), _cdiv(c.cout, hw.po)
    # grids: the input buffer, the MAC array's (after PREPOOL), the spatial unit's input (after POOL),
    # its output (STRIDE2 halves it), the written one (UPSAMPLE doubles it)
    pix_in, pix1, pixp, pix2 = c.in_h * c.in_w, c.h1 * c.w1, c.hp * c.wp, c.h2 * c.w2
    in_lanes = hw.bus_bits // c.in_store_bits
    in_wpp = _cdiv(c.in_cbuf, in_lanes)
    out_wpp = _cdiv(c.out_cbuf, hw.bus_bits // hw.act_bits)
    cyc = dict.fromkeys(ENGINE_STAGES, 0)
    stall = dict.fromkeys(ENGINE_STAGES, 0)
    starve = dict.fromkeys(ENGINE_STAGES, 0)
    # io.h read_words: one burst over the input region; DEFORM: per input row a burst of the dilation
    # words (rows of the h1 grid), then a burst of the row's pixel words
    if c.spatial == "deform":
        d_wpp = _cdiv(c.d_cbuf, hw.bus_bits // c.d_store_bits)
        cyc["read"] = c.in_h * (lat + c.in_w * in_wpp) + c.h1 * (lat + c.w1 * d_wpp)
        starve["read"] = c.h1 * (lat + c.w1 * d_wpp)  # the dilation bursts: no pixel words meanwhile
    else:
        cyc["read"] = lat + pix_in * in_wpp
    # io.h unpack_view / pack_view: per pixel max(words in, steps out), one pixel of ping-pong latency
    un_steps = sum(_unpack_steps(c.in_cbuf, c.in_rot, c.cin, c.in_stride, in_lanes, hw.pi, k) for k in range(nci))
    cyc["unpack"] = nci + (pix_in + 1) * max(in_wpp, un_steps)
    out_lanes = hw.bus_bits // hw.act_bits
    pk_steps = sum(_pack_steps(c.out_cbuf, c.out_rot, c.cout, c.out_stride, out_lanes, hw.po, w) for w in range(out_wpp))
    cyc["pack"] = out_wpp + (pix2 + 1) * max(nco, pk_steps)
    # io.h write_words: one burst over the written region; prefetch_old: the old words first, one burst
    # through its own port, when the view leaves lanes of a word to other tensors. UPSAMPLE: the odd
    # output rows repeat the even ones from the writer's row buffer, reading no stream
    out_n = c.h3 * c.w3 * out_wpp
    cyc["write"] = lat + out_n if out_n else 0
    cyc["prefetch"] = 0 if _out_full(c) or not out_n else lat + out_n
    if c.upsample:
        stall["write"] = c.h2 * c.w3 * out_wpp

    def quiet_rows(h: int, w: int, nct: int) -> int:  # maxpool.h: trips of the rows that close no window
        hp = h // 2 * 2
        return (hp // 2 + h - hp) * w * nct

    nci_mac = _cdiv(c.mac_cin(hw.pi), hw.pi)  # input vectors per MAC pixel: k·k·nci for a k×k window
    if c.kernel:  # window.h: read an input row (nothing out), then emit the output rows it completes
        cyc["window"] = pix_in * nci + pix1 * nci_mac
        starve["window"] = pix_in * nci
        stall["window"] = pix1 * nci_mac
    else:
        cyc["prepool"] = pix_in * nci  # the 2×2 max-pool before the array, or its pass-through
    if c.prepool:
        starve["prepool"] = quiet_rows(c.in_h, c.in_w, nci)
    if c.pool:
        starve["pool"] = quiet_rows(c.h1, c.w1, nco)
    if c.shift:  # the first row is read with nothing out, the flush row out with nothing read
        starve["shift"] = stall["shift"] = c.wp * nco
    cyc["mac"] = pix1 * (nco * passes * nci_mac if c.conv else max(nci, nco))
    cyc["requant"] = pix1 * nco
    cyc["pool"] = pix1 * nco  # pool, or its pass-through
    cyc["shift"] = ((c.hp + 1) * c.wp if c.shift else pixp) * nco  # Dirac5 with its flush row, or passing
    if c.spatial == "dw":  # one input vector per cycle, the outputs lag by a row and a pixel
        cyc["spatial"] = (pixp + c.wp + 1) * nco
        starve["spatial"] = stall["spatial"] = (c.wp + 1) * nco
    elif c.spatial == "deform":  # a tap column (3 taps) per cycle; the ring fills R rows and R pixels first
        reach = c.max_dilation
        cyc["spatial"] = (reach * c.wp + reach + 3 * pixp) * nco
        starve["spatial"] = (reach * c.wp + reach) * nco
        stall["spatial"] = 3 * (reach * c.wp + reach) * nco
    else:
        cyc["spatial"] = pixp * nco
    # before the dataflow region (LOAD): the weights and constants, each a burst
    load = load_words = 0
    if c.conv:
        # conv1x1.h pack_weight_tiles: pw rows of mac_bits-wide slices per output channel; per row, a
        # tile per step when a word holds a tile, else a word per step while the row has words and
        # the tiles they complete
        rows = c.cout * weight_slices(c.weight_bits, hw.weight_bits, hw.mac_bits)
        lanes_w = hw.bus_bits // hw.mac_bits
        wpr = _cdiv(c.mac_cin(hw.pi), lanes_w)
        steps = nci_mac if lanes_w >= hw.pi else wpr + nci_mac - ((wpr - 1) * lanes_w // hw.pi + 1)
        load += lat + rows * steps + lat + 2 * c.cout
        load_words += rows * wpr + 2 * c.cout
    if c.spatial:
        lanes_sp = hw.bus_bits // hw.weight_bits
        load += lat + 9 * _cdiv(c.cout, lanes_sp) * _cdiv(lanes_sp, hw.po) + lat + 2 * c.cout
        load_words += 9 * _cdiv(c.cout, lanes_sp) + 2 * c.cout
    return StageCycles(cyc, stall, starve, load, load_words)


def _out_full(c: CallWork) -> bool:
    """io.h out_full: the output view covers every channel, so the writer need not read the words back
    (it writes whole pixels either way)."""
    return c.out_stride == 1 and c.cout >= c.out_cbuf


def _unpack_steps(cbuf: int, rot: int, n: int, stride: int, lanes: int, p: int, k: int) -> int:
    """Words vector k of a view touches (io.h vplan): its run from the first channel, and from word 0
    again when it wraps past cbuf."""
    sh = stride.bit_length() - 1

    def phys(j: int) -> int:
        q = rot + (j << sh)
        return q - cbuf if q >= cbuf else q

    j0, jl = k * p, min(k * p + p, n) - 1
    p0, pl = phys(j0), phys(jl)
    if pl >= p0:
        return pl // lanes - p0 // lanes + 1
    pe = p0 + (((cbuf - 1 - p0) >> sh) << sh)
    return pe // lanes - p0 // lanes + 1 + pl // lanes + 1


def _pack_steps(cbuf: int, rot: int, n: int, stride: int, lanes: int, p: int, w: int) -> int:
    """Vectors output word w of a view needs (io.h wplan), at least one step."""
    sh = stride.bit_length() - 1
    m = (1 << sh) - 1
    span = (n - 1) * stride + 1 if n > 0 else 0
    e1, e2 = min(rot + span, cbuf), max(rot + span - cbuf, 0)
    lo, hi = w * lanes, min(w * lanes + lanes, cbuf)
    steps = 0
    a, b = max(lo, rot), min(hi, e1)
    if a < b:
        j0, j1 = (a - rot + m) >> sh, (b - 1 - rot) >> sh
        steps += j1 // p - j0 // p + 1 if j0 <= j1 else 0
    b = min(hi, e2)
    if lo < b:
        j0, j1 = (lo + cbuf - rot + m) >> sh, (b - 1 + cbuf - rot) >> sh
        steps += j1 // p - j0 // p + 1 if j0 <= j1 else 0
    return max(steps, 1)


def call_estimate(c: CallWork, hw: HardwareConfig, p: ModelParams, ddr_gbps: float) -> CallEstimate:
    parts = call_parts(c, p)
    if len(parts) > 1:  # the host splits the layer into several calls
        return _merge([call_estimate(x, hw, p, ddr_gbps) for x in parts])
    if p.microarch == "codenet" and p.full_calls:
        c = _notebook_call(c, hw)
    f = hw.clock_mhz * 1e6
    bus_bytes = hw.bus_bits // 8
    nci, nco = _cdiv(c.mac_cin(hw.pi), hw.pi), _cdiv(c.cout, hw.po)
    taps = 4 if c.prepool else 1
    pix1, pixp, pix2, pix3 = c.h1 * c.w1, c.hp * c.wp, c.h2 * c.w2, c.h3 * c.w3
    in_words, _ = view_words(c.in_cbuf, c.in_rot, c.cin, hw.bus_bits // c.in_store_bits, c.in_stride)
    out_words, out_partial = view_words(c.out_cbuf, c.out_rot, c.cout, hw.bus_bits // hw.act_bits, c.out_stride)
    d_words = _cdiv(c.d_cbuf, hw.bus_bits // c.d_store_bits) if c.spatial == "deform" else 0
    passes = _passes(c, hw, p)
    if p.microarch not in MICROARCHS:
        raise ValueError(f"microarch={p.microarch!r} must be one of {MICROARCHS}")
    codenet = p.microarch == "codenet"
    lanes = p.spatial_lanes or hw.po
    ncs = _cdiv(c.cout, lanes)
    tap_cycles = _cdiv(9, p.spatial_taps_per_cycle)

    cyc: dict[str, int] = {}
    if p.microarch == "engine":
        return _engine_call_estimate(c, hw, passes, ddr_gbps)
    if codenet:
        # CoDeNet's HLS (hqjenny/CoDeNet hls/top/conv.h): the 1×1 stage, per pixel, reads its nci input
        # words, then for each of nco output tiles runs nci pipelined cycles and drains the pipeline;
        # a call without a 1×1 passes the pixel's words through. The line buffer costs its words +
        # linebuf_pixel_cycles per input pixel; the 3×3 window its vectors + window_pixel_cycles per
        # output pixel. A skipped 3×3 still streams through the line buffer.
        cyc["read"] = pix1 * (in_words + d_words)
        cyc["mac"] = pix1 * (nci + nco * (nci * passes * p.mac_ii + p.tile_drain_cycles) if c.conv else nci)
        cyc["write"] = pix3 * max(nco, out_words)
        cyc["spatial"] = pixp * (nco + p.linebuf_pixel_cycles)
        if c.spatial:
            cyc["spatial"] += pix2 * (ncs * tap_cycles + p.window_pixel_cycles)
    else:
        cyc["read"] = pix1 * max(taps * in_words + d_words, nci)  # "ideal": a word or a vector per cycle
        cyc["mac"] = pix1 * (nci * nco * passes * p.mac_ii if c.conv else max(nci, nco))
        cyc["write"] = pix3 * max(nco, out_words)
        cyc["pool"] = pix1 * nco  # pass-through when POOL is off: one vector per cycle either way
        if c.spatial:
            # The spatial unit: `spatial_lanes` channels × `spatial_taps_per_cycle` taps per cycle per
            # output pixel (CoDeNet: 16 × 9, one output vector per cycle; our C++: one tap per cycle),
            # and it ingests one PO-vector of its input per cycle (a stride-2 DW reads 4× its outputs).
            cyc["spatial"] = max(pixp * nco, pix2 * ncs * tap_cycles)
        else:
            cyc["spatial"] = (pix2 + (c.w2 if c.shift else 0)) * nco
    compute_cycles = max(cyc.values())

    lat_cycles = int(math.ceil(p.ddr_latency_ns * 1e-9 * f))
    fill = p.pipeline_depth_cycles + lat_cycles
    if c.pool:
        fill += c.w1 * nco  # the first 2×2 window completes one conv row later
    if c.shift:
        fill += c.w2 * nco  # output row r leaves while input row r + 1 arrives
    if c.spatial:  # the 3×3 window needs one more row (deform: R more rows, the line buffer's depth)
        fill += (hw_max_dilation(hw) if c.spatial == "deform" else 1) * c.wp * nco

    read_bytes = ((c.in_h * c.in_w if c.prepool else pix1) * in_words + pix1 * d_words) * bus_bytes
    write_bytes = pix3 * out_words * bus_bytes
    rmw_bytes = pix3 * out_partial * bus_bytes
    bw = ddr_gbps * 1e9
    compute_s = compute_cycles / f
    memory_s = (read_bytes + write_bytes + rmw_bytes) / bw

    w_words = 0
    # weights per word: packed to the bus (ours), or one PI-vector per word (CoDeNet's k1 port)
    lanes_w = hw.pi if codenet else hw.bus_bits // hw.weight_bits
    if c.conv:
        if codenet:  # wide weights stored as hw-width slices, a PI-vector per word
            slices, lanes_c = _cdiv(c.weight_bits, hw.weight_bits), hw.pi
        else:  # ours: mac_bits-wide slices packed to the bus (layout.pack_weight_slices)
            slices = weight_slices(c.weight_bits, hw.weight_bits, hw.mac_bits)
            lanes_c = hw.bus_bits // hw.mac_bits
        w_words += c.cout * _cdiv(c.mac_cin(hw.pi), lanes_c) * slices + 2 * c.cout  # weights + requant constants
    if c.spatial:  # [9][C] tap-major + requant constants
        w_words += 9 * _cdiv(c.cout, lanes_w) * _cdiv(c.spatial_weight_bits, hw.weight_bits) + 2 * c.cout
    weight_bytes = w_words * bus_bytes
    weight_s = lat_cycles / f + max(w_words / f, weight_bytes / bw) if w_words else 0.0
    desc_s = (lat_cycles + descriptor.WORDS) / f  # the descriptor burst
    overhead_s = desc_s + fill / f
    dataflow_s = max(compute_s, memory_s) + fill / f
    engine_s = desc_s + (max(weight_s, dataflow_s) if p.overlap_weight_load else weight_s + dataflow_s)
    bound = "compute" if compute_s >= memory_s + weight_s else "memory"
    return CallEstimate(
        name=c.name, flags=c.flags, layers=list(c.layers), macs=c.macs, passes=passes, cycles=cyc,
        compute_cycles=compute_cycles, fill_cycles=fill, read_bytes=read_bytes, write_bytes=write_bytes,
        rmw_bytes=rmw_bytes, weight_bytes=weight_bytes, compute_s=compute_s, memory_s=memory_s,
        weight_s=weight_s, overhead_s=overhead_s, engine_s=engine_s, time_s=engine_s, bound=bound,
        ops=2 * c.macs, dram_bytes=read_bytes + write_bytes + rmw_bytes + weight_bytes + DESC_BYTES)


def _engine_call_estimate(c: CallWork, hw: HardwareConfig, passes: int, ddr_gbps: float) -> CallEstimate:
    """One call of the engine as written: DESC + LOAD + the slowest stage + the others' fill (cycles.h)."""
    f = hw.clock_mhz * 1e6
    st = engine_stage_cycles(c, hw, passes)
    cyc, load, load_words = st.cycles, st.load, st.load_words
    desc = hw.axi_latency_cycles + descriptor.WORDS
    coupled = st.coupled()
    slowest = max(coupled, key=lambda k: coupled[k])
    fill = sum(STAGE_FILL[k] for k in ENGINE_STAGES if k != slowest and cyc[k])
    compute = coupled[slowest]
    bus_bytes = hw.bus_bits // 8
    # DDR traffic as io.h moves it: whole input pixels; whole output pixels, read back first unless
    # the view covers every channel (the writer's read-modify-write)
    out_wpp = _cdiv(c.out_cbuf, hw.bus_bits // hw.act_bits)
    read_bytes = c.in_h * c.in_w * _cdiv(c.in_cbuf, hw.bus_bits // c.in_store_bits) * bus_bytes
    write_bytes = c.h3 * c.w3 * out_wpp * bus_bytes
    rmw_bytes = 0 if _out_full(c) else write_bytes
    weight_bytes = load_words * bus_bytes
    engine_s = (desc + load + compute + fill) / f
    memory_s = (read_bytes + write_bytes + rmw_bytes) / (ddr_gbps * 1e9)
    return CallEstimate(
        name=c.name, flags=c.flags, layers=list(c.layers), macs=c.macs, passes=passes, cycles=cyc,
        compute_cycles=compute, fill_cycles=fill, read_bytes=read_bytes, write_bytes=write_bytes,
        rmw_bytes=rmw_bytes, weight_bytes=weight_bytes, compute_s=compute / f, memory_s=memory_s,
        weight_s=load / f, overhead_s=(desc + fill) / f,
        engine_s=engine_s, time_s=engine_s, bound="memory" if memory_s > engine_s else "compute",
        ops=2 * c.macs, dram_bytes=read_bytes + write_bytes + rmw_bytes + weight_bytes + DESC_BYTES)


# ---- host work ----------------------------------------------------------------------------------

def _host_stem_s(c: CallWork, p: ModelParams) -> float:
    """The first call (conv on the 8-bit image, pool, shift) in NumPy on the ARM, one frame."""
    t = c.macs / (p.arm_gmacs * 1e9)
    if c.shift:  # five strided slice copies of the (pooled) map
        t += c.h2 * c.w2 * c.cout / (p.arm_copy_gbps * 1e9)
    return t


def _copy_s(nbytes: float, p: ModelParams) -> float:
    return nbytes / (p.arm_copy_gbps * 1e9)


def per_layer_wall_s(engine_s: float, starts: int, p: ModelParams) -> float:
    """Host wall time of a layer under per-layer control: its argument writes and ap_start, then done-polls
    until the engine has finished (the engine runs under the polling); a split layer is started per part."""
    t_r = p.reg_read_ms * 1e-3
    reads = max(1, math.ceil(engine_s / starts / t_r))  # the poll read returns "done" once the call has ended
    return starts * ((p.per_layer_arg_writes * p.reg_write_ms + p.start_overhead_ms) * 1e-3 + reads * t_r)


def _pool_only(c: CallWork) -> bool:
    return (c.pool or c.prepool) and not (c.conv or c.spatial or c.copy or c.shift)


def _head_call(hk: HostWork, weight_bits: int, act_bits: int) -> CallWork:
    """A detection head's last 1×1 (`conv1x1_head`) as an engine call (ModelParams.head_on_engine)."""
    h, w, cin = hk.in_shape
    cout = hk.out_elems // (h * w)
    return CallWork(name=hk.name, layers=(hk.name,), conv=True, prepool=False, pool=False, shift=False, in_h=h,
                    in_w=w, in_cbuf=cin, in_rot=0, cin=cin, in_store_bits=act_bits, in_value_bits=act_bits,
                    out_cbuf=cout, out_rot=0, cout=cout, out_bits=act_bits, weight_bits=weight_bits, macs=hk.macs,
                    reads_graph_input=False)


# ---- a batch --------------------------------------------------------------------------------------

def engine_calls(wl: Workload, hw: HardwareConfig, p: ModelParams, shuffle_on_cpu: bool = False) -> list[CallWork]:
    """What runs on the engine for one frame, in order. With the shuffle on the ARM, the ARM builds every
    concat output, so the scheduler's pass-through copies do not run; without a pool unit, a call that
    only pools runs on the ARM; with head_on_engine, the heads' last 1×1 convs are engine calls."""
    work = [c for c in wl.calls if not (shuffle_on_cpu and c.copy) and (p.pool_unit or not _pool_only(c))]
    if p.microarch == "engine":  # the code as written: the scheduler's calls, wide convs split (the presets: as published)
        work = [part for c in work for part in engine_parts(c, hw)]
    heads = [hk for hk in wl.host if p.head_on_engine and hk.decode]
    return work + [_head_call(hk, hw.weight_bits, wl.act_bits) for hk in heads]


def estimate(graph: Graph | Workload, hw: HardwareConfig, batch: int = 1, control: str = "descriptor",
             shuffle_on_cpu: bool = False, params: ModelParams | None = None,
             board: Board | None = None, engine_cycles: list[int] | None = None) -> FrameEstimate:
    """Latency and steady-state FPS of `batch` frames of `graph` on the engine `hw`.

    `graph` may be a precomputed `Workload` (what `explore` passes to its workers).
    `engine_cycles`, one per engine call in schedule order, replaces the modeled engine time of each
    call by a measured or cycle-counted one (hls/cycles.py); host and control stay modeled.
    """
    if control not in CONTROL_STYLES:
        raise ValueError(f"control={control!r} must be one of {CONTROL_STYLES}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} must be a positive integer")
    p = params or ModelParams()
    board = board or hw.board_info()
    wl = graph if isinstance(graph, Workload) else workload(graph, hw.act_bits)
    if p.window_on_host:
        wl = windows_on_host(wl)
    ddr = p.ddr_gbps or board.ddr_gbps
    n = batch
    t_r, t_w = p.reg_read_ms * 1e-3, p.reg_write_ms * 1e-3
    ovh = p.arm_op_overhead_ms * 1e-3

    work = engine_calls(wl, hw, p, shuffle_on_cpu)
    host_pools = [] if p.pool_unit else [c for c in wl.calls if not (shuffle_on_cpu and c.copy) and _pool_only(c)]
    heads = [hk for hk in wl.host if p.head_on_engine and hk.decode]
    calls = [call_estimate(c, hw, p, ddr) for c in work]
    if engine_cycles is not None:
        if len(engine_cycles) != len(calls):
            raise ValueError(f"{len(engine_cycles)} counted calls for {len(calls)} engine calls")
        for ce, cyc in zip(calls, engine_cycles):
            ce.engine_s = ce.time_s = cyc / (hw.clock_mhz * 1e6)
            ce.weight_s = 0.0  # inside the count
    host: dict[str, float] = {}
    stem = None
    pre = [hk for hk in wl.host if hk.pre]
    for c in host_pools:  # one pass over the input; the output copied into the engine's buffer
        out_bytes = c.h3 * c.w3 * c.cout * c.out_bits / 8
        host[c.name] = _copy_s(n * c.in_h * c.in_w * c.in_cbuf * c.in_store_bits / 8, p) + ovh
        if not c.reads_host_output:
            host[c.name] += _copy_s(n * out_bytes, p)
    if pre:  # host ops before the engine (CoDeNet's stem conv2d on the ARM)
        for hk in pre:
            host[hk.name] = n * hk.macs / (p.arm_gmacs * 1e9) + ovh
        # their packed output (or that of a host pool after them) is copied into the engine's buffer
        into = next((c.h3 * c.w3 * c.cout * c.out_bits / 8 for c in host_pools if c.reads_host_output),
                    pre[-1].out_elems * wl.act_bits / 8)
        host["input"] = _copy_s(n * into, p) + ovh
    elif p.stem_on_cpu and work and work[0].reads_graph_input:
        stem = calls.pop(0)
        stem.on_host = True
        host["stem"] = n * _host_stem_s(work[0], p) + ovh * 6
        host["input"] = _copy_s(n * (stem.write_bytes + stem.rmw_bytes), p) + ovh  # stem output → engine buffer
    else:
        h, w, ch = wl.image_shape
        host["input"] = _copy_s(n * h * w * ch, p) + ovh
    # read back: the engine tensors the host ops need, or only the heads' outputs when they ran on the engine
    others = [hk for hk in wl.host if not hk.pre and hk not in heads]
    back = (wl.engine_output_bytes if others or not heads else 0) + sum(hk.out_elems * wl.act_bits / 8 for hk in heads)
    host["output"] = _copy_s(n * back, p) + ovh
    for hwk in wl.host:
        if hwk.pre:
            continue
        host[hwk.name] = (0 if hwk in heads else n * hwk.macs / (p.arm_gmacs * 1e9)) + ovh
        if hwk.decode:  # CenterNet decode: 3×3 peak test per output element
            host[hwk.name] += n * hwk.out_elems * p.arm_decode_ops_per_elem / (p.arm_gmacs * 1e9)
    if shuffle_on_cpu:
        host["shuffle"] = sum(_copy_s(n * hh * ww * cc * bits / 8, p) + ovh for _, hh, ww, cc, bits in wl.concats)

    # Engine time of each call for the whole batch: frame-major (each descriptor loads its
    # weights) or layer-major (weights loaded once per batch).
    # The engine's figure (cycle-counted, or its model) gives every port a word per cycle; the board's
    # DDR bandwidth caps a call that moves more than that (modeled, never counted).
    def call_batch_s(ce: CallEstimate) -> float:
        frame_s = max(ce.engine_s, ce.memory_s)
        if p.reuse_weights_in_batch:
            return ce.weight_s + n * (frame_s - ce.weight_s)
        return n * frame_s

    engine_batch = sum(call_batch_s(ce) for ce in calls)
    if control == "per_layer":
        control_s = 0.0
        for ce in calls:
            e = call_batch_s(ce)
            wall = per_layer_wall_s(e, ce.starts, p)
            ce.control_s = (wall - e) / n
            ce.time_s = wall / n
            ce.bound = "control" if wall - e > e else ce.bound
            control_s += wall - e
        latency = engine_batch + control_s + sum(host.values())
        period = latency  # the host thread drives every call: nothing overlaps
    else:
        # One start per engine segment: the whole table, or — with the shuffle on the ARM — the
        # calls between two concatenations (the host must copy before the next block reads).
        segments = 1 + (len(wl.concats) if shuffle_on_cpu else 0)
        control_s = segments * (p.table_start_writes * t_w + p.start_overhead_ms * 1e-3 + t_r)
        per_call_ctrl = control_s / max(1, len(calls)) / n
        for ce in calls:
            ce.control_s = per_call_ctrl
            ce.time_s = call_batch_s(ce) / n + per_call_ctrl
        host_work = sum(host.values())
        latency = engine_batch + control_s + host_work
        if shuffle_on_cpu:  # the engine waits for every copy: no overlap
            period = latency
        else:  # steady state: the host's work on batches k−1 and k+1 hides under the engine's batch k
            period = control_s + max(engine_batch, host_work)
    if stem is not None:
        stem.time_s = host["stem"] / n
        stem.engine_s = 0.0
        stem.bound = "host"
        calls.insert(0, stem)
    return FrameEstimate(hw=hw, board=board, params=p, batch=n, control=control, shuffle_on_cpu=shuffle_on_cpu,
                         calls=calls, engine_s=engine_batch, control_s=control_s, host_s=host, latency_s=latency,
                         period_s=period, macs=wl.macs,
                         meta={"workload": wl.name, "engine_cycles": engine_cycles is not None})
