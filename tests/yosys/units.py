"""Verilog equivalents of the engine's arithmetic units, and their synthesis with Yosys.

Each generator returns one self-contained module named `name`, its widths fixed by the Python
arguments, with every input and output registered, so that the unit is one pipeline stage as
Vitis HLS builds it (hls_templates/engine/conv1x1.h, requant.h) and Yosys cannot optimise across
its ports. `synthesize` maps a set of such modules in one Yosys run (reading the cell library
takes ~3 s a run) as side-by-side tops of one unflattened design, and returns the cells of each.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

#: synth_xilinx options used for every unit. `-nowidelut`: no MUXF7/F8/F9 for functions of more
#: than 6 inputs; with them ABC 0.23 maps the 5×4 slice product to 46 LUTs + 32 MUXF (28 LUTs
#: without), far from how Vivado maps arithmetic (LUT + carry chain).
SYNTH_OPTIONS = "-family xcup -noiopad -noclkbuf -nowidelut"


class Unit(NamedTuple):
    """A unit's Verilog module and the bits of its input registers (the previous stage's
    outputs, which the primitives' FF figures leave out)."""

    verilog: str
    input_ff: int


def yosys_path() -> str | None:
    return shutil.which("yosys")


def _operand(name: str, signed: bool, other_signed: bool) -> str:
    """A Verilog operand as Vitis sees it: a mixed-sign product widens the unsigned side by a 0."""
    if signed:
        return f"$signed({name})"
    return f"$signed({{1'b0, {name}}})" if other_signed else name


def multiplier_v(name: str, a_bits: int, b_bits: int, *, a_signed: bool, b_signed: bool) -> Unit:
    """y = a * b, full width, operands and product registered."""
    y = a_bits + b_bits
    prod = f"{_operand('ar', a_signed, b_signed)} * {_operand('br', b_signed, a_signed)}"
    return Unit(f"""module {name}(input clk, input [{a_bits - 1}:0] a, input [{b_bits - 1}:0] b,
  output reg [{y - 1}:0] y);
  reg [{a_bits - 1}:0] ar;
  reg [{b_bits - 1}:0] br;
  always @(posedge clk) begin ar <= a; br <= b; y <= {prod}; end
endmodule
""", a_bits + b_bits)


def _tree(n: int, in_bits: int, src: str, levels_per_stage: int) -> tuple[list[str], str, int]:
    """Balanced signed adder tree over `src[0..n)` (in_bits each): Verilog lines, result, width.

    A level adds neighbours pairwise (an odd last one passes on), widening by one bit; a
    register follows every `levels_per_stage` levels except the last.
    """
    lines: list[str] = []
    terms = [f"{src}{i}" for i in range(n)]
    width, level = in_bits, 0
    while len(terms) > 1:
        level += 1
        width += 1
        nxt = []
        for j in range(0, len(terms), 2):
            w = f"t{level}_{j // 2}"
            rhs = f"{terms[j]} + {terms[j + 1]}" if j + 1 < len(terms) else terms[j]
            staged = levels_per_stage and level % levels_per_stage == 0 and len(terms) > 2
            if staged:
                lines.append(f"  reg signed [{width - 1}:0] {w};")
                lines.append(f"  always @(posedge clk) {w} <= {rhs};")
            else:
                lines.append(f"  wire signed [{width - 1}:0] {w} = {rhs};")
            nxt.append(w)
        terms = nxt
    return lines, terms[0], width


def adder_tree_v(name: str, n_inputs: int, in_bits: int, *, levels_per_stage: int = 2) -> Unit:
    """Sum of n signed in_bits values; inputs, every `levels_per_stage` levels and sum registered."""
    ins = [f"  reg signed [{in_bits - 1}:0] x{i};" for i in range(n_inputs)]
    load = " ".join(f"x{i} <= xin[{i * in_bits + in_bits - 1}:{i * in_bits}];" for i in range(n_inputs))
    body, res, width = _tree(n_inputs, in_bits, "x", levels_per_stage)
    return Unit("\n".join([
        f"module {name}(input clk, input [{n_inputs * in_bits - 1}:0] xin, output reg signed [{width - 1}:0] y);",
        *ins, f"  always @(posedge clk) begin {load} end", *body,
        f"  always @(posedge clk) y <= {res};", "endmodule", ""]), n_inputs * in_bits)


