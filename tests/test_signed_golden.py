"""Signed (two's complement) activations through every golden op, against an independent NumPy
reference written here from docs/integer-contract.md ("Signed activations"): int64 arithmetic,
requant = clamp((acc·M + B + 2^(S−1)) >> S, −2^(A−1), 2^(A−1) − 1) with an arithmetic shift, zero
padding and zero fill = the integer 0, max-pool = the signed maximum. Zero mismatches."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.golden import run
from codesign.graph import Graph, IRError, Layer, TensorInfo, validate

PROPERTY = settings(max_examples=40, deadline=None)


# ---- the reference ------------------------------------------------------------------------------

def ref_requant(acc: np.ndarray, mult: np.ndarray, bias: np.ndarray, shift: int, bits: int, signed: bool) -> np.ndarray:
    t = acc.astype(np.int64) * mult.astype(np.int64) + bias.astype(np.int64) + (1 << (shift - 1))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return np.clip(t >> shift, lo, hi)  # numpy's >> on int64 is arithmetic (floor)


def ref_taps(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """(N, Ho, Wo, C, k·k) windows, taps row-major, zero outside the image."""
    n, h, w, c = x.shape
    xp = np.zeros((n, h + 2 * pad, w + 2 * pad, c), np.int64)
    xp[:, pad:pad + h, pad:pad + w] = x
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    return np.stack([xp[:, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
                     for ky in range(k) for kx in range(k)], axis=-1)


def ref_maxpool(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    x = x[:, :h // 2 * 2, :w // 2 * 2].astype(np.int64)
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def ref_shift(x: np.ndarray) -> np.ndarray:
    taps = ref_taps(x, 3, 1, 1)  # above, left, centre, right, below = taps 1, 3, 4, 5, 7
    pick = np.array([1, 3, 4, 5, 7])[np.arange(x.shape[3]) % 5]
    return np.take_along_axis(taps, pick[None, None, None, :, None], axis=-1)[..., 0]


# ---- graphs -------------------------------------------------------------------------------------

class Builder:
    def __init__(self, shape):
        self.tensors = {"x": TensorInfo(tuple(shape), 8, False, 1 / 255)}
        self.layers: list[Layer] = []

    def add(self, op, inputs, shape, bits=None, signed=None, attrs=None, params=None) -> str:
        src = self.tensors[inputs[0]]
        name = f"t{len(self.layers)}"
        self.tensors[name] = TensorInfo(tuple(shape), bits or src.bits, src.signed if signed is None else signed,
                                        src.scale if bits is None else 0.5 ** (len(self.layers) + 1))
        self.layers.append(Layer(f"l{len(self.layers)}", op, list(inputs), name, attrs or {}, params or {}))
        return name

    def run(self, out, images):
        g = Graph("signed", "x", out, self.tensors, self.layers)
        validate(g)
        return run(g, images, trace=True)[1]


def draw_requant(data, rng, acc: np.ndarray, cout: int, bits: int):
    """M, B, S that map the accumulators onto the output range, sometimes past it (saturation)."""
    s = data.draw(st.integers(1, 24), label="S")
    spread = max(1.0, float(np.abs(acc).max()))
    gain = data.draw(st.sampled_from([0.5, 1.0, 3.0]), label="gain")
    m = np.round(rng.choice([-1, 1], cout) * rng.uniform(0.3, 1.0, cout) * gain * (1 << bits) / spread * 2.0 ** s)
    m = np.clip(m, -(1 << 22), 1 << 22).astype(np.int64)
    b = np.round(rng.uniform(-0.5, 0.5, cout) * (1 << bits) * 2.0 ** s).astype(np.int64)
    return m, b, s


def signed_source(data, rng, g: Builder, images: np.ndarray):
    """A conv1x1 from the image to a signed A-bit tensor (checked against the reference): the
    signed input of the op under test. Returns (tensor name, its values)."""
    n, h, w, cin = images.shape
    c = data.draw(st.integers(1, 12), label="c")
    bits = data.draw(st.integers(2, 8), label="bits")
    wgt = rng.integers(-7, 8, (c, cin)).astype(np.int8)
    acc = np.einsum("nhwi,oi->nhwo", images.astype(np.int64), wgt.astype(np.int64))
    m, b, s = draw_requant(data, rng, acc, c, bits)
    t = g.add("conv1x1", ["x"], (h, w, c), bits=bits, signed=True, attrs={"shift": s, "weight_bits": 4},
              params={"weight": wgt, "mult": m, "bias": b})
    want = ref_requant(acc, m, b, s, bits, True)
    got = g.run(t, images)[t]
    assert got.dtype == np.int8 and np.array_equal(got, want)
    return t, want


def draw_case(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    n = data.draw(st.integers(1, 2), label="n")
    h, w = data.draw(st.integers(1, 9), label="h"), data.draw(st.integers(1, 9), label="w")
    images = rng.integers(0, 256, (n, h, w, 3)).astype(np.uint8)
    g = Builder(images.shape[1:])
    x, xv = signed_source(data, rng, g, images)
    return rng, images, g, x, xv


# ---- ops on signed inputs -----------------------------------------------------------------------

@PROPERTY
@given(st.data())
def test_conv1x1_signed_in_signed_or_unsigned_out(data):
    rng, images, g, x, xv = draw_case(data)
    n, h, w, c = xv.shape
    cout, bits = data.draw(st.integers(1, 12), label="cout"), data.draw(st.integers(2, 8), label="out bits")
    signed = data.draw(st.booleans(), label="signed out")
    wbits = data.draw(st.integers(2, 8), label="weight bits")
    lim = (1 << (wbits - 1)) - 1
    wgt = rng.integers(-lim, lim + 1, (cout, c)).astype(np.int8)
    acc = np.einsum("nhwi,oi->nhwo", xv, wgt.astype(np.int64))
    m, b, s = draw_requant(data, rng, acc, cout, bits)
    y = g.add("conv1x1", [x], (h, w, cout), bits=bits, signed=signed, attrs={"shift": s, "weight_bits": wbits},
              params={"weight": wgt, "mult": m, "bias": b})
    got = g.run(y, images)[y]
    assert got.dtype == (np.int8 if signed else np.uint8)
    assert np.array_equal(got, ref_requant(acc, m, b, s, bits, signed))


@PROPERTY
@given(st.data())
def test_dwconv3x3_and_deform3x3_on_signed(data):
    rng, images, g, x, xv = draw_case(data)
    n, h, w, c = xv.shape
    bits, signed = data.draw(st.integers(2, 8), label="out bits"), data.draw(st.booleans(), label="signed out")
    wgt = rng.integers(-7, 8, (c, 9)).astype(np.int8)
    op = data.draw(st.sampled_from(["dw1", "dw2", "deform"]), label="op")
    if op == "deform":
        # dilation map: an unsigned 3-bit conv1x1 of the image (d ∈ 0..7), its values from the trace
        dmap = g.add("conv1x1", ["x"], (h, w, 1), bits=3, signed=False, attrs={"shift": 8, "weight_bits": 4},
                     params={"weight": rng.integers(-7, 8, (1, 3)).astype(np.int8),
                             "mult": np.array([int(rng.integers(1, 40))]), "bias": np.array([int(rng.integers(0, 2048))])})
        d = g.run(dmap, images)[dmap][..., 0].astype(np.int64)
        yy, xx = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
        acc = np.zeros((n, h, w, c), np.int64)
        for k in range(9):
            ky, kx = k // 3 - 1, k % 3 - 1
            iy, ix = yy + ky * d, xx + kx * d
            inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
            vals = xv[np.arange(n)[:, None, None], np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]
            acc += np.where(inside[..., None], vals, 0) * wgt[:, k]
        m, b, s = draw_requant(data, rng, acc, c, bits)
        y = g.add("deform3x3", [x, dmap], (h, w, c), bits=bits, signed=signed,
                  attrs={"shift": s, "weight_bits": 4, "max_dilation": 7}, params={"weight": wgt, "mult": m, "bias": b})
    else:
        stride = 2 if op == "dw2" else 1
        acc = (ref_taps(xv, 3, stride, 1) * wgt.astype(np.int64)[None, None, None]).sum(-1)
        m, b, s = draw_requant(data, rng, acc, c, bits)
        y = g.add("dwconv3x3", [x], acc.shape[1:], bits=bits, signed=signed,
                  attrs={"shift": s, "weight_bits": 4, "stride": stride}, params={"weight": wgt, "mult": m, "bias": b})
    assert np.array_equal(g.run(y, images)[y], ref_requant(acc, m, b, s, bits, signed))


@PROPERTY
@given(st.data())
def test_conv2d_on_signed(data):
    rng, images, g, x, xv = draw_case(data)
    n, h, w, c = xv.shape
    k = data.draw(st.sampled_from([1, 3]), label="k")
    stride, pad = data.draw(st.integers(1, 2), label="stride"), data.draw(st.integers(0, k - 1), label="pad")
    if min(h, w) + 2 * pad < k:
        pad = k - 1  # an output pixel at least
    cout, bits = data.draw(st.integers(1, 6), label="cout"), data.draw(st.integers(2, 8), label="out bits")
    wgt = rng.integers(-7, 8, (cout, c * k * k)).astype(np.int8)
    taps = ref_taps(xv, k, stride, pad)  # (N, Ho, Wo, C, k·k): weight order (c, ky, kx)
    acc = np.einsum("nhwt,ot->nhwo", taps.reshape(*taps.shape[:3], -1), wgt.astype(np.int64))
    m, b, s = draw_requant(data, rng, acc, cout, bits)
    y = g.add("conv2d", [x], (*acc.shape[1:3], cout), bits=bits, signed=True,
              attrs={"kernel": k, "stride": stride, "padding": pad, "shift": s, "weight_bits": 4},
              params={"weight": wgt, "mult": m, "bias": b})
    assert np.array_equal(g.run(y, images)[y], ref_requant(acc, m, b, s, bits, True))


@PROPERTY
@given(st.data())
def test_movement_ops_on_signed(data):
    """max-pool (signed maximum), shift and upsample (zero fill = 0), slice, concat (rotate,
    interleave): the values keep their sign."""
    rng, images, g, x, xv = draw_case(data)
    n, h, w, c = xv.shape
    op = data.draw(st.sampled_from(["pool", "shift", "up", "slice", "concat", "interleave"]), label="op")
    if op == "pool":
        if h < 2 or w < 2:
            return
        y, want = g.add("maxpool2x2", [x], (h // 2, w // 2, c)), ref_maxpool(xv)
    elif op == "shift":
        y, want = g.add("shift", [x], (h, w, c), attrs={"pattern": "dirac5"}), ref_shift(xv)
    elif op == "up":
        y, want = g.add("upsample2x", [x], (2 * h, 2 * w, c)), xv.repeat(2, 1).repeat(2, 2)
    elif op == "slice":
        a = data.draw(st.integers(0, c - 1), label="start")
        y, want = g.add("slice", [x], (h, w, c - a), attrs={"start": a, "stop": c}), xv[..., a:]
    else:
        g2 = op == "interleave"
        r = data.draw(st.integers(0, 2 * c - 1), label="rotate")
        cat = np.stack([xv, xv], -1).reshape(n, h, w, 2 * c) if g2 else np.concatenate([xv, xv], -1)
        y = g.add("concat", [x, x], (h, w, 2 * c), attrs={"rotate": r, **({"interleave": 2} if g2 else {})})
        want = np.roll(cat, -r, axis=-1)
    got = g.run(y, images)[y]
    assert got.dtype == np.int8 and np.array_equal(got, want)


@PROPERTY
@given(st.data())
def test_host_ops_on_signed(data):
    """globalsumpool (a signed sum), linear and conv1x1_head on signed inputs."""
    rng, images, g, x, xv = draw_case(data)
    n, h, w, c = xv.shape
    if data.draw(st.booleans(), label="head"):
        wgt = rng.integers(-7, 8, (3, c)).astype(np.int8)
        bias = rng.integers(-1000, 1000, 3)
        y = g.add("conv1x1_head", [x], (h, w, 3), bits=32, signed=True, attrs={"weight_bits": 4},
                  params={"weight": wgt, "bias": bias, "out_scale": np.full(3, 0.25)})
        want = np.einsum("nhwi,oi->nhwo", xv, wgt.astype(np.int64)) + bias
    else:
        bits = int(128 * h * w).bit_length() + 1
        p = g.add("globalsumpool", [x], (1, 1, c), bits=bits, signed=True)
        pooled = xv.sum(axis=(1, 2), keepdims=True)
        assert np.array_equal(g.run(p, images)[p], pooled)
        wgt = rng.integers(-127, 128, (4, c)).astype(np.int8)
        bias = rng.integers(-1000, 1000, 4)
        y = g.add("linear", [p], (1, 1, 4), bits=32, signed=True, attrs={"weight_bits": 8},
                  params={"weight": wgt, "bias": bias})
        want = np.einsum("nhwi,oi->nhwo", pooled, wgt.astype(np.int64)) + bias
    assert np.array_equal(g.run(y, images)[y], want)


def test_signed_accumulator_bound_uses_the_minimum():
    """|x| of a signed b-bit tensor reaches 2^(b−1) (its minimum), so validate's requant bound does."""
    t = TensorInfo((1, 1, 1), 8, True, 1.0)
    assert (t.min_value, t.max_value, t.magnitude) == (-128, 127, 128)


