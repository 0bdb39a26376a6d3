"""Scheduler pass 1, fusion: split the host ops from the engine's, then group the engine's IR
layers into calls along the engine's pipeline (PREPOOL | WINDOW → CONV → POOL → SPATIAL: shift |
dw3×3 | deform3×3 → UPSAMPLE); slices and concats are not calls (they are views, placed by hw/place.py).
"""
from __future__ import annotations

from ..graph import Graph, Layer, opdef
from ..graph.opdef import op_def
from .plan import SPATIAL_STAGES, Call, ScheduleError, stage

def _consumers(graph: Graph) -> dict[str, list[Layer]]:
    users: dict[str, list[Layer]] = {t: [] for t in graph.tensors}
    for layer in graph.layers:
        for t in layer.inputs:
            users[t].append(layer)
    return users


def split_host(graph: Graph) -> tuple[list[str], list[str]]:
    """(host layers before the engine, host layers after it), each in graph order.

    A host op whose inputs all come from the image or earlier host-pre layers runs before the
    engine (CoDeNet's stem); every other host op runs after it, and nothing on the engine may
    read what it computes.
    """
    pre_out = {graph.input}
    pre: list[str] = []
    post: list[str] = []
    post_out: dict[str, str] = {}
    for layer in graph.layers:
        if stage(layer) == opdef.HOST:
            if all(i in pre_out for i in layer.inputs):
                pre.append(layer.name)
                pre_out.add(layer.output)
            else:
                post.append(layer.name)
                post_out[layer.output] = layer.name
        else:
            for i in layer.inputs:
                if i in post_out:
                    raise ScheduleError(f"layer '{layer.name}' ({layer.op}) reads '{i}', computed by host layer "
                                        f"'{post_out[i]}' after the engine; host ops are only supported at the start "
                                        "and at the end of the network")
    return pre, post


def fuse_all(graph: Graph) -> tuple[list[str], list[Call], list[str]]:
    """Host layers before the engine, the engine calls in execution order, host layers after."""
    pre, post = split_host(graph)
    host = set(pre) | set(post)
    users = _consumers(graph)
    outputs = set(graph.outputs)
    order = {layer.name: i for i, layer in enumerate(graph.layers)}
    producer = {layer.output: layer for layer in graph.layers}

    def sole_user(tensor: str, stages: tuple[str, ...]) -> Layer | None:
        u = users[tensor]
        if len(u) != 1 or stage(u[0]) not in stages or tensor in outputs:
            return None
        if u[0].inputs[0] != tensor:
            return None  # the fused tail must be the feature input (not e.g. a dilation map)
        return u[0]

    def dilation_ready(layer: Layer, first: str) -> bool:
        """Is the layer's second per-pixel input (a dilation map) in memory before the call starting at
        layer `first` runs? True for a layer without one."""
        d = op_def(layer.op).dilation_input(layer)
        src = producer.get(d) if d else None
        return src is None or src.name in host or order[src.name] < order[first]

    def add_spatial(call: Call, layer: Layer) -> None:
        call.layers.append(layer.name)
        if stage(layer) == opdef.SHIFT:
            call.shift = True
        else:
            call.spatial = layer.name
            call.dilation = op_def(layer.op).dilation_input(layer)

    calls: list[Call] = []
    absorbed: set[str] = set()
    for layer in graph.layers:
        if layer.name in absorbed or stage(layer) == opdef.VIEW or layer.name in host:
            continue
        if stage(layer) not in opdef.ENGINE_STAGES:
            raise ScheduleError(f"layer '{layer.name}': op '{layer.op}' has no engine mapping")
        first = layer.name
        call = Call(name=layer.name, layers=[], input=layer.inputs[0], output=layer.output)
        # pool → conv: the read unit pools. Not before a k×k conv: the window unit takes the
        # prepool's place before the MAC array (one process, one of the two)
        if stage(layer) == opdef.POOL and (nxt := sole_user(layer.output, (opdef.CONV,))) \
                and op_def(nxt.op).window(nxt) is None:
            call.prepool = True  # pool → conv: the read unit pools, the pooled map never hits DDR
            call.layers.append(layer.name)
            absorbed.add(nxt.name)
            layer = nxt
            call.name = layer.name
        tail: str | None = None
        if stage(layer) in (opdef.CONV, opdef.POOL):
            if stage(layer) == opdef.CONV:
                call.conv = layer.name
            else:
                call.pool = True
            call.layers.append(layer.name)
            tail = layer.output
            if call.conv and (nxt := sole_user(tail, (opdef.POOL,))):
                call.pool, tail = True, nxt.output
                call.layers.append(nxt.name)
                absorbed.add(nxt.name)
            nxt = sole_user(tail, SPATIAL_STAGES)
            # a dilation map is read on the pixel grid before POOL (and the input grid: not after a
            # k×k conv's window, which changes the grid): not fused after one
            windowed = call.conv is not None and op_def(layer.op).window(layer) is not None
            if nxt and not (op_def(nxt.op).dilation_input(nxt)
                            and (call.pool or windowed or not dilation_ready(nxt, first))):
                add_spatial(call, nxt)
                tail = nxt.output
                absorbed.add(nxt.name)
        elif stage(layer) in SPATIAL_STAGES:
            add_spatial(call, layer)
            tail = layer.output
        else:  # a lone upsample: a copy that writes every pixel to 2×2
            call.upsample = True
            call.layers.append(layer.name)
            tail = layer.output
        if not call.upsample and (nxt := sole_user(tail, (opdef.UPSAMPLE,))):
            call.upsample, tail = True, nxt.output
            call.layers.append(nxt.name)
            absorbed.add(nxt.name)
        call.output = tail
        calls.append(call)
    return pre, calls, post


def fuse(graph: Graph) -> tuple[list[Call], list[str]]:
    """Engine calls in execution order, and the host layers that follow them."""
    _, calls, post = fuse_all(graph)
    return calls, post

