"""The engine a project's sources define (its hardware config, register map, descriptor layout and a
digest of its C++), and the stamp `codesign bitstream` writes beside a .bit so that `deploy` refuses
the bitstream after a re-compile with other parameters.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..driver import package as pkg
from ..driver.registers import engine_register_map
from ..hw import descriptor, interface
from ..hw.config import HardwareConfig
from .tcl import ENGINE_VLNV, M_AXI_BUNDLES

ENGINE_SOURCES = ("src", "csim")
OVERLAY_STAMP = ".engine.json"  # overlay/<name>.engine.json: the engine sources a bitstream was built from


def engine_sources_digest(project_dir: Path) -> str:
    h = hashlib.sha256()
    for sub in ENGINE_SOURCES:
        for f in sorted(p for p in (project_dir / sub).rglob("*") if p.is_file()):
            h.update(f.relative_to(project_dir).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def engine_manifest(project_dir: str | Path) -> dict:
    """The engine a project's sources define: what a bitstream or C-sim built from them expects."""
    project_dir = Path(project_dir)
    fields = list(descriptor.FIELDS)  # the one definition the rendered descriptor.h is made from
    return {"hw": HardwareConfig.load(project_dir / pkg.HW).to_dict(),
            "interface": {"args": interface.arguments(), "registers": engine_register_map().to_json()},
            "descriptor": {"fields": fields, "words": len(fields)},
            "vlnv": ENGINE_VLNV, "m_axi": list(M_AXI_BUNDLES),
            "sources_sha256": engine_sources_digest(project_dir)}


def write_overlay_stamp(project_dir: str | Path, bitstream: str | Path) -> Path:
    """Record beside a freshly built .bit the engine it was built from (for the vendor flow to call),
    so a later `codesign compile` with other parameters cannot be deployed with the stale bitstream."""
    stamp = Path(bitstream).with_suffix(OVERLAY_STAMP)
    pkg.dump_json(stamp, engine_manifest(project_dir))
    return stamp
