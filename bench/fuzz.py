"""Golden model vs C-simulation at scale: random single-call graphs across every op, flag and bit width.

Each case is the graph of tests/test_codenet_csim.py's fuzz (image → conv0 → one fuzzed engine call
[prepool][conv][pool][dw stride 1|2 | deform][upsample] → an interleaved, rotated concat), drawn from a
seeded NumPy generator; `--edge` (default on) puts the requant constants at the IR's limits (S at the
ends of 1..46, |M| up to 2^23 − 1, |B| up to what the 48-bit intermediate leaves) in half of the cases,
a third get a weight buffer shallow enough to split their conv, half draw signed (two's complement)
activations for the call's input, its conv's and its spatial op's outputs (the engine is built with
`signed_acts`), and a third round their call's requant
ties to even (the engine is built with `half_even`; those requants get tie-prone constants,
test_codenet_csim._tie_prone: M = ±2, S = t + 1, B even, so about one accumulator in 2^t is a tie). Every case is scheduled, run on one C-simulation library (the engine built once for the
fuzz configuration) and compared with the
golden model call by call. A mismatch writes a reproducer (the graph as .ir, the case's parameters as
JSON and the first differing layer, channel and pixel) into --out.

    python bench/fuzz.py --cases 3000 --seed 1 [--no-edge] [--out build/fuzz]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.graph import save  # noqa: E402
from codesign.hls.csim import CsimEngine  # noqa: E402
from codesign.hls.project import write_project  # noqa: E402
from codesign.hw.scheduler import schedule  # noqa: E402
from codesign.hw.verify import verify  # noqa: E402
from tests.conftest import split_wtiles  # noqa: E402
from tests.test_codenet_csim import FUZZ_MAX_HW, HW, fuzz_graph, kxk_fits, KXK_MAX_INPUTS  # noqa: E402  (the fuzz's graphs, one definition)

# the tests' fuzz engine (with the signed-activation path), with the round-half-to-even tie logic
FUZZ_HW = HW.with_(half_even=True)


def draw_case(rng: np.random.Generator, edge: bool) -> dict:
    """The parameters of tests/test_codenet_csim.py fuzz_params, from a NumPy generator."""
    spatial = str(rng.choice(["none", "dw1", "dw2", "deform", "deform"]))
    conv = bool(rng.integers(2))
    from_image = not conv and spatial != "none" and bool(rng.integers(2))
    p = dict(h=int(rng.integers(1, FUZZ_MAX_HW + 1)), w=int(rng.integers(1, FUZZ_MAX_HW + 1)),
             cin=int(rng.integers(1, 25)), cout=int(rng.integers(1, 25)), a_bits=int(rng.integers(2, 9)), conv=conv,
             prepool=conv and spatial != "deform" and bool(rng.integers(2)),
             pool=spatial != "deform" and bool(rng.integers(2)), spatial=spatial, upsample=bool(rng.integers(2)),
             interleave=None if rng.integers(2) else (bool(rng.integers(2)), int(rng.integers(0, 61))),
             from_image=from_image, d_bits=int(rng.choice([2, 3])), d_ch=int(rng.integers(1, 4)),
             split=rng.integers(3) == 0, edge=edge and bool(rng.integers(2)))
    if from_image:
        p["a_bits"] = 8
    if spatial == "none" and (not conv or p["interleave"] is None):
        p["upsample"] = True
    if conv and spatial != "deform" and rng.integers(2):  # a k×k conv (the window unit)
        k = int(rng.choice([1, 3, 5, 7]))
        p["kxk"] = (k, int(rng.integers(1, 4)), int(rng.integers(0, k)))
        p["prepool"] = False
        p["cin"] = min(p["cin"], KXK_MAX_INPUTS // (k * k) // HW.pi * HW.pi)
    p["half_even"] = bool(rng.integers(3) == 0)  # the call's requants round ties to even (QONNX ROUND)
    # signed activations in half the cases: the call's input (conv0's output), its conv's and its
    # spatial op's outputs, each signed or not (so every op reads and writes both kinds)
    p["signed"] = tuple(bool(b) for b in rng.integers(2, size=3)) if rng.integers(2) else None
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-edge", dest="edge", action="store_false", help="exporter-like requant constants only")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "fuzz", help="where reproducers are written")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        first = fuzz_graph(np.random.RandomState(0), draw_case(np.random.default_rng(0), False) | {"split": False})
        engine = CsimEngine(write_project(first, FUZZ_HW, Path(tmp) / "p").path, FUZZ_HW.bus_bits)
    counts = {"cases": 0, "skipped": 0, "edge": 0, "split": 0, "kxk": 0, "half_even": 0, "signed": 0, "mismatches": 0}
    t0 = time.perf_counter()
    bar = tqdm(total=args.cases, desc="fuzz", unit="case")
    k = -1
    while counts["cases"] < args.cases:
        k += 1
        p = draw_case(rng, args.edge)
        if min(p["h"], p["w"]) < 2 ** (int(p["prepool"]) + int(p["pool"])) or not kxk_fits(p):
            counts["skipped"] += 1  # a map too small for its pools or window (the test's assume()): drawn again
            continue
        bar.update()
        case_rng = np.random.RandomState(int(rng.integers(2 ** 31)))
        graph = fuzz_graph(case_rng, p)
        depth = split_wtiles(graph, FUZZ_HW, case_rng) if p["split"] else None
        sched = schedule(graph, FUZZ_HW.with_(max_wtiles=depth or 0))
        image = case_rng.randint(0, 256, (p["h"], p["w"], 3)).astype(np.uint8)
        report = verify(sched, graph, image, engine, per_call=True)
        counts["cases"] += 1
        counts["edge"] += p["edge"]
        counts["split"] += any(c.channels for c in sched.calls)
        counts["kxk"] += bool(p.get("kxk"))
        counts["half_even"] += p["half_even"]
        counts["signed"] += any(graph.tensors[t].signed for t in graph.tensors)
        if not report.ok:
            counts["mismatches"] += 1
            args.out.mkdir(parents=True, exist_ok=True)
            save(graph, args.out / f"case{k}.ir")
            (args.out / f"case{k}.json").write_text(json.dumps({"params": p, "seed": args.seed, "case": k,
                                                                "max_wtiles": depth, "mismatch": report.mismatch},
                                                               indent=1, default=str))
            print(f"case {k}: {report.mismatch} (reproducer: {args.out / f'case{k}.ir'})")
    bar.close()
    dt = time.perf_counter() - t0
    print(f"{counts['cases']} cases ({counts['edge']} with edge requant constants, {counts['split']} split, "
          f"{counts['kxk']} k×k convs, {counts['half_even']} rounding ties to even, "
          f"{counts['signed']} with signed activations, "
          f"{counts['skipped']} redrawn), {counts['mismatches']} mismatches, {dt:.1f} s "
          f"({counts['cases'] / dt:.0f} cases/s) [golden model vs C-simulation, per call]")
    return 1 if counts["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
