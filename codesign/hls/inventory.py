"""What the rendered engine declares on chip: its memories and its m_axi adapters.

The memories come from the C-simulation library, where every static array and dataflow stream
registers its element width and dimensions beside its declaration (hls_templates/engine/inventory.h:
the compiler evaluates them from the constants the hardware is built from); the banks each one is
split into come from its ARRAY_PARTITION pragmas in the rendered source, and the m_axi adapters'
buffers from the INTERFACE pragmas of the rendered top.cpp. codesign/estimate/fit.py prices them.
"""
from __future__ import annotations

import ctypes
import math
import re
from pathlib import Path

from ..driver import package
from ..estimate.fit import AxiAdapter, Memory
from ..hw.config import HardwareConfig
from .csim import CsimEngine

_PARTITION = re.compile(r"ARRAY_PARTITION variable = (\w+) complete dim = (\d+)")
_M_AXI = re.compile(r"INTERFACE m_axi port = (\w+) bundle = (\w+)([^\n]*)")
# Vitis HLS m_axi defaults (UG1399, "pragma HLS interface"): what a pragma that does not set them gets
_M_AXI_DEFAULTS = {"max_read_burst_length": 16, "max_write_burst_length": 16, "num_read_outstanding": 16,
                   "num_write_outstanding": 16}


def declared_memories(project: str | Path, engine: CsimEngine | None = None) -> list[Memory]:
    """Every memory the project's engine declares, one per template instance, in declaration order."""
    project = Path(project)
    engine = engine or CsimEngine(project, _bus_bits(project))
    fn = engine.lib.codesign_engine_csim_memories
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_char_p, ctypes.c_int]
    size = fn(None, 0)
    buf = ctypes.create_string_buffer(size)
    fn(buf, size)
    partitions = _partitions(project / "src")
    out = []
    for line in buf.value.decode().splitlines():
        kind, file, var, bits, *dims = line.split()
        shape = [int(d) for d in dims]
        if kind == "stream":
            out.append(Memory(file, var, True, int(bits), shape[0], 1))
            continue
        split = partitions.get((file, var), set())
        if 0 in split:  # dim = 0: every dimension
            split = set(range(1, len(shape) + 1))
        banks = math.prod(shape[d - 1] for d in split)
        out.append(Memory(file, var, False, int(bits), math.prod(shape) // banks, banks))
    return out


def _partitions(src: Path) -> dict[tuple[str, str], set[int]]:
    found: dict[tuple[str, str], set[int]] = {}
    for header in sorted(src.glob("*.h")):
        for var, dim in _PARTITION.findall(header.read_text()):
            found.setdefault((header.name, var), set()).add(int(dim))
    return found


def axi_adapters(project: str | Path) -> list[AxiAdapter]:
    """The m_axi adapters of the rendered top function, with the buffers their pragmas ask for."""
    project = Path(project)
    bits = _bus_bits(project)
    text = (project / "src" / "codesign_engine.cpp").read_text()
    out = []
    for port, bundle, opts in _M_AXI.findall(text):
        o = {**_M_AXI_DEFAULTS, **{k: int(v) for k, v in re.findall(r"(\w+) = (\d+)", opts)}}
        arg = re.search(rf"(const\s+)?ap_uint<(\w+)>\*\s*{port}\b", text)
        if arg is None:
            raise ValueError(f"{project}/src/codesign_engine.cpp: no pointer argument '{port}' for its m_axi pragma")
        width = int(arg.group(2)) if arg.group(2).isdigit() else bits
        read_only = arg.group(1) is not None  # Vitis builds no write channel for a const pointer
        out.append(AxiAdapter(bundle, width, o["max_read_burst_length"] * o["num_read_outstanding"],
                              0 if read_only else o["max_write_burst_length"] * o["num_write_outstanding"]))
    return out


def _bus_bits(project: Path) -> int:
    """The bus width of the hardware config the project was rendered from (its hw.yaml)."""
    return HardwareConfig.load(project / package.HW).bus_bits
