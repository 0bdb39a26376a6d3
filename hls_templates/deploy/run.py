#!/usr/bin/env python3
"""Run this deploy package: `python3 run.py [--device pynq|sim] IMAGE...` or `--benchmark FRAMES`."""
import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the runtime shipped in this package

from codesign.driver.runtime import benchmark, run_images  # noqa: E402
from codesign.errors import CodesignError  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("images", nargs="*", help="image files to run the model on")
    p.add_argument("--device", default="pynq", choices=("pynq", "sim"))
    p.add_argument("--resize", default="refuse", choices=("refuse", "nearest", "bilinear"))
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--batch", type=int, default=1, help="frames in flight (feature-map arenas)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one frame")
    p.add_argument("--benchmark", type=int, metavar="FRAMES", help="measure frames per second instead")
    p.add_argument("--json", action="store_true", help="print the benchmark report as JSON")
    args = p.parse_args()
    try:
        if args.benchmark:
            report = benchmark(HERE, args.device, args.benchmark, args.batch, args.timeout)
            print(json.dumps(report.to_json(), indent=1) if args.json else report.format())
        elif args.images:
            for path, result in zip(args.images, run_images(HERE, args.images, args.device, args.resize, args.top_k,
                                                             args.batch, args.timeout)):
                print(f"{path}: {result}")
        else:
            p.error("give image files or --benchmark FRAMES")
    except CodesignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
