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

from ..architectures import (CODENET_BACKBONE_CHANNELS, CODENET_CONFIGS, CODENET_NECK_CHANNELS, CODENET_STAGE_BLOCKS,
                             DIRAC_HEAD_CHANNELS, DIRAC_STAGE_BLOCKS, DIRAC_STAGE_CHANNELS, DIRAC_STEM_CHANNELS,
                             channels)
from ..graph import Graph, Layer, TensorInfo, validate



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
                     stage_blocks: tuple[int, ...] = DIRAC_STAGE_BLOCKS, weight_bits: int = 4, act_bits: int = 4,
                     first_weight_bits: int = 8, fc_weight_bits: int = 8, seed: int = 0) -> Graph:
    """DiracDeltaNet (DESIGN.md §7) as an integer IR with random parameters."""
    g = _G(seed)
    trunk = 0.2  # one shared scale for every tensor that enters a concat (one quantizer)
    x = g.t("input", (resolution, resolution, 3), 8, 1 / 255)
    s1, s2 = (channels(c * width) for c in DIRAC_STEM_CHANNELS)
    x = g.conv("stem1", x, s1, first_weight_bits, act_bits)
    x = g.shift("stem1_shift", g.pool("stem1_pool", x))
    x = g.conv("stem2", x, s2, weight_bits, act_bits, trunk)
    x = g.shift("stem2_shift", g.pool("stem2_pool", x))
    for si, (n, c) in enumerate(zip(stage_blocks, DIRAC_STAGE_CHANNELS[: len(stage_blocks)]), start=1):
        c = channels(c * width)
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
    head_c = channels(DIRAC_HEAD_CHANNELS * width)
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


# ---- CoDeNet (FPGA'21) ------------------------------------------------------------------------------

