"""Functional simulator of the engine: executes a descriptor table on byte images of the memories.

The executable form of docs/engine.md in NumPy (TVM-VTA keeps one for the same reason): it checks
the scheduler and the layout independently of the C++, and it is what a mismatch between the HLS
C-simulation and the golden model is bisected against.
"""
from __future__ import annotations

import numpy as np

from ..golden import ops
from . import descriptor, layout
from .config import HardwareConfig


def _region(fmem: np.ndarray, addr: int, words: int, bus_bits: int) -> slice:
    nb = bus_bits // 8
    return slice(addr * nb, (addr + words) * nb)


def run_call(d: dict[str, int], wmem: np.ndarray, fmem: np.ndarray, hw: HardwareConfig) -> None:
    """Execute one descriptor, updating `fmem` (bytes) in place."""
    flags = d["flags"]
    on = {name: bool(flags >> bit & 1) for name, bit in descriptor.FLAGS.items()}
    bus, nb = hw.bus_bits, hw.bus_bits // 8
    store_in = 8 if on["IN8"] else hw.act_bits
    h, w = d["in_h"], d["in_w"]
    in_words = layout.fmap_words(h, w, d["in_cbuf"], store_in, bus)
    buf = layout.unpack_fmap(fmem[_region(fmem, d["in_addr"], in_words, bus)], h, w, d["in_cbuf"], store_in, bus)
    x = buf[..., layout.view_channels(d["in_cbuf"], d["in_rot"], d["cin"])][None].astype(np.int64)
    if on["PREPOOL"]:
        x = ops.maxpool2x2(x)
    if on["CONV"]:
        cout, cin = d["cout"], d["cin"]
        wgt = layout.unpack_weights(wmem[d["w_addr"] * nb:], cout, cin, hw.weight_bits, bus)
        mult, bias = layout.unpack_requant(wmem[d["q_addr"] * nb:], cout, bus)
        acc = np.einsum("nhwc,oc->nhwo", x, wgt)
        s = d["shift"]
        x = np.clip((acc * mult + bias + (1 << (s - 1))) >> s, 0, d["act_max"])
    if on["POOL"]:
        x = ops.maxpool2x2(x)
    if on["SHIFT"]:
        x = ops.shift_dirac5(x)
    oh, ow = x.shape[1:3]
    out_words = layout.fmap_words(oh, ow, d["out_cbuf"], hw.act_bits, bus)
    region = _region(fmem, d["out_addr"], out_words, bus)
    out = layout.unpack_fmap(fmem[region], oh, ow, d["out_cbuf"], hw.act_bits, bus)
    out[..., layout.view_channels(d["out_cbuf"], d["out_rot"], d["cout"])] = x[0]
    fmem[region] = layout.pack_fmap(out, hw.act_bits, bus)


def run(table: np.ndarray, wmem: np.ndarray, fmem: np.ndarray, hw: HardwareConfig) -> np.ndarray:
    """Execute a descriptor table; returns the updated copy of `fmem`."""
    fmem = fmem.copy()
    for d in descriptor.decode(table):
        run_call(d, wmem, fmem, hw)
    return fmem
