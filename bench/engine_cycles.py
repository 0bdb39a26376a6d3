"""The generated engine's speed as written: cycle-counted C-simulation beside the estimator and the papers.

For DiracDeltaNet 224² and CoDeNet config b (synthetic IRs, random weights: the count does not
depend on the values) at the default Ultra96 config as `codesign compile` picks it (the 32x32 array sized for the model,
or the fastest smaller array whose rendered engine fits the board: hls/fit.py fitting_config), one frame runs through the counting C-simulation
(hls_templates/engine/cycles.h). Printed side by side, from one run:

- counted engine FPS: clock / counted cycles per frame (the engine alone);
- counted system FPS at batch 1 and 16: the counted engine time per call inside the frame model,
  with host work and control as the estimator models them (descriptor control, host overlapped);
- the estimator's own FPS (engine modeled as written) and its ratio to the counted figure;
- MAC utilisation of the 1×1 array, and the published Synetgy / CoDeNet frame rates.

    python bench/engine_cycles.py [--json FILE] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codesign.estimate import estimate  # noqa: E402
from codesign.estimate.synthetic import codenet_ir, diracdeltanet_ir  # noqa: E402
from codesign.figures import CODE_DERIVED, CYCLE_COUNTED, MODELED, PUBLISHED  # noqa: E402
from codesign.hls.cycles import count_project  # noqa: E402
from codesign.hls.fit import fitting_config  # noqa: E402
from codesign.hls.project import write_project  # noqa: E402
from codesign.hw.config import HardwareConfig  # noqa: E402
from codesign.hw.limits import sized_for  # noqa: E402

# Published frame rates on Ultra96 at 250 MHz (DESIGN §7): Synetgy batch 1 / 16, CoDeNet config b.
PUBLISHED_FPS = {"diracdeltanet_224": (41.4, 66.3), "codenet_b": (26.9, None)}


def measure(key: str, graph, workdir: Path, published: tuple[float | None, float | None] | None = None) -> dict:
    """The counted, modeled and code-derived figures of `graph` at the Ultra96 config compile picks;
    `published`: (batch 1, batch 16) FPS to print beside them (default: PUBLISHED_FPS[key])."""
    # as `codesign compile` picks it: the default array sized for the model, or the fastest smaller one
    # whose rendered engine fits the Ultra96 (hls/fit.py)
    hw, fit, note = fitting_config(graph, sized_for(graph, HardwareConfig.for_board("ultra96v2")))
    if note:
        print(f"{key}: {note}")
    project = write_project(graph, hw, workdir / key)
    t0 = time.perf_counter()
    counted = count_project(project.path)
    csim_s = time.perf_counter() - t0
    cycles = [c.total for c in counted.calls]
    system = {b: estimate(graph, hw, batch=b, engine_cycles=cycles) for b in (1, 16)}
    modeled = {b: estimate(graph, hw, batch=b) for b in (1, 16)}
    modeled_engine_cycles = sum(round(c.engine_s * hw.clock_mhz * 1e6) for c in modeled[1].calls if not c.on_host)
    pub1, pub16 = published if published is not None else PUBLISHED_FPS[key]
    return {
        "config": f"{hw.pi}x{hw.po}, mac_bits {hw.mac_bits}, bus {hw.bus_bits}, A{hw.act_bits}, {hw.clock_mhz:g} MHz",
        "calls": len(counted.calls),
        "frame_cycles": counted.frame_cycles,
        "fps_engine": counted.fps,
        "fps_batch1": system[1].fps,
        "fps_batch16": system[16].fps,
        "estimator_frame_cycles": modeled_engine_cycles,
        "estimator_fps_engine": hw.clock_mhz * 1e6 / modeled_engine_cycles,
        "estimator_fps_batch1": modeled[1].fps,
        "estimator_fps_batch16": modeled[16].fps,
        "estimator_vs_counted": modeled_engine_cycles / counted.frame_cycles,
        "mac_utilisation": counted.mac_utilisation,
        "stage_totals": counted.stage_totals(),
        "published_fps_batch1": pub1,
        "published_fps_batch16": pub16,
        "csim_seconds": csim_s,
        "resources": fit.to_dict(),
        "resources_summary": f"{fit.summary()} [{CODE_DERIVED}]",
        "labels": {"fps_engine": CYCLE_COUNTED, "fps_batch1": f"{CYCLE_COUNTED}; host and control modeled",
                   "estimator_fps_batch1": MODELED, "published_fps_batch1": PUBLISHED},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures, one object per model")
    ap.add_argument("--keep", help="write the projects here instead of a temporary folder")
    args = ap.parse_args()
    models = {"diracdeltanet_224": diracdeltanet_ir(), "codenet_b": codenet_ir("b")}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep or tmp)
        results = {key: measure(key, g, workdir) for key, g in models.items()}
    print(f"engine at the default Ultra96 config; counted = {CYCLE_COUNTED}")
    head = (f"{'model':<19}{'engine FPS':>11}{'batch 1':>9}{'batch 16':>9}{'est. engine':>12}{'est./count':>11}"
            f"{'est. b1':>9}{'MAC util':>9}{'published b1/b16':>18}")
    print(head)
    for key, r in results.items():
        pub = f"{r['published_fps_batch1']}" + (f" / {r['published_fps_batch16']}" if r["published_fps_batch16"] else "")
        print(f"{key:<19}{r['fps_engine']:>11.1f}{r['fps_batch1']:>9.1f}{r['fps_batch16']:>9.1f}"
              f"{r['estimator_fps_engine']:>12.1f}{r['estimator_vs_counted']:>11.3f}{r['estimator_fps_batch1']:>9.1f}"
              f"{r['mac_utilisation']:>9.1%}{pub:>18}")
    for key, r in results.items():
        stages = ", ".join(f"{k} {v:,}" for k, v in r["stage_totals"].items() if v)
        print(f"{key}: {r['config']}; {r['calls']} calls, {r['frame_cycles']:,} cycles/frame; per stage: {stages}; "
              f"C-sim {r['csim_seconds']:.1f} s")
        print(f"{key}: resources {r['resources_summary']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
