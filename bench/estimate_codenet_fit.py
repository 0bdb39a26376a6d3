"""Fit CoDeNet's per-call loop overheads, register read and start cost to its authors' per-call times.

`CODENET_TIMING` (codesign/estimate/params.py) models CoDeNet's accelerator with the loops of its
published HLS (microarch="codenet"). Four of its numbers are not in the paper: the MAC pipeline drained
per output tile (`tile_drain_cycles`), the line buffer's cost per input pixel (`linebuf_pixel_cycles`)
and per 3×3 output pixel (`window_pixel_cycles`), the PYNQ register read that polls for done
(`reg_read_ms`) and the fixed cost of a start (`start_overhead_ms`; the ap_start write itself is
`reg_write_ms`, 10 µs assumed). This
script fits them to the 16 call shapes the artifact notebook timed (`reference.CODENET_CALLS_MS`:
ap_start to done, a different network than configs a–e), by coordinate descent on the RMS relative
error, and prints each call's error. The frame rates of configs a–e are not used.

    python bench/estimate_codenet_fit.py
"""
from __future__ import annotations

import math

from codesign.estimate import CODENET_TIMING, codenet_config
from codesign.estimate.cycles import call_estimate, per_layer_wall_s
from codesign.estimate.reference import CODENET_CALLS_MS
from codesign.estimate.synthetic import codenet_notebook_call

GRID = {"tile_drain_cycles": range(0, 41), "linebuf_pixel_cycles": range(0, 121),
        "window_pixel_cycles": range(0, 81), "reg_read_ms": [round(0.005 * k, 3) for k in range(1, 41)],
        "start_overhead_ms": [round(0.005 * k, 3) for k in range(0, 21)]}


def call_ms(row, params) -> float:
    d, ic, oc, stride, _ = row
    hw = codenet_config()
    e = call_estimate(codenet_notebook_call(d, ic, oc, stride), hw, params, hw.board_info().ddr_gbps)
    return 1e3 * per_layer_wall_s(e.engine_s, e.starts, params)


def rms(params) -> float:
    return math.sqrt(sum((call_ms(r, params) / r[4] - 1) ** 2 for r in CODENET_CALLS_MS) / len(CODENET_CALLS_MS))


def fit(params, rounds: int = 6):
    for _ in range(rounds):
        for name, values in GRID.items():
            params = min((params.with_(**{name: v}) for v in values), key=rms)
    return params


def main() -> None:
    best = fit(CODENET_TIMING)
    print("fitted: " + ", ".join(f"{k} = {getattr(best, k)}" for k in GRID) + f"  (RMS error {100 * rms(best):.1f}%)")
    print("CODENET_TIMING: " + ", ".join(f"{k} = {getattr(CODENET_TIMING, k)}" for k in GRID)
          + f"  (RMS error {100 * rms(CODENET_TIMING):.1f}%)")
    print(f"{'D':>3} {'IC':>5} {'OC':>4} {'s':>2} {'measured':>9} {'model':>7} {'error':>7}")
    for row in CODENET_CALLS_MS:
        m = call_ms(row, CODENET_TIMING)
        d, ic, oc, stride, ms = row
        print(f"{d:>3} {ic:>5} {oc:>4} {stride:>2} {ms:>8.3f}  {m:>7.3f} {100 * (m / ms - 1):>+6.0f}%")


if __name__ == "__main__":
    main()