def _acc_lines(acc_bits: int, s: str, s_bits: int, n_shifts: int, step: int) -> list[str]:
    """acc <= (first ? 0 : acc) + (s << step*shs), as conv1x1.h's accumulate (wraps at acc_bits)."""
    cases = " ".join(f"{k}: sh = {{{{{acc_bits}{{{s}[{s_bits - 1}]}}}}, {s}}} << {k * step};"
                     for k in range(n_shifts))
    return [
        f"  reg signed [{acc_bits - 1}:0] acc;",
        f"  reg [{acc_bits - 1}:0] sh;",
        f"  always @* case (shs) {cases} default: sh = {acc_bits}'bx; endcase",
        f"  always @(posedge clk) acc <= (first ? {acc_bits}'d0 : acc) + sh;",
    ]


def _sel_bits(n: int) -> int:
    return max(1, math.ceil(math.log2(n)))


def accumulator_v(name: str, acc_bits: int, in_bits: int, *, n_shifts: int = 1, step: int = 4) -> Unit:
    """One output lane's accumulator; its input, shift select and clear registered."""
    sb = _sel_bits(n_shifts)
    return Unit("\n".join([
        f"module {name}(input clk, input [{in_bits - 1}:0] sin, input [{sb - 1}:0] shsin, input firstin,",
        f"  output [{acc_bits - 1}:0] y);",
        f"  reg [{in_bits - 1}:0] s; reg [{sb - 1}:0] shs; reg first;",
        "  always @(posedge clk) begin s <= sin; shs <= shsin; first <= firstin; end",
        *_acc_lines(acc_bits, "s", in_bits, n_shifts, step),
        "  assign y = acc;", "endmodule", ""]), in_bits + (sb if n_shifts > 1 else 0) + 1)


def _wide_product(y: str, a: str, a_bits: int, b: str, b_bits: int) -> str:
    """y = a * b (both signed) cut the way Vivado cascades DSP48E2s (UG579, wide multiplier): the
    narrower operand whole on the 27-bit A port, the wider one in 17-bit unsigned slices on the
    18-bit B port (its top slice signed), partials added at 17-bit offsets (PCIN >> 17).
    Yosys's own mul2dsp splits the wider operand on the A port first and takes 4 DSPs for
    32 × 24 where this takes 2; written out, each slice is one DSP for Yosys too."""
    if a_bits < b_bits:
        a, a_bits, b, b_bits = b, b_bits, a, a_bits
    yb = a_bits + b_bits
    if a_bits <= 18:
        return f"  wire signed [{yb - 1}:0] {y} = {a} * {b};"
    lines, terms, lo = [], [], 0
    while lo < a_bits:
        top = a_bits - lo <= 18
        hi = a_bits if top else lo + 17
        sl = f"$signed({a}[{hi - 1}:{lo}])" if top else f"$signed({{1'b0, {a}[{hi - 1}:{lo}]}})"
        lines.append(f"  wire signed [{yb - 1}:0] {y}_{lo} = {sl} * {b};")
        terms.append(f"({y}_{lo} <<< {lo})")
        lo = hi
    lines.append(f"  wire signed [{yb - 1}:0] {y} = {' + '.join(terms)};")
    return "\n".join(lines)


def requant_v(name: str, acc_bits: int, mult_bits: int, out_bits: int, wide_bits: int = 48) -> Unit:
    """requant.h `requant`: clamp((acc*M + B + 2^(S-1)) >>> S, 0, act_max), S run-time (1..46)."""
    w = wide_bits
    return Unit(f"""module {name}(input clk, input [{acc_bits - 1}:0] accin, input [{mult_bits - 1}:0] min,
  input [{w - 1}:0] bin, input [5:0] sin, input [{out_bits - 1}:0] amaxin, output reg [{out_bits - 1}:0] y);
  reg signed [{acc_bits - 1}:0] acc; reg signed [{mult_bits - 1}:0] m; reg signed [{w - 1}:0] b;
  reg [5:0] s; reg [{out_bits - 1}:0] amax;
  always @(posedge clk) begin acc <= accin; m <= min; b <= bin; s <= sin; amax <= amaxin; end
{_wide_product("p", "acc", acc_bits, "m", mult_bits)}
  wire signed [{w - 1}:0] t0 = p;
  wire signed [{w - 1}:0] t1 = t0 + b + ({w}'sd1 << (s - 6'd1));
  wire signed [{w - 1}:0] t = t1 >>> s;
  always @(posedge clk) y <= t < 0 ? {out_bits}'d0 : (t > $signed({{1'b0, amax}}) ? amax : t[{out_bits - 1}:0]);
endmodule
""", acc_bits + mult_bits + wide_bits + 6 + out_bits)


