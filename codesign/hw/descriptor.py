"""The engine's layer descriptor: the one definition of its fields, flags and word layout.

The C++ header (`descriptor.h`), the driver's packing and docs/engine.md all follow this list, so
adding or reordering a field here is the only edit needed.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import CodesignError

# Field order is the word order in the descriptor table (one 32-bit word each). Words 0..15 are
# DiracDeltaNet's engine; 16.. came with CoDeNet (channel strides, the spatial unit, deform's
# dilation map) and may be left out of a descriptor (they default to 0; a stride of 0 means 1).
# Word 15 (`window`, reserved before) holds a KXK call's kernel, stride and padding (`window_word`):
# the k x k conv reused the spare word so that the table stays 27 words and every existing
# descriptor (window 0) is unchanged.
FIELDS: tuple[str, ...] = (
    "flags", "in_addr", "in_h", "in_w", "in_cbuf", "in_rot", "cin",
    "out_addr", "out_cbuf", "out_rot", "cout", "w_addr", "q_addr", "shift", "act_max", "window",
    "in_stride", "out_stride", "d_addr", "d_cbuf", "d_rot", "d_max", "sw_addr", "sq_addr", "s_shift", "s_act_max",
    "w_bits",
)
FLAGS: dict[str, int] = {"PREPOOL": 0, "CONV": 1, "POOL": 2, "SHIFT": 3, "IN8": 4,
                         "DW": 5, "DEFORM": 6, "STRIDE2": 7, "UPSAMPLE": 8, "KXK": 9,
                         # requant ties to even (QONNX's ROUND): the conv's (HALF_EVEN) and the spatial
                         # unit's (S_HALF_EVEN); only on an engine built with hardware `half_even`
                         "HALF_EVEN": 10, "S_HALF_EVEN": 11,
                         # signed (two's complement) activations: the input read (IN_SIGNED), the
                         # conv's requant output (SIGNED), the spatial unit's (S_SIGNED); only on an
                         # engine built with hardware `signed_acts`
                         "IN_SIGNED": 12, "SIGNED": 13, "S_SIGNED": 14}
# The flags an engine built without `signed_acts` does not have: its descriptor.h leaves them out, so
# the generated sources of an unsigned engine are unchanged by them (hls/project.py).
SIGNED_FLAGS: frozenset[str] = frozenset(("IN_SIGNED", "SIGNED", "S_SIGNED"))


def engine_flags(signed_acts: bool) -> dict[str, int]:
    """The flags an engine has: FLAGS, less SIGNED_FLAGS on one built without `signed_acts`."""
    return {n: b for n, b in FLAGS.items() if signed_acts or n not in SIGNED_FLAGS}
WORDS = len(FIELDS)
# Fields a descriptor may omit (0): the window word and everything added after the first engine.
OPTIONAL: frozenset[str] = frozenset(("window",) + FIELDS[FIELDS.index("in_stride"):])


def window_word(kernel: int, stride: int, padding: int) -> int:
    """The `window` field of a KXK call: kernel in bits 0..7, stride 8..15, padding 16..23."""
    return kernel | stride << 8 | padding << 16


def window_of(word: int) -> tuple[int, int, int]:
    """(kernel, stride, padding) of a `window` field (the inverse of `window_word`)."""
    return word & 0xFF, word >> 8 & 0xFF, word >> 16 & 0xFF


def flag_bits(*names: str) -> int:
    return sum(1 << FLAGS[n] for n in names)


def encode(descriptors: list[Mapping[str, int]], fields: tuple[str, ...] | None = None) -> np.ndarray:
    """Descriptor table as uint32 words; every field must be given except the OPTIONAL ones (0)."""
    fields = fields or FIELDS  # read at call time, so a changed FIELDS is followed everywhere
    table = np.zeros((len(descriptors), len(fields)), dtype=np.uint32)
    for i, d in enumerate(descriptors):
        unknown = set(d) - set(fields)
        if unknown:
            raise CodesignError(f"descriptor {i}: unknown fields {sorted(unknown)}")
        for j, name in enumerate(fields):
            v = int(d.get(name, 0)) if name in OPTIONAL else int(d[name])
            if not 0 <= v < 1 << 31:  # the engine reads fields as ints: 2^31 and above would be negative
                raise CodesignError(f"descriptor {i}: field {name}={v} is outside 0..2^31-1 (the engine's int)")
            table[i, j] = v
    return table.reshape(-1)


def decode(words: np.ndarray, fields: tuple[str, ...] | None = None) -> list[dict[str, int]]:
    fields = fields or FIELDS
    rows = np.asarray(words, dtype=np.uint32).reshape(-1, len(fields))
    return [{name: int(v) for name, v in zip(fields, row)} for row in rows]
