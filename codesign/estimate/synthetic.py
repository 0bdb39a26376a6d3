"""A DiracDeltaNet IR built directly from the network's structure, without torch.

Performance and resource modelling needs the layer structure, the shapes and the bit widths, not
trained values. Exporting a Brevitas model at 224² costs ~25 s (model construction + calibration);
this builder makes the same graph (same layer names, ops, tensor shapes and bits as
`codesign.quant.export_model` of `codesign.models.DiracDeltaNet`) in well under a second, with
random integers in the right ranges, so the estimator's tests and the exploration benches stay fast.
`tests/test_estimate.py::test_synthetic_ir_matches_export` (marked slow) checks the match.
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Layer, TensorInfo, validate

STAGE_BLOCKS = (4, 8, 4)
STAGE_CHANNELS = (128, 256, 512)
STEM_CHANNELS = (32, 64)
HEAD_CHANNELS = 1024


def _channels(c: float, divisor: int = 4) -> int:
    """Width scaling as `codesign.models.layers.channels` does it (a multiple of 4)."""
    return max(divisor, int(round(c / divisor)) * divisor)


class _G:
    def __init__(self, seed: int):
        self.rng = np.random.RandomState(seed)
        self.tensors: dict[str, TensorInfo] = {}
        self.layers: list[Layer] = []

    def t(self, name: str, shape, bits: int, scale: float = 0.25, signed: bool = False) -> str:
        self.tensors[name] = TensorInfo(tuple(int(s) for s in shape), bits, signed, float(scale))
        return name

    def conv(self, name: str, x: str, cout: int, wbits: int, abits: int, scale: float = 0.25) -> str:
        h, w, cin = self.tensors[x].shape
        lim = (1 << (wbits - 1)) - 1
        weight = self.rng.randint(-lim, lim + 1, (cout, cin)).astype(np.int8)
        params = {"weight": weight,
                  "mult": self.rng.randint(1, 1 << 10, cout).astype(np.int64),
                  "bias": self.rng.randint(-(1 << 12), 1 << 12, cout).astype(np.int64)}
        out = self.t(name, (h, w, cout), abits, scale)
        self.layers.append(Layer(name, "conv1x1", [x], out, {"shift": 16, "weight_bits": wbits}, params))
        return out

    def same(self, name: str, op: str, x: str, shape=None, attrs=None) -> str:
        src = self.tensors[x]
        out = self.t(name, shape or src.shape, src.bits, src.scale, src.signed)
        self.layers.append(Layer(name, op, [x], out, attrs or {}))
        return out

    def pool(self, name: str, x: str) -> str:
        h, w, c = self.tensors[x].shape
        return self.same(name, "maxpool2x2", x, (h // 2, w // 2, c))

    def shift(self, name: str, x: str) -> str:
        return self.same(name, "shift", x, attrs={"pattern": "dirac5"})

    def slice(self, name: str, x: str, start: int, stop: int) -> str:
        h, w, _ = self.tensors[x].shape
        return self.same(name, "slice", x, (h, w, stop - start), {"start": start, "stop": stop})

    def concat(self, name: str, xs: list[str], rotate: int) -> str:
        h, w, _ = self.tensors[xs[0]].shape
        total = sum(self.tensors[x].shape[2] for x in xs)
        src = self.tensors[xs[0]]
        out = self.t(name, (h, w, total), src.bits, src.scale)
        self.layers.append(Layer(name, "concat", list(xs), out, {"rotate": rotate}))
        return out


def diracdeltanet_ir(resolution: int = 224, num_classes: int = 1000, width: float = 1.0,
                     stage_blocks: tuple[int, ...] = STAGE_BLOCKS, weight_bits: int = 4, act_bits: int = 4,
                     first_weight_bits: int = 8, fc_weight_bits: int = 8, seed: int = 0) -> Graph:
    """DiracDeltaNet (DESIGN.md §7) as an integer IR with random parameters."""
    g = _G(seed)
    trunk = 0.2  # one shared scale for every tensor that enters a concat (one quantizer)
    x = g.t("input", (resolution, resolution, 3), 8, 1 / 255)
    s1, s2 = (_channels(c * width) for c in STEM_CHANNELS)
    x = g.conv("stem1", x, s1, first_weight_bits, act_bits)
    x = g.shift("stem1_shift", g.pool("stem1_pool", x))
    x = g.conv("stem2", x, s2, weight_bits, act_bits, trunk)
    x = g.shift("stem2_shift", g.pool("stem2_pool", x))
    for si, (n, c) in enumerate(zip(stage_blocks, STAGE_CHANNELS[: len(stage_blocks)]), start=1):
        c = _channels(c * width)
        p = f"stage{si}_0"
        skip = g.conv(f"{p}.skip", g.pool(f"{p}.skip_pool", x), c // 2, weight_bits, act_bits, trunk)
        main = g.shift(f"{p}.shift", g.pool(f"{p}.pool", g.conv(f"{p}.expand", x, c, weight_bits, act_bits)))
        main = g.conv(f"{p}.project", main, c // 2, weight_bits, act_bits, trunk)
        x = g.concat(p, [skip, main], c // 4)
        for b in range(1, n):
            p = f"stage{si}_{b}"
            passed = g.slice(f"{p}.pass", x, 0, c // 2)
            branch = g.slice(f"{p}.branch", x, c // 2, c)
            y = g.shift(f"{p}.shift", g.conv(f"{p}.expand", branch, c, weight_bits, act_bits))
            y = g.conv(f"{p}.project", y, c // 2, weight_bits, act_bits, trunk)
            x = g.concat(p, [passed, y], c // 4)
    head_c = _channels(HEAD_CHANNELS * width)
    x = g.conv("head", x, head_c, weight_bits, act_bits)
    h, w, _ = g.tensors[x].shape
    t = g.tensors[x]
    pooled = g.t("avgpool", (1, 1, head_c), max(1, (t.max_value * h * w).bit_length()), t.scale / (h * w))
    g.layers.append(Layer("avgpool", "globalsumpool", [x], pooled))
    lim = (1 << (fc_weight_bits - 1)) - 1
    fc_w = g.rng.randint(-lim, lim + 1, (num_classes, head_c)).astype(np.int8)
    out = g.t("fc", (1, 1, num_classes), 32, 1e-4, signed=True)
    g.layers.append(Layer("fc", "linear", [pooled], out, {"weight_bits": fc_weight_bits},
                          {"weight": fc_w, "bias": g.rng.randint(-1000, 1000, num_classes).astype(np.int64)}))
    graph = Graph("diracdeltanet", "input", "fc", g.tensors, g.layers,
                  {"synthetic": True, "resolution": resolution, "width": width})
    validate(graph)
    return graph