def mac_lane_v(name: str, pi: int, mac_bits: int, acc_bits: int, *, n_shifts: int = 1,
               levels_per_stage: int = 2) -> Unit:
    """One output lane of the PI×PO array (conv1x1.h mac_o body): PI (MB+1)-bit signed weight
    slices × MB-bit unsigned activation slices, registered products, the adder tree (its sum
    registered), the accumulator with its pass shift (multiples of MB) and clear."""
    mb = mac_bits
    pb = 2 * mb + 1  # slice product bits, slice_prod_t
    sb = _sel_bits(n_shifts)
    lines = [f"module {name}(input clk, input [{pi * (mb + 1) - 1}:0] win, input [{pi * mb - 1}:0] xin,",
             f"  input [{sb - 1}:0] shsin, input firstin, output [{acc_bits - 1}:0] y);",
             f"  reg [{sb - 1}:0] shs0, shs; reg first0, first;"]
    for i in range(pi):
        lines += [f"  reg signed [{mb}:0] w{i}; reg [{mb - 1}:0] x{i}; reg signed [{pb - 1}:0] p{i};",
                  f"  always @(posedge clk) begin w{i} <= win[{i * (mb + 1) + mb}:{i * (mb + 1)}];"
                  f" x{i} <= xin[{i * mb + mb - 1}:{i * mb}]; p{i} <= w{i} * $signed({{1'b0, x{i}}}); end"]
    body, res, width = _tree(pi, pb, "p", levels_per_stage)
    lines += body
    # select and clear: registered in, then delayed once (their alignment with the sum does not
    # change the cost); both count as input registers
    lines += [f"  reg signed [{width - 1}:0] s;", f"  always @(posedge clk) s <= {res};",
              "  always @(posedge clk) begin shs0 <= shsin; first0 <= firstin; shs <= shs0; first <= first0; end"]
    lines += _acc_lines(acc_bits, "s", width, n_shifts, mb)
    lines += ["  assign y = acc;", "endmodule", ""]
    # a one-way select is never read (Yosys removes its registers)
    return Unit("\n".join(lines), pi * (2 * mb + 1) + 2 * ((sb if n_shifts > 1 else 0) + 1))


def synthesize(modules: dict[str, Unit], *, dsp: bool, timeout: float = 300) -> dict[str, dict[str, int]]:
    """Cells per module after `synth_xilinx` (UltraScale+), all modules in one Yosys run (each
    module's name must be the key it is given under).

    dsp=False runs with `-nodsp`: every multiplier in LUTs, as Vitis's BIND_OP impl=fabric.
    Returns {module: {cell type: count}} read from `stat -json` by key.
    """
    opts = SYNTH_OPTIONS + ("" if dsp else " -nodsp")
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, unit in modules.items():
            p = Path(d) / f"{name}.v"
            p.write_text(unit.verilog)
            paths.append(str(p))
        stat = Path(d) / "stat.json"
        # synth_xilinx's first step (`begin`) reads the cell library (~3 s) and keeps one top;
        # done here by hand, the modules stay side by side as tops of one design, each counted
        script = ("read_verilog -lib -specify +/xilinx/cells_sim.v; read_verilog -lib +/xilinx/cells_xtra.v; "
                  f"read_verilog {' '.join(paths)}; hierarchy -check; "
                  f"synth_xilinx {opts} -run prepare:; "
                  # -top: without a top, 0.23 writes the JSON with a trailing comma
                  f"tee -q -o {stat} stat -json -top {next(iter(modules))}")
        run = subprocess.run(["yosys", "-q", "-p", script], timeout=timeout, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"yosys failed ({run.returncode}): {(run.stdout + run.stderr)[-2000:]}")
        data = json.loads(stat.read_text())
    out = {}
    for key, mod in data["modules"].items():
        name = key.lstrip("\\")
        if name in modules:
            out[name] = dict(mod["num_cells_by_type"])
    return out


def totals(cells: dict[str, int]) -> dict[str, int]:
    """LUTs (LUT1..LUT6), FFs (FD*), DSP48E2s and CARRY4s of one module's cells."""
    return {"lut": sum(n for t, n in cells.items() if t.startswith("LUT")),
            "ff": sum(n for t, n in cells.items() if t.startswith("FD")),
            "dsp": cells.get("DSP48E2", 0),
            "carry4": cells.get("CARRY4", 0)}
