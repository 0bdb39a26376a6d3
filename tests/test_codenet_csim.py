"""CoDeNet on the engine: the new engine features (depthwise 3×3 stride 1/2, square deformable 3×3
with a dilation map, nearest 2× upsample, channel-strided views) fuzzed one call at a time, and a
reduced CoDeNet end to end, C-simulated bit-exact against the golden model."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from codesign.golden import GoldenModel
from codesign.graph import Graph, Layer, TensorInfo, accumulator_bound, validate
from codesign.hls.csim import CsimEngine
from codesign.hls.project import write_project
from codesign.hw import funcsim, layout
from codesign.hw.config import HardwareConfig
from codesign.hw.memory import initial_fmem
from codesign.hw.limits import sized_for
from codesign.hw.plan import ScheduleError
from codesign.hw.scheduler import schedule
from codesign.hw.verify import verify
from codesign.quant import export_model, requant_constants

from codesign.models.calibrated import random_calibrated_model

from .conftest import split_wtiles

# One engine build serves the fuzz and the reduced CoDeNet: 8-bit activations (CoDeNet's), a small
# MAC array (PI=4, PO=8) that random channel counts rarely fill, a 64-bit bus (8 lanes per word, so
# strided views straddle words), the default max_dilation 7 (a 15-row line buffer) and the default
# window unit (kernels to 7); 1024 channels: a 7×7 window of 20 channels is 980 MAC inputs; 128
# wide: the reduced CoDeNet's stem reads its 128² image; the signed-activation path (the fuzz draws
# signed tensors, CoDeNet's depthwise outputs are signed).
HW = HardwareConfig(pi=4, po=8, act_bits=8, weight_bits=8, bus_bits=64, max_channels=1024, max_width=128,
                    max_line=32 * 256, max_weights=256 * 256, signed_acts=True)
FUZZ_MAX_HW = 12  # fuzzed maps are at most 12 × 12 (24 × 24 after an upsample)
# The reduced CoDeNet: width 0.25 (channels 8/28/56/116/256, neck 64/32/16), 128² input.
REDUCED = {"model": "codenet", "width": 0.25, "resolution": 128, "num_classes": 4,
           "quant": {"act_bits": 8, "weight_bits": 4}}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    graph = fuzz_graph(np.random.RandomState(0), dict(h=4, w=4, cin=3, cout=3, a_bits=8, conv=True, prepool=False,
                                                     pool=False, spatial="dw1", upsample=False, interleave=None,
                                                     from_image=False, d_bits=3, d_ch=1))
    project = write_project(graph, HW, tmp_path_factory.mktemp("codenet_fuzz") / "p")
    return CsimEngine(project.path, HW.bus_bits)


def funcsim_executor(hw):
    return lambda table, wmem, fmem: funcsim.run(table, wmem, fmem, hw)


# ---- random graphs -------------------------------------------------------------------------------

def _requant(rng, acc_max: int, cout: int, out_bits: int, edge: bool = False, signed: bool = False):
    """(M, B, S) that spread typical accumulators over the output range, saturating at both ends; with
    `edge`, constants at the IR's limits instead: S from the ends of 1..46, |M| up to 2^23 − 1 and |B|
    up to what the 48-bit intermediate leaves (max|acc|·|M| + |B| + 2^(S−1) < 2^47)."""
    if edge:
        s = int(rng.choice([1, 2, 3, 23, 24, 44, 45, 46, int(rng.randint(1, 47))]))
        room = (1 << 47) - 1 - (1 << (s - 1))
        b_max = int(room * rng.choice([0.0, 0.001, 0.5, 0.999]))
        m_max = min((1 << 23) - 1, (room - b_max) // max(acc_max, 1))
        pick = rng.randint(0, 4, cout)  # per channel: ±m_max, ±1, 0 or anything in range
        mult = np.where(pick == 0, m_max, np.where(pick == 1, 1, np.where(pick == 2, 0, rng.randint(0, m_max + 1, cout))))
        mult = mult * rng.choice([-1, 1], cout)
        bias = rng.randint(-b_max, b_max + 1, cout) if b_max else np.zeros(cout, np.int64)
        return mult.astype(np.int64), bias.astype(np.int64), s
    out_max = (1 << out_bits) - 1
    if signed:  # centred on 0: both clamps, −2^(b−1) and 2^(b−1) − 1, are reached
        k = rng.uniform(-1.5, 1.5, cout) * 2 * out_max / max(acc_max, 1)
        return requant_constants(k, rng.uniform(-0.6, 0.6, cout) * out_max / 2, acc_max)
    k = rng.uniform(-0.5, 1.5, cout) * 4 * out_max / max(acc_max, 1)
    b = rng.uniform(-0.5, 0.8, cout) * out_max
    return requant_constants(k, b, acc_max)


def _tie_prone(rng, layer: Layer, acc_max: int, out_max: int) -> None:
    """Make `layer` round ties to even, with constants that make ties common: y = (2·acc + B) / 2^(t+1),
    B even, so every acc ≡ 2^(t−1) (mod 2^t) is a tie (M = ±2, S = t + 1); 2^t spreads typical
    accumulators over the output range as `_requant` does."""
    c = layer.params["mult"].shape[0]
    t = max(1, round(np.log2(max(acc_max, 1) / (4 * out_max))))
    layer.params["mult"] = (2 * rng.choice([1, 1, 1, -1], c)).astype(np.int64)
    layer.params["bias"] = (2 * rng.randint(-out_max << t >> 1, (out_max << t) + 1, c)).astype(np.int64)
    layer.attrs["shift"] = t + 1
    layer.attrs["rounding"] = "half_even"


class Builder:
    def __init__(self, h: int, w: int, edge: bool = False):
        self.tensors = {"input": TensorInfo((h, w, 3), 8, False, 1 / 255)}
        self.layers: list[Layer] = []
        self.edge = edge  # requant constants at the IR's limits (_requant)

    def add(self, name, op, inputs, shape, bits=None, scale=None, attrs=None, params=None, signed=None) -> str:
        """Without `signed` the output keeps the input's signedness (value-preserving ops)."""
        src = self.tensors[inputs[0]]
        self.tensors[name] = TensorInfo(tuple(shape), bits or src.bits, src.signed if signed is None else signed,
                                        scale or src.scale)
        self.layers.append(Layer(name, op, list(inputs), name, attrs or {}, params or {}))
        return name

    def conv(self, rng, name, x, cout, out_bits, w_bits=8, scale=None, signed=False) -> str:
        t = self.tensors[x]
        lim = (1 << (w_bits - 1)) - 1
        w = rng.randint(-lim, lim + 1, (cout, t.shape[2])).astype(np.int8)
        m, b, s = _requant(rng, accumulator_bound(w, t.magnitude), cout, out_bits, self.edge, signed)
        return self.add(name, "conv1x1", [x], (*t.shape[:2], cout), out_bits, scale or 0.1 + rng.rand(),
                        {"shift": s, "weight_bits": w_bits}, {"weight": w, "mult": m, "bias": b}, signed)

    def conv2d(self, rng, name, x, cout, out_bits, kernel, stride, padding, w_bits=8, signed=False) -> str:
        """A dense k×k conv (the window unit), weights [Cout][Cin·k·k] in the IR's (c, ky, kx) order."""
        t = self.tensors[x]
        h, w, c = t.shape
        lim = (1 << (w_bits - 1)) - 1
        wt = rng.randint(-lim, lim + 1, (cout, c * kernel * kernel)).astype(np.int8)
        m, b, s = _requant(rng, accumulator_bound(wt, t.magnitude), cout, out_bits, self.edge, signed)
        shape = ((h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1, cout)
        return self.add(name, "conv2d", [x], shape, out_bits, 0.1 + rng.rand(),
                        {"kernel": kernel, "stride": stride, "padding": padding, "shift": s, "weight_bits": w_bits},
                        {"weight": wt, "mult": m, "bias": b}, signed)

    def dilation(self, rng, name, x, cout, bits) -> str:
        """A conv1x1 whose outputs spread over 0..R = 2^bits − 1 (positive weights, the accumulator
        range mapped linearly onto −1..R+1, so both clamps are hit)."""
        t = self.tensors[x]
        w = rng.randint(1, 128, (cout, t.shape[2])).astype(np.int8)
        acc_max = accumulator_bound(w, t.max_value)
        r = (1 << bits) - 1
        m, b, s = requant_constants(np.full(cout, (r + 2) / acc_max), np.full(cout, -1.0), acc_max)
        return self.add(name, "conv1x1", [x], (*t.shape[:2], cout), bits, 1.0,
                        {"shift": s, "weight_bits": 8}, {"weight": w, "mult": m, "bias": b})

    def spatial(self, rng, name, op, inputs, out_bits, stride=1, max_dilation=None, signed=False) -> str:
        t = self.tensors[inputs[0]]
        h, w, c = t.shape
        wb = int(rng.randint(2, 9))
        lim = (1 << (wb - 1)) - 1
        weight = rng.randint(-lim, lim + 1, (c, 9)).astype(np.int8)
        m, b, s = _requant(rng, accumulator_bound(weight, t.magnitude) // (1 if self.edge else 3), c, out_bits,
                           self.edge, signed)
        attrs = {"shift": s, "weight_bits": wb}
        if op == "dwconv3x3":
            attrs["stride"] = stride
            shape = ((h - 1) // stride + 1, (w - 1) // stride + 1, c)
        else:
            attrs["max_dilation"] = max_dilation
            shape = (h, w, c)
        return self.add(name, op, inputs, shape, out_bits, 0.1 + rng.rand(), attrs,
                        {"weight": weight, "mult": m, "bias": b}, signed)


def fuzz_graph(rng, p: dict) -> Graph:
    """image → [dilation map] → conv0 → one fuzzed call [prepool][conv][pool][dw s1|s2 | deform][upsample]
    → (interleaved concat with a 1×1 conv of itself, rotated). p["signed"] = (conv0, conv1, spatial):
    which of those outputs are signed (two's complement) activations."""
    h, w, a = p["h"], p["w"], p["a_bits"]
    s0, s1, s2 = p.get("signed") or (False, False, False)
    g = Builder(h, w, p.get("edge", False))
    d = None
    if p["spatial"] == "deform":
        # the dilation map: one channel of a (d_ch)-channel conv of the image, d_bits wide (R = 2^b − 1)
        src = g.dilation(rng, "dsrc", "input", p["d_ch"], p["d_bits"])
        d = src
        if p["d_ch"] > 1:
            k = int(rng.randint(p["d_ch"]))
            d = g.add("dmap", "slice", [src], (h, w, 1), attrs={"start": k, "stop": k + 1})
    x = "input" if p["from_image"] else g.conv(rng, "conv0", "input", p["cin"], a, signed=s0)
    if not p["conv"] and x != "input":
        g.add("keep", "slice", [x], (h, w, 1), attrs={"start": 0, "stop": 1})  # a second user: no fusion
    if p["prepool"]:
        hh, ww, c = g.tensors[x].shape
        x = g.add("prepool", "maxpool2x2", [x], (hh // 2, ww // 2, c))
    if p["conv"] and p.get("kxk"):  # a k×k conv through the window unit (no PREPOOL, no DEFORM after it)
        x = g.conv2d(rng, "conv1", x, p["cout"], a, *p["kxk"], w_bits=int(rng.randint(2, 9)), signed=s1)
    elif p["conv"]:
        x = g.conv(rng, "conv1", x, p["cout"], a, w_bits=int(rng.randint(2, 9)), signed=s1)
    if p["pool"]:
        hh, ww, c = g.tensors[x].shape
        x = g.add("pool", "maxpool2x2", [x], (hh // 2, ww // 2, c))
    sp = p["spatial"]
    if sp in ("dw1", "dw2"):
        x = g.spatial(rng, "dw", "dwconv3x3", [x], a, stride=1 if sp == "dw1" else 2, signed=s2)
    elif sp == "deform":
        x = g.spatial(rng, "deform", "deform3x3", [x, d], a, max_dilation=(1 << p["d_bits"]) - 1, signed=s2)
    if p["upsample"]:
        hh, ww, c = g.tensors[x].shape
        x = g.add("up", "upsample2x", [x], (2 * hh, 2 * ww, c))
    if p["interleave"] is not None:
        # concat(x, conv(x)) interleaved: x is written with channel stride 2 and read back through
        # that strided view by the partner conv
        t = g.tensors[x]
        partner = g.conv(rng, "partner", x, t.shape[2], t.bits, scale=t.scale, signed=t.signed)
        first_x, rot = p["interleave"]
        ins = [x, partner] if first_x else [partner, x]
        total = 2 * t.shape[2]
        x = g.add("cat", "concat", ins, (*t.shape[:2], total), attrs={"rotate": rot % total, "interleave": 2})
    if p.get("half_even"):  # the fuzzed call's requants round ties to even (an engine with `half_even`)
        for layer in g.layers:
            if layer.name in ("conv1", "dw", "deform"):
                _tie_prone(rng, layer, accumulator_bound(layer.params["weight"], g.tensors[layer.inputs[0]].magnitude),
                           g.tensors[layer.output].max_value)
    graph = Graph("codenet_fuzz", "input", x, g.tensors, g.layers, {})
    validate(graph)
    return graph


@st.composite
def fuzz_params(draw):
    spatial = draw(st.sampled_from(["none", "dw1", "dw2", "deform", "deform"]))
    conv = draw(st.booleans())
    from_image = not conv and spatial != "none" and draw(st.booleans())
    p = dict(h=draw(st.integers(1, FUZZ_MAX_HW)), w=draw(st.integers(1, FUZZ_MAX_HW)), cin=draw(st.integers(1, 24)),
             cout=draw(st.integers(1, 24)), a_bits=draw(st.integers(2, 8)), conv=conv,
             prepool=conv and spatial != "deform" and draw(st.booleans()),
             pool=spatial != "deform" and draw(st.booleans()), spatial=spatial, upsample=draw(st.booleans()),
             interleave=draw(st.one_of(st.none(), st.tuples(st.booleans(), st.integers(0, 60)))),
             from_image=from_image, d_bits=draw(st.sampled_from([2, 3])), d_ch=draw(st.integers(1, 3)))
    if from_image:
        p["a_bits"] = 8  # what the image holds
    if spatial == "none" and (not conv or p["interleave"] is None):
        p["upsample"] = True  # (without conv: a lone upsample, a copy that writes each pixel to 2×2)
    p["split"] = draw(st.sampled_from([False, False, True]))  # a weight buffer too shallow for some conv
    p["edge"] = draw(st.booleans())  # requant constants at the IR's limits
    # signed activations (half the cases): the call's input (conv0), its conv's and its spatial op's outputs
    p["signed"] = draw(st.tuples(st.booleans(), st.booleans(), st.booleans())) if draw(st.booleans()) else None
    if conv and spatial != "deform" and draw(st.booleans()):  # the conv a k×k one (the window unit)
        k = draw(st.sampled_from([1, 3, 5, 7]))
        p["kxk"] = (k, draw(st.integers(1, 3)), draw(st.integers(0, k - 1)))
        p["prepool"] = False
        p["cin"] = min(p["cin"], KXK_MAX_INPUTS // (k * k) // HW.pi * HW.pi)
    return p


KXK_MAX_INPUTS = HW.max_channels  # k·k·⌈cin/PI⌉·PI MAC inputs ≤ max_channels (kxk_cin)


def kxk_fits(p: dict) -> bool:
    """Is a drawn k×k conv's output grid at least 1×1 and large enough for its pool?"""
    if not p.get("kxk"):
        return True
    k, s, pad = p["kxk"]
    ho, wo = (p["h"] + 2 * pad - k) // s + 1, (p["w"] + 2 * pad - k) // s + 1
    return min(ho, wo) >= 2 ** int(p["pool"]) and min(p["h"], p["w"]) + 2 * pad >= k


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(p=fuzz_params(), seed=st.integers(0, 2 ** 31 - 1))
def test_fuzz_new_engine_features_bit_exact(engine, p, seed):
    pools = int(p["prepool"]) + int(p["pool"])
    assume(min(p["h"], p["w"]) >= 2 ** pools and kxk_fits(p))
    rng = np.random.RandomState(seed)
    graph = fuzz_graph(rng, p)
    depth = split_wtiles(graph, HW, rng) if p["split"] else None
    sched = schedule(graph, HW.with_(max_wtiles=depth or 0))
    assert (depth is not None) == any(c.channels for c in sched.calls)
    features = [n for n in ("dw", "deform", "up") if n in graph.tensors]
    if features:  # they all run inside one call (fused with the conv / pools before them; or its parts)
        assert len({tuple(c.layers) for c in sched.calls if set(features) & set(c.layers)}) == 1
    image = rng.randint(0, 256, (p["h"], p["w"], 3)).astype(np.uint8)
    for executor in (funcsim_executor(HW), engine):
        report = verify(sched, graph, image, executor, per_call=True)
        assert report.ok, report.mismatch
        assert report.calls_checked == len(sched.calls) and report.logits_equal


def test_fuzz_covers_spread_dilations_and_strided_views():
    """The fuzz's dilation maps use the whole range 0..R and its concats write with stride 2."""
    rng = np.random.RandomState(3)
    p = dict(h=7, w=7, cin=5, cout=6, a_bits=8, conv=True, prepool=False, pool=False, spatial="deform",
             upsample=True, interleave=(False, 3), from_image=False, d_bits=3, d_ch=3)
    graph = fuzz_graph(rng, p)
    _, trace = GoldenModel(graph).run(rng.randint(0, 256, (1, 7, 7, 3)).astype(np.uint8), trace=True)
    assert len(np.unique(trace["dmap"])) >= 4
    sched = schedule(graph, HW)
    assert sched.views["up"].stride == 2 and sched.views["partner"].stride == 2
    call = next(c for c in sched.calls if c.spatial == "deform")
    assert call.layers == ["conv1", "deform", "up"] and call.descriptor["d_cbuf"] == 3


@pytest.mark.parametrize("spatial", ["dw1", "deform"])
def test_split_call_with_spatial_op_and_upsample_csim_bit_exact(engine, spatial):
    """The spatial unit and the upsample run after the conv, on its output channels: each part of a split
    conv loads its own [9][b − a] spatial weights and the constants of channels [a, b), and writes its
    channels of an interleaved (stride-2) concat, whose partner conv is split too. C-sim and functional
    simulator match golden per call and end to end."""
    rng = np.random.RandomState(5)  # draws weights of 5..8 bits for conv1 and partner: 2 slices each
    p = dict(h=6, w=6, cin=10, cout=24, a_bits=8, conv=True, prepool=False, pool=False, spatial=spatial,
             upsample=True, interleave=(True, 5), from_image=False, d_bits=3, d_ch=2)
    graph = fuzz_graph(rng, p)
    assert all(layout.weight_slices(graph.layer(n).attrs["weight_bits"], 8, 4) == 2 for n in ("conv1", "partner"))
    # 8-bit weights on the 4-bit array: 2 slices a tile. conv1: 3 input tiles × 2 output tiles × 2 a part;
    # partner (24 → 24): 6 × 1 × 2
    hw = HW.with_(max_wtiles=12)
    sched = schedule(graph, hw)
    parts = [c for c in sched.calls if c.conv == "conv1"]
    assert [c.channels for c in parts] == [(0, 16), (16, 24)]
    assert [c.channels for c in sched.calls if c.conv == "partner"] == [(0, 8), (8, 16), (16, 24)]
    sp = graph.layer(parts[0].spatial)
    view = sched.views[parts[0].output]
    cbuf, nb = sched.buffers[view.buffer].cbuf, hw.bus_bits // 8
    for c in parts:
        a, b = c.channels
        d = c.descriptor
        assert c.upsample and c.layers == ["conv1", sp.name, "up"]
        assert d["out_stride"] == 2 and d["out_rot"] == (view.rot + 2 * a) % cbuf and d["cout"] == b - a
        w = layout.unpack_weights(sched.wmem[d["sw_addr"] * nb:], 9, b - a, hw.weight_bits, hw.bus_bits)
        m, bias = layout.unpack_requant(sched.wmem[d["sq_addr"] * nb:], b - a, hw.bus_bits)
        assert np.array_equal(w, sp.params["weight"][a:b].T)
        assert np.array_equal(m, sp.params["mult"][a:b]) and np.array_equal(bias, sp.params["bias"][a:b])
    image = rng.randint(0, 256, (6, 6, 3)).astype(np.uint8)
    for executor in (funcsim_executor(hw), engine):
        per_call = verify(sched, graph, image, executor, per_call=True)
        assert per_call.ok and per_call.logits_equal, per_call.mismatch
        assert per_call.calls_checked == len(sched.calls)
        whole = verify(sched, graph, image, executor, per_call=False)
        assert whole.ok and whole.logits_equal, whole.mismatch


# ---- k×k convs on the window unit ---------------------------------------------------------------------

# (kernel, stride, padding, h, w, cin, cout, from the image): every kernel 1/3/5/7 at stride 1 and 2
# with no, some and the most padding; odd sizes; cin below, at and not a multiple of PI = 4; cout
# over two output tiles (PO = 8); 8-bit image input (IN8) or activations; stride 3 (rows skipped).
KXK_CASES = [
    (1, 1, 0, 5, 7, 3, 9, True), (1, 2, 0, 7, 5, 6, 8, False),
    (3, 1, 1, 7, 9, 3, 24, True), (3, 2, 1, 9, 7, 5, 11, False), (3, 2, 0, 8, 9, 4, 17, True),
    (3, 1, 2, 5, 6, 7, 3, False), (3, 3, 1, 11, 10, 2, 5, False),
    (5, 1, 2, 9, 7, 3, 12, True), (5, 2, 4, 6, 8, 9, 7, False), (5, 2, 0, 11, 9, 1, 16, False),
    (7, 1, 3, 9, 9, 3, 10, True), (7, 2, 3, 12, 11, 10, 6, False), (7, 1, 6, 3, 4, 2, 9, False),
]


@pytest.mark.parametrize("case", KXK_CASES, ids=lambda c: "k{}s{}p{}_{}x{}_c{}-{}{}".format(*c[:7], "_in8" * c[7]))
def test_kxk_conv_on_the_window_unit_csim_bit_exact(engine, case):
    """A conv2d runs as one KXK call (the window unit feeding the MAC array), fused with the pool after
    it where the grid allows one: C-sim and the functional simulator match golden per call."""
    k, s, pad, h, w, cin, cout, from_image = case
    rng = np.random.RandomState(k * 100 + s * 10 + pad)
    g = Builder(h, w)
    x = "input" if from_image else g.conv(rng, "conv0", "input", cin, 6)
    x = g.conv2d(rng, "kxk", x, cout, 8, k, s, pad, w_bits=int(rng.randint(2, 9)))
    ho, wo = g.tensors[x].shape[:2]
    if min(ho, wo) >= 2:
        x = g.add("pool", "maxpool2x2", [x], (ho // 2, wo // 2, cout))
    graph = Graph("kxk", "input", x, g.tensors, g.layers, {})
    validate(graph)
    sched = schedule(graph, HW)
    call = next(c for c in sched.calls if c.conv == "kxk")
    assert call.layers[0] == "kxk"
    assert call.descriptor["window"] == k | s << 8 | pad << 16 and call.descriptor["flags"] >> 9 & 1
    assert (call.input == "input") == from_image  # the image (IN8 on this A8 engine for both)
    assert call.pool == (min(ho, wo) >= 2)
    image = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    for executor in (funcsim_executor(HW), engine):
        report = verify(sched, graph, image, executor, per_call=True)
        assert report.ok, report.mismatch
        assert report.calls_checked == len(sched.calls) and report.logits_equal


@pytest.mark.parametrize("case", [(3, 1, 1, 7, 6, 5, 9, False), (5, 2, 2, 9, 8, 3, 12, True)],
                         ids=["k3s1p1_A4", "k5s2p2_in8_A4"])
def test_kxk_conv_on_an_a4_engine_csim_bit_exact(case, tmp_path):
    """On a 4-bit-activation engine the window unit reads A4 activations (one MAC pass per weight slice)
    or the 8-bit image (IN8: two activation passes): both bit-exact."""
    k, s, pad, h, w, cin, cout, from_image = case
    hw = HW.with_(act_bits=4, bus_bits=128)
    rng = np.random.RandomState(k)
    g = Builder(h, w)
    x = "input" if from_image else g.conv(rng, "conv0", "input", cin, 4)
    x = g.conv2d(rng, "kxk", x, cout, 4, k, s, pad, w_bits=8)
    graph = Graph("kxk_a4", "input", x, g.tensors, g.layers, {})
    validate(graph)
    sched = schedule(graph, hw)
    call = next(c for c in sched.calls if c.conv == "kxk")
    assert bool(call.descriptor["flags"] >> 4 & 1) == from_image  # IN8: the image; else A4 activations
    engine = CsimEngine(write_project(graph, hw, tmp_path / "p").path, hw.bus_bits)
    image = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    for executor in (funcsim_executor(hw), engine):
        report = verify(sched, graph, image, executor, per_call=True)
        assert report.ok and report.logits_equal, report.mismatch


def test_kxk_conv_split_by_output_channel_csim_bit_exact(engine):
    """A 3×3 conv whose k·k·⌈cin/PI⌉·PI-input weights exceed the weight buffer runs as parts by output
    channel, each re-reading the window; parts and whole frame bit-exact."""
    rng = np.random.RandomState(11)
    g = Builder(7, 6)
    x = g.conv(rng, "conv0", "input", 5, 8)
    x = g.conv2d(rng, "kxk", x, 20, 8, 3, 1, 1, w_bits=8)
    graph = Graph("kxk_split", "input", x, g.tensors, g.layers, {})
    validate(graph)
    # 9 taps × 2 vectors of PI = 4: 18 input tiles × 3 output tiles × 2 slices = 108 entries
    hw = HW.with_(max_wtiles=40)
    sched = schedule(graph, hw)
    assert [c.channels for c in sched.calls if c.conv == "kxk"] == [(0, 8), (8, 16), (16, 20)]
    image = rng.randint(0, 256, (7, 6, 3)).astype(np.uint8)
    for executor in (funcsim_executor(hw), engine):
        for per_call in (True, False):
            report = verify(sched, graph, image, executor, per_call=per_call)
            assert report.ok and report.logits_equal, report.mismatch


def test_kxk_conv_the_engine_cannot_hold_is_refused_with_one_line():
    """The scheduler names the layer and the limit: a kernel beyond max_kernel, an engine built without the
    window unit, a row wider than the window line, more MAC inputs than max_channels."""
    rng = np.random.RandomState(2)
    g = Builder(9, 9)
    x = g.conv(rng, "conv0", "input", 6, 8)
    x = g.conv2d(rng, "big", x, 4, 8, 5, 1, 2)
    graph = Graph("kxk_big", "input", x, g.tensors, g.layers, {})
    validate(graph)
    for hw, why in ((HW.with_(max_kernel=3), r"a 5x5 kernel > the window unit's max_kernel 3"),
                    (HW.with_(max_kernel=0), r"max_kernel 0 \(the engine is built without it\)"),
                    (HW.with_(window_line=16), r"window line 72 values \(W x ceil\(cin/PI\) x PI\) > window_line 16"),
                    (HW.with_(max_channels=128), r"200 MAC inputs \(5x5 taps x 2 vectors of PI = 4\) > max_channels 128")):
        with pytest.raises(ScheduleError, match=r"^layer 'big' does not fit the engine: .*" + why):
            schedule(graph, hw)


def test_an_engine_without_the_window_unit_rejects_kxk(tmp_path):
    """sized_for builds the window unit only for a model with a k×k conv; an engine without it (MAX_KERNEL
    absent from config.h) rejects the KXK descriptor itself."""
    from codesign.hls.csim import CsimError

    rng = np.random.RandomState(4)
    g = Builder(5, 5)
    x = g.conv2d(rng, "stem", "input", 4, 8, 3, 2, 1)
    graph = Graph("kxk_only", "input", x, g.tensors, g.layers, {})
    validate(graph)
    hw = sized_for(graph)
    assert (hw.max_kernel, hw.window_line) == (3, 5 * 32)  # 5 pixels × one PI = 32 vector
    assert sized_for(fuzz_graph(rng, dict(h=4, w=4, cin=3, cout=3, a_bits=8, conv=True, prepool=False, pool=False,
                                          spatial="none", upsample=True, interleave=None, from_image=False,
                                          d_bits=3, d_ch=1))).max_kernel == 0
    project = write_project(graph, hw, tmp_path / "p")
    config = project.path / "src" / "config.h"
    text = config.read_text()
    assert "MAX_KERNEL = 3;" in text
    config.write_text(text.replace("MAX_KERNEL", "NO_KERNEL").replace("WINDOW_LINE", "NO_WINDOW_LINE"))
    engine = CsimEngine(project.path, hw.bus_bits)
    sched = project.schedule
    image = rng.randint(0, 256, (5, 5, 3)).astype(np.uint8)
    with pytest.raises(CsimError, match="returned [1-9]"):  # > 0: descriptors rejected by check()
        engine(sched.descriptor_table, sched.wmem, initial_fmem(sched, image, graph))


# ---- a reduced CoDeNet end to end --------------------------------------------------------------------

@pytest.fixture(scope="module", params=["a", "b"])
def codenet_graph(request):
    """Config a (3×3/s4 stem) and b (3×3/s2 stem + 2×2 max-pool on the engine), random calibrated weights."""
    return export_model(random_calibrated_model({**REDUCED, "config": request.param}, steps=3))


def test_reduced_codenet_csim_bit_exact(engine, codenet_graph):
    """A reduced CoDeNet: the stem on the engine's window unit (config a: 3×3 stride 4; b: 3×3 stride 2 +
    max-pool in one call), every engine call (per call and as one table) and the three heads on the host,
    bit-exact against golden within a minute."""
    graph = codenet_graph
    sched = schedule(graph, HW)
    assert sched.host_pre_layers == [] and len(sched.host_layers) == 3
    assert sched.engine_inputs == ["input"]
    stem = sched.calls[0]
    assert stem.conv == "backbone.stem" and stem.descriptor["flags"] >> 9 & 1  # KXK
    assert stem.pool == any(la.name == "backbone.stem_pool" for la in graph.layers)
    assert sched.engine_outputs == ["heads.heatmap.dw", "heads.size.dw", "heads.offset.dw"]
    kinds = {(c.spatial is not None and graph.layer(c.spatial).op, c.upsample) for c in sched.calls}
    assert ("deform3x3", False) in kinds and ("dwconv3x3", False) in kinds and (False, True) in kinds
    assert any(sched.views[c.output].stride == 2 for c in sched.calls)
    image = np.random.RandomState(5).randint(0, 256, (128, 128, 3)).astype(np.uint8)
    t0 = time.perf_counter()
    per_call = verify(sched, graph, image, engine, per_call=True)
    assert per_call.ok, per_call.mismatch
    assert per_call.calls_checked == len(sched.calls) and per_call.logits_equal
    whole = verify(sched, graph, image, engine, per_call=False)
    assert whole.ok and whole.logits_equal
    assert time.perf_counter() - t0 < 60
    by_funcsim = verify(sched, graph, image, funcsim_executor(HW), per_call=False)
    assert by_funcsim.ok and by_funcsim.logits_equal
    _, trace = GoldenModel(graph).run(image[None], trace=True)
    assert len(np.unique(trace["neck.neck3.deform.offset"])) >= 3  # the deform layers really deform


def test_codenet_project_testbench_passes(codenet_graph, tmp_path):
    """The generated project's stand-alone C++ testbench (strided regions, host-pre vectors)."""
    from codesign.hls.csim import run_testbench

    project = write_project(codenet_graph, sized_for(codenet_graph), tmp_path / "codenet")
    assert any(" 2\n" in line + "\n" for line in (project.path / "tb/vectors/calls.txt").read_text().splitlines())
    tb = run_testbench(project.path)
    assert tb.returncode == 0, tb.stdout + tb.stderr
    assert tb.stdout.startswith("PASS")


def test_dilation_range_beyond_the_engine_is_refused():
    """R = 15 (4-bit dilations) needs a 31-row line buffer; the engine's max_dilation is 7."""
    rng = np.random.RandomState(1)
    p = dict(h=6, w=6, cin=4, cout=4, a_bits=8, conv=False, prepool=False, pool=False, spatial="deform",
             upsample=False, interleave=None, from_image=False, d_bits=4, d_ch=1)
    graph = fuzz_graph(rng, p)
    with pytest.raises(ScheduleError, match=r"layer 'deform' \(deform3x3\) needs dilations up to 15, but the "
                                            r"engine's deformable line buffer holds 15 rows \(hardware "
                                            r"max_dilation 7"):
        schedule(graph, HW)


def test_host_op_between_engine_ops_is_refused(monkeypatch):
    """Host ops run before the engine (from the image) or after it; one in the middle is refused. The host
    op here is conv2d as it ran before the window unit (its stage set back to HOST)."""
    from codesign.graph.opdef import HOST, op_def

    monkeypatch.setattr(type(op_def("conv2d")), "stage", HOST)
    t = {"input": TensorInfo((4, 4, 3), 8, False, 1 / 255), "a": TensorInfo((4, 4, 4), 8, False, 0.1),
         "p": TensorInfo((2, 2, 4), 8, False, 0.1), "b": TensorInfo((2, 2, 4), 8, False, 0.1),
         "c": TensorInfo((8, 8, 4), 8, False, 0.1), "d": TensorInfo((4, 4, 4), 8, False, 0.1)}
    requant = {"mult": np.ones(4, np.int64), "bias": np.zeros(4, np.int64)}
    attrs = {"kernel": 3, "stride": 1, "padding": 1, "shift": 8, "weight_bits": 4}
    stem = Layer("stem", "conv2d", ["input"], "a", attrs, {"weight": np.ones((4, 27), np.int8), **requant})
    sched = schedule(Graph("ok", "input", "c", t, [stem, Layer("up", "upsample2x", ["a"], "c")]), HW)
    assert sched.host_pre_layers == ["stem"] and sched.engine_inputs == ["a"] and sched.engine_outputs == ["c"]
    mid = Layer("mid", "conv2d", ["p"], "b", attrs, {"weight": np.ones((4, 36), np.int8), **requant})
    bad = Graph("bad", "input", "d", t, [stem, Layer("pool", "maxpool2x2", ["a"], "p"), mid,
                                         Layer("up", "upsample2x", ["b"], "d")])
    validate(bad)
    with pytest.raises(ScheduleError, match="reads 'b', computed by host layer 'mid' after the engine"):
        schedule(bad, HW)


def test_an_engine_without_the_spatial_unit_refuses_dw_and_deform(tmp_path):
    """sized_for leaves the spatial unit out of an engine for a model without a 3×3; such an engine refuses
    DW / DEFORM twice: the scheduler names the layer, and the engine itself rejects the descriptor."""
    from codesign.hls.csim import CsimError

    graph = fuzz_graph(np.random.RandomState(2), dict(h=4, w=4, cin=3, cout=3, a_bits=8, conv=True, prepool=False,
                                                      pool=False, spatial="dw1", upsample=False, interleave=None,
                                                      from_image=False, d_bits=3, d_ch=1))
    assert sized_for(graph).spatial_unit
    with pytest.raises(ScheduleError, match="needs the spatial unit"):
        schedule(graph, sized_for(graph).with_(spatial_unit=False))
    project = write_project(graph, sized_for(graph), tmp_path / "p")
    config = project.path / "src" / "config.h"
    text = config.read_text()
    assert "SPATIAL = true;" in text
    config.write_text(text.replace("SPATIAL = true;", "SPATIAL = false;"))
    engine = CsimEngine(project.path, project.schedule.hw.bus_bits)
    sched = project.schedule
    image = np.random.RandomState(3).randint(0, 256, graph.tensors[graph.input].shape).astype(np.uint8)
    with pytest.raises(CsimError, match="returned [1-9]"):  # > 0: descriptors rejected by check()
        engine(sched.descriptor_table, sched.wmem, initial_fmem(sched, image, graph))


@pytest.mark.slow
def test_fuzz_at_scale_with_edge_constants(tmp_path):
    """bench/fuzz.py: 3,000 random single-call graphs, half with requant constants at the IR's limits,
    golden model vs C-simulation per call: no mismatch."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("fuzz", Path(__file__).parents[1] / "bench" / "fuzz.py")
    fuzz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz)
    assert fuzz.main(["--cases", "3000", "--seed", "7", "--out", str(tmp_path)]) == 0
    assert not list(tmp_path.iterdir())