def test_op_that_takes_only_unsigned_inputs_is_refused_by_name(monkeypatch):
    from codesign.graph.opdef import OPS

    monkeypatch.setattr(type(OPS["maxpool2x2"]), "unsigned_input", True)
    g = Builder((2, 2, 3))
    g.tensors["s"] = TensorInfo((2, 2, 3), 8, True, 0.1)
    g.layers.append(Layer("mk", "conv1x1", ["x"], "s", {"shift": 4, "weight_bits": 4},
                          {"weight": np.zeros((3, 3), np.int8), "mult": np.ones(3, np.int64), "bias": np.zeros(3, np.int64)}))
    g.add("maxpool2x2", ["s"], (1, 1, 3))
    with pytest.raises(IRError, match=r"input 's' is signed and op 'maxpool2x2' takes only unsigned inputs"):
        validate(Graph("g", "x", "t1", g.tensors, g.layers))


# ---- IR versions --------------------------------------------------------------------------------

def _graph_with_signed(signed: bool) -> Graph:
    g = Builder((3, 3, 3))
    g.add("conv1x1", ["x"], (3, 3, 2), bits=8, signed=signed, attrs={"shift": 4, "weight_bits": 4},
          params={"weight": np.array([[1, -2, 3], [-4, 5, -6]], np.int8), "mult": np.array([3, -5]),
                  "bias": np.array([7, -9])})
    return Graph("v", "x", "t0", g.tensors, g.layers)


