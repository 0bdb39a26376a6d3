"""What CoDeNet's linear depthwise convolutions buy: float and W4A8 QAT AP50, with and without the ReLU
after the backbone's depthwise convs, on the synthetic VOC set (config a, width 0.5, 128²), per seed.

Each (seed, variant) is one `codesign train` pipeline (float pre-training, then QAT from its weights),
run as a subprocess with one torch thread; `--jobs` run side by side. A finished run's checkpoint is
reused, so an interrupted sweep resumes. The table (markdown) is printed from the checkpoints' metrics;
`--compare` also exports every linear-depthwise checkpoint and counts the boxes on which the golden
model and the fake-quant model agree (`codesign compare`'s count_equal_boxes).

    python bench/codenet_linear_dw.py --out build/linear-dw [--seeds 0 1 2] [--float-epochs 40]
        [--qat-epochs 3] [--jobs 2] [--compare]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {"relu": True, "linear": False}  # name → dw_relu


def run_dir(out: Path, seed: int, variant: str) -> Path:
    return out / f"{variant}-seed{seed}"


def command(out: Path, seed: int, variant: str, args: argparse.Namespace) -> list[str]:
    d = run_dir(out, seed, variant)
    return [sys.executable, "-m", "codesign", "train", "--model", "codenet", "--config", "a", "--dataset",
            "synthetic", "--seed", str(seed), "--float-epochs", str(args.float_epochs), "--qat-epochs",
            str(args.qat_epochs), "--threads", "1", "--no-progress", "--model-config",
            json.dumps({"dw_relu": VARIANTS[variant]}), "-o", str(d / "model.pt")]


def train_all(args: argparse.Namespace) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    todo = [(s, v) for s in args.seeds for v in VARIANTS if not (run_dir(args.out, s, v) / "model.pt").is_file()]
    running: list[tuple[subprocess.Popen, str, float]] = []
    while todo or running:
        while todo and len(running) < args.jobs:
            seed, variant = todo.pop(0)
            d = run_dir(args.out, seed, variant)
            d.mkdir(parents=True, exist_ok=True)
            log = open(d / "train.log", "w")
            running.append((subprocess.Popen(command(args.out, seed, variant, args), stdout=log,
                                             stderr=subprocess.STDOUT, env=env, cwd=ROOT),
                            f"{variant} seed {seed}", time.perf_counter()))
            print(f"started {variant} seed {seed}", flush=True)
        time.sleep(5)
        for entry in list(running):
            proc, name, start = entry
            if proc.poll() is not None:
                running.remove(entry)
                print(f"{name}: exit {proc.returncode} after {time.perf_counter() - start:.0f} s", flush=True)


def equal_boxes(out: Path, seed: int) -> tuple[int, int, float, float]:
    """(boxes, equal boxes, fake-quant AP50, golden AP50) of the linear run's golden vs fake-quant
    model on its test split (`quant.compare.compare_detection`, as `codesign compare` counts them)."""
    import tempfile

    from codesign.data.synthetic_voc import write_synthetic_voc
    from codesign.data.voc import load_detection_set
    from codesign.quant.compare import compare_detection
    from codesign.quant.export import export_model
    from codesign.train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(run_dir(out, seed, "linear") / "model.pt")
    graph = export_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        data = load_detection_set(write_synthetic_voc(tmp, 2000, 128, seed=seed), "test", 128)
    r = compare_detection(model, graph, data)
    return r.boxes, r.equal_boxes, r.fakequant_ap50, r.golden_ap50


def table(args: argparse.Namespace) -> str:
    import torch

    rows, sums = [], {v: [] for v in VARIANTS}
    for seed in args.seeds:
        cells = [str(seed)]
        for v in VARIANTS:
            p = run_dir(args.out, seed, v) / "model.pt"
            if not p.is_file():
                cells += ["—", "—"]
                continue
            m = torch.load(p, map_location="cpu", weights_only=True)["metrics"]
            sums[v].append((m["float_ap50"], m["qat_ap50"]))
            cells += [f"{m['float_ap50']:.2f}", f"{m['qat_ap50']:.2f}"]
        rows.append(cells)
    mean = ["mean"]
    for v in VARIANTS:
        vals = sums[v]
        mean += [f"{sum(a for a, _ in vals) / len(vals):.2f}", f"{sum(b for _, b in vals) / len(vals):.2f}"] \
            if vals else ["—", "—"]
    rows.append(mean)
    head = ("| seed | ReLU after dw: float AP50 | ReLU: W4A8 QAT AP50 | linear dw: float AP50 | "
            "linear: W4A8 QAT AP50 |\n|---|---|---|---|---|")
    budget = f"({args.float_epochs} float + {args.qat_epochs} QAT epochs per run)"
    return "\n".join([budget, head] + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "linear-dw")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--float-epochs", type=int, default=40)
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--table-only", action="store_true", help="print the table of the finished runs")
    ap.add_argument("--compare", action="store_true", help="golden vs fake-quant equal boxes of the linear runs")
    args = ap.parse_args()
    if not args.table_only:
        train_all(args)
    print(table(args))
    if args.compare:
        for seed in args.seeds:
            if (run_dir(args.out, seed, "linear") / "model.pt").is_file():
                total, eq, fq_ap, g_ap = equal_boxes(args.out, seed)
                print(f"linear seed {seed}: golden vs fake-quant equal boxes {eq} / {total} = "
                      f"{100 * eq / max(total, 1):.2f} %; AP50 fake-quant {fq_ap:.2f} %, golden {g_ap:.2f} %")


if __name__ == "__main__":
    main()
