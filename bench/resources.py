"""Resources of the generated engine, derived from the code as rendered, beside the analytic estimate.

For DiracDeltaNet 224² and CoDeNet config b on the Ultra96, and DiracDeltaNet on KV260, ZCU104 and
PYNQ-Z2, the project is rendered at the config `codesign compile --board` picks (hls/fit.py
fitting_config: the default 32x32 array sized for the model, or the fastest smaller one that fits), its memories are read from the C-simulation library and its pragmas
(codesign/hls/inventory.py) and priced (codesign/estimate/fit.py). Printed per unit, with totals
and the board's capacity, the previous analytic estimate (codesign/estimate/resources.py) beside.

    python bench/resources.py [--json FILE]

--json writes, per config and resource, the used count, the board's count and the utilisation.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codesign.errors import CodesignError  # noqa: E402
from codesign.estimate.fit import RESOURCES, code_derived  # noqa: E402
from codesign.estimate.resources import resources as analytic  # noqa: E402
from codesign.estimate.synthetic import codenet_ir, diracdeltanet_ir  # noqa: E402
from codesign.figures import CODE_DERIVED, MODELED  # noqa: E402
from codesign.hls.fit import DoesNotFit, fitting_config  # noqa: E402
from codesign.hls.inventory import axi_adapters, declared_memories  # noqa: E402
from codesign.hls.project import write_project  # noqa: E402
from codesign.hw.config import HardwareConfig  # noqa: E402
from codesign.hw.limits import sized_for  # noqa: E402

CONFIGS = (("diracdeltanet_224", "ultra96v2"), ("codenet_b", "ultra96v2"), ("diracdeltanet_224", "kv260"),
           ("diracdeltanet_224", "zcu104"), ("diracdeltanet_224", "pynq-z2"))


def measure(model: str, board: str, workdir: Path) -> dict:
    graph = diracdeltanet_ir() if model.startswith("diracdeltanet") else codenet_ir("b")
    # as `codesign compile --board` picks it: sized for the model, the default array or the fastest smaller
    # one whose rendered engine fits
    default = sized_for(graph, HardwareConfig.for_board(board))
    try:
        hw, _, note = fitting_config(graph, default)
    except DoesNotFit as e:  # shown as it is: the default engine's figures and why nothing fits
        hw, note = default, f"NOT FITTING: {e}"
    project = write_project(graph, hw, workdir / f"{model}-{board}").path
    fit = code_derived(hw, declared_memories(project), axi_adapters(project))
    old = analytic(hw)
    print(f"\n== {model} on {board}: {hw.pi}x{hw.po}, W{hw.weight_bits} A{hw.act_bits}, bus {hw.bus_bits}, "
          f"{hw.clock_mhz:g} MHz [{CODE_DERIVED}; previous: {MODELED}]")
    if note:
        print(f"   {note}")
    print(f"{'unit':<12}" + "".join(f"{r:>10}" for r in RESOURCES))
    for unit, cost in fit.by_unit().items():
        print(f"{unit:<12}" + "".join(f"{cost[r]:>10,.0f}" for r in RESOURCES))
    tot, cap, util, prev = fit.totals(), fit.capacity(), fit.utilization(), old.used()
    print(f"{'total':<12}" + "".join(f"{tot[r]:>10,.0f}" for r in RESOURCES))
    print(f"{'board':<12}" + "".join(f"{cap[r]:>10,}" for r in RESOURCES))
    print(f"{'util':<12}" + "".join(f"{util[r]:>10.0%}" for r in RESOURCES))
    print(f"{'previous':<12}" + "".join(f"{prev[r]:>10,.0f}" for r in RESOURCES) + "   (analytic estimate)")
    for r in RESOURCES:
        if util[r] > 0.85:
            top = ", ".join(f"{n} {v:,.0f}" for n, v in fit.top_consumers(r))
            print(f"  {r} over 85 %: {top}")
    return {**fit.to_dict(), "previous_estimate": {r: prev[r] for r in RESOURCES}, "label": CODE_DERIVED,
            "config": {"pi": hw.pi, "po": hw.po, "clock_mhz": hw.clock_mhz, "max_wtiles": hw.max_wtiles},
            "note": note}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model, board in CONFIGS:
            try:
                results[f"{model}@{board}"] = measure(model, board, Path(tmp))
            except CodesignError as e:
                print(f"\n== {model} on {board}: not compiled: {e}")
                results[f"{model}@{board}"] = {"error": str(e)}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
