"""Published design points (DESIGN.md §7) the model is validated against.

These numbers are *never* read by the model (cycles.py, resources.py); only the validation
(tests/test_estimate.py, bench/estimate_validate.py) and reports compare the model's output with
them. CoDeNet rows are compared in tests/test_estimate.py (see docs/estimator.md, "CoDeNet").
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DesignPoint:
    """One published measurement of an accelerator."""

    name: str
    model: str  # the network (a `codesign.models` name)
    board: str
    clock_mhz: float
    fps: dict[int, float]  # batch size → frames per second
    resources: dict[str, float] = field(default_factory=dict)  # lut, ff, bram36, dsp
    config: dict = field(default_factory=dict)  # what identifies the design point
    source: str = ""


SYNETGY = DesignPoint(
    name="synetgy", model="diracdeltanet", board="ultra96v2", clock_mhz=250.0,
    fps={1: 41.4, 2: 53.6, 4: 62.6, 8: 65.6, 16: 66.3},
    resources={"lut": 51776, "ff": 42257, "bram36": 159, "dsp": 360},
    config={"resolution": 224, "pi": 32, "po": 32, "weight_bits": 4, "act_bits": 4, "control": "per_layer",
            "shuffle_on_cpu": True},
    source="Yang et al., Synetgy, FPGA'19 (DESIGN.md §7); shuffle by ARM memcpy: block 1.53 → 4.41 ms")

# CoDeNet (Pascal VOC 2007, W4A8, Ultra96 at 250 MHz): 16×16 1×1 MAC array + 16-channel × 9-tap
# depthwise/deformable unit, 15-row line buffer; 34,144 LUT, 41,827 FF, 216 BRAM36, 360 DSP.
CODENET_RESOURCES = {"lut": 34144, "ff": 41827, "bram36": 216, "dsp": 360}
CODENET = tuple(
    DesignPoint(name=f"codenet-{cfg}", model="codenet", board="ultra96v2", clock_mhz=250.0, fps={1: fps},
                resources=CODENET_RESOURCES,
                config={"config": cfg, "resolution": res, "stem": stem, "width": width, "ap50": ap50,
                        "pi": 16, "po": 16, "weight_bits": 4, "act_bits": 8, "stem_on_cpu": True},
                source="Huang et al., CoDeNet, FPGA'21 (DESIGN.md §7)")
    for cfg, res, stem, width, fps, ap50 in (
        ("a", 256, "3x3 s4", 1.0, 32.2, 51.1),
        ("b", 256, "3x3 s2 + maxpool", 1.0, 26.9, 55.1),
        ("c", 512, "3x3 s4", 1.0, 9.3, 61.7),
        ("d", 512, "3x3 s4", 2.0, 5.2, 67.1),
        ("e", 512, "3x3 s2 + maxpool", 2.0, 4.6, 69.7),
    ))
# Per-call times of CoDeNet's accelerator, measured by its authors on the Ultra96 (artifact notebook
# hqjenny/CoDeNet sw/codenet.ipynb, cell 18: a ShuffleNetV2-2x CenterNet, 80 classes, 64x64x32 input
# after the stem; every call runs 1x1 + 3x3 with deform off). Each row is (D, IC, OC, stride, ms): one
# call on a D x D map, timed from the ap_start write to the done-poll that sees it finish. Repeated
# calls of one shape are listed once (their times agree to 1 %). The source of CODENET_TIMING's loop
# overheads and register read (bench/estimate_codenet_fit.py); not a frame rate.
CODENET_CALLS_MS = (
    (64, 32, 32, 2, 1.028), (32, 32, 128, 1, 0.609), (64, 32, 128, 2, 1.712), (32, 128, 128, 1, 0.740),
    (32, 256, 256, 2, 1.859), (16, 256, 256, 1, 0.577), (16, 512, 512, 2, 1.586), (8, 512, 512, 1, 0.555),
    (8, 1024, 512, 1, 0.840), (8, 2048, 1, 1, 0.152), (8, 2048, 256, 1, 0.800), (16, 256, 1, 1, 0.132),
    (16, 256, 128, 1, 0.334), (32, 128, 1, 1, 0.374), (64, 128, 80, 1, 1.781), (64, 128, 2, 1, 1.313),
)
# The same run's frame-level totals (cell 18's `showresult()`, s → ms): convtime = the sum of its 56 call times
# (the 16 shapes above, repeated; `synthetic.codenet_notebook_network()` replays the call list), channel_shuffle =
# its 16 concat_and_shuffle copies (2.36 MB), uptime = its 3 ARM upsamples, chansplit = its 13 channel_split
# views; total 53.6 ms, 18.6 FPS. No stem, no input/output copies, no decode. Not independent of
# CODENET_CALLS_MS (same calls): a frame-level consistency check, not a held-out one.
# (Cell 49 prints convtime 165.9 ms, total 173.4 ms, 5.77 FPS, but its source was cleared and its op count,
# 17.49 GOP/s × 0.1659 s = 2.90 G by the notebook's own formula, matches none of the notebook's networks —
# 1.97 G for cell 18's, 2.99 G for the 1× backbone at 512², 7.87 G for the 2× at 512² — so what it timed is
# unknown and it is not used.)
CODENET_NOTEBOOK_FRAME_MS = {"convtime": 42.238, "channel_shuffle": 10.396, "uptime": 0.825, "chansplit": 0.166,
                             "total": 53.625}
# The same notebook's ARM work: concat + 2-way channel interleave of two (1, D, D, C/2) int8 arrays
# (numpy strided stores), (D, C, ms): an independent check of ModelParams.arm_copy_gbps (0.2-0.26 GB/s).
CODENET_SHUFFLE_MS = ((32, 256, 1.345), (32, 256, 1.129), (16, 512, 0.627), (16, 512, 0.511), (8, 1024, 0.359),
                      (8, 1024, 0.283))
# CoDeNet's ARM stem time, config b (DESIGN.md §3) — the source of ModelParams.arm_gmacs.
CODENET_STEM_MS_CONFIG_B = 7.9
# Synetgy's channel shuffle on the ARM: block time 1.53 ms → 4.41 ms (DESIGN.md §3).
SYNETGY_SHUFFLE_BLOCK_MS = (1.53, 4.41)


def relative_error(model: float, published: float) -> float:
    return model / published - 1.0
