"""Bit-level layout of feature maps, weights and requant constants in the engine's memories.

Follows docs/engine.md: values are packed lowest bits first into little-endian bus words, so a
word's bytes are simply the packed values in slot order. Feature maps are HWC with each pixel
padded to whole words; weights are [Cout][Cin] with each row padded to whole words.
"""
from __future__ import annotations

import numpy as np

from ..errors import CodesignError
from ..graph.ir import REQUANT_M_BITS

# The engine holds M as a REQUANT_M_BITS signed value (its requant product is accumulator x 24
# bits, hls_templates/engine/requant.h) and B as the low 48 bits; the IR check keeps |M| < 2^23
# and |B| < 2^40 (graph/ir.py).
REQUANT_B_BITS = 48


class LayoutError(CodesignError):
    """A value does not fit the field the engine reads it from."""


def words_per_pixel(cbuf: int, store_bits: int, bus_bits: int) -> int:
    lanes = bus_bits // store_bits
    return -(-cbuf // lanes)


def fmap_words(h: int, w: int, cbuf: int, store_bits: int, bus_bits: int) -> int:
    return h * w * words_per_pixel(cbuf, store_bits, bus_bits)


def _pack_slots(values: np.ndarray, bits: int) -> np.ndarray:
    """(..., slots) unsigned values < 2^bits → (..., slots*bits/8) bytes, lowest slot in lowest bits."""
    per_byte = 8 // bits
    v = values.astype(np.uint8).reshape(*values.shape[:-1], -1, per_byte)
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits).astype(np.uint8)
    return np.bitwise_or.reduce(v << shifts, axis=-1).astype(np.uint8)


def _unpack_slots(data: np.ndarray, bits: int, slots: int) -> np.ndarray:
    per_byte = 8 // bits
    shifts = (np.arange(per_byte, dtype=np.uint8) * bits).astype(np.uint8)
    v = (data[..., None] >> shifts) & ((1 << bits) - 1)
    return v.reshape(*data.shape[:-1], -1)[..., :slots].astype(np.uint8)


def _pad_last(a: np.ndarray, size: int) -> np.ndarray:
    if a.shape[-1] == size:
        return a
    out = np.zeros(a.shape[:-1] + (size,), dtype=a.dtype)
    out[..., : a.shape[-1]] = a
    return out


