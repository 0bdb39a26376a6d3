"""Functional simulator of the engine: executes a descriptor table on byte images of the memories.

The executable form of docs/engine.md in NumPy (TVM-VTA keeps one for the same reason): it checks
the scheduler and the layout independently of the C++, and it is what a mismatch between the HLS
C-simulation and the golden model is bisected against. The arithmetic is written here in plain
int64 NumPy (not the golden model's float GEMMs) so that the two are independent.
"""
from __future__ import annotations

import numpy as np

from ..golden import ops
from . import descriptor, layout
from .config import HardwareConfig


def _region(fmem: np.ndarray, addr: int, words: int, bus_bits: int) -> slice:
    nb = bus_bits // 8
    return slice(addr * nb, (addr + words) * nb)


def view_channels(cbuf: int, rot: int, n: int, stride: int = 1) -> np.ndarray:
    """Physical channel of each logical channel j of a view: (rot + j·stride) mod cbuf (stride 0 = 1)."""
    return (rot + np.arange(n) * max(stride, 1)) % cbuf


def requant(acc: np.ndarray, mult: np.ndarray, bias: np.ndarray, shift: int, act_max: int,
            half_even: bool = False, signed: bool = False) -> np.ndarray:
    """clamp((acc·M + B + 2^(S−1)) >> S, 0, act_max) in int64 (docs/integer-contract.md); with
    `half_even` a tie, (acc·M + B) mod 2^S = 2^(S−1), whose rounded-up result r is odd gives r − 1;
    `signed` (flags SIGNED / S_SIGNED) clamps to [−(act_max + 1), act_max] instead."""
    t = acc * mult + bias
    r = (t + (1 << (shift - 1))) >> shift
    if half_even:
        tie = (t & ((1 << shift) - 1)) == 1 << (shift - 1)
        r = r - (tie & ((r & 1) == 1))
    return np.clip(r, -act_max - 1 if signed else 0, act_max)


def depthwise(x: np.ndarray, wgt: np.ndarray, stride: int, dil: np.ndarray | None) -> np.ndarray:
    """Σ_k wgt[k, c] · x[y·s + ky·d, x·s + kx·d, c] on one (1, H, W, C) int64 map, zero outside;
    `dil` (H, W) per-pixel dilations (deform, stride 1) or None (d = 1)."""
    _, h, w, c = x.shape
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    cy = np.arange(ho)[:, None] * stride
    cx = np.arange(wo)[None, :] * stride
    d = dil if dil is not None else np.ones((ho, wo), np.int64)
    acc = np.zeros((ho, wo, c), np.int64)
    for k in range(9):
        ky, kx = k // 3 - 1, k % 3 - 1
        iy, ix = cy + ky * d, cx + kx * d
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        vals = x[0, np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)]
        acc += np.where(inside[..., None], vals, 0) * wgt[k]
    return acc[None]


