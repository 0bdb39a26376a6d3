"""The integer ops of docs/integer-contract.md on NumPy arrays, one function per IR op.

Feature maps are NHWC integer arrays in the smallest dtype that holds them (uint8 for
activations), which keeps the memory-bound ops (shift, pool, concat) cheap. The 1×1
convolutions and the FC still run on float BLAS: `exact_dtype` picks, per layer, the narrowest
float type in which every sum is provably exact.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Every integer of magnitude <= 2^p is representable in a float with a p-bit significand.
_EXACT = ((1 << 24, np.dtype(np.float32)), (1 << 53, np.dtype(np.float64)))

# Conv outputs are computed in blocks of rows. A GEMM block's float32 result (4 MiB) stays in L3
# and keeps BLAS calls few: small blocks mean a thread handshake per call, which collapsed to
# seconds per batch when another process held a core. Each requant sub-block's float64 temporary
# (512 KiB) stays in L2. Measured on DiracDeltaNet 224² batch 8 against the other block sizes.
_GEMM_BLOCK = 1 << 20
_REQUANT_BLOCK = 1 << 16


def exact_dtype(bound: int) -> np.dtype:
    """Narrowest dtype in which integer sums with sum(|terms|) <= `bound` are exact in any order.

    Every partial sum then has magnitude <= bound, so below 2^24 (2^53) each float32 (float64)
    addition has a representable exact result and never rounds, whatever order or FMA the BLAS
    uses. Beyond 2^53 only int64 is exact.
    """
    for limit, dtype in _EXACT:
        if bound < limit:
            return dtype
    return np.dtype(np.int64)


def transposed(weight: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Wᵀ (Cin, Cout), contiguous, in the GEMM dtype: activations (rows, Cin) @ Wᵀ need no copy."""
    return np.ascontiguousarray(weight.T.astype(dtype))


