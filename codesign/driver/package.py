"""The deploy package on disk: its files, checksums and the checks done before anything runs.

`codesign.deploy.build_deploy_package` writes it; `load_package` reads it back and refuses a package
that is incomplete, corrupted (size or SHA-256 differs from manifest.json), or inconsistent: a
schedule compiled for other engine parameters than the engine (bitstream / C-sim sources) it
ships with, a descriptor table in another field layout than the engine's, a register map that
is not the engine's interface (hw/interface.py).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CodesignError
from ..readers import read_json
from ..graph import Graph, load
from ..hw import descriptor, interface
from ..hw.config import HardwareConfig, HardwareConfigError
from ..hw.plan import Buffer, Call, Schedule, View
from .registers import RegisterMap, engine_register_map

FORMAT, VERSION = "codesign-deploy", 1
MANIFEST = "manifest.json"  # {"files": {path: {"bytes", "sha256"}}} of every other file
META = "package.json"  # model: name, type, input shape, class names; runtime: max_batch; overlay files
ENGINE = "engine.json"  # the engine: hw parameters, interface + register map, descriptor layout, VLNV
SCHEDULE, MODEL, HW = "schedule.json", "model.ir", "hw.yaml"
DESC, WMEM = "data/desc.bin", "data/wmem.bin"
ENGINE_DIR = "engine"  # the engine's C++ sources (src/, csim/): the simulated device builds them
REQUIRED = (META, ENGINE, SCHEDULE, MODEL, HW, DESC, WMEM)


class PackageError(CodesignError):
    """A deploy package that is missing, incomplete, corrupted or inconsistent."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_files(root: Path) -> list[str]:
    """Every file of the package but the manifest, as sorted POSIX paths (no caches)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name != MANIFEST and "__pycache__" not in p.parts)


def write_manifest(root: Path) -> None:
    files = {rel: {"bytes": (root / rel).stat().st_size, "sha256": sha256(root / rel)} for rel in package_files(root)}
    dump_json(root / MANIFEST, {"format": FORMAT, "version": VERSION, "files": files})


def dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _read_json(root: Path, rel: str) -> Any:
    return read_json(root / rel, "package file", PackageError)


def check_files(root: Path) -> None:
    """Presence, sizes and SHA-256 of every file against manifest.json."""
    if not (root / MANIFEST).is_file():
        raise PackageError(f"{root}: not a codesign deploy package (no {MANIFEST}); build one with `codesign deploy`")
    manifest = _read_json(root, MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise PackageError(f"{root}/{MANIFEST}: not a codesign package manifest (expected an object with 'files')")
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise PackageError(f"{root}: {MANIFEST} is not a {FORMAT} v{VERSION} manifest; rebuild the package")
    files = manifest.get("files", {})
    for rel in REQUIRED:
        if rel not in files or not (root / rel).is_file():
            raise PackageError(f"{root}: package is incomplete, {rel} is missing; rebuild it with `codesign deploy`")
    for rel, want in sorted(files.items()):
        path = root / rel
        if not path.is_file():
            raise PackageError(f"{root}: package is incomplete, {rel} is missing; rebuild it with `codesign deploy`")
        size = path.stat().st_size
        if size != want["bytes"]:
            raise PackageError(f"{root}/{rel} is {size} bytes, the manifest says {want['bytes']} "
                               "(truncated or replaced); copy the package again")
        if sha256(path) != want["sha256"]:
            raise PackageError(f"{root}/{rel}: checksum mismatch (the file changed after the package was built); "
                               "copy the package again")


def schedule_from_json(data: dict, wmem: np.ndarray) -> Schedule:
    """The `Schedule` schedule.json describes, with the weights as shipped."""
    return Schedule(hw=HardwareConfig.from_dict(data["hw"]),
                    buffers={k: Buffer(**v) for k, v in data["buffers"].items()},
                    views={k: View(**v) for k, v in data["views"].items()},
                    calls=[Call(**c) for c in data["calls"]], host_layers=list(data["host_layers"]),
                    engine_output=data["engine_output"], wmem=wmem, fmem_words=int(data["fmem_words"]),
                    graph_input=data["graph_input"], host_pre_layers=list(data.get("host_pre_layers", [])),
                    engine_inputs=list(data.get("engine_inputs", [])),
                    engine_outputs=list(data.get("engine_outputs", [])))


def _differences(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in keys)


@dataclass
class Package:
    root: Path
    meta: dict
    engine: dict
    schedule: Schedule
    graph: Graph
    table: np.ndarray  # the descriptor table, uint32 words
    registers: RegisterMap

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def desc_words(self) -> int:
        return int(self.engine["descriptor"]["words"])

    @property
    def n_desc(self) -> int:
        return self.table.size // self.desc_words

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.graph.tensors[self.graph.input].shape)

    @property
    def class_names(self) -> list[str] | None:
        return self.meta["model"].get("class_names")

    @property
    def model_type(self) -> str:
        return self.meta["model"]["type"]

    @property
    def max_batch(self) -> int:
        return int(self.meta["runtime"]["max_batch"])

    @property
    def bitstream(self) -> Path | None:
        """The overlay's .bit (its .hwh lies beside it, as PYNQ expects), or None if not built."""
        overlay = self.meta.get("overlay")
        return self.root / overlay["bit"] if overlay else None


