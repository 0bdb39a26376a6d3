"""What an op is: one class per op kind, and the registry every part of the flow asks about a layer.

An op's class (codesign/ops, docs/adding-an-op.md) carries everything the flow knows about it:
its IR signature (inputs, parameters, attributes) and checks, its MAC count, its bit-exact golden
execution, where it runs (a stage of an engine call, a view of memory, or the host), and what its
engine stage needs (descriptor flags, a second input, a hardware limit). Validation, the golden
model, the scheduler, the estimator and the summary ask `op_def(layer.op)`; none of them branch
on op names.

The registry is filled when `codesign.ops` is imported, which `codesign/__init__.py` does, so it
is complete before any graph is read.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:
    from .ir import Graph, Layer

Step = Callable[[list[np.ndarray]], np.ndarray]

# Where an op runs. The engine stages, in the order a call chains them (docs/engine.md): CONV (the
# MAC array; a POOL before it is the read unit's prepool), POOL, SHIFT, SPATIAL (depthwise /
# deformable 3x3: one of SHIFT or SPATIAL per call), UPSAMPLE (the writer). VIEW: no computation,
# the scheduler places it by address. HOST: the ARM, before or after the engine.
CONV, POOL, SHIFT, SPATIAL, UPSAMPLE, VIEW, HOST = "conv", "pool", "shift", "spatial", "upsample", "view", "host"
ENGINE_STAGES = (CONV, POOL, SHIFT, SPATIAL, UPSAMPLE)
# What a VIEW op is as an address: a channel range of its input, or channels of several inputs side by side
CHANNEL_RANGE, CONCATENATION = "channel_range", "concatenation"


class OpDef:
    """The base of every op class; the defaults are those of a single-input op without weights."""

    name: ClassVar[str] = ""
    n_inputs: ClassVar[int | None] = 1  # None: any number
    params: ClassVar[dict[str, str]] = {}  # parameter → dtype kind ("i" integer, "f" float)
    attrs: ClassVar[tuple[str, ...]] = ()  # required attributes
    # Its first input must be unsigned (validate refuses a signed one by the op's name). Every built-in
    # op takes signed (two's complement) activations too (docs/integer-contract.md, "Signed activations").
    unsigned_input: ClassVar[bool] = False
    stage: ClassVar[str] = HOST
    view: ClassVar[str] = ""  # for a VIEW op: CHANNEL_RANGE or CONCATENATION
    spatial_kind: ClassVar[str] = ""  # for a SPATIAL op: "dw" or "deform" (the estimator's call model)
    host_decode: ClassVar[bool] = False  # a detector head: the ARM decodes boxes from its output

    def check(self, graph: Graph, layer: Layer) -> None:
        """The op's own structural checks (after the generic ones of graph.validate); raise IRError."""

    def macs(self, graph: Graph, layer: Layer) -> int:
        """Multiply-accumulates of one image: every weight once per output pixel; 0 without weights."""
        if "weight" not in layer.params:
            return 0
        h, w, _ = graph.tensors[layer.output].shape
        return h * w * int(layer.params["weight"].size)

    def prepare(self, graph: Graph, layer: Layer, bounds: dict[str, int]) -> tuple[Step, int]:
        """Golden execution: (the step from input arrays to the output array, the output's largest
        magnitude), given the largest magnitude of every earlier tensor (codesign/golden)."""
        raise NotImplementedError(f"op '{self.name}' has no golden execution")

    # ---- its engine stage (the scheduler: hw/fuse.py, hw/emit.py) ----
    def engine_flags(self, layer: Layer) -> tuple[str, ...]:
        """Descriptor flags its stage sets beyond the stage's own (hw/descriptor.py FLAGS)."""
        return ()

    def dilation_input(self, layer: Layer) -> str | None:
        """A second input the engine reads per pixel beside the feature map (deform3x3's dilation map)."""
        return None

    def max_dilation(self, layer: Layer) -> int:
        """The reach its stage needs from the engine's line buffer (hardware max_dilation); 0: none."""
        return 0

    def window(self, layer: Layer) -> tuple[int, int, int] | None:
        """(kernel, stride, padding) of a CONV op whose MAC array reads k x k windows of its input
        through the engine's window unit (conv2d); None: a 1x1 conv, one pixel per output pixel."""
        return None


OPS: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    """Class decorator: add an op class to the registry under its `name`."""
    if not cls.name or cls.name in OPS:
        raise ValueError(f"op class {cls.__name__}: name {cls.name!r} is empty or taken")
    OPS[cls.name] = cls()
    return cls


def op_def(op: str) -> OpDef:
    """The class of op `op`; IRError naming the known ops for an unknown one."""
    try:
        return OPS[op]
    except KeyError:
        from .ir import IRError

        raise IRError(f"unknown op '{op}' (known: {', '.join(sorted(OPS))})") from None