def window_taps(x: np.ndarray, kernel: int, stride: int, padding: int, pi: int) -> np.ndarray:
    """What the window unit sends the MAC array: per output pixel of a k×k conv, taps t = ky·k + kx
    in order, each as ⌈C/PI⌉ PI-vectors (channels zero-padded), zero outside the image.
    (1, H, W, C) → (1, Ho, Wo, k·k·⌈C/PI⌉·PI)."""
    _, h, w, c = x.shape
    cpad = -(-c // pi) * pi
    ho, wo = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    xp = np.zeros((h + 2 * padding, w + 2 * padding, cpad), np.int64)
    xp[padding:padding + h, padding:padding + w, :c] = x[0]
    taps = [xp[ky:ky + stride * (ho - 1) + 1:stride, kx:kx + stride * (wo - 1) + 1:stride]
            for ky in range(kernel) for kx in range(kernel)]
    return np.concatenate(taps, axis=-1)[None]


def run_call(d: dict[str, int], wmem: np.ndarray, fmem: np.ndarray, hw: HardwareConfig) -> None:
    """Execute one descriptor, updating `fmem` (bytes) in place."""
    flags = d["flags"]
    on = {name: bool(flags >> bit & 1) for name, bit in descriptor.FLAGS.items()}
    bus, nb = hw.bus_bits, hw.bus_bits // 8
    store_in = 8 if on["IN8"] else hw.act_bits
    h, w = d["in_h"], d["in_w"]
    in_words = layout.fmap_words(h, w, d["in_cbuf"], store_in, bus)
    buf = layout.unpack_fmap(fmem[_region(fmem, d["in_addr"], in_words, bus)], h, w, d["in_cbuf"], store_in, bus)
    x = buf[..., view_channels(d["in_cbuf"], d["in_rot"], d["cin"], d.get("in_stride", 1))][None]
    x = (layout.sign_extend(x, store_in) if on["IN_SIGNED"] else x).astype(np.int64)
    if on["PREPOOL"]:
        x = ops.maxpool2x2(x)
    if on["KXK"]:
        x = window_taps(x, *descriptor.window_of(d.get("window", 0)), hw.pi)
    grid = x.shape[1:3]  # the pixel grid the dilation map is read on (before POOL)
    if on["CONV"]:
        cout, cin = d["cout"], x.shape[3]
        pw = layout.weight_slices(d.get("w_bits", 0), hw.weight_bits, hw.mac_bits)
        wgt = layout.unpack_weight_slices(wmem[d["w_addr"] * nb:], cout, cin, pw, hw.mac_bits, bus)
        mult, bias = layout.unpack_requant(wmem[d["q_addr"] * nb:], cout, bus)
        x = requant(np.einsum("nhwc,oc->nhwo", x, wgt), mult, bias, d["shift"], d["act_max"], on["HALF_EVEN"],
                    on["SIGNED"])
    if on["POOL"]:
        x = ops.maxpool2x2(x)
    if on["SHIFT"]:
        x = ops.shift_dirac5(x)
    if on["DW"] or on["DEFORM"]:
        c = x.shape[3]
        wgt = layout.unpack_weights(wmem[d["sw_addr"] * nb:], 9, c, hw.weight_bits, bus)  # [9][C]
        mult, bias = layout.unpack_requant(wmem[d["sq_addr"] * nb:], c, bus)
        dil = None
        if on["DEFORM"]:
            gh, gw = grid
            dwords = layout.fmap_words(gh, gw, d["d_cbuf"], hw.act_bits, bus)
            dbuf = layout.unpack_fmap(fmem[_region(fmem, d["d_addr"], dwords, bus)], gh, gw, d["d_cbuf"],
                                      hw.act_bits, bus)
            dil = np.minimum(dbuf[..., d["d_rot"]].astype(np.int64), d["d_max"])
        acc = depthwise(x, wgt, 2 if on["STRIDE2"] else 1, dil)
        x = requant(acc, mult, bias, d["s_shift"], d["s_act_max"], on["S_HALF_EVEN"], on["S_SIGNED"])
    if on["UPSAMPLE"]:
        x = ops.upsample2x(x)
    oh, ow = x.shape[1:3]
    out_words = layout.fmap_words(oh, ow, d["out_cbuf"], hw.act_bits, bus)
    region = _region(fmem, d["out_addr"], out_words, bus)
    out = layout.unpack_fmap(fmem[region], oh, ow, d["out_cbuf"], hw.act_bits, bus)
    # two's complement: a negative value is stored as its low act_bits bits
    out[..., view_channels(d["out_cbuf"], d["out_rot"], d["cout"], d.get("out_stride", 1))] = \
        x[0] & ((1 << hw.act_bits) - 1)
    fmem[region] = layout.pack_fmap(out, hw.act_bits, bus)


def run(table: np.ndarray, wmem: np.ndarray, fmem: np.ndarray, hw: HardwareConfig) -> np.ndarray:
    """Execute a descriptor table; returns the updated copy of `fmem`."""
    fmem = fmem.copy()
    for d in descriptor.decode(table):
        run_call(d, wmem, fmem, hw)
    return fmem