def pack_fmap(values: np.ndarray, store_bits: int, bus_bits: int) -> np.ndarray:
    """(H, W, Cbuf) integers → bytes of H·W·wpp bus words; negative values (a signed activation)
    are stored two's complement in store_bits."""
    h, w, c = values.shape
    if values.size and (int(values.max()) >= 1 << store_bits or int(values.min()) < -(1 << (store_bits - 1))):
        raise ValueError(f"feature map values {int(values.min())}..{int(values.max())}: one does not fit "
                         f"{store_bits} bits")
    if values.size and int(values.min()) < 0:
        values = (values.astype(np.int64) & ((1 << store_bits) - 1)).astype(np.uint8)
    slots = words_per_pixel(c, store_bits, bus_bits) * (bus_bits // store_bits)
    return _pack_slots(_pad_last(values.reshape(h * w, c), slots), store_bits).reshape(-1)


def sign_extend(values: np.ndarray, bits: int) -> np.ndarray:
    """Stored two's complement `bits`-bit values (unsigned patterns) → the int8 they stand for."""
    v = values.astype(np.int16)
    return np.where(v >= 1 << (bits - 1), v - (1 << bits), v).astype(np.int8)


def unpack_fmap(data: np.ndarray, h: int, w: int, cbuf: int, store_bits: int, bus_bits: int) -> np.ndarray:
    """Inverse of pack_fmap: bytes → (H, W, Cbuf) uint8 (the stored patterns; `sign_extend` for a
    signed activation)."""
    nbytes = words_per_pixel(cbuf, store_bits, bus_bits) * bus_bits // 8
    return _unpack_slots(np.asarray(data, dtype=np.uint8).reshape(h * w, nbytes), store_bits, cbuf).reshape(h, w, cbuf)


def view_channels(cbuf: int, rot: int, n: int) -> np.ndarray:
    """Physical channel of each logical channel j of a view: (rot + j) mod cbuf."""
    return (rot + np.arange(n)) % cbuf


def weight_slices(w_bits: int, hw_weight_bits: int, mac_bits: int) -> int:
    """Slices of a 1x1 conv layer's w_bits-wide weights on the MAC array's mac_bits-wide multipliers
    (w_bits 0 or beyond the engine's weight_bits: weight_bits); each slice is one weight-buffer entry
    and one pass (docs/engine.md, "Weights"; weight_slices in conv1x1.h is the same rule)."""
    wb = hw_weight_bits if w_bits <= 0 or w_bits > hw_weight_bits else w_bits
    return -(-wb // mac_bits)


def weight_row_words(cin: int, weight_bits: int, bus_bits: int) -> int:
    return -(-cin // (bus_bits // weight_bits))


def pack_weights(weight: np.ndarray, weight_bits: int, bus_bits: int) -> np.ndarray:
    """(Cout, Cin) signed integers → bytes, rows padded to whole words, two's complement."""
    cout, cin = weight.shape
    lim = 1 << (weight_bits - 1)
    if weight.size and (int(weight.min()) < -lim or int(weight.max()) >= lim):
        raise ValueError(f"weights do not fit {weight_bits} signed bits")
    slots = weight_row_words(cin, weight_bits, bus_bits) * (bus_bits // weight_bits)
    unsigned = (weight.astype(np.int64) & ((1 << weight_bits) - 1)).astype(np.uint8)
    return _pack_slots(_pad_last(unsigned, slots), weight_bits).reshape(-1)


def pack_weight_slices(weight: np.ndarray, w_bits: int, mac_bits: int, bus_bits: int) -> np.ndarray:
    """(Cout, Cin) signed w_bits integers → bytes as the MAC array loads them: per output channel
    pw = ceil(w_bits / mac_bits) rows, row s holding bits [s·mac_bits, (s+1)·mac_bits) of each weight
    (two's complement, sign-extended to pw·mac_bits bits), each row padded to whole words."""
    cout, cin = weight.shape
    lim = 1 << (w_bits - 1)
    if weight.size and (int(weight.min()) < -lim or int(weight.max()) >= lim):
        raise ValueError(f"weights do not fit {w_bits} signed bits")
    pw = weight_slices(w_bits, w_bits, mac_bits)
    w = weight.astype(np.int64)
    rows = np.stack([(w >> (mac_bits * s)) & ((1 << mac_bits) - 1) for s in range(pw)], axis=1)
    slots = weight_row_words(cin, mac_bits, bus_bits) * (bus_bits // mac_bits)
    return _pack_slots(_pad_last(rows.reshape(cout * pw, cin).astype(np.uint8), slots), mac_bits).reshape(-1)


def unpack_weight_slices(data: np.ndarray, cout: int, cin: int, pw: int, mac_bits: int,
                         bus_bits: int) -> np.ndarray:
    """Inverse of pack_weight_slices (pw slices per weight): bytes → (Cout, Cin) int64, the top
    slice signed."""
    rows = unpack_weights(data, cout * pw, cin, mac_bits, bus_bits).reshape(cout, pw, cin)
    w = np.zeros((cout, cin), dtype=np.int64)
    for s in range(pw):  # lower slices unsigned, the top one signed (unpack_weights sign-extends)
        sl = rows[:, s] if s == pw - 1 else rows[:, s] & ((1 << mac_bits) - 1)
        w += sl << (mac_bits * s)
    return w


def window_weights(weight: np.ndarray, cin: int, kernel: int, pi: int) -> np.ndarray:
    """A k×k conv's weights (Cout, Cin·k·k) in the IR's order (c, ky, kx) → the MAC array's
    (Cout, k·k·⌈Cin/PI⌉·PI): the window unit sends tap t = ky·k + kx as ⌈Cin/PI⌉ PI-vectors, so
    input j = (t·⌈Cin/PI⌉ + ct)·PI + l holds channel c = ct·PI + l of tap t (0 for c >= Cin)."""
    cout, taps = weight.shape[0], kernel * kernel
    cpad = -(-cin // pi) * pi
    out = np.zeros((cout, taps, cpad), dtype=weight.dtype)
    out[:, :, :cin] = weight.reshape(cout, cin, taps).transpose(0, 2, 1)
    return out.reshape(cout, taps * cpad)


REQUANT_WORDS = 2  # words per output channel


def pack_requant(mult: np.ndarray, bias: np.ndarray, bus_bits: int) -> np.ndarray:
    """Per channel two words: word0 = M (int32) | B[31:0]; word1 = B[63:32] (docs/engine.md).
    M must fit REQUANT_M_BITS and B REQUANT_B_BITS signed bits (what the engine reads)."""
    n = len(mult)
    m64, b64 = np.asarray(mult, dtype=np.int64), np.asarray(bias, dtype=np.int64)
    for name, v, bits in (("multiplier M", m64, REQUANT_M_BITS), ("bias B", b64, REQUANT_B_BITS)):
        bad = (v < -(1 << (bits - 1))) | (v >= 1 << (bits - 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise LayoutError(f"requant {name} of channel {i} = {int(v[i])} does not fit the engine's "
                              f"{bits}-bit signed field")
    words = np.zeros((n, REQUANT_WORDS, bus_bits // 8), dtype=np.uint8)
    b = bias.astype(np.int64)
    words[:, 0, 0:4] = mult.astype("<i4").view(np.uint8).reshape(n, 4)
    words[:, 0, 4:8] = (b & 0xFFFFFFFF).astype("<u4").view(np.uint8).reshape(n, 4)
    words[:, 1, 0:4] = (b >> 32).astype("<i4").view(np.uint8).reshape(n, 4)
    return words.reshape(-1)


def unpack_weights(data: np.ndarray, cout: int, cin: int, weight_bits: int, bus_bits: int) -> np.ndarray:
    """Inverse of pack_weights: bytes → (Cout, Cin) int64."""
    row_bytes = weight_row_words(cin, weight_bits, bus_bits) * bus_bits // 8
    u = _unpack_slots(np.asarray(data, dtype=np.uint8)[: cout * row_bytes].reshape(cout, row_bytes), weight_bits, cin)
    u = u.astype(np.int64)
    return np.where(u >= 1 << (weight_bits - 1), u - (1 << weight_bits), u)


def unpack_requant(data: np.ndarray, n: int, bus_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of pack_requant: bytes → (M, B) int64."""
    w = np.asarray(data, dtype=np.uint8)[: n * REQUANT_WORDS * bus_bits // 8].reshape(n, REQUANT_WORDS, bus_bits // 8)
    mult = w[:, 0, 0:4].copy().view("<i4").reshape(n).astype(np.int64)
    lo = w[:, 0, 4:8].copy().view("<u4").reshape(n).astype(np.int64)
    hi = w[:, 1, 0:4].copy().view("<i4").reshape(n).astype(np.int64)
    return mult, (hi << 32) | lo
