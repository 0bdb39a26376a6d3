"""LUT / FF / BRAM36 / DSP estimate of the engine for a `HardwareConfig` (docs/estimator.md).

Built bottom-up from the engine's structure (hls_templates/engine, docs/engine.md):

- MAC array, PI × PO multipliers with one adder tree per output lane: in LUTs when both operands
  are ≤ 4 bits, else in DSP48E2 slices (two 8-bit multiplies per DSP when they share the
  activation, Xilinx WP486);
- requantization per output lane (DSP multiplier, or Synetgy-style thresholds);
- memories: the weight buffer (MAXT × PI·PO·W bits, read one tile per cycle), the pool and shift
  line buffers (MAX_LINE values, PO lanes), requant constants, stream FIFOs — mapped to BRAM36
  by the best aspect ratio, or to LUTRAM when shallow;
- per-lane datapath (reader unpack/prepool, pool, shift, writer pack), address arithmetic DSPs,
  and fixed infrastructure (AXI masters, interconnect, control).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..hw.config import Board, HardwareConfig
from .params import ModelParams, ResourceParams

RESOURCE_KINDS = ("lut", "ff", "bram36", "uram", "dsp")
URAM_DEPTH, URAM_WIDTH = 4096, 72  # UltraRAM (URAM288) geometry, UG573
# BRAM36 aspect ratios (depth, width) and BRAM18 ones (counted as half a BRAM36); UG573.
_BRAM36 = ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2), (32768, 1))
_BRAM18 = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def memory_cost(depth: int, width: int, rp: ResourceParams) -> tuple[float, float]:
    """(BRAM36, LUT) of a depth × width memory read at one word per cycle.

    Shallow (≤ 64 entries) or small memories become LUTRAM (one LUT6 per bit per 64 entries);
    others take the BRAM36/BRAM18 arrangement that needs fewest blocks.
    """
    if depth <= 0 or width <= 0:
        return 0.0, 0.0
    if depth <= 64 or depth * width <= rp.lutram_max_bits:
        return 0.0, float(width * _cdiv(depth, 64))
    best = min(_cdiv(depth, d) * _cdiv(width, w) for d, w in _BRAM36)
    best18 = min(_cdiv(depth, d) * _cdiv(width, w) for d, w in _BRAM18) / 2
    return float(min(best, best18)), 0.0


def _adder_tree_bits(n_inputs: int, in_bits: int) -> int:
    """Total sum bits of a balanced adder tree of n inputs (one LUT per bit, UG574)."""
    bits, n, width = 0, n_inputs, in_bits
    while n > 1:
        width += 1
        bits += (n // 2) * width
        n = n - n // 2
    return bits


@dataclass
class ResourceEstimate:
    hw: HardwareConfig
    board: Board
    lut: int
    ff: int
    bram36: float
    dsp: int
    uram: int = 0
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)

    def capacity(self) -> dict[str, int]:
        return {"lut": self.board.lut, "ff": self.board.ff, "bram36": self.board.bram36, "uram": self.board.uram,
                "dsp": self.board.dsp}

    def used(self) -> dict[str, float]:
        return {"lut": self.lut, "ff": self.ff, "bram36": self.bram36, "uram": self.uram, "dsp": self.dsp}

    def utilization(self) -> dict[str, float]:
        cap = self.capacity()
        return {k: v / cap[k] if cap[k] else (0.0 if not v else math.inf) for k, v in self.used().items()}

    def violations(self, margin: float = 1.0) -> list[str]:
        """Resources over `margin` × the board's capacity (1.0: must fit; 0.85: routable)."""
        cap = self.capacity()
        return [f"{k} {v:,.0f} > {margin:.0%} of {cap[k]:,}" for k, v in self.used().items() if v > margin * cap[k]]

    def fits(self, margin: float = 1.0) -> bool:
        return not self.violations(margin)

    def to_dict(self) -> dict[str, Any]:
        return {"hw": self.hw.to_dict(), "board": self.board.name, "used": self.used(), "capacity": self.capacity(),
                "utilization": self.utilization(), "fits": self.fits(), "breakdown": self.breakdown}

    def summary(self) -> str:
        u = self.utilization()
        return (f"{self.hw.pi}x{self.hw.po} W{self.hw.weight_bits} on {self.board.name}: "
                f"LUT {self.lut:,} ({u['lut']:.0%}), FF {self.ff:,} ({u['ff']:.0%}), "
                f"BRAM36 {self.bram36:g} ({u['bram36']:.0%}), "
                + (f"URAM {self.uram} ({u['uram']:.0%}), " if self.board.uram else "")
                + f"DSP {self.dsp} ({u['dsp']:.0%})"
                f"{'' if self.fits() else '  DOES NOT FIT: ' + '; '.join(self.violations())}")


