"""C-simulation of a project: the generated HLS C++ built with g++ (driver/simulator.py, cached).

Two products from one project: a shared library called through ctypes (an `Executor` for
`codesign.hw.verify`) and the stand-alone C++ testbench.
"""
from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np

from ..driver.simulator import CsimError, build, build_library

__all__ = ["CsimEngine", "CsimError", "build_library", "build_testbench", "run_testbench"]

def build_testbench(project: Path) -> Path:
    src = project / "src"
    return build([src / "codesign_engine.cpp", project / "tb" / "testbench.cpp"], [src], ".tb", ())


def run_testbench(project: Path, *options: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Build and run the C++ testbench on the project's vectors; its exit code is the verdict.
    options: the testbench's (--separate-memories, --calls N: what RTL co-simulation runs)."""
    exe = build_testbench(project)
    return subprocess.run([str(exe), str(project / "tb" / "vectors"), *options], capture_output=True, text=True,
                          timeout=timeout)


class CsimEngine:
    """The compiled engine as an executor: (descriptor table, wmem, fmem) → fmem."""

    def __init__(self, project: Path, bus_bits: int):
        self.library_path = build_library(project)
        self.lib = ctypes.CDLL(str(self.library_path))
        fn = self.lib.codesign_engine_csim
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p,
                       ctypes.c_uint64]
        self._fn = fn
        self.word_bytes = bus_bits // 8
        self.lib.codesign_engine_csim_cycles.restype = ctypes.c_int
        self.lib.codesign_engine_csim_cycles.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.lib.codesign_engine_csim_stage_name.restype = ctypes.c_char_p
        self.lib.codesign_engine_csim_stage_name.argtypes = [ctypes.c_int]
        n_stages = self.lib.codesign_engine_csim_num_stages()
        self.stages = tuple(self.lib.codesign_engine_csim_stage_name(i).decode() for i in range(n_stages))

    def __call__(self, table: np.ndarray, wmem: np.ndarray, fmem: np.ndarray) -> np.ndarray:
        from ..hw import descriptor

        table = np.ascontiguousarray(table, dtype=np.uint32)
        wmem = np.ascontiguousarray(wmem, dtype=np.uint8)
        out = np.array(fmem, dtype=np.uint8, copy=True)
        n = table.size // len(descriptor.FIELDS)
        rc = self._fn(table.ctypes.data, n, wmem.ctypes.data, wmem.size // self.word_bytes, out.ctypes.data,
                      out.size // self.word_bytes)
        if rc != 0:
            raise CsimError(f"C-simulation returned {rc}")
        return out

    def last_cycles(self) -> list[dict[str, int]]:
        """The cycle count of the last run (hls_templates/engine/cycles.h), one dict per engine call:
        each stage's cycles, the "coupling" (what stalls between the stages add to the slowest one)
        and the call's "total" (cycle-counted C-sim, pragma IIs assumed met)."""
        n = self.lib.codesign_engine_csim_cycles(None, 0)
        width = self.lib.codesign_engine_csim_cycle_row()  # the stages, the coupling, the total
        if width != len(self.stages) + 2:
            raise RuntimeError(f"the C-simulation library writes {width} numbers per call, this module reads "
                               f"{len(self.stages) + 2}: rebuild it")
        buf = np.zeros(max(n, 1) * width, dtype=np.uint64)
        self.lib.codesign_engine_csim_cycles(buf.ctypes.data, n)
        rows = buf[:n * width].reshape(n, width)
        return [{**{s: int(v) for s, v in zip(self.stages, row)}, "coupling": int(row[-2]), "total": int(row[-1])}
                for row in rows]