def load_package(root: str | Path) -> Package:
    """The package at `root`, checked (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise PackageError(f"{root}: no such deploy package directory")
    check_files(root)
    try:
        return _load_checked(root)
    except CodesignError:
        raise
    except (KeyError, TypeError, ValueError) as e:  # well-formed JSON with missing or wrong entries
        raise PackageError(f"{root}: malformed package metadata ({type(e).__name__}: {e}); "
                           "rebuild the package") from None


def _load_checked(root: Path) -> Package:
    meta, engine, sched_json = (_read_json(root, f) for f in (META, ENGINE, SCHEDULE))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise PackageError(f"{root}/{META}: not a {FORMAT} v{VERSION} package; rebuild it")

    # The schedule must be compiled for the engine it ships with (bitstream / C-sim sources).
    try:
        hw_yaml = HardwareConfig.load(root / HW).to_dict()
        sched_hw = HardwareConfig.from_dict(sched_json["hw"]).to_dict()
    except (HardwareConfigError, KeyError) as e:
        raise PackageError(f"{root}: bad hardware config in the package ({e})") from None
    if sched_hw != engine["hw"]:
        raise PackageError(f"{root}: the schedule was compiled for other engine parameters than the package's engine "
                           f"(schedule vs engine: {_differences(sched_hw, engine['hw'])}); recompile the project for "
                           "this engine (or rebuild the bitstream) and rebuild the package")
    if hw_yaml != sched_hw:
        raise PackageError(f"{root}: {HW} and {SCHEDULE} disagree ({_differences(hw_yaml, sched_hw)}); "
                           "rebuild the package")

    fields = tuple(sched_json["descriptor_fields"])
    if list(fields) != engine["descriptor"]["fields"] or len(fields) != engine["descriptor"]["words"]:
        raise PackageError(f"{root}: the descriptor layout of {SCHEDULE} ({', '.join(fields)}) is not the engine's "
                           f"({', '.join(engine['descriptor']['fields'])}); recompile the project")
    table = np.fromfile(root / DESC, dtype="<u4")
    if not np.array_equal(table, descriptor.encode([c["descriptor"] for c in sched_json["calls"]], fields)):
        raise PackageError(f"{root}/{DESC} does not encode the calls of {SCHEDULE}; rebuild the package")
    wmem = np.fromfile(root / WMEM, dtype=np.uint8)
    if wmem.size != sched_json["wmem_bytes"]:
        raise PackageError(f"{root}/{WMEM} is {wmem.size} bytes, {SCHEDULE} needs {sched_json['wmem_bytes']}")

    iface = engine["interface"]
    registers = RegisterMap.from_json(iface["registers"])
    if iface["args"] != interface.arguments() or registers != engine_register_map():
        raise PackageError(f"{root}/{ENGINE}: the engine interface (ports, register map) is not the one this "
                           "runtime drives (hw/interface.py); rebuild the package")

    graph = load(root / MODEL)
    sched = schedule_from_json(sched_json, wmem)
    if graph.input != sched.graph_input or not _fits(graph, sched):
        raise PackageError(f"{root}: {MODEL} is not the model {SCHEDULE} was compiled from; rebuild the package")
    return Package(root, meta, engine, sched, graph, table, registers)


def _fits(graph: Graph, sched: Schedule) -> bool:
    """The graph has every host layer of the schedule, and each tensor the host writes into fmem
    (the image, or the stem's outputs) or reads back has the shape of its view there."""
    names = {layer.name for layer in graph.layers}
    if not set(sched.host_pre_layers) | set(sched.host_layers) <= names:
        return False
    for tensor in (*sched.engine_inputs, *sched.engine_outputs):
        view = sched.views.get(tensor)
        if tensor not in graph.tensors or view is None or view.buffer not in sched.buffers:
            return False
        buf = sched.buffers[view.buffer]
        if tuple(graph.tensors[tensor].shape) != (buf.h, buf.w, view.n):
            return False
    return True