def resources(hw: HardwareConfig, params: ModelParams | None = None, rparams: ResourceParams | None = None,
              board: Board | None = None) -> ResourceEstimate:
    p = params or ModelParams()
    rp = rparams or ResourceParams()
    board = board or hw.board_info()
    pi, po, a = hw.pi, hw.po, hw.act_bits
    # the multipliers' operands: mac_bits-wide slices (the array runs wider values in passes)
    ab = p.mac_in_bits or hw.mac_bits
    wb = min(hw.weight_bits, p.mac_in_bits or hw.mac_bits)
    nmac = pi * po
    parts: dict[str, dict[str, float]] = {}

    def add(name: str, lut: float = 0, ff: float = 0, bram36: float = 0, dsp: float = 0, uram: float = 0) -> None:
        d = parts.setdefault(name, dict.fromkeys(RESOURCE_KINDS, 0.0))
        d["lut"] += lut
        d["ff"] += ff
        d["bram36"] += bram36
        d["uram"] += uram
        d["dsp"] += dsp

    # MAC array + accumulators
    tree_bits = _adder_tree_bits(pi, wb + ab)
    if wb <= rp.lut_mac_max_bits and ab <= rp.lut_mac_max_bits:
        mul = wb * ab * rp.lut_per_pp_bit
        add("mac_array", lut=nmac * mul + po * tree_bits,
            ff=nmac * (wb + ab + rp.ff_per_mac_extra) + po * tree_bits)
    else:
        per_dsp = 2 if max(wb, ab) <= rp.dsp_mac_pack_bits else 1
        add("mac_array", lut=nmac * rp.lut_per_dsp_mac, ff=nmac * rp.ff_per_dsp_mac, dsp=_cdiv(nmac, per_dsp))
    add("mac_array", lut=po * hw.acc_bits, ff=po * hw.acc_bits)  # accumulators

    # requantization
    ch_rows = _cdiv(hw.max_channels, po)
    if p.requant == "threshold":
        nthr = (1 << a) - 1
        b, l = memory_cost(ch_rows, po * nthr * hw.acc_bits, rp)
        add("requant", lut=po * nthr * hw.acc_bits + l, ff=po * (nthr + a), bram36=b)
    else:
        b, l = memory_cost(ch_rows, po * (24 + 48), rp)  # M (24-bit) and B (48-bit) per lane
        add("requant", lut=po * rp.lut_per_requant_lane + l, ff=po * 80, bram36=b,
            dsp=po * rp.dsp_per_requant_lane)

    # weight buffer: one PI×PO tile per cycle; in UltraRAM where the part has it (deep and wide)
    depth = hw.weight_tiles
    urams = _cdiv(depth, URAM_DEPTH) * _cdiv(nmac * wb, URAM_WIDTH) * rp.weight_buffers
    if board.uram and depth > 64 and urams <= board.uram:
        add("weight_buffer", uram=urams)
    else:
        b, l = memory_cost(depth, nmac * wb, rp)
        add("weight_buffer", lut=l * rp.weight_buffers, bram36=b * rp.weight_buffers)

    # line buffers: pool (one row of W/2 windows) and shift (two rows), PO lanes wide
    if p.pool_unit:
        b, l = memory_cost(_cdiv(hw.max_line, po), po * a, rp)
        add("line_buffers", lut=3 * l, bram36=3 * b)

    # spatial unit (dwconv3x3 / deform3x3): lanes × taps multipliers, a requant per lane, and a
    # (2R + 1)-row line buffer of the widest W × C (docs/engine.md, max_dilation)
    if p.spatial_unit and hw.spatial_unit:  # the model preset has one, and this engine is built with it
        from ..hw.plan import hw_max_dilation
        lanes = p.spatial_lanes or po
        nmul = lanes * p.spatial_taps_per_cycle
        if wb <= rp.lut_mac_max_bits and ab <= rp.lut_mac_max_bits:
            add("spatial_unit", lut=nmul * wb * ab * rp.lut_per_pp_bit, ff=nmul * (wb + ab + rp.ff_per_mac_extra))
        else:
            per_dsp = 2 if max(wb, ab) <= rp.dsp_mac_pack_bits else 1
            add("spatial_unit", lut=nmul * rp.lut_per_dsp_mac, ff=nmul * rp.ff_per_dsp_mac, dsp=_cdiv(nmul, per_dsp))
        tb = _adder_tree_bits(max(2, p.spatial_taps_per_cycle), wb + ab)
        add("spatial_unit", lut=lanes * (tb + rp.lut_per_requant_lane), ff=lanes * (tb + 80),
            dsp=lanes * rp.dsp_per_requant_lane)
        rows = 2 * hw_max_dilation(hw) + 1
        b, l = memory_cost(_cdiv(hw.max_line, lanes), lanes * a, rp)
        add("spatial_line_buffer", lut=rows * l, bram36=rows * b)
        # window: every tap read per cycle picks its row out of the 2R + 1 (one mux per bit), registered
        window_bits = p.spatial_taps_per_cycle * lanes * a
        add("spatial_line_buffer", lut=window_bits * math.ceil(rows * rp.lut_per_row_mux_input), ff=window_bits)

    # stream FIFOs between the dataflow stages: SRL32 shift registers when shallow
    in_depth, out_depth = 2 * _cdiv(hw.max_channels, pi), 2 * _cdiv(hw.max_channels, po)
    for depth, width, count in ((in_depth, pi * ab, 1), (out_depth, po * a, 3)):
        if depth <= 64:
            add("fifos", lut=count * width * _cdiv(depth, 32), ff=count * width)
        else:
            b, l = memory_cost(depth, width, rp)
            add("fifos", lut=count * l, bram36=count * b)

    # per-lane datapath: reader (unpack, prepool max), pool, shift muxes, writer packing
    add("datapath", lut=po * a * rp.lut_per_lane_bit + pi * ab * rp.lut_per_in_lane_bit,
        ff=po * a * rp.ff_per_lane_bit + pi * ab * rp.ff_per_in_lane_bit)
    add("address_arith", dsp=rp.dsp_addr_base + rp.dsp_addr_per_lane * po)
    # the per-master figures are for a 128-bit port; data paths and buffers scale with the bus
    bus = hw.bus_bits / 128
    add("infrastructure", lut=rp.lut_base + rp.axi_masters * rp.lut_per_axi_master * bus,
        ff=rp.ff_base + rp.axi_masters * rp.ff_per_axi_master * bus,
        bram36=rp.bram_base + rp.axi_masters * rp.bram_per_axi_master * bus)

    tot = {k: sum(d[k] for d in parts.values()) for k in RESOURCE_KINDS}
    return ResourceEstimate(hw=hw, board=board, lut=int(round(tot["lut"])), ff=int(round(tot["ff"])),
                            bram36=math.ceil(tot["bram36"] * 2) / 2, dsp=int(math.ceil(tot["dsp"])),
                            uram=int(math.ceil(tot["uram"])),
                            breakdown={k: {r: round(v, 1) for r, v in d.items()} for k, d in parts.items()})
