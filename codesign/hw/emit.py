"""The last step of the scheduler: buffer addresses, packed weights and requant constants, and one
descriptor per call (hw/descriptor.py), from a placed and split plan."""
from __future__ import annotations

import numpy as np

from ..graph import Graph
from ..graph.opdef import op_def
from . import descriptor, layout
from .config import HardwareConfig
from ..graph.ir import half_even
from .limits import call_window, spatial_layer
from .plan import Buffer, Call, ScheduleError, View, call_output_view

def _log2_stride(stride: int, what: str) -> int:
    if stride not in (1, 2, 4, 8):
        raise ScheduleError(f"{what}: channel stride {stride} is not 1, 2, 4 or 8 (an interleave the engine "
                            "cannot write by address)")
    return stride


def emit(graph: Graph, hw: HardwareConfig, calls: list[Call], buffers: dict[str, Buffer],
         views: dict[str, View]) -> tuple[np.ndarray, int]:
    """Fill in descriptors; returns (wmem bytes, fmem size in words)."""
    addr = 0
    for buf in buffers.values():
        buf.addr = addr
        addr += buf.words(hw.bus_bits)
    word_bytes = hw.bus_bits // 8
    wchunks: list[np.ndarray] = []
    waddr = 0
    t = graph.tensors

    def put(chunk: np.ndarray) -> int:
        nonlocal waddr
        start = waddr
        wchunks.append(chunk)
        waddr += chunk.size // word_bytes
        return start

    # A layer's weights and constants are packed once; the parts of a split call address rows of them.
    packed: dict[str, tuple[int, int]] = {}

    for c in calls:
        vin, vout = views[c.input], call_output_view(c, views, buffers)
        first = c.channels[0] if c.channels else 0
        bin_, bout = buffers[vin.buffer], buffers[vout.buffer]
        sp = spatial_layer(graph, c)
        flags = [n for n, on in (("PREPOOL", c.prepool), ("CONV", bool(c.conv)), ("POOL", c.pool),
                                 ("SHIFT", c.shift), ("IN8", bin_.store_bits == 8), ("UPSAMPLE", c.upsample)) if on]
        if t[c.input].signed:  # the values read are two's complement (an engine built with signed_acts)
            flags.append("IN_SIGNED")
        if sp is not None:  # what the spatial op's stage needs (its op class)
            flags += op_def(sp.op).engine_flags(sp)
        win = call_window(graph, c)
        act_src = c.input if (c.is_copy or not c.conv) else graph.layer(c.conv).output
        d = {"flags": 0, "in_addr": bin_.addr, "in_h": bin_.h, "in_w": bin_.w,
             "in_cbuf": bin_.cbuf, "in_rot": vin.rot, "cin": vin.n, "out_addr": bout.addr,
             "out_cbuf": bout.cbuf, "out_rot": vout.rot, "cout": vout.n, "w_addr": 0, "q_addr": 0,
             "shift": 0, "act_max": t[act_src].max_value,
             "in_stride": _log2_stride(vin.stride, f"call '{c.name}' input"),
             "out_stride": _log2_stride(vout.stride, f"call '{c.name}' output")}
        if c.conv:
            conv = graph.layer(c.conv)
            flags += op_def(conv.op).engine_flags(conv)  # KXK: the window unit feeds the MAC array
            weight = conv.params["weight"]
            if win is not None:  # the MAC array's order of the window's taps
                weight = layout.window_weights(weight, vin.n, win[0], hw.pi)
                d["window"] = descriptor.window_word(*win)
            pw = layout.weight_slices(conv.attrs["weight_bits"], hw.weight_bits, hw.mac_bits)
            if conv.name not in packed:
                packed[conv.name] = (put(layout.pack_weight_slices(weight, conv.attrs["weight_bits"],
                                                                   hw.mac_bits, hw.bus_bits)),
                                     put(layout.pack_requant(conv.params["mult"], conv.params["bias"], hw.bus_bits)))
            w_base, q_base = packed[conv.name]
            # rows start on a word: output channel `first`'s pw slice rows, constants two words per channel
            d["w_addr"] = w_base + first * pw * layout.weight_row_words(weight.shape[1], hw.mac_bits, hw.bus_bits)
            d["q_addr"] = q_base + first * layout.REQUANT_WORDS
            d["shift"] = conv.attrs["shift"]
            d["w_bits"] = conv.attrs["weight_bits"]  # the MAC array runs one pass per mac_bits slice
            if half_even(conv):  # the requant rounds ties to even (an engine built with half_even)
                flags.append("HALF_EVEN")
            if t[conv.output].signed:  # clamp to [-(act_max + 1), act_max], two's complement
                flags.append("SIGNED")
        elif vin.n != vout.n:
            raise ScheduleError(f"call '{c.name}': a copy must keep the channel count")
        if sp is not None:
            # spatial weights [9][C] (tap-major rows, like a conv's [Cout][Cin]), then M, B per channel;
            # a part's channels are a column range of [9][C], so each part gets its own [9][b - a]
            d["sw_addr"] = put(layout.pack_weights(np.ascontiguousarray(sp.params["weight"][c.out_slice].T),
                                                   hw.weight_bits, hw.bus_bits))
            if sp.name not in packed:
                packed[sp.name] = (0, put(layout.pack_requant(sp.params["mult"], sp.params["bias"], hw.bus_bits)))
            d["sq_addr"] = packed[sp.name][1] + first * layout.REQUANT_WORDS
            d["s_shift"] = sp.attrs["shift"]
            d["s_act_max"] = t[sp.output].max_value
            if t[sp.output].signed:  # clamp to [-(s_act_max + 1), s_act_max], two's complement
                flags.append("S_SIGNED")
            if half_even(sp):
                flags.append("S_HALF_EVEN")
            if c.dilation:
                vd = views[c.dilation]
                bd = buffers[vd.buffer]
                if vd.n != 1 or bd.store_bits != hw.act_bits:
                    raise ScheduleError(f"call '{c.name}': the dilation map '{c.dilation}' must be one stored "
                                        "activation channel")
                d.update(d_addr=bd.addr, d_cbuf=bd.cbuf, d_rot=vd.rot, d_max=op_def(sp.op).max_dilation(sp))
        d["flags"] = descriptor.flag_bits(*flags)
        c.descriptor = d
    wmem = np.concatenate(wchunks) if wchunks else np.zeros(word_bytes, dtype=np.uint8)
    return wmem, addr

