"""Property tests: every golden op, run through a validated tiny graph, against an independent torch
reference (float64 on integer tensors, requant in int64) of docs/integer-contract.md. Zero mismatches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.golden import ops, run
from codesign.graph import Graph, Layer, TensorInfo, accumulator_bound, validate

PROPERTY = settings(max_examples=200, deadline=None)
REQUANT_LIMIT = 1 << 47  # |acc·M + B + 2^(S−1)| must stay below this (48-bit signed)
MULT_LIMIT = 1 << 23


# ---- graph construction -------------------------------------------------------------------------

class TinyGraph:
    """A graph under construction whose input 'x' is uint8 pixels of the given HWC shape."""

    def __init__(self, shape: tuple[int, int, int]):
        self.tensors = {"x": TensorInfo(shape, 8, False, 1 / 255)}
        self.layers: list[Layer] = []

    def add(self, op: str, inputs: list[str], shape: tuple[int, int, int], bits: int | None = None,
            signed: bool = False, attrs: dict | None = None, params: dict | None = None) -> str:
        """Append a layer; without `bits` the output keeps the first input's bits and scale."""
        src = self.tensors[inputs[0]]
        name = f"t{len(self.layers)}"
        scale = src.scale if bits is None else 0.5 ** len(self.layers)
        self.tensors[name] = TensorInfo(tuple(shape), bits or src.bits, signed, scale)
        self.layers.append(Layer(f"layer{len(self.layers)}", op, list(inputs), name, attrs or {}, params or {}))
        return name

    def run(self, output: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """Validate and execute through the public entry point; returns the trace."""
        graph = Graph("tiny", "x", output, self.tensors, self.layers)
        validate(graph)
        out, trace = run(graph, images, trace=True)
        assert np.array_equal(out, trace[output])
        return trace


def draw_images(data: st.DataObject, rng: np.random.Generator, max_hw: int = 9, c: int | None = None,
                min_hw: int = 1, bits: int | None = None) -> np.ndarray:
    """A uint8 NHWC batch of random size whose values use a random activation width 2..8."""
    n = data.draw(st.integers(1, 3), label="n")
    h, w = data.draw(st.integers(min_hw, max_hw), label="h"), data.draw(st.integers(min_hw, max_hw), label="w")
    c = c or data.draw(st.integers(1, 40), label="c")
    bits = bits or data.draw(st.integers(2, 8), label="value bits")
    if data.draw(st.integers(0, 9), label="image mode") == 0:  # all at the maximum: largest accumulators
        return np.full((n, h, w, c), (1 << bits) - 1, np.uint8)
    return rng.integers(0, 1 << bits, size=(n, h, w, c)).astype(np.uint8)


def draw_rng(data: st.DataObject) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


def draw_weight(data: st.DataObject, rng: np.random.Generator, cout: int, cin: int, bits: int,
                one_sign: bool | None = None) -> np.ndarray:
    """Narrow-range signed weights; sometimes one sign per row so |acc| reaches its bound."""
    lim = (1 << (bits - 1)) - 1
    w = rng.integers(-lim, lim + 1, size=(cout, cin))
    if one_sign or (one_sign is None and data.draw(st.booleans(), label="one sign per row")):
        w = np.abs(w) * rng.choice([-1, 1], size=(cout, 1))
    return w.astype(np.int8)


# ---- torch references ---------------------------------------------------------------------------

def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float64)).permute(0, 3, 1, 2)


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy().astype(np.int64)


def ref_accumulator(x: np.ndarray, weight: np.ndarray) -> torch.Tensor:
    """int64 NCHW accumulators; the float64 convolution is exact as |partial sums| < 2^31."""
    return F.conv2d(nchw(x), torch.from_numpy(weight.astype(np.float64))[:, :, None, None]).to(torch.int64)


def ref_requant(acc: torch.Tensor, mult: np.ndarray, bias: np.ndarray, shift: int, out_bits: int) -> np.ndarray:
    m = torch.from_numpy(mult.astype(np.int64))[None, :, None, None]
    b = torch.from_numpy(bias.astype(np.int64))[None, :, None, None]
    y = torch.div(acc * m + b + (1 << (shift - 1)), 1 << shift, rounding_mode="floor")
    return nhwc(y.clamp(0, (1 << out_bits) - 1))


