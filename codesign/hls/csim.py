"""C-simulation: the generated HLS C++ built with g++ against the Xilinx arbitrary-precision headers.

Two products from one project: a shared library called through ctypes (an `Executor` for
`codesign.hw.verify`) and the stand-alone C++ testbench. Builds are cached by a hash of every
source byte, the flags and the compiler version, so re-running a C-sim costs nothing.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import CodesignError

CXXFLAGS = ("-std=c++14", "-O2", "-Wall", "-Werror")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "codesign" / "csim"


class CsimError(CodesignError):
    """The C-simulation could not be built or run."""


def ap_include_dir() -> Path:
    """Directory holding ap_int.h: $XILINX_HLS/include when a Vitis install is set up, else hls4ml's copy."""
    vitis = os.environ.get("XILINX_HLS")
    if vitis and (Path(vitis) / "include" / "ap_int.h").is_file():
        return Path(vitis) / "include"
    try:
        import hls4ml
    except ImportError:
        raise CsimError("the Xilinx ap_types headers were not found: install hls4ml (pip install hls4ml) "
                        "or set XILINX_HLS to a Vitis HLS install") from None
    path = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_int.h").is_file():
        raise CsimError(f"hls4ml is installed but {path}/ap_int.h is missing")
    return path


def _compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise CsimError(f"C++ compiler '{cxx}' not found (install g++)")
    return cxx


def _build(sources: list[Path], include_dirs: list[Path], output_suffix: str, extra: tuple[str, ...]) -> Path:
    cxx = _compiler()
    ap = ap_include_dir()
    h = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    for part in (version, " ".join(CXXFLAGS + extra), str(ap)):
        h.update(part.encode())
    for d in include_dirs:
        for f in sorted(d.glob("*.h")):
            h.update(f.name.encode() + f.read_bytes())
    for s in sources:
        h.update(s.name.encode() + s.read_bytes())
    out = CACHE_DIR / f"{h.hexdigest()[:24]}{output_suffix}"
    if out.exists():
        return out
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + f".tmp{os.getpid()}")
    cmd = [cxx, *CXXFLAGS, *extra, "-isystem", str(ap), *(f"-I{d}" for d in include_dirs),
           *map(str, sources), "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = next((line for line in proc.stderr.splitlines() if "error" in line), proc.stderr.strip()[:300])
        raise CsimError(f"g++ failed building the C-simulation: {first}")
    tmp.replace(out)  # atomic: a concurrent build of the same hash cannot see a half-written file
    return out


def build_library(project: Path) -> Path:
    """Shared library of the engine + the ctypes entry point."""
    src = project / "src"
    return _build([src / "codesign_engine.cpp", project / "csim" / "csim_api.cpp"], [src], ".so",
                  ("-shared", "-fPIC"))


def build_testbench(project: Path) -> Path:
    src = project / "src"
    return _build([src / "codesign_engine.cpp", project / "tb" / "testbench.cpp"], [src], ".tb", ())


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
