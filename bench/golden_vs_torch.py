"""Golden integer model vs the same network in torch float32 eager, side by side in one process.

DiracDeltaNet at 224², batch 8 by default. Both run with the same thread count (torch's intra-op
threads and the BLAS pool numpy uses). Weights are random but calibrated (BN statistics and
activation scales), which is all that speed depends on. Prints images/s for both and the ratio
golden / torch (> 1 means the bit-exact integer model is faster).

    python bench/golden_vs_torch.py [--batch 8] [--resolution 224] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from codesign.golden import GoldenModel
from codesign.models import build_model
from codesign.models.calibrated import random_calibrated_model
from codesign.quant import export_model


def calibrated_model(resolution: int, classes: int) -> torch.nn.Module:
    """DiracDeltaNet with random weights, calibrated at 64² (speed does not depend on the weights)."""
    return random_calibrated_model({"model": "diracdeltanet", "num_classes": classes, "resolution": resolution},
                                   steps=8, batch=8, calibration_resolution=64)


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, BLAS thread start-up, lazy init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    qat = calibrated_model(args.resolution, args.classes)
    golden = GoldenModel(export_model(qat))
    float_model = build_model(qat.config, quantize=False).eval()  # same network, float32 eager
    float_model.load_state_dict(qat.state_dict(), strict=False)

    images = np.random.RandomState(0).randint(0, 256, (args.batch, args.resolution, args.resolution, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).contiguous()

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads), torch.inference_mode():
        blas = ", ".join(f"{i['internal_api']} ({i.get('architecture', '?')}, {i['num_threads']} threads)"
                         for i in threadpool_info() if i["user_api"] == "blas")
        t_golden = best_of(lambda: golden.run(images), args.repeats)
        t_torch = best_of(lambda: float_model(x), args.repeats)

    golden_ips, torch_ips = args.batch / t_golden, args.batch / t_torch
    print(f"DiracDeltaNet {args.resolution}², batch {args.batch}, {args.threads} threads; numpy BLAS: {blas}")
    print(f"golden (integer, bit-exact): {golden_ips:8.2f} images/s  ({1000 * t_golden:.1f} ms/batch)")
    print(f"torch float32 eager        : {torch_ips:8.2f} images/s  ({1000 * t_torch:.1f} ms/batch)")
    print(f"ratio golden / torch       : {golden_ips / torch_ips:.2f}")


if __name__ == "__main__":
    main()