def requant_constants(mult: np.ndarray, bias: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(M·2^−S, (B + 2^(S−1))·2^−S) in float64, the form `requantize` takes.

    Both are exact: B + 2^(S−1) and M (unless every accumulator is 0) are integers below 2^47 in
    magnitude (the IR's requant bound), and scaling by a power of two only changes the exponent.
    """
    scale = 2.0 ** -shift
    return mult.astype(np.float64) * scale, (bias.astype(np.float64) + 2.0 ** (shift - 1)) * scale


def act_dtype(out_min: int) -> np.dtype:
    """The golden model's storage of an activation: uint8, or int8 for a signed one (out_min < 0)."""
    return np.dtype(np.int8 if out_min < 0 else np.uint8)


def requantize(acc: np.ndarray, mult_s: np.ndarray, offset_s: np.ndarray, out_max: int, out: np.ndarray,
               half_even: bool = False, out_min: int = 0) -> None:
    """out = clamp((acc·M + B + 2^(S−1)) >> S, out_min, out_max), constants from `requant_constants`
    (out_min = 0: the ReLU of an unsigned output; −2^(A−1) for a signed one);
    with `half_even`, a value exactly halfway, (acc·M + B) mod 2^S = 2^(S−1), goes to the even
    integer instead of up (QONNX's ROUND, docs/integer-contract.md "Rounding").

    Exact in float64: acc·M + B + 2^(S−1) is an integer below 2^47 in magnitude (checked by
    `codesign.graph.validate`), so t = acc·(M·2^−S) + (B + 2^(S−1))·2^−S is that integer times
    2^−S: both the product and the sum are representable (53-bit significand, no underflow as
    S <= 46), so neither rounds. floor(t) is then the arithmetic shift. For an unsigned output,
    clamping before the float→int cast (which truncates) gives the same result as floor-then-clamp,
    because floor is monotonic and 0 and out_max are integers; a signed output (out_min < 0) is
    floored first, as truncation rounds negative values up. Measured faster than int64 arithmetic.
    """
    t = np.multiply(acc, mult_s, dtype=np.float64)
    t += offset_s
    if half_even:
        # t is exact, so a tie is exactly an integral t; there half-up's result t is odd → t − 1
        floor = np.floor(t)
        floor -= (floor == t) & (np.fmod(floor, 2) != 0)
        t = floor
    elif out_min < 0:
        np.floor(t, out=t)  # the cast truncates toward zero: floor first where t can be negative
    np.clip(t, out_min, out_max, out=t)
    np.copyto(out, t, casting="unsafe")


def conv1x1(x: np.ndarray, weight_t: np.ndarray, mult_s: np.ndarray, offset_s: np.ndarray,
            out_max: int, half_even: bool = False, out_min: int = 0) -> np.ndarray:
    """Op `conv1x1`: 1×1 convolution + requantization to uint8 (int8 when signed) (N, H, W, Cout).

    `weight_t` is Wᵀ (Cin, Cout) in the GEMM dtype from `exact_dtype`; `mult_s`, `offset_s`
    come from `requant_constants`.
    """
    n, h, w, cin = x.shape
    cout = weight_t.shape[1]
    rows = x.reshape(-1, cin)
    out = np.empty((rows.shape[0], cout), act_dtype(out_min))
    gemm_rows, requant_rows = max(1, _GEMM_BLOCK // cout), max(1, _REQUANT_BLOCK // cout)
    for i in range(0, rows.shape[0], gemm_rows):
        acc = rows[i:i + gemm_rows].astype(weight_t.dtype) @ weight_t
        out_block = out[i:i + gemm_rows]
        for j in range(0, acc.shape[0], requant_rows):
            requantize(acc[j:j + requant_rows], mult_s, offset_s, out_max, out_block[j:j + requant_rows], half_even,
                       out_min)
    return out.reshape(n, h, w, cout)


def shift_dirac5(x: np.ndarray) -> np.ndarray:
    """Op `shift`, pattern dirac5: channel c reads a neighbour chosen by c mod 5, zero padded."""
    out = np.zeros_like(x)
    out[:, 1:, :, 0::5] = x[:, :-1, :, 0::5]  # from the pixel above
    out[:, :, 1:, 1::5] = x[:, :, :-1, 1::5]  # from the left
    out[:, :, :, 2::5] = x[:, :, :, 2::5]  # identity
    out[:, :, :-1, 3::5] = x[:, :, 1:, 3::5]  # from the right
    out[:, :-1, :, 4::5] = x[:, 1:, :, 4::5]  # from below
    return out


def maxpool2x2(x: np.ndarray) -> np.ndarray:
    """Op `maxpool2x2`: 2×2 max, stride 2, odd trailing rows/columns dropped (floor mode)."""
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    top = np.maximum(x[:, 0:h:2, 0:w:2], x[:, 0:h:2, 1:w:2])
    bottom = np.maximum(x[:, 1:h:2, 0:w:2], x[:, 1:h:2, 1:w:2])
    return np.maximum(top, bottom, out=top)


def slice_channels(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Op `slice`: channels [start, stop)."""
    return x[..., start:stop]


def concat(xs: Sequence[np.ndarray], rotate: int) -> np.ndarray:
    """Op `concat`: join along channels, then out[..., c] = cat[..., (c + rotate) mod C]."""
    cat = np.concatenate(xs, axis=-1)
    return np.concatenate((cat[..., rotate:], cat[..., :rotate]), axis=-1) if rotate else cat


def globalsumpool(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Op `globalsumpool`: sum over H and W, (N, H, W, C) → (N, 1, 1, C), in an integer `dtype`
    that holds the largest possible sum (so the accumulation cannot wrap)."""
    return x.sum(axis=(1, 2), dtype=dtype, keepdims=True)


def linear(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Op `linear`: int64 logits = W·x + bias on (N, 1, 1, Cin); `weight_t` as in `conv1x1`."""
    acc = x.reshape(-1, x.shape[3]).astype(weight_t.dtype) @ weight_t
    return (acc.astype(np.int64) + bias).reshape(x.shape[0], 1, 1, weight_t.shape[1])


# ---- CoDeNet ops -----------------------------------------------------------------------------------

def _taps3x3():
    """(ky, kx) offsets of the 3×3 taps in weight order k = 3·(ky + 1) + (kx + 1) (row-major)."""
    return [(k // 3 - 1, k % 3 - 1) for k in range(9)]


def dwconv3x3(x: np.ndarray, weight: np.ndarray, mult_s: np.ndarray, offset_s: np.ndarray, out_max: int,
              stride: int, half_even: bool = False, out_min: int = 0) -> np.ndarray:
    """Op `dwconv3x3`: depthwise 3×3, zero padding 1, stride 1 or 2, + requantization (uint8).

    out[h, w, c] = requant(Σ_k weight[c, k] · x[h·s + ky, w·s + kx, c]); |acc| < 2^31 (the IR's
    bound) so int32 accumulation is exact.
    """
    n, h, w, c = x.shape
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    xp = np.zeros((n, h + 2, w + 2, c), np.int32)
    xp[:, 1:h + 1, 1:w + 1] = x
    w32 = weight.astype(np.int32)
    acc = np.zeros((n, ho, wo, c), np.int32)
    for k, (ky, kx) in enumerate(_taps3x3()):
        acc += xp[:, 1 + ky:2 + ky + stride * (ho - 1):stride, 1 + kx:2 + kx + stride * (wo - 1):stride] * w32[:, k]
    out = np.empty(acc.shape, act_dtype(out_min))
    requantize(acc, mult_s, offset_s, out_max, out, half_even, out_min)
    return out


def deform_taps(d: np.ndarray, h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each tap k, the flat source index (N, H, W) of x[h + ky·d, w + kx·d] in an (H·W + 1)-pixel
    table whose last entry is the zero read outside the image, and whether it is inside."""
    dd = d[..., 0].astype(np.int64)
    yy = np.arange(h)[None, :, None]
    xx = np.arange(w)[None, None, :]
    taps = []
    for ky, kx in _taps3x3():
        iy, ix = yy + ky * dd, xx + kx * dd
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        taps.append((np.where(inside, iy * w + ix, h * w), inside))
    return taps


def deform3x3(x: np.ndarray, d: np.ndarray, weight: np.ndarray, mult_s: np.ndarray, offset_s: np.ndarray,
              out_max: int, half_even: bool = False, out_min: int = 0) -> np.ndarray:
    """Op `deform3x3`: the limited-range square deformable depthwise 3×3 + requantization.

    out[h, w, c] = requant(Σ_k weight[c, k] · x[h + ky·d[h, w], w + kx·d[h, w], c]), zero outside
    the image; d (N, H, W, 1) holds the per-pixel integer dilation.
    """
    n, h, w, c = x.shape
    table = np.zeros((n, h * w + 1, c), np.int32)
    table[:, :h * w] = x.reshape(n, h * w, c)
    w32 = weight.astype(np.int32)
    rows = np.arange(n)[:, None, None]
    acc = np.zeros((n, h, w, c), np.int32)
    for k, (flat, _) in enumerate(deform_taps(d, h, w)):
        acc += table[rows, flat] * w32[:, k]
    out = np.empty(acc.shape, act_dtype(out_min))
    requantize(acc, mult_s, offset_s, out_max, out, half_even, out_min)
    return out


def upsample2x(x: np.ndarray) -> np.ndarray:
    """Op `upsample2x`: nearest, out[h, w, c] = x[h // 2, w // 2, c]."""
    return np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)


def interleave_concat(xs: Sequence[np.ndarray], rotate: int, interleave: int) -> np.ndarray:
    """Op `concat` with `interleave` g: out[i·g + k] = xs[k][i], then the rotation of `concat`."""
    if interleave == 1:
        return concat(xs, rotate)
    cat = np.stack(xs, axis=-1).reshape(*xs[0].shape[:-1], -1)
    return np.concatenate((cat[..., rotate:], cat[..., :rotate]), axis=-1) if rotate else cat


def im2col(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """(N, H, W, C) → (N, Ho, Wo, C·k·k) patches in the order (c, ky, kx) of `conv2d`'s weight."""
    n, h, w, c = x.shape
    ho, wo = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    xp = np.zeros((n, h + 2 * padding, w + 2 * padding, c), x.dtype)
    xp[:, padding:padding + h, padding:padding + w] = x
    cols = np.empty((n, ho, wo, c, kernel, kernel), x.dtype)
    for ky in range(kernel):
        for kx in range(kernel):
            cols[..., ky, kx] = xp[:, ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
    return cols.reshape(n, ho, wo, c * kernel * kernel)


def conv2d(x: np.ndarray, weight_t: np.ndarray, mult_s: np.ndarray, offset_s: np.ndarray, out_max: int,
           kernel: int, stride: int, padding: int, half_even: bool = False, out_min: int = 0) -> np.ndarray:
    """Op `conv2d`: dense k×k convolution (zero padding) + requantization, as a 1×1 conv of im2col."""
    return conv1x1(im2col(x, kernel, stride, padding), weight_t, mult_s, offset_s, out_max, half_even, out_min)


def conv1x1_head(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Op `conv1x1_head`: int64 acc + bias per pixel (no requant); real value = that × out_scale."""
    n, h, w, cin = x.shape
    acc = x.reshape(-1, cin).astype(weight_t.dtype) @ weight_t
    return (acc.astype(np.int64) + bias).reshape(n, h, w, weight_t.shape[1])
