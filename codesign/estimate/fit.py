"""Code-derived resources: what the rendered engine declares (codesign/hls/inventory.py), priced.

- Memories: each bank of `depth` × `width` bits maps, as Vivado infers it from Vitis HLS's default
  (auto) storage, to registers when it is one word deep, to LUTRAM when it is at most
  `LUTRAM_MAX_DEPTH` deep (RAM64M: 4 LUTs hold 3 bits × 64 words, simple dual port), else to
  BRAM18s by the aspect ratios of UG573 (a BRAM18 is 16K×1 … 1K×18, 512×36 in simple dual
  port), counted in BRAM36 (two BRAM18). Streams of at most `SRL_MAX_DEPTH` words are shift
  registers (one SRLC32E LUT per bit per 32 words), deeper ones BRAM like an array.
- m_axi adapters: their read and write data buffers, as memories of burst length × outstanding
  words of the port's width (the INTERFACE pragmas of the rendered top.cpp).
- Arithmetic: PO MAC lanes of PI slice products (codesign/estimate/primitives.py, checked with
  Yosys), PO requant lanes, and the spatial unit's 9 × PO tap products and PO requant lanes; with
  hardware `half_even`, the round-half-to-even tie logic of each of those requant lanes; with
  `signed_acts`, the MAC array's and the taps' activation operands one bit wider and signed.

Control logic, address arithmetic, muxes of the views and the AXI interconnect are not in it: the
table says so (`not modeled`), and the Vitis synthesis report is the check (hls/reports.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..hw.config import HardwareConfig
from . import primitives

LUTRAM_MAX_DEPTH = 64
SRL_MAX_DEPTH = 64
# BRAM18 width by depth in simple dual port (UG573): depth ≤ 512 → 36 bits … ≤ 16K → 1 bit
_BRAM18_ASPECTS = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
RESOURCES = ("lut", "ff", "bram36", "dsp")
RESOURCE_NAMES = {"lut": "LUT", "ff": "FF", "bram36": "BRAM36", "dsp": "DSP"}
# The share of every resource a design may take: the rest is routing headroom (placement and
# routing of a design past ~85 % LUT or BRAM rarely closes timing on these parts).
DEFAULT_MARGIN = 0.85


def bram18_count(depth: int, width: int) -> int:
    """BRAM18s for one depth × width memory (cascaded in depth past 16K words)."""
    for max_depth, bits in _BRAM18_ASPECTS:
        if depth <= max_depth:
            return math.ceil(width / bits)
    return math.ceil(depth / 16384) * width


def memory_cost(depth: int, width: int, banks: int = 1, stream: bool = False) -> dict[str, float]:
    """LUT / FF / BRAM36 of `banks` memories of depth × width bits (rules in the module docstring)."""
    if depth <= 1:
        return {"ff": banks * width}
    if stream and depth <= SRL_MAX_DEPTH:
        return {"lut": banks * width * math.ceil(depth / 32), "ff": banks * width}
    if not stream and depth <= LUTRAM_MAX_DEPTH:
        return {"lut": banks * 4 * math.ceil(width / 3)}
    return {"bram36": banks * bram18_count(depth, width) / 2}


@dataclass(frozen=True)
class Memory:
    """One on-chip memory as declared: `banks` separate memories of `depth` × `width` bits each."""

    file: str  # the header that declares it (the unit)
    var: str
    stream: bool  # a dataflow FIFO (depth = its STREAM depth)
    width: int
    depth: int
    banks: int

    @property
    def name(self) -> str:
        return f"{self.file}:{self.var}"


@dataclass(frozen=True)
class AxiAdapter:
    """One m_axi bundle's adapter: its read and write data buffers (bits wide, bursts × outstanding deep)."""

    bundle: str
    bits: int
    read_depth: int  # words buffered for reads (0: the port only writes)
    write_depth: int


@dataclass
class FitRow:
    unit: str
    what: str
    cost: dict[str, float]


