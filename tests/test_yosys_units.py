"""The primitive cost rules (codesign/estimate/primitives.py) against Yosys `synth_xilinx -family xcup`.

Verilog equivalents of the engine's units (tests/yosys/units.py) are synthesised in two Yosys runs
(fabric units with -nodsp, DSP units without) and each rule must match within the tolerance the
primitives module states: DSP exactly, LUT within 25 % of Yosys's count (±4 below 16 LUTs), FF of
fabric units within 5 %.
Skipped when `yosys` is not on PATH (.ci/run installs it).
"""
from __future__ import annotations

import pytest

from codesign.estimate import primitives as prim
from codesign.hw.config import HardwareConfig

from .yosys import units

ACC_BITS = HardwareConfig().acc_bits  # the engine's accumulator width (config.h ACC_BITS)
LUT_REL, LUT_ABS_BELOW, LUT_ABS = 0.25, 16, 4
FF_REL = 0.05

needs_yosys = pytest.mark.skipif(units.yosys_path() is None, reason="yosys not on PATH (apt-get install yosys)")


def lut_ok(yosys: int, model: int) -> bool:
    if max(yosys, model) < LUT_ABS_BELOW:
        return abs(yosys - model) <= LUT_ABS
    return abs(yosys - model) <= LUT_REL * yosys  # relative to Yosys, the reference


def ff_ok(yosys: int, model: int) -> bool:
    return abs(yosys - model) <= FF_REL * yosys


# name: (Verilog unit, primitive cost); the slice products the MAC array binds to fabric
# (mac_bits 4 and 2), a PI = 32 tree of 9-bit products, an accumulator with the passes' three
# shifts, one lane of PI = 8.
def fabric_units() -> dict[str, tuple[units.Unit, prim.Cost]]:
    mb, pi = 4, 8
    shifts = prim.pass_shifts(mb)
    tree_in = prim.adder_tree_out_bits(pi, 2 * mb + 1)
    return {
        "slice_mb4": (units.multiplier_v("slice_mb4", 5, 4, a_signed=True, b_signed=False),
                      prim.multiplier(5, 4, a_signed=True, b_signed=False, impl="fabric")),
        "slice_mb2": (units.multiplier_v("slice_mb2", 3, 2, a_signed=True, b_signed=False),
                      prim.multiplier(3, 2, a_signed=True, b_signed=False, impl="fabric")),
        "tree32x9": (units.adder_tree_v("tree32x9", 32, 9), prim.adder_tree(32, 9)),
        "acc": (units.accumulator_v("acc", ACC_BITS, tree_in, n_shifts=shifts, step=mb),
                prim.accumulator(ACC_BITS, in_bits=tree_in, n_shifts=shifts, shift_step=mb)),
        "lane8": (units.mac_lane_v("lane8", pi, mb, ACC_BITS, n_shifts=shifts), prim.mac_lane(pi, mb, ACC_BITS)),
    }


def dsp_units() -> dict[str, tuple[units.Unit, prim.Cost]]:
    def mul(name: str, a: int, b: int, sa: bool, sb: bool) -> tuple[units.Unit, prim.Cost]:
        return (units.multiplier_v(name, a, b, a_signed=sa, b_signed=sb),
                prim.multiplier(a, b, a_signed=sa, b_signed=sb, impl="dsp"))

    return {
        "mul8s8u": mul("mul8s8u", 8, 8, True, False),  # the MAC slice at mac_bits 8 (9 × 8)
        "mul27s18s": mul("mul27s18s", 27, 18, True, True),  # one DSP48E2's full width
        "mul18u18u": mul("mul18u18u", 18, 18, False, False),  # unsigned: one bit too wide
        "mul32s32s": mul("mul32s32s", 32, 32, True, True),
        "rq_a4": (units.requant_v("rq_a4", ACC_BITS, 24, 4), prim.requant_lane(ACC_BITS, 24, out_bits=4)),
        "rq_a8": (units.requant_v("rq_a8", ACC_BITS, 24, 8), prim.requant_lane(ACC_BITS, 24, out_bits=8)),
    }


@pytest.fixture(scope="module")
def fabric() -> dict[str, tuple[dict[str, int], prim.Cost, units.Unit]]:
    us = fabric_units()
    cells = units.synthesize({k: u for k, (u, _) in us.items()}, dsp=False)
    return {k: (units.totals(cells[k]), c, u) for k, (u, c) in us.items()}