def _rewrite_json(src, dst, edit) -> None:
    import json
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "graph.json":
                doc = json.loads(data)
                edit(doc)
                data = json.dumps(doc).encode()
            zout.writestr(name, data)


def test_ir_version_1_without_signedness_loads_unsigned(tmp_path):
    """A version-1 file (no signed activations) whose tensors lack "signed" loads with its meaning
    unchanged: every tensor unsigned, the same outputs; an unsigned graph is still written as v1."""
    import json
    import zipfile

    from codesign.graph import load, save

    graph = _graph_with_signed(False)
    good = save(graph, tmp_path / "good.ir")
    assert json.loads(zipfile.ZipFile(good).read("graph.json"))["version"] == 1
    old = tmp_path / "old.ir"
    _rewrite_json(good, old, lambda doc: [t.pop("signed") for t in doc["tensors"].values()])
    loaded = load(old)
    assert not any(t.signed for t in loaded.tensors.values())
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 3, 3)).astype(np.uint8)
    assert np.array_equal(run(loaded, images), run(graph, images))


def test_signed_graph_is_version_2_and_newer_versions_are_refused_in_one_line(tmp_path):
    import json
    import zipfile

    from codesign.graph import load, save

    graph = _graph_with_signed(True)
    path = save(graph, tmp_path / "signed.ir")
    assert json.loads(zipfile.ZipFile(path).read("graph.json"))["version"] == 2
    assert load(path) == graph
    newer = tmp_path / "v3.ir"
    _rewrite_json(path, newer, lambda doc: doc.update(version=3))
    with pytest.raises(IRError, match=r"IR version 3 is not supported \(this codesign reads versions 1, 2\)") as e:
        load(newer)
    assert "\n" not in str(e.value)
