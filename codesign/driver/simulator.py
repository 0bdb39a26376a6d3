"""The engine's C-simulation library: its C++ sources built with g++ against the Xilinx
arbitrary-precision headers, the backend of the simulated device (driver/device.py) and of the
project-side C-simulation (hls/csim.py). Builds are cached by a hash of every source byte, the
flags and the compiler version, so re-running costs nothing.
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import CodesignError

# -O1: a third less g++ time than -O2 per engine build (each test config is a new build), for about
# 1.5x the run time of a full 224² frame; the results are the same C++ semantics, bit for bit.
CXXFLAGS = ("-std=c++14", "-O1", "-Wall", "-Werror")
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


@functools.lru_cache(maxsize=None)
def _toolchain_digest(cxx: str, ap: Path) -> bytes:
    """The compiler's version and the ap_types headers' bytes (not their path: clones and venvs share
    builds); once per process, not once per build."""
    h = hashlib.sha256(subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.encode())
    for f in sorted(ap.rglob("*.h")):
        h.update(f.name.encode() + f.read_bytes())
    return h.digest()


def build(sources: list[Path], include_dirs: list[Path], output_suffix: str, extra: tuple[str, ...]) -> Path:
    cxx = _compiler()
    ap = ap_include_dir()
    h = hashlib.sha256(_toolchain_digest(cxx, ap))
    h.update(" ".join(CXXFLAGS + extra).encode())
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
    return build([src / "codesign_engine.cpp", project / "csim" / "csim_api.cpp"], [src], ".so",
                  ("-shared", "-fPIC"))