@pytest.fixture(scope="module")
def dsp() -> dict[str, tuple[dict[str, int], prim.Cost, units.Unit]]:
    us = dsp_units()
    # Yosys's own decomposition of acc × M (ACC_BITS × 24) for the comparison below; the
    # requant Verilog writes the product as the cascade Vivado builds
    us["mul_acc_m"] = (units.multiplier_v("mul_acc_m", ACC_BITS, 24, a_signed=True, b_signed=True),
                       prim.multiplier(ACC_BITS, 24, a_signed=True, b_signed=True, impl="dsp"))
    cells = units.synthesize({k: u for k, (u, _) in us.items()}, dsp=True)
    return {k: (units.totals(cells[k]), c, u) for k, (u, c) in us.items()}


@needs_yosys
@pytest.mark.parametrize("name", list(fabric_units()))
def test_fabric_unit_matches_yosys(fabric, name):
    got, model, unit = fabric[name]
    assert got["dsp"] == 0 == model.dsp
    assert lut_ok(got["lut"], model.lut), f"{name}: Yosys {got['lut']} LUT, model {model.lut}"
    ff = got["ff"] - unit.input_ff
    assert ff_ok(ff, model.ff), f"{name}: Yosys {ff} FF beyond its inputs, model {model.ff}"


@needs_yosys
@pytest.mark.parametrize("name", list(dsp_units()))
def test_dsp_unit_matches_yosys(dsp, name):
    got, model, _ = dsp[name]
    assert got["dsp"] == model.dsp, f"{name}: Yosys {got['dsp']} DSP48E2, model {model.dsp}"
    if model.dsp == 1:  # a single DSP: nothing in the fabric (32 × 32's partials: Yosys's own adders)
        assert lut_ok(got["lut"], model.lut)
    if name.startswith("rq_"):
        assert lut_ok(got["lut"], model.lut), f"{name}: Yosys {got['lut']} LUT, model {model.lut}"


@needs_yosys
def test_yosys_generic_split_is_never_better(dsp):
    """Yosys's mul2dsp splits the wider operand on the A port and takes more DSPs for acc × M
    than the cascade the model (and requant.h's depth) assumes; never fewer."""
    got, model, _ = dsp["mul_acc_m"]
    assert got["dsp"] >= model.dsp == dsp["rq_a4"][0]["dsp"]


@needs_yosys
def test_tolerance_separates_rules(fabric):
    """The check can fail: each fabric unit's LUT rule scaled by 1.5 or 0.6 falls outside it."""
    for name, (got, model, _) in fabric.items():
        if max(got["lut"], model.lut) < LUT_ABS_BELOW:
            continue
        for k in (1.5, 0.6):
            assert not lut_ok(got["lut"], round(model.lut * k)), name


# --- the rules themselves (no Yosys) ----------------------------------------------------------


def test_dsp_count_follows_the_dsp48e2_ports():
    """27 × 18 two's complement per DSP48E2 (UG579); an unsigned operand needs a sign bit."""
    def n(a, b, sa=True, sb=True):
        return prim.dsp48e2_count(a, b, a_signed=sa, b_signed=sb)

    assert n(27, 18) == n(18, 27) == 1
    assert n(28, 18) == n(27, 19) == 2
    assert n(26, 17, False, False) == 1 and n(27, 17, False, False) == 2
    assert n(8, 8, True, False) == 1  # one per 8 × 8 product (DESIGN.md §8)
    assert n(32, 32) == 4  # four per 32 × 32
    assert n(ACC_BITS, 24) == 2  # the requant product: 24 bits on A, the accumulator in two B slices


def test_mac_lane_is_its_parts():
    pi, mb = 16, 4
    prod = prim.multiplier(mb + 1, mb, a_signed=True, b_signed=False, impl=prim.slice_impl(mb))
    lane = prim.mac_lane(pi, mb, ACC_BITS)
    assert lane.dsp == 0 and lane.lut > pi * prod.lut + prim.adder_tree(pi, 2 * mb + 1).lut
    assert prim.mac_lane(pi, 8, ACC_BITS).dsp == pi  # impl=dsp at mac_bits 8: one DSP per product
    assert prim.adder_tree_out_bits(32, 9) == 14


def test_rules_reject_bad_arguments():
    with pytest.raises(ValueError):
        prim.multiplier(4, 4, a_signed=True, b_signed=True, impl="auto")
    with pytest.raises(ValueError):
        prim.adder_tree(0, 8)