def codenet_ir(config: str = "c", num_classes: int = 20, width: float = 1.0, resolution: int | None = None,
               weight_bits: int = 4, act_bits: int = 8, first_weight_bits: int = 8, max_dilation: int = 7,
               seed: int = 0) -> Graph:
    """CoDeNet (`codesign.models.codenet`) as an integer IR with random parameters, from the structure.

    Same layer names, ops, attributes, tensor shapes and bits as `export_model` of a calibrated
    `build_model({"model": "codenet", "config": config, ...})` (whose export costs 10–40 s for the
    full-size configs); `tests/test_estimate.py::test_synthetic_codenet_matches_export` (slow) checks it.
    """
    cfg = CODENET_CONFIGS[config]
    res = resolution or cfg["resolution"]
    g = _G(seed)
    x = g.t("input", (res, res, 3), 8, 1 / 255)
    stem_c, *stage_c, last_c = (channels(c * width) for c in CODENET_BACKBONE_CHANNELS[cfg["backbone"]])
    neck_c = [channels(c * width) for c in CODENET_NECK_CHANNELS]

    def params(cout: int, cin: int, wbits: int) -> dict:
        lim = (1 << (wbits - 1)) - 1
        return {"weight": g.rng.randint(-lim, lim + 1, (cout, cin)).astype(np.int8),
                "mult": g.rng.randint(1, 1 << 10, cout).astype(np.int64),
                "bias": g.rng.randint(-(1 << 12), 1 << 12, cout).astype(np.int64)}

    def dw(name: str, x: str, stride: int) -> str:
        h, w, c = g.tensors[x].shape
        out = g.t(name, ((h - 1) // stride + 1, (w - 1) // stride + 1, c), act_bits)
        g.layers.append(Layer(name, "dwconv3x3", [x], out, {"shift": 16, "weight_bits": weight_bits, "stride": stride},
                              params(c, 9, weight_bits)))
        return out

    stride = 4 if cfg["stem"] == "s4" else 2
    p = "backbone.stem"
    out = g.t(p, ((res - 1) // stride + 1, (res - 1) // stride + 1, stem_c), act_bits)
    g.layers.append(Layer(p, "conv2d", [x], out, {"kernel": 3, "stride": stride, "padding": 1, "shift": 16,
                                                  "weight_bits": first_weight_bits}, params(stem_c, 27, first_weight_bits)))
    x = out
    if cfg["stem"] != "s4":
        x = g.pool("backbone.stem_pool", x)
    cin = stem_c
    for si, (n, c) in enumerate(zip(CODENET_STAGE_BLOCKS, stage_c), start=2):
        half = c // 2
        for b in range(n):
            p = f"backbone.stage{si}_{b}"
            if b == 0:
                first = g.conv(f"{p}.branch_proj.1", dw(f"{p}.branch_proj.0", x, 2), half, weight_bits, act_bits)
                y = g.conv(f"{p}.branch_main.0", x, half, weight_bits, act_bits)
                y = dw(f"{p}.branch_main.1", y, 2)
            else:
                first = g.slice(f"{p}.pass", x, 0, half)
                y = g.slice(f"{p}.branch", x, half, c)
                y = dw(f"{p}.branch_main.1", g.conv(f"{p}.branch_main.0", y, half, weight_bits, act_bits), 1)
            y = g.conv(f"{p}.branch_main.2", y, half, weight_bits, act_bits)
            x = g.concat(p, [first, y], 0)
            g.layers[-1].attrs["interleave"] = 2
            cin = c
    x = g.conv("backbone.conv5", x, last_c, weight_bits, act_bits)
    dbits = max_dilation.bit_length()
    for i, (a, cout) in enumerate(zip([last_c] + neck_c[:-1], neck_c), start=1):
        p = f"neck.neck{i}"
        d = g.conv(f"{p}.deform.offset", x, 1, weight_bits, dbits, 1.0)
        h, w, c = g.tensors[x].shape
        out = g.t(f"{p}.deform", (h, w, c), act_bits)
        g.layers.append(Layer(f"{p}.deform", "deform3x3", [x, d], out,
                              {"shift": 16, "weight_bits": weight_bits, "max_dilation": max_dilation},
                              params(c, 9, weight_bits)))
        x = g.conv(f"{p}.conv", out, cout, weight_bits, act_bits)
        h, w, c = g.tensors[x].shape
        x = g.same(f"{p}.up", "upsample2x", x, (2 * h, 2 * w, c))
    outputs = []
    for name, cout in (("heatmap", num_classes), ("size", 2), ("offset", 2)):
        p = f"heads.{name}"
        y = dw(f"{p}.dw", g.conv(f"{p}.conv", x, neck_c[-1], weight_bits, act_bits), 1)
        h, w, c = g.tensors[y].shape
        lim = (1 << (weight_bits - 1)) - 1
        out = g.t(f"{p}.out", (h, w, cout), 32, 1e-4, signed=True)
        g.layers.append(Layer(f"{p}.out", "conv1x1_head", [y], out, {"weight_bits": weight_bits},
                              {"weight": g.rng.randint(-lim, lim + 1, (cout, c)).astype(np.int8),
                               "bias": g.rng.randint(-1000, 1000, cout).astype(np.int64),
                               "out_scale": np.full(cout, 1e-4)}))
        outputs.append(out)
    graph = Graph("codenet", "input", outputs, g.tensors, g.layers,
                  {"synthetic": True, "config": config, "resolution": res, "width": width})
    validate(graph)
    return graph


def codenet_notebook_call(d: int, ic: int, oc: int, stride: int = 1):
    """One call of CoDeNet's accelerator as its artifact notebook makes it (reference.CODENET_CALLS_MS):
    a 1×1 conv IC → OC on a D×D map followed by a depthwise 3×3 of stride 1 or 2, 8-bit activations,
    4-bit weights. A `CallWork` for `cycles.call_estimate`."""
    from .workload import CallWork

    do = (d - 1) // stride + 1
    return CallWork(name=f"D{d}_IC{ic}_OC{oc}_s{stride}", layers=("conv", "dw"), conv=True, prepool=False, pool=False,
                    shift=False, in_h=d, in_w=d, in_cbuf=ic, in_rot=0, cin=ic, in_store_bits=8, in_value_bits=8,
                    out_cbuf=oc, out_rot=0, cout=oc, out_bits=8, weight_bits=4,
                    macs=d * d * ic * oc + do * do * oc * 9, reads_graph_input=False, spatial="dw",
                    stride2=stride == 2, spatial_macs=do * do * oc * 9, spatial_weight_bits=4)


def codenet_notebook_network(d: int = 64, w2: bool = True, heads: tuple[int, ...] = (80, 2, 2)) -> dict:
    """The engine calls and ARM copies of the network CoDeNet's artifact notebook runs
    (hqjenny/CoDeNet sw/codenet.ipynb, `Convlayer.PoseSufflenetv2`; cell 18 runs `w2=True` on a 64×64×32
    input, i.e. 256² after the stem), replaying its host code: `conv()` splits a layer at 512 output
    channels (and a `skip1` layer's input too), `BaseNode` makes 4 calls at stride 2 and 2 at stride 1,
    `deform_conv` 2–3, `HeadConv` one per head. Every call runs 1×1 + 3×3 (`conv()` passes skip1 =
    skip3 = 0 to `conv0`).

    Returns {"calls": [(D, IC, OC, stride)], "shuffles": [(D, C)] (concat_and_shuffle outputs, int8),
    "upsamples": [(D, C)] (inputs of the ARM's 2× repeat), "splits": int (channel_split views)}.
    """
    def c16(n: int) -> int:
        return -(-n // 16) * 16

    calls: list[tuple[int, int, int, int]] = []
    shuffles: list[tuple[int, int]] = []
    upsamples: list[tuple[int, int]] = []
    splits = 0

    def conv(x: tuple[int, int], ic: int, oc: int, stride: int, skip1: bool = False) -> tuple[int, int]:
        size, out_c = x[0], 0
        while True:
            if oc > 512:
                oc -= 512
                if skip1:
                    ic -= 512
                calls.append((size, 512 if skip1 else ic, 512, stride))
                out_c += 512
            else:
                calls.append((size, ic, oc, stride))
                out_c += c16(oc)
                return (size // 2 if stride == 2 else size, out_c)

    def base_node(x: tuple[int, int], inp: int, oup: int, stride: int) -> tuple[int, int]:
        nonlocal splits
        half = oup // 2
        if stride == 1:
            splits += 1
            y = conv(conv((x[0], x[1] // 2), half, half, 1), half, half, 1)
            out = (x[0], x[1] // 2 + y[1])
        else:
            y1 = conv(conv(x, inp, inp, 2, skip1=True), inp, half, 1)
            y2 = conv(conv(x, inp, half, 2), half, half, 1)
            out = (y1[0], y1[1] + y2[1])
        shuffles.append(out)
        return out

    ch = [32, 256, 512, 1024, 2048] if w2 else [32, 128, 256, 512, 1024]
    x = (d, 32)
    for i, repeats in enumerate((3, 7, 3)):
        x = base_node(x, ch[i], ch[i + 1], 2)
        for _ in range(repeats):
            x = base_node(x, ch[i], ch[i + 1], 1)
    x = conv(x, ch[3], ch[4], 1)
    for ic, oc in zip([ch[4], 256, 128], (256, 128, 128)):
        conv(x, ic, 1, 1)
        x = conv(x, ic, ic, 1, skip1=True)
        if ic != oc:
            x = conv(x, ic, oc, 1)
        upsamples.append(x)
        x = (2 * x[0], x[1])
    for oc in heads:
        conv(x, 128, oc, 1)
    return {"calls": calls, "shuffles": shuffles, "upsamples": upsamples, "splits": splits}