@dataclass
class CodeDerivedResources:
    """Per-unit rows and totals of one rendered engine on its board."""

    hw: HardwareConfig
    rows: list[FitRow] = field(default_factory=list)

    def totals(self) -> dict[str, float]:
        return {r: sum(row.cost.get(r, 0) for row in self.rows) for r in RESOURCES}

    def capacity(self) -> dict[str, int]:
        b = self.hw.board_info()
        return {"lut": b.lut, "ff": b.ff, "bram36": b.bram36, "dsp": b.dsp}

    def utilization(self) -> dict[str, float]:
        cap, tot = self.capacity(), self.totals()
        return {r: tot[r] / cap[r] if cap[r] else math.inf for r in RESOURCES}

    def by_unit(self) -> dict[str, dict[str, float]]:
        units: dict[str, dict[str, float]] = {}
        for row in self.rows:
            u = units.setdefault(row.unit, dict.fromkeys(RESOURCES, 0.0))
            for r, v in row.cost.items():
                u[r] += v
        return units

    def top_consumers(self, resource: str, n: int = 3) -> list[tuple[str, float]]:
        ranked = sorted(((f"{row.unit}:{row.what}", row.cost.get(resource, 0)) for row in self.rows),
                        key=lambda x: -x[1])
        return [x for x in ranked[:n] if x[1] > 0]

    def violations(self, margin: float = DEFAULT_MARGIN) -> list[str]:
        """One line per resource over margin × the board's count, with its largest consumers."""
        cap, tot = self.capacity(), self.totals()
        return [f"{RESOURCE_NAMES[r]} {tot[r]:,.0f} > {cap[r]:,} x {margin:g}: "
                + ", ".join(f"{n} {v:,.0f}" for n, v in self.top_consumers(r))
                for r in RESOURCES if tot[r] > margin * cap[r]]

    def summary(self) -> str:
        util = self.utilization()
        return ", ".join(f"{RESOURCE_NAMES[r]} {util[r]:.0%}" for r in RESOURCES) + f" of {self.hw.board}"

    def to_dict(self) -> dict:
        cap, tot, util = self.capacity(), self.totals(), self.utilization()
        return {r: {"used": tot[r], "available": cap[r], "util": util[r]} for r in RESOURCES}


def code_derived(hw: HardwareConfig, memories: list[Memory], adapters: list[AxiAdapter]) -> CodeDerivedResources:
    """Price what the rendered engine declares (hls/inventory.py) on hw's board."""
    out = CodeDerivedResources(hw)
    for m in memories:
        out.rows.append(FitRow(m.file.removesuffix(".h"), f"{m.var} {m.banks}x{m.depth}x{m.width}b"
                               + (" fifo" if m.stream else ""), memory_cost(m.depth, m.width, m.banks, m.stream)))
    for a in adapters:
        cost: dict[str, float] = {}
        for depth in (a.read_depth, a.write_depth):
            if depth:
                for r, v in memory_cost(depth, a.bits, stream=True).items():
                    cost[r] = cost.get(r, 0) + v
        out.rows.append(FitRow("m_axi", f"{a.bundle} {a.bits}b rd {a.read_depth} wr {a.write_depth}", cost))

    def add(unit: str, what: str, c: primitives.Cost) -> None:
        out.rows.append(FitRow(unit, what, {"lut": c.lut, "ff": c.ff, "dsp": c.dsp}))

    lane = primitives.mac_lane(hw.pi, hw.mac_bits, hw.acc_bits, weight_bits=hw.weight_bits,
                               signed_acts=hw.signed_acts)
    add("conv1x1", f"{hw.po} MAC lanes x {hw.pi} slice products", lane * hw.po)
    rq = primitives.requant_lane(hw.acc_bits, out_bits=hw.act_bits)
    add("requant", f"{hw.po} requant lanes", rq * hw.po)
    ties = primitives.requant_ties()  # the tie logic of round-half-to-even, only where built
    if hw.half_even:
        add("requant", f"{hw.po} half-even tie lanes", ties * hw.po)
    if hw.spatial_unit:
        # spatial.h act_value: with signed_acts the tap's activation operand is A + 1 bits, signed
        taps = primitives.multiplier(hw.weight_bits, hw.act_bits + int(hw.signed_acts), a_signed=True,
                                     b_signed=hw.signed_acts,
                                     impl=primitives.slice_impl(max(hw.weight_bits, hw.act_bits)))
        add("spatial", f"9 x {hw.po} tap products", taps * (9 * hw.po))
        add("spatial", f"{hw.po} requant lanes", rq * hw.po)
        if hw.half_even:
            add("spatial", f"{hw.po} half-even tie lanes", ties * hw.po)
    return out
