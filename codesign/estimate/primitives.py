"""Fabric cost of the engine's arithmetic primitives on UltraScale+ (LUT, FF, DSP48E2, CARRY8).

Per-unit rules for the code-derived resource model (DESIGN.md §8): each function returns the
`Cost` of one unit as Vitis HLS builds it from hls_templates/engine (conv1x1.h `slice_mul` and
the MAC loop, requant.h `requant`), one pipeline stage with its result registered. The model
that enumerates the units of a rendered engine multiplies these out.

How the rules are checked (tests/test_yosys_units.py, docs/estimator.md "Primitive costs,
checked with Yosys"): Verilog equivalents of the units (tests/yosys/units.py) are synthesised by
Yosys `synth_xilinx -family xcup -nowidelut` (fabric units with `-nodsp`, as BIND_OP
impl=fabric) and must agree with these rules within

    DSP48E2: exactly;
    LUT: within 25 % of Yosys's count, or ±4 LUTs where both are under 16;
    FF (fabric units only, the unit's own registers): within 5 %.

FFs of DSP units are not compared: Yosys and Vivado absorb different registers into the DSP's
A/B/M/P stages. CARRY8 is reported, not compared (Yosys 0.23 maps CARRY4 on xcup).

LUT counting: one LUT per logic function, as Yosys counts. Vivado can pair two functions of at
most 5 shared inputs in one LUT6_2 (UG574): an adder bit's carry-chain DI operand (O5) beside
its sum LUT (O6), which Yosys places in its own LUT. Vivado's count can therefore be lower, by
up to half for the accumulator and the fabric multipliers; the Vitis synthesis report is the
check that settles it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

LUT_INPUTS = 6  # LUT6 (UG574)
CARRY8_BITS = 8  # bits per CARRY8 (UG574)
# DSP48E2 multiplier (UG579): 27 × 18 two's complement; an unsigned slice of a wider operand
# therefore carries 26 / 17 bits, and cascaded partials meet at 17-bit offsets (PCIN >> 17).
DSP_A_BITS, DSP_B_BITS = 27, 18
REQUANT_WIDE_BITS = 48  # requant.h rq_wide_t: the DSP48E2 post-adder width
REQUANT_SHIFT_BITS = 6  # the run-time shift S ∈ 1..46 (descriptor), a 6-bit value
ENGINE_IN_BITS = 8  # engine.h IN_BITS: the widest input value (the 8-bit image)


@dataclass(frozen=True)
class Cost:
    """Fabric resources of one unit. `ff` counts the registers the unit adds (its pipeline
    registers and registered result), not the registers that feed it."""

    lut: int = 0
    ff: int = 0
    dsp: int = 0
    carry8: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.lut + other.lut, self.ff + other.ff, self.dsp + other.dsp, self.carry8 + other.carry8)

    def __mul__(self, n: int) -> Cost:
        return Cost(self.lut * n, self.ff * n, self.dsp * n, self.carry8 * n)

    __rmul__ = __mul__


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _clog2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def _carry8(bits: int) -> int:
    return _cdiv(bits, CARRY8_BITS)


def adder(bits: int) -> Cost:
    """A two-input adder of `bits` result bits, unregistered: one LUT (the propagate XOR) and one
    carry-chain bit per result bit (UG574; Yosys arith_map does the same)."""
    return Cost(lut=bits, carry8=_carry8(bits))


def mux_luts(n: int) -> int:
    """LUT6s of one bit of an n-way multiplexer: a LUT6 is a 4:1 mux, each further LUT of a tree
    takes three more candidates (UG574)."""
    return 0 if n <= 1 else _cdiv(n - 1, 3)


# --- multipliers ---------------------------------------------------------------------------


def _dsp_slices(bits: int, port: int) -> int:
    """Slices of a signed operand of `bits` on a DSP port of `port` bits: the top slice signed
    (port bits), the others unsigned (port − 1 bits)."""
    return 1 + _cdiv(max(0, bits - port), port - 1)


def _signed_bits(bits: int, signed: bool) -> int:
    # the DSP48E2 multiplies two's complement operands: an unsigned value needs a 0 sign bit
    return bits if signed else bits + 1


def dsp_layout(a_bits: int, b_bits: int, *, a_signed: bool, b_signed: bool) -> tuple[int, int]:
    """(slices on the 27-bit A port, slices on the 18-bit B port) of an a × b product, in the
    orientation that needs the fewest DSP48E2s (Vivado's wide-multiplier mapping, UG579)."""
    sa, sb = _signed_bits(a_bits, a_signed), _signed_bits(b_bits, b_signed)
    options = [(_dsp_slices(x, DSP_A_BITS), _dsp_slices(y, DSP_B_BITS)) for x, y in ((sa, sb), (sb, sa))]
    return min(options, key=lambda o: (o[0] * o[1], o[0]))


def dsp48e2_count(a_bits: int, b_bits: int, *, a_signed: bool, b_signed: bool) -> int:
    """DSP48E2s of one a × b product: one per pair of slices (dsp_layout). One per 8 × 8, two per
    32 × 24 (the requant product), four per 32 × 32. Vitis HLS puts one product in a DSP; packing
    two 8-bit products into one (WP486) is not done unless the code is written for it."""
    na, nb = dsp_layout(a_bits, b_bits, a_signed=a_signed, b_signed=b_signed)
    return na * nb


def _fabric_multiplier_luts(a_bits: int, b_bits: int, a_signed: bool, b_signed: bool) -> int:
    if a_bits + b_bits <= LUT_INPUTS:
        return a_bits + b_bits  # each product bit is a function of at most 6 inputs: one LUT6
    # A mixed-sign product is a signed product with the unsigned operand widened by a 0 bit
    # (Verilog / Yosys; Vitis's mul_Ns_Mns cores alike).
    if a_signed != b_signed:
        a_bits, b_bits = _signed_bits(a_bits, a_signed), _signed_bits(b_bits, b_signed)
    # array multiplier: rows of the narrower operand's bits, each row after the first one
    # carry-chain adder of (wider + 1) bits whose LUTs also form the AND partial products
    wide, narrow = max(a_bits, b_bits), min(a_bits, b_bits)
    return (narrow - 1) * (wide + 1)


def multiplier(a_bits: int, b_bits: int, *, a_signed: bool, b_signed: bool, impl: str) -> Cost:
    """One registered a × b product (full width a + b), as BIND_OP impl = "fabric" or "dsp".

    fabric: LUTs of an array multiplier (`_fabric_multiplier_luts`), the product registered in
    fabric FFs. dsp: dsp48e2_count DSPs, registers inside them (AREG/MREG/PREG); the partials of
    a product split along one operand meet in the cascade (PCIN >> 17, no LUTs), one split
    along both needs a fabric adder of the product width per extra row of cascades.
    """
    if a_bits < 1 or b_bits < 1:
        raise ValueError(f"operand widths must be >= 1, got {a_bits} x {b_bits}")
    y = a_bits + b_bits
    if impl == "fabric":
        lut = _fabric_multiplier_luts(a_bits, b_bits, a_signed, b_signed)
        rows = min(a_bits, b_bits) - 1
        return Cost(lut=lut, ff=y, carry8=rows * _carry8(max(a_bits, b_bits) + 1) if lut > y else 0)
    if impl == "dsp":
        na, nb = dsp_layout(a_bits, b_bits, a_signed=a_signed, b_signed=b_signed)
        extra = adder(y) * (min(na, nb) - 1)
        return Cost(dsp=na * nb) + extra
    raise ValueError(f"impl must be 'fabric' or 'dsp', got {impl!r}")


def slice_impl(mac_bits: int) -> str:
    """The MAC array's binding of its slice products: conv1x1.h `slice_mul` (fabric for MB <= 4)."""
    return "fabric" if mac_bits <= 4 else "dsp"


# --- sums ------------------------------------------------------------------------------------


def adder_tree_out_bits(n_inputs: int, in_bits: int) -> int:
    """Width of the sum of n signed in_bits values: in_bits + ceil(log2 n)."""
    return in_bits + _clog2(n_inputs)


def adder_tree(n_inputs: int, in_bits: int, *, levels_per_stage: int = 2) -> Cost:
    """A balanced tree summing n signed in_bits values (the PI slice products of one lane).

    Level k adds pairs of (in_bits + k − 1)-bit values into in_bits + k bits (an odd one passes
    on); adder() per pair. Registered every `levels_per_stage` levels (conv1x1.h mac_depth: two
    levels per cycle at 250 MHz) and at the sum.
    """
    if n_inputs < 1:
        raise ValueError("an adder tree needs at least one input")
    total = Cost()
    n, bits, level = n_inputs, in_bits, 0
    while n > 1:
        level += 1
        bits += 1
        pairs, n = n // 2, _cdiv(n, 2)
        total += adder(bits) * pairs
        if n > 1 and level % levels_per_stage == 0:
            total += Cost(ff=n * bits)
    return total + Cost(ff=bits)


def pass_shifts(mac_bits: int, *, in_bits: int = ENGINE_IN_BITS, weight_bits: int = 8) -> int:
    """Distinct shifts (multiples of MB) of a lane's partial sum over the passes: sx + sw with
    sx < ceil(in_bits / MB), sw < ceil(weight_bits / MB) (conv1x1.h, "Passes")."""
    return _cdiv(in_bits, mac_bits) + _cdiv(weight_bits, mac_bits) - 1


def accumulator(bits: int, *, in_bits: int | None = None, n_shifts: int = 1, shift_step: int = 4) -> Cost:
    """One output lane's accumulator: acc <= (first ? 0 : acc) + (s << step·shs), wrapping at
    `bits` (conv1x1.h), registered.

    The adder (one LUT per bit) plus the cleared feedback operand, which drives the carry
    chain's DI and takes its own LUT per bit (Vivado can share it as the adder LUT's O5). The
    n-way shift of s folds into the adder's LUT while the mux's inputs and select still fit
    (n + ceil(log2 n) + 1 <= 6, i.e. n <= 3); beyond, each bit s reaches gets a mux.
    """
    cost = adder(bits) + Cost(lut=bits, ff=bits)
    sel = _clog2(n_shifts)
    if n_shifts > 1 and n_shifts + sel + 1 > LUT_INPUTS:
        reach = (in_bits if in_bits is not None else bits) + shift_step * (n_shifts - 1)
        cost += Cost(lut=min(bits, reach) * mux_luts(n_shifts))
    return cost


def mac_lane(pi: int, mac_bits: int, acc_bits: int, *, in_bits: int = ENGINE_IN_BITS, weight_bits: int = 8,
             levels_per_stage: int = 2, signed_acts: bool = False) -> Cost:
    """One output lane of the PI × PO array: PI slice products ((MB+1)-bit signed weight slice ×
    MB-bit unsigned activation slice, slice_impl; with `signed_acts` the activation slice is
    (MB+1)-bit signed too: conv1x1.h slice_x_t), the adder tree of their 2·MB+1-bit (+1) products
    (its sum registered before the accumulate), and the accumulator with the passes' shifts.
    Not included: the weight-slice select per product and the activation slices shared by all
    lanes (the model that enumerates the array counts those)."""
    mb = mac_bits
    xb = mb + int(signed_acts)  # a signed activation's top slice: one more bit, signed
    prod = multiplier(mb + 1, xb, a_signed=True, b_signed=signed_acts, impl=slice_impl(mb))
    tree = adder_tree(pi, mb + 1 + xb, levels_per_stage=levels_per_stage)
    acc = accumulator(acc_bits, in_bits=adder_tree_out_bits(pi, mb + 1 + xb),
                      n_shifts=pass_shifts(mb, in_bits=in_bits, weight_bits=weight_bits), shift_step=mb)
    return prod * pi + tree + acc


# --- requantization -----------------------------------------------------------------------


def barrel_shifter(bits: int, shift_bits: int) -> Cost:
    """A run-time shift of a `bits`-wide value by a shift_bits-bit amount: a logarithmic shifter
    of 4:1 stages, one LUT6 per bit per stage (UG574)."""
    return Cost(lut=bits * _cdiv(shift_bits, 2))


def clamp(in_bits: int, out_bits: int) -> Cost:
    """clamp(t, 0, act_max) of a signed in_bits value to out_bits (run-time act_max): OR of the
    bits above out_bits (five per LUT6 besides the chain input), a comparator of the low bits
    against act_max and the output mux, each one LUT per bit."""
    return Cost(lut=_cdiv(in_bits - out_bits, LUT_INPUTS - 1) + 2 * out_bits + 1, carry8=_carry8(out_bits))


def requant_lane(acc_bits: int, mult_bits: int = 24, *, out_bits: int, wide_bits: int = REQUANT_WIDE_BITS) -> Cost:
    """One lane of requant.h `requant`: clamp((acc·M + B + 2^(S−1)) >> S, 0, act_max).

    acc × M on DSP48E2s (multiplier impl="dsp"); + B and + 2^(S−1) as two wide_bits adders in
    fabric, the run-time 2^(S−1) decoded one LUT per bit (Vitis may fold + B into the last DSP's
    post-adder, W = C; Yosys does not); the arithmetic shift by S; the clamp. FF: the wide sum
    and the shift and act_max carried beside it, then the out_bits result.
    """
    prod = multiplier(acc_bits, mult_bits, a_signed=True, b_signed=True, impl="dsp")
    adds = adder(wide_bits) * 2 + Cost(lut=wide_bits)
    regs = Cost(ff=wide_bits + REQUANT_SHIFT_BITS + 2 * out_bits)
    return prod + adds + barrel_shifter(wide_bits, REQUANT_SHIFT_BITS) + clamp(wide_bits, out_bits) + regs


def requant_ties(wide_bits: int = REQUANT_WIDE_BITS) -> Cost:
    """One lane's round-half-to-even tie logic (requant.h, built with hardware `half_even`): the
    low-S-bits mask decoded from the run-time S one LUT per bit (as the 2^(S−1) of `requant_lane`;
    the same for every lane, so Vitis may share it), the masked sum's zero detect (three bit/mask
    pairs per LUT6, then an AND tree of LUT6s), and one LUT gating bit 0 of the result (a tie
    whose rounded-up result is odd clears it: r − 1). FF: the tie bit carried beside the shift."""
    pairs = _cdiv(wide_bits, LUT_INPUTS // 2)
    tree, n = 0, pairs
    while n > 1:
        n = _cdiv(n, LUT_INPUTS)
        tree += n
    return Cost(lut=wide_bits + pairs + tree + 1, ff=1)