SHIFT_READ = {0: (-1, 0), 1: (0, -1), 2: (0, 0), 3: (0, 1), 4: (1, 0)}  # c mod 5 -> (dh, dw), contract table


def ref_shift(x: np.ndarray) -> np.ndarray:
    _, h, w, c = x.shape
    padded = F.pad(nchw(x), (1, 1, 1, 1))  # out-of-image reads are 0
    chans = []
    for k in range(c):
        dh, dw = SHIFT_READ[k % 5]
        chans.append(padded[:, k, 1 + dh:1 + dh + h, 1 + dw:1 + dw + w])
    return nhwc(torch.stack(chans, dim=1))


# ---- ops ----------------------------------------------------------------------------------------

def draw_requant(data: st.DataObject, rng: np.random.Generator, weight: np.ndarray, x_max: int,
                 out_bits: int, acc: torch.Tensor) -> tuple[np.ndarray, np.ndarray, int]:
    """(M, B, S) inside the contract: |M| < 2^23 and max|acc|·max|M| + max|B| + 2^(S−1) < 2^47.

    'scaled' maps typical accumulators onto the output range (like an exporter); 'extreme' draws
    M and B up to their limits (saturation at both ends, the largest intermediates); 'window'
    centres the output range on one pixel's accumulator with a small S, so that pixel's output
    exposes the accumulator's low bits (catches a GEMM that rounds)."""
    cout, cin = weight.shape
    acc_max = max(1, accumulator_bound(weight, x_max))
    out_max = (1 << out_bits) - 1
    sign = rng.choice([-1, 1], size=cout)  # negative M: BN with negative gamma
    mode = data.draw(st.sampled_from(["scaled", "extreme", "window"]), label="requant mode")
    if mode == "window":
        s = data.draw(st.integers(1, 3), label="S")
        mult = sign * rng.integers(1, 4, size=cout)
        pixel = acc.permute(0, 2, 3, 1).reshape(-1, cout)[rng.integers(0, acc.numel() // cout)].numpy()
        return mult.astype(np.int32), -mult * pixel + (out_max << s) // 2, s
    s = data.draw(st.one_of(st.integers(1, 46), st.sampled_from([1, 2, 45, 46])), label="S")
    budget = REQUANT_LIMIT - 1 - (1 << (s - 1))
    b_lim = data.draw(st.integers(0, budget // 2), label="|B| limit")
    m_lim = min(MULT_LIMIT - 1, (budget - b_lim) // acc_max)
    if mode == "scaled":
        typical = max(1.0, np.sqrt(cin) * np.abs(weight).mean() * x_max / 2)
        mult = np.round(sign * rng.uniform(0.2, 3, cout) * out_max / typical * 2.0**s)
        bias = np.round(rng.uniform(-1, 1, cout) * out_max * 2.0**s)
    else:
        mult = sign * rng.integers(0, m_lim + 1, size=cout)
        bias = rng.integers(-b_lim, b_lim + 1, size=cout)
    mult = np.clip(mult, -m_lim, m_lim).astype(np.int32)
    bias = np.clip(bias, -b_lim, b_lim).astype(np.int64)
    return mult, bias, s


@PROPERTY
@given(st.data())
def test_conv1x1(data):
    """Two chained convs: 8-bit pixels → A1 bits → A2 bits. One case in five has a wide input
    (2048..4096 channels, bright pixels, 8-bit one-signed weights): accumulators pass 2^24, so
    the first GEMM must run in float64."""
    rng = draw_rng(data)
    wide = data.draw(st.integers(0, 4), label="wide input") == 0
    if wide:
        images = draw_images(data, rng, max_hw=2, c=data.draw(st.integers(2048, 4096), label="cin"), bits=8)
    else:
        images = draw_images(data, rng)
    g = TinyGraph(images.shape[1:])
    x, x_max, expected = "x", 255, images.astype(np.int64)
    for first in (True, False):
        h, w, cin = g.tensors[x].shape
        cout = data.draw(st.integers(1, 40), label="cout")
        out_bits = data.draw(st.integers(2, 8), label="out bits")
        wide_layer = wide and first
        weight_bits = 8 if wide_layer else data.draw(st.integers(2, 8), label="weight bits")
        weight = draw_weight(data, rng, cout, cin, weight_bits, one_sign=True if wide_layer else None)
        acc = ref_accumulator(expected, weight)
        mult, bias, s = draw_requant(data, rng, weight, x_max, out_bits, acc)
        x = g.add("conv1x1", [x], (h, w, cout), bits=out_bits, attrs={"shift": s, "weight_bits": weight_bits},
                  params={"weight": weight, "mult": mult, "bias": bias})
        expected = ref_requant(acc, mult, bias, s, out_bits)
        trace = g.run(x, images)
        assert trace[x].dtype == np.uint8
        assert np.array_equal(trace[x], expected)
        x_max = (1 << out_bits) - 1


def test_conv1x1_float64_gemm_path():
    """All-positive 8-bit weights on bright pixels: accumulators reach ~2^28, where float32
    sums would round; the bound picks float64 and the result stays exact."""
    rng = np.random.default_rng(0)
    cin, cout = 2000, 16
    weight = rng.integers(100, 128, size=(cout, cin)).astype(np.int8)
    assert ops.exact_dtype(accumulator_bound(weight, 255)) == np.float64
    images = rng.integers(200, 256, size=(2, 3, 3, cin)).astype(np.uint8)
    acc = ref_accumulator(images, weight)
    mult = np.ones(cout, np.int32)
    bias = -acc[0, :, 0, 0].numpy() + 100  # output window around the first pixel's accumulator
    g = TinyGraph(images.shape[1:])
    y = g.add("conv1x1", ["x"], (3, 3, cout), bits=8, attrs={"shift": 1, "weight_bits": 8},
              params={"weight": weight, "mult": mult, "bias": bias})
    expected = ref_requant(acc, mult, bias, 1, 8)
    assert np.all(expected[0, 0, 0] == 50)
    assert np.array_equal(g.run(y, images)[y], expected)


@pytest.mark.parametrize("gemm_block, requant_block", [(1, 1), (40, 16), (200, 72), (1 << 20, 1 << 16)])
def test_conv1x1_blocks_cover_every_row(monkeypatch, gemm_block, requant_block):
    """Row blocks (GEMM, then requant sub-blocks) that do not divide the row count."""
    monkeypatch.setattr(ops, "_GEMM_BLOCK", gemm_block)
    monkeypatch.setattr(ops, "_REQUANT_BLOCK", requant_block)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 7, 5, 6)).astype(np.uint8)
    weight = rng.integers(-127, 128, size=(9, 6)).astype(np.int8)
    mult = (rng.integers(100, 400, size=9) * rng.choice([-1, 1], size=9)).astype(np.int32)
    bias = rng.integers(0, 1 << 24, size=9)
    g = TinyGraph(images.shape[1:])
    y = g.add("conv1x1", ["x"], (7, 5, 9), bits=8, attrs={"shift": 16, "weight_bits": 8},
              params={"weight": weight, "mult": mult, "bias": bias})
    expected = ref_requant(ref_accumulator(images, weight), mult, bias, 16, 8)
    assert 0.2 < np.mean((expected > 0) & (expected < 255))
    assert np.array_equal(g.run(y, images)[y], expected)


def test_exact_dtype_thresholds():
    assert ops.exact_dtype(0) == np.float32
    assert ops.exact_dtype((1 << 24) - 1) == np.float32
    assert ops.exact_dtype(1 << 24) == np.float64
    assert ops.exact_dtype((1 << 53) - 1) == np.float64
    assert ops.exact_dtype(1 << 53) == np.int64


def test_linear_int64_fallback():
    """Sums beyond 2^53 (no valid graph of a sane size reaches them) use int64 arithmetic."""
    x = np.array([[[[(1 << 50) + 1, (1 << 49) + 3]]]], np.int64)
    weight = np.array([[127, -127], [5, 3]], np.int64)
    bias = np.array([-7, 1 << 40], np.int64)
    out = ops.linear(x, np.ascontiguousarray(weight.T), bias)
    expected = [sum(int(w) * int(v) for w, v in zip(row, x.ravel())) + int(b) for row, b in zip(weight, bias)]
    assert out.dtype == np.int64 and out.ravel().tolist() == expected


@PROPERTY
@given(st.data())
def test_shift(data):
    images = draw_images(data, draw_rng(data))
    g = TinyGraph(images.shape[1:])
    y = g.add("shift", ["x"], images.shape[1:], attrs={"pattern": "dirac5"})
    assert np.array_equal(g.run(y, images)[y], ref_shift(images))


@PROPERTY
@given(st.data())
def test_maxpool2x2(data):
    images = draw_images(data, draw_rng(data), min_hw=2)
    n, h, w, c = images.shape
    g = TinyGraph(images.shape[1:])
    y = g.add("maxpool2x2", ["x"], (h // 2, w // 2, c))
    assert np.array_equal(g.run(y, images)[y], nhwc(F.max_pool2d(nchw(images), 2)))


@PROPERTY
@given(st.data())
def test_slice(data):
    images = draw_images(data, draw_rng(data))
    _, h, w, c = images.shape
    start = data.draw(st.integers(0, c - 1), label="start")
    stop = data.draw(st.integers(start + 1, c), label="stop")
    g = TinyGraph(images.shape[1:])
    y = g.add("slice", ["x"], (h, w, stop - start), attrs={"start": start, "stop": stop})
    assert np.array_equal(g.run(y, images)[y], nhwc(nchw(images)[:, start:stop]))


@PROPERTY
@given(st.data())
def test_concat_rotate(data):
    """1..4 inputs (the graph input itself or channel slices of it), joined and rotated."""
    images = draw_images(data, draw_rng(data))
    _, h, w, c = images.shape
    g = TinyGraph(images.shape[1:])
    names, parts = [], []
    for _ in range(data.draw(st.integers(1, 4), label="inputs")):
        if data.draw(st.booleans(), label="whole input"):
            a, b, name = 0, c, "x"
        else:
            a = data.draw(st.integers(0, c - 1), label="start")
            b = data.draw(st.integers(a + 1, c), label="stop")
            name = g.add("slice", ["x"], (h, w, b - a), attrs={"start": a, "stop": b})
        names.append(name)
        parts.append(nchw(images)[:, a:b])
    total = sum(p.shape[1] for p in parts)
    r = data.draw(st.one_of(st.integers(0, total - 1), st.sampled_from([0, total // 4, total - 1])), label="rotate")
    y = g.add("concat", names, (h, w, total), attrs={"rotate": r})
    expected = nhwc(torch.roll(torch.cat(parts, dim=1), -r, dims=1))
    assert np.array_equal(g.run(y, images)[y], expected)


def add_sum(g: TinyGraph, x: str) -> str:
    """globalsumpool with the exporter's convention: the sum tensor holds exactly its range."""
    h, w, c = g.tensors[x].shape
    return g.add("globalsumpool", [x], (1, 1, c), bits=(g.tensors[x].max_value * h * w).bit_length())


@PROPERTY
@given(st.data())
def test_globalsumpool(data):
    images = draw_images(data, draw_rng(data))
    g = TinyGraph(images.shape[1:])
    y = add_sum(g, "x")
    got = g.run(y, images)[y]
    assert got.dtype.kind == "u"
    assert np.array_equal(got, images.astype(np.int64).sum(axis=(1, 2), keepdims=True))


@PROPERTY
@given(st.data())
def test_linear(data):
    """globalsumpool → linear; small bounds take the float32 GEMM, large ones float64."""
    rng = draw_rng(data)
    images = draw_images(data, rng)
    g = TinyGraph(images.shape[1:])
    s = add_sum(g, "x")
    cout = data.draw(st.integers(1, 40), label="classes")
    weight_bits = data.draw(st.integers(2, 8), label="weight bits")
    weight = draw_weight(data, rng, cout, images.shape[3], weight_bits)
    bias = rng.integers(-(1 << 40), 1 << 40, size=cout)
    y = g.add("linear", [s], (1, 1, cout), bits=32, signed=True, attrs={"weight_bits": weight_bits},
              params={"weight": weight, "bias": bias})
    sums = torch.from_numpy(images.astype(np.int64).sum(axis=(1, 2)))
    expected = sums @ torch.from_numpy(weight.astype(np.int64)).T + torch.from_numpy(bias)
    got = g.run(y, images)[y]
    assert got.dtype == np.int64
    assert np.array_equal(got.reshape(len(images), cout), expected.numpy())


# ---- CoDeNet ops (docs/integer-contract.md) ------------------------------------------------------

class one_torch_thread:
    """Run tiny torch references on one thread: on a loaded 2-core machine torch's worker threads
    spin and turn milliseconds into seconds."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


def ref_depthwise_acc(x: np.ndarray, weight: np.ndarray, stride: int) -> torch.Tensor:
    """int64 NCHW accumulators of a depthwise 3×3, zero padding 1 (float64 conv: exact here)."""
    c = x.shape[3]
    k = torch.from_numpy(weight.astype(np.float64)).reshape(c, 1, 3, 3)
    with one_torch_thread():
        return F.conv2d(nchw(x), k, stride=stride, padding=1, groups=c).to(torch.int64)


def draw_dw_weight(data: st.DataObject, rng: np.random.Generator, c: int) -> tuple[np.ndarray, int]:
    bits = data.draw(st.integers(2, 8), label="weight bits")
    return draw_weight(data, rng, c, 9, bits), bits


@PROPERTY
@given(st.data())
def test_dwconv3x3(data):
    """Depthwise 3×3 (padding 1, stride 1 or 2) + requant against torch's grouped conv2d."""
    rng = draw_rng(data)
    images = draw_images(data, rng)
    n, h, w, c = images.shape
    stride = data.draw(st.sampled_from([1, 2]), label="stride")
    weight, wbits = draw_dw_weight(data, rng, c)
    out_bits = data.draw(st.integers(2, 8), label="out bits")
    acc = ref_depthwise_acc(images, weight, stride)
    mult, bias, s = draw_requant(data, rng, weight, 255, out_bits, acc)
    g = TinyGraph(images.shape[1:])
    y = g.add("dwconv3x3", ["x"], ((h - 1) // stride + 1, (w - 1) // stride + 1, c), bits=out_bits,
              attrs={"shift": s, "weight_bits": wbits, "stride": stride},
              params={"weight": weight, "mult": mult, "bias": bias})
    got = g.run(y, images)[y]
    assert got.dtype == np.uint8
    assert np.array_equal(got, ref_requant(acc, mult, bias, s, out_bits))


def add_dilation(g: TinyGraph, src: str, bits: int) -> str:
    """d = min(src, 2^bits − 1) through a conv1x1 (weight 1, M = 2, S = 1): the requant clamp is the
    range limit, as the exporter's offset conv."""
    h, w, _ = g.tensors[src].shape
    t = g.add("conv1x1", [src], (h, w, 1), bits=bits, attrs={"shift": 1, "weight_bits": 2},
              params={"weight": np.ones((1, 1), np.int8), "mult": np.array([2], np.int32),
                      "bias": np.zeros(1, np.int64)})
    g.tensors[t].scale = 1.0
    return t


def ref_square_deform_acc(x: np.ndarray, d: np.ndarray, weight: np.ndarray) -> torch.Tensor:
    """int64 NCHW accumulators of the square deformable depthwise 3×3 by the torch model's own op."""
    from codesign.models.deform import square_deform

    c = x.shape[3]
    k = torch.from_numpy(weight.astype(np.float64)).reshape(c, 1, 3, 3)
    with torch.no_grad(), one_torch_thread():
        return square_deform(nchw(x), nchw(d), k).to(torch.int64)


def loop_deform_acc(x: np.ndarray, d: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Plain-loop reference (NHWC int): Σ_k w[c, k] · x[h + ky·d, w + kx·d, c], zero outside."""
    n, h, w, c = x.shape
    out = np.zeros((n, h, w, c), np.int64)
    for b in range(n):
        for yy in range(h):
            for xx in range(w):
                dil = int(d[b, yy, xx, 0])
                for k in range(9):
                    iy, ix = yy + (k // 3 - 1) * dil, xx + (k % 3 - 1) * dil
                    if 0 <= iy < h and 0 <= ix < w:
                        for ch in range(c):
                            out[b, yy, xx, ch] += int(weight[ch, k]) * int(x[b, iy, ix, ch])
    return out


@PROPERTY
@given(st.data())
def test_deform3x3(data):
    """Random per-pixel dilations 0..R (R = 2^b − 1, or a larger declared max_dilation) against the
    torch model's `square_deform` in float64 and a plain loop."""
    rng = draw_rng(data)
    c = data.draw(st.integers(1, 12), label="c")
    d_bits = data.draw(st.integers(2, 4), label="d bits")
    images = draw_images(data, rng, c=c + 1, max_hw=12)
    if data.draw(st.booleans(), label="dilations spread"):
        images[..., c] = rng.integers(0, 1 << d_bits, size=images.shape[:3])
    n, h, w, _ = images.shape
    g = TinyGraph(images.shape[1:])
    x = g.add("slice", ["x"], (h, w, c), attrs={"start": 0, "stop": c})
    d = add_dilation(g, g.add("slice", ["x"], (h, w, 1), attrs={"start": c, "stop": c + 1}), d_bits)
    r = (1 << d_bits) - 1 + data.draw(st.sampled_from([0, 0, 1, 9]), label="spare range")
    weight, wbits = draw_dw_weight(data, rng, c)
    out_bits = data.draw(st.integers(2, 8), label="out bits")
    dvals = np.minimum(images[..., c:], (1 << d_bits) - 1)
    acc = ref_square_deform_acc(images[..., :c], dvals, weight)
    mult, bias, s = draw_requant(data, rng, weight, 255, out_bits, acc)
    y = g.add("deform3x3", [x, d], (h, w, c), bits=out_bits,
              attrs={"shift": s, "weight_bits": wbits, "max_dilation": r},
              params={"weight": weight, "mult": mult, "bias": bias})
    trace = g.run(y, images)
    assert np.array_equal(trace[d], dvals)
    assert np.array_equal(trace[y], ref_requant(acc, mult, bias, s, out_bits))
    assert np.array_equal(nhwc(acc), loop_deform_acc(images[..., :c], dvals, weight))


@PROPERTY
@given(st.data())
def test_deform3x3_with_unit_dilation_is_dwconv3x3(data):
    """d ≡ 1 (an offset conv with zero weights, bias 1) computes exactly the stride-1 dwconv3x3."""
    rng = draw_rng(data)
    images = draw_images(data, rng)
    n, h, w, c = images.shape
    g = TinyGraph(images.shape[1:])
    d = g.add("conv1x1", ["x"], (h, w, 1), bits=3, attrs={"shift": 1, "weight_bits": 4},
              params={"weight": np.zeros((1, c), np.int8), "mult": np.array([5], np.int32),
                      "bias": np.array([2], np.int64)})  # (0·5 + 2 + 1) >> 1 = 1
    weight, wbits = draw_dw_weight(data, rng, c)
    out_bits = data.draw(st.integers(2, 8), label="out bits")
    mult, bias, s = draw_requant(data, rng, weight, 255, out_bits, ref_depthwise_acc(images, weight, 1))
    attrs = {"shift": s, "weight_bits": wbits}
    params = {"weight": weight, "mult": mult, "bias": bias}
    yd = g.add("deform3x3", ["x", d], (h, w, c), bits=out_bits, attrs={**attrs, "max_dilation": 7}, params=params)
    yw = g.add("dwconv3x3", ["x"], (h, w, c), bits=out_bits, attrs={**attrs, "stride": 1}, params=params)
    g.tensors[yw].scale = g.tensors[yd].scale
    trace = g.run(yd, images)
    assert np.all(trace[d] == 1)
    assert np.array_equal(trace[yd], trace[yw])


@PROPERTY
@given(st.data())
def test_upsample2x(data):
    images = draw_images(data, draw_rng(data))
    n, h, w, c = images.shape
    g = TinyGraph(images.shape[1:])
    y = g.add("upsample2x", ["x"], (2 * h, 2 * w, c))
    with one_torch_thread():
        expected = nhwc(F.interpolate(nchw(images), scale_factor=2, mode="nearest"))
    assert np.array_equal(g.run(y, images)[y], expected)


@PROPERTY
@given(st.data())
def test_concat_interleave(data):
    """g equal slices interleaved (ShuffleNetV2's concat + channel shuffle for g = 2), then rotated."""
    images = draw_images(data, draw_rng(data))
    _, h, w, c = images.shape
    groups = data.draw(st.integers(1, 4), label="groups")
    size = data.draw(st.integers(1, max(1, c // groups)), label="size")
    g = TinyGraph(images.shape[1:])
    names, parts = [], []
    for _ in range(groups):
        a = data.draw(st.integers(0, c - size), label="start")
        names.append(g.add("slice", ["x"], (h, w, size), attrs={"start": a, "stop": a + size}))
        parts.append(nchw(images)[:, a:a + size])
    total = groups * size
    r = data.draw(st.integers(0, total - 1), label="rotate")
    attrs = {"rotate": r} if groups == 1 and data.draw(st.booleans(), label="no attr") else \
        {"rotate": r, "interleave": groups}
    y = g.add("concat", names, (h, w, total), attrs=attrs)
    shuffled = torch.stack(parts, dim=2).flatten(1, 2)  # out[:, i·g + k] = parts[k][:, i]
    assert np.array_equal(g.run(y, images)[y], nhwc(torch.roll(shuffled, -r, dims=1)))


@PROPERTY
@given(st.data())
def test_conv2d(data):
    """Dense k×k conv (weight order cin, ky, kx), stride, zero padding, + requant on the image."""
    rng = draw_rng(data)
    images = draw_images(data, rng, c=data.draw(st.integers(1, 5), label="cin"), min_hw=3, max_hw=13, bits=8)
    n, h, w, cin = images.shape
    k = data.draw(st.sampled_from([1, 2, 3, 5]), label="kernel")
    stride = data.draw(st.integers(1, 4), label="stride")
    pad = data.draw(st.integers(0, k - 1), label="padding")
    if min(h, w) + 2 * pad < k:  # the window must fit once: pad as far as allowed
        pad = k - 1
    cout = data.draw(st.integers(1, 24), label="cout")
    wbits = data.draw(st.integers(2, 8), label="weight bits")
    weight = draw_weight(data, rng, cout, cin * k * k, wbits)
    with one_torch_thread():
        acc = F.conv2d(nchw(images), torch.from_numpy(weight.astype(np.float64)).reshape(cout, cin, k, k),
                       stride=stride, padding=pad).to(torch.int64)
    out_bits = data.draw(st.integers(2, 8), label="out bits")
    mult, bias, s = draw_requant(data, rng, weight, 255, out_bits, acc)
    g = TinyGraph(images.shape[1:])
    y = g.add("conv2d", ["x"], (acc.shape[2], acc.shape[3], cout), bits=out_bits,
              attrs={"kernel": k, "stride": stride, "padding": pad, "shift": s, "weight_bits": wbits},
              params={"weight": weight, "mult": mult, "bias": bias})
    assert np.array_equal(g.run(y, images)[y], ref_requant(acc, mult, bias, s, out_bits))


@PROPERTY
@given(st.data())
def test_conv1x1_head(data):
    """The detector heads' last layer: acc + bias in int64, no requant, signed output."""
    rng = draw_rng(data)
    images = draw_images(data, rng)
    n, h, w, cin = images.shape
    cout = data.draw(st.integers(1, 24), label="cout")
    wbits = data.draw(st.integers(2, 8), label="weight bits")
    weight = draw_weight(data, rng, cout, cin, wbits)
    bias = rng.integers(-(1 << 20), 1 << 20, size=cout)
    g = TinyGraph(images.shape[1:])
    y = g.add("conv1x1_head", ["x"], (h, w, cout), bits=32, signed=True, attrs={"weight_bits": wbits},
              params={"weight": weight, "bias": bias, "out_scale": rng.uniform(1e-4, 1, cout)})
    with one_torch_thread():
        expected = ref_accumulator(images, weight) + torch.from_numpy(bias)[None, :, None, None]
    got = g.run(y, images)[y]
    assert got.dtype == np.int64
    assert np.array_equal(got, nhwc(expected))
