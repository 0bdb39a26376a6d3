"""C-simulation seconds per frame, side by side with the golden model, in one process.

Two networks with random calibrated weights (speed does not depend on them):
- DiracDeltaNet at 224² (1000 classes, W4A4), as `golden_vs_torch.py` builds it;
- CoDeNet config c: 512², width 1.0, 20 classes, W4A8, calibrated as the CoDeNet C-sim tests do
  (offset convs drawn so that the dilations spread over several values).

For each, the generated HLS C++ compiled with g++ -O2 runs the whole descriptor table per frame
and the golden model runs the same frame. Prints seconds per frame for both and their ratio, and
checks that every engine output (the tensors the host reads back) agrees bit for bit. The C-sim
time is the engine's alone: host layers (DiracDeltaNet's pool + FC, CoDeNet's stem and heads) run
in NumPy, as on the board's ARM; the golden time is the whole frame.

    python bench/csim.py [--model {diracdeltanet,codenet,all}] [--frames 3] [--resolution 224]
                         [--codenet-config c]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from golden_vs_torch import calibrated_model  # noqa: E402  (same calibrated network as the golden bench)

from codesign.golden import GoldenModel  # noqa: E402
from codesign.graph import Graph  # noqa: E402
from codesign.hls.csim import CsimEngine  # noqa: E402
from codesign.hls.project import write_project  # noqa: E402
from codesign.hw.memory import initial_fmem, read_tensor  # noqa: E402
from codesign.hw.limits import sized_for  # noqa: E402
from codesign.models.codenet import CODENET_CONFIGS  # noqa: E402
from codesign.models.calibrated import random_calibrated_model  # noqa: E402
from codesign.quant import export_model  # noqa: E402

MODELS = ("diracdeltanet", "codenet")
CODENET_GOAL_S = 30.0  # issue #4: C-simulate a CoDeNet config c frame in at most 30 s (the 512², 1× model)


@dataclass
class Result:
    name: str
    calls: int
    export_s: float
    project_s: float
    csim_s: float
    golden_s: float


def diracdeltanet_graph(args: argparse.Namespace) -> tuple[str, Graph]:
    return f"DiracDeltaNet {args.resolution}² W4A4", export_model(calibrated_model(args.resolution, 1000))


def codenet_graph(args: argparse.Namespace) -> tuple[str, Graph]:
    res = CODENET_CONFIGS[args.codenet_config]["resolution"]
    config = {"model": "codenet", "config": args.codenet_config, "width": 1.0, "resolution": res,
              "num_classes": 20}  # no "quant": CoDeNet's default, W4A8 with 8-bit first-layer weights
    model = random_calibrated_model(config, steps=2)
    return f"CoDeNet {args.codenet_config} {res}² W4A8", export_model(model)


def bench(name: str, graph: Graph, export_s: float, frames: int, workdir: Path) -> Result:
    t0 = time.perf_counter()
    project = write_project(graph, sized_for(graph), workdir / graph.name)
    engine = CsimEngine(project.path, project.schedule.hw.bus_bits)
    build_s = time.perf_counter() - t0
    sched = project.schedule
    golden = GoldenModel(graph)
    rng = np.random.RandomState(0)
    t_csim, t_golden = [], []
    for _ in range(frames):
        image = rng.randint(0, 256, graph.tensors[graph.input].shape).astype(np.uint8)
        fmem = initial_fmem(sched, image, golden)  # runs the host layers before the engine (CoDeNet's stem)
        t0 = time.perf_counter()
        fmem = engine(sched.descriptor_table, sched.wmem, fmem)
        t_csim.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, trace = golden.run(image[None], trace=True)
        t_golden.append(time.perf_counter() - t0)
        for out in sched.engine_outputs:
            if not np.array_equal(read_tensor(sched, fmem, out), trace[out][0]):
                raise SystemExit(f"{name}: C-sim and golden model disagree on engine output '{out}': run "
                                 "`codesign csim` for the first mismatch")
    return Result(name, len(sched.calls), export_s, build_s, statistics.median(t_csim), statistics.median(t_golden))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=[*MODELS, "all"], default="all")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=224, help="DiracDeltaNet input size")
    ap.add_argument("--codenet-config", default="c", choices=sorted(CODENET_CONFIGS),
                    help="CoDeNet configuration (width 1.0, 20 classes, its resolution)")
    args = ap.parse_args()

    builders = {"diracdeltanet": diracdeltanet_graph, "codenet": codenet_graph}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in (MODELS if args.model == "all" else (args.model,)):
            t0 = time.perf_counter()
            name, graph = builders[model](args)
            export = time.perf_counter() - t0
            print(f"{name}: calibrated and exported in {export:.1f} s; building and running ...", flush=True)
            results.append(bench(name, graph, export, args.frames, Path(tmp)))

    print()
    print(f"{'model':<24} {'calls':>5} {'export':>8} {'project':>9} {'C-sim':>12} {'golden':>12} {'C-sim/golden':>12}")
    for r in results:
        print(f"{r.name:<24} {r.calls:>5} {r.export_s:>6.1f} s {r.project_s:>7.1f} s {r.csim_s:>6.2f} s/fr "
              f"{r.golden_s:>6.3f} s/fr {r.csim_s / r.golden_s:>12.2f}")
    print(f"(median of {args.frames} frames; engine outputs bit-exact with the golden model on every frame; "
          "C-sim: the engine's descriptor table only, golden: the whole frame;\n"
          " export: calibrate + export the IR; project: write the HLS project + g++ -O2 build, cached by source hash)")
    for r in results:
        if r.name.startswith("CoDeNet c "):
            verdict = "meets" if r.csim_s <= CODENET_GOAL_S else "MISSES"
            print(f"{r.name}: {r.csim_s:.2f} s per frame {verdict} the {CODENET_GOAL_S:.0f} s goal")


if __name__ == "__main__":
    main()
