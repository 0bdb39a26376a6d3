"""A user's own network through the front door: MobileNet-v1 W4A4 (8-bit stem weights, as FINN's), an
ordinary Brevitas module (tests/qonnx_models.py), exported to QONNX, imported (`codesign import`),
and measured as bench/engine_cycles.py measures our two networks: cycle-counted C-simulation of one
224² frame at the Ultra96 config `codesign compile` picks, the estimator beside it, and the engine's
code-derived resources. Random weights, calibrated on random images: the cycle count does not depend
on the values.

FINN's reference (finn-examples, build/mobilenet-v1/README.md): the same network, W4A4 with an 8-bit
first layer, 70.4 % top-1, built as a per-layer dataflow pipeline (one compute unit per layer, all
weights on chip). finn-examples ships it for Alveo U250 (and, later, ZCU104 folding configs); it has
no Ultra96 build: its weights alone (≈ 4.2 M at 4 bits ≈ 2.1 MB) exceed the ZU3EG's 0.95 MB of BRAM.
The frame rates FINN published for it are the `throughput_test()` outputs recorded in finn-examples'
MobileNet notebook (finn_examples/notebooks/2_imagenet_with_mobilenet_v1.ipynb), printed below with
board, clock, batch and the commit that recorded them (FINN_PUBLISHED). They are other, larger boards:
the ZCU102's ZU9EG has 2,520 DSPs and 32.1 Mb of BRAM against the Ultra96's 360 and 7.6 Mb. Its
README's "1.1 GMACs" is about twice the 569 M multiply-adds of Howard et al.'s Table 1 for
MobileNet-v1 1.0 at 224², which is what we count (layer_macs): it likely counts operations.

    python bench/mobilenet_v1.py [--width 32] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from codesign.figures import CYCLE_COUNTED, MODELED, PUBLISHED  # noqa: E402
from codesign.graph.stats import layer_macs  # noqa: E402
from codesign.importers.qonnx import import_qonnx  # noqa: E402
from engine_cycles import measure  # noqa: E402
from qonnx_models import MOBILENET_V1_BLOCKS, MobileNetV1ish, calibrated, export  # noqa: E402

PAPER_GMAC = 0.569  # Howard et al. 2017, Table 1: MobileNet-v1 1.0-224, 569 M mult-adds
# (board, FPS, clock MHz, batch, source): FINN's MobileNet-v1 W4A4 (8-bit first layer), measured by
# finn-examples' driver.throughput_test() and recorded as notebook output
FINN_PUBLISHED = (
    ("ZCU102 (ZU9EG)", 459.5, 187.5, 100,
     "finn-examples commit 4377912 (2021-03-08), 2_imagenet_with_mobilenet_v1.ipynb; the notebook names the ZCU102"),
    ("ZCU102 (ZU9EG)", 245.2, 100.0, 100,
     "finn-examples commit 8262712 (2021-03-09), 2_imagenet_with_mobilenet_v1.ipynb"),
    ("Alveo U250", 1813.1, 206.0, 1000,
     "finn-examples commit ffb033d, 2_imagenet_with_mobilenet_v1.ipynb"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=32, help="stem channels (32: MobileNet-v1 1.0)")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        model = MobileNetV1ish(w_bits=4, a_bits=4, width=args.width, classes=args.classes,
                               blocks=MOBILENET_V1_BLOCKS, stem_bits=8)
        onnx_path = export(calibrated(model, 224, batches=1), tmp / "mobilenet_v1.onnx", 224)
        graph = import_qonnx(onnx_path)
        print(f"Brevitas → QONNX → import: {len(graph.layers)} layers in {time.perf_counter() - t0:.1f} s")
        r = measure("mobilenet_v1_w4a4", graph, tmp, published=(None, None))
    gmac = sum(layer_macs(graph, layer) for layer in graph.layers) / 1e9
    print(f"MobileNet-v1 W4A4 224² (width {args.width}), {gmac:.3f} GMAC/frame (the paper's 1.0-224: {PAPER_GMAC})")
    print(f"  Ultra96 {r['config']}; {r['calls']} calls, {r['frame_cycles']:,} cycles/frame")
    print(f"  engine {r['fps_engine']:.1f} FPS [{CYCLE_COUNTED}]; batch 1 / 16: {r['fps_batch1']:.1f} / "
          f"{r['fps_batch16']:.1f} FPS [{CYCLE_COUNTED}; host modeled]")
    print(f"  estimator {r['estimator_fps_engine']:.1f} FPS [{MODELED}], est./count {r['estimator_vs_counted']:.3f}; "
          f"MAC util {r['mac_utilisation']:.1%}; C-sim {r['csim_seconds']:.1f} s")
    print(f"  resources {r['resources_summary']}")
    print("FINN's dataflow build of the same network [" + PUBLISHED + "; other boards, no Ultra96 build exists]:")
    for board, fps, mhz, batch, source in FINN_PUBLISHED:
        print(f"  {board:<16}{fps:>8.1f} FPS at {mhz:g} MHz, batch {batch}  ({source})")
    print(f"  ours on the Ultra96 (ZU3EG, {r['fps_batch16']:.1f} FPS at batch 16) is "
          f"{r['fps_batch16'] / FINN_PUBLISHED[0][1]:.2f}× FINN's ZCU102 figure on a device with 1/7 of its DSPs")
    if args.json:
        finn = [dict(zip(("board", "fps", "mhz", "batch", "source"), row)) for row in FINN_PUBLISHED]
        Path(args.json).write_text(json.dumps({**r, "gmac": gmac, "finn_published": finn}, indent=1, sort_keys=True)
                                   + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
