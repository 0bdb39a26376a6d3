"""Scheduler pass 2, placement: every tensor that lives in DDR gets a view (buffer, rotation,
channel stride). Concats and DiracDeltaNet's channel rotation become write addresses; a concat is
built in place in a slice's buffer when that is safe, else a pass-through engine call copies.
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Layer, opdef
from ..graph.opdef import op_def
from .config import HardwareConfig
from .plan import Buffer, Call, View, stage

def place(graph: Graph, calls: list[Call], hw: HardwareConfig) -> tuple[dict[str, Buffer], dict[str, View], list[Call]]:
    """Views for every DDR tensor; returns buffers, views and the calls with copies inserted."""
    t = graph.tensors
    producer = {layer.output: layer for layer in graph.layers}
    call_of_output = {c.output: i for i, c in enumerate(calls)}
    # Index of the call that produces each tensor read by a later call, and readers per tensor.
    readers: dict[str, list[float]] = {}
    for i, c in enumerate(calls):
        readers.setdefault(c.input, []).append(i)
        if c.dilation:
            readers.setdefault(c.dilation, []).append(i)

    buffers: dict[str, Buffer] = {}
    views: dict[str, View] = {}
    copies: list[tuple[int, Call]] = []  # (insert before call index, copy call)

    def new_buffer(name: str, cbuf: int, store_bits: int) -> Buffer:
        h, w, _ = t[name].shape
        buf = Buffer(f"buf{len(buffers)}", h, w, cbuf, store_bits, signed=t[name].signed)
        buffers[buf.name] = buf
        return buf

    def view_of(name: str) -> View:
        """Place `name` in its own buffer unless it already has a view."""
        if name not in views:
            if producer.get(name) is not None and op_def(producer[name].op).view == opdef.CHANNEL_RANGE:
                src = producer[name]
                v = view_of(src.inputs[0])
                cb = buffers[v.buffer].cbuf
                views[name] = View(v.buffer, (v.rot + src.attrs["start"] * v.stride) % cb,
                                   src.attrs["stop"] - src.attrs["start"], v.stride)
            else:
                store = 8 if name == graph.input else hw.act_bits
                views[name] = View(new_buffer(name, t[name].shape[2], store).name, 0, t[name].shape[2])
        return views[name]

    def _in_place_base(layer: Layer, offsets: list[int], total: int) -> View | None:
        """The concat built inside the buffer of one of its slice inputs, if that is safe."""
        if layer.attrs.get("interleave", 1) != 1:
            return None  # a slice is contiguous; an interleaved input needs a channel stride
        pending = [i for i in layer.inputs
                   if i not in views and (i not in producer or op_def(producer[i].op).view != opdef.CHANNEL_RANGE)]
        placed = [i for i in layer.inputs if i not in pending]
        if len(placed) != 1 or not all(i in call_of_output for i in pending):
            return None  # exactly one input may already live somewhere; the others must be call outputs
        inp = placed[0]
        v = view_of(inp)
        buf = buffers[v.buffer]
        if buf.cbuf != total or buf.store_bits != hw.act_bits or v.stride != 1:
            return None
        first_write = min(call_of_output[i] for i in pending)
        others = [k for k, kv in views.items() if kv.buffer == v.buffer and k != inp]
        last_read = max((r for k in others for r in readers.get(k, [])), default=-1)
        if last_read >= first_write or any(o in others for o in graph.outputs):
            return None
        return View(v.buffer, (v.rot - offsets[layer.inputs.index(inp)]) % total, total)

    if graph.input in readers or any(graph.input in layer.inputs for layer in graph.layers if stage(layer) == opdef.VIEW):
        view_of(graph.input)  # the image, when the engine reads it (placed first: buffer 0)
    for layer in graph.layers:
        if op_def(layer.op).view != opdef.CONCATENATION:
            continue
        total = t[layer.output].shape[2]
        g = layer.attrs.get("interleave", 1)
        if g == 1:
            offsets = [int(o) for o in np.cumsum([0] + [t[i].shape[2] for i in layer.inputs])[:-1]]
        else:  # input k's channel i goes to i·g + k
            offsets = list(range(g))
        base = _in_place_base(layer, offsets, total)
        if base is None:
            base = View(new_buffer(layer.output, total, hw.act_bits).name, 0, total)
        # Copies run as early as possible: right after the last input is produced.
        when = max((call_of_output.get(i, -1) for i in layer.inputs), default=-1) + 1
        for inp, off in zip(layer.inputs, offsets):
            want = View(base.buffer, (base.rot + off) % total, t[inp].shape[2], g)
            if inp not in views and inp not in call_of_output:
                view_of(inp)  # a slice, the image or a host result: it lives elsewhere, copy it below
            if inp not in views:
                views[inp] = want  # its producer writes straight into the concat
            elif views[inp] != want:  # already elsewhere: a pass-through engine call copies it
                copy = Call(name=f"{layer.name}.copy{len(copies)}", layers=[], input=inp,
                            output=f"{layer.name}.copy{len(copies)}")
                views[copy.output] = want
                copies.append((when, copy))
                readers.setdefault(inp, []).append(when - 0.5)
        views[layer.output] = View(base.buffer, (base.rot + layer.attrs["rotate"]) % total, total)
    for c in calls:
        view_of(c.input)
        view_of(c.output)
        if c.dilation:
            view_of(c.dilation)

    ordered = list(calls)
    for when, copy in sorted(copies, key=lambda x: -x[0]):
        ordered.insert(min(when, len(ordered)), copy)
    return buffers, views, ordered

