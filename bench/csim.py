"""C-simulation seconds per frame, side by side with the golden model, in one process.

DiracDeltaNet at 224² (1000 classes, random calibrated weights: speed does not depend on them):
the generated HLS C++ compiled with g++ -O2 runs the whole descriptor table per frame; the golden
model runs the same frame. Prints seconds per frame for both, their ratio, and checks the two
agree bit for bit on the engine output.

    python bench/csim.py [--frames 3] [--resolution 224]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_vs_torch import calibrated_model  # noqa: E402  (same calibrated network as the golden bench)

from codesign.golden import GoldenModel  # noqa: E402
from codesign.hls.csim import CsimEngine  # noqa: E402
from codesign.hls.project import write_project  # noqa: E402
from codesign.hw.memory import initial_fmem, read_tensor  # noqa: E402
from codesign.hw.scheduler import sized_for  # noqa: E402
from codesign.quant import export_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=224)
    args = ap.parse_args()

    graph = export_model(calibrated_model(args.resolution, 1000))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        project = write_project(graph, sized_for(graph), Path(tmp) / "dirac")
        engine = CsimEngine(project.path, project.schedule.hw.bus_bits)
        setup = time.perf_counter() - t0
        sched = project.schedule
        golden = GoldenModel(graph)
        rng = np.random.RandomState(0)
        t_csim, t_golden = [], []
        for _ in range(args.frames):
            image = rng.randint(0, 256, graph.tensors[graph.input].shape).astype(np.uint8)
            fmem = initial_fmem(sched, image)
            t0 = time.perf_counter()
            fmem = engine(sched.descriptor_table, sched.wmem, fmem)
            t_csim.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _, trace = golden.run(image[None], trace=True)
            t_golden.append(time.perf_counter() - t0)
            if not np.array_equal(read_tensor(sched, fmem, sched.engine_output), trace[sched.engine_output][0]):
                raise SystemExit("C-sim and golden model disagree: run `codesign csim` for the first mismatch")
    cs, gs = statistics.median(t_csim), statistics.median(t_golden)
    print(f"DiracDeltaNet {args.resolution}², {len(sched.calls)} engine calls, project + g++ build {setup:.1f} s")
    print(f"C-sim (g++ -O2, whole table) : {cs:7.3f} s per frame")
    print(f"golden model (NumPy, batch 1): {gs:7.3f} s per frame")
    print(f"ratio C-sim / golden         : {cs / gs:7.1f}   (engine output bit-exact on {args.frames} frames)")


if __name__ == "__main__":
    main()
