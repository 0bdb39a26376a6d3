"""`codesign deploy`: a compiled project → a self-contained folder to copy to the board.

    <out>/
      README.md, example.ipynb, run.py     how to run it (notebook and command line)
      package.json                         model (type, input shape, class names), max batch, overlay files
                                           and their timing (from `codesign bitstream`'s reports)
      engine.json                          the engine: hw parameters, AXI-Lite register map, descriptor layout
      model.ir, hw.yaml, schedule.json     the compiled model
      data/desc.bin, data/wmem.bin         descriptor table and weights, written to the device once
      overlay/<name>.bit, .hwh             the PYNQ overlay, when the vendor tools have been run
      engine/src, engine/csim              the engine's C++ (the simulated device builds it)
      codesign/                            the runtime: driver, golden, graph, hw (NumPy + PyYAML only)
      manifest.json                        size and SHA-256 of every other file

Same inputs, same bytes. The runtime (`codesign.driver.runtime.Runtime`) refuses a package whose
files do not match the manifest or whose parts disagree.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jinja2

from .driver import package as pkg
from .errors import CodesignError
from .graph import load
from .hls.manifest import ENGINE_SOURCES, OVERLAY_STAMP, engine_manifest
from .hls.names import safe_identifier
from .hls.tcl import OVERLAY_DIR
from .locations import HLS_TEMPLATES
from .readers import read_json

CODESIGN_DIR = Path(__file__).resolve().parent
TEMPLATES = HLS_TEMPLATES / "deploy"
# What `codesign.driver.runtime` imports, copied into the package (no torch, no jinja2).
RUNTIME_MODULES = ("__init__.py", "errors.py", "figures.py", "locations.py", "readers.py", "decode.py", "images.py", "ops",
                   "golden", "graph", "hw", "driver")
PROJECT_FILES = (pkg.MODEL, pkg.HW, pkg.SCHEDULE, pkg.DESC, pkg.WMEM)
def _overlay(project_dir: Path) -> tuple[Path, Path] | None:
    bits = sorted((project_dir / OVERLAY_DIR).glob("*.bit"))
    if not bits:
        return None
    if len(bits) > 1:
        names = ", ".join(b.name for b in bits)
        raise CodesignError(f"{project_dir}/{OVERLAY_DIR} holds several bitstreams ({names}); keep the one to deploy")
    bit, hwh = bits[0], bits[0].with_suffix(".hwh")
    if not hwh.is_file():
        raise CodesignError(f"{bit} has no {hwh.name} beside it; PYNQ needs both (re-run `codesign bitstream`)")
    return bit, hwh


def overlay_timing(project_dir: Path, bit: Path) -> dict | None:
    """The timing of `bit` as `codesign bitstream` recorded it (reports/implementation.json), for
    package.json; None when the .bit came without one (built by hand: unchecked). Refuses figures
    of another .bit, and a bitstream that failed timing without --allow-timing-violation."""
    from .hls.reports import IMPL_JSON, Implementation, ReportError, load_figures

    _, data = load_figures(project_dir)
    if data is None:
        return None
    try:
        impl = Implementation.from_json(data)
    except (KeyError, TypeError) as e:
        raise ReportError(f"{project_dir}/{IMPL_JSON}: malformed ({type(e).__name__}: {e}); "
                          "re-run `codesign bitstream`") from None
    if impl.bitstream_sha256 != pkg.sha256(bit):
        raise CodesignError(f"{project_dir}/{IMPL_JSON} describes another bitstream than {bit}; "
                            "re-run `codesign bitstream`")
    if impl.violation() and not impl.allowed_violation:
        raise CodesignError(f"{bit}: {impl.violation()}; rebuild it at a lower clock_mhz (or keep it with "
                            "`codesign bitstream --allow-timing-violation`)")
    return {"clock": impl.clock, "clock_mhz": impl.clock_mhz, "fmax_mhz": impl.fmax_mhz, "wns_ns": impl.wns_ns,
            "whs_ns": impl.whs_ns, "met": impl.met, "allowed_violation": impl.allowed_violation}


def _check_project(project_dir: Path) -> None:
    """The project's files are consistent (hls/simulate.py load_project_schedule)."""
    from .hls.simulate import load_project_schedule

    for rel in ("src/codesign_engine.cpp", "src/descriptor.h", "csim/csim_api.cpp", pkg.SCHEDULE):
        if not (project_dir / rel).is_file():
            raise CodesignError(f"{project_dir}: not a codesign project (missing {rel}); run `codesign compile` first")
    load_project_schedule(project_dir)  # schedule.json and the table are those of model.ir + hw.yaml


def _prepare_out_dir(out: Path) -> None:
    if out.exists():
        if any(out.iterdir()) and not (out / pkg.MANIFEST).is_file():
            raise CodesignError(f"{out} exists and is not a deploy package; choose an empty or new directory")
        shutil.rmtree(out)  # a previous package: rebuilt from scratch so no stale file survives
    out.mkdir(parents=True)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _copy_runtime(out: Path) -> None:
    for rel in RUNTIME_MODULES:
        src = CODESIGN_DIR / rel
        for f in sorted(src.rglob("*.py")) if src.is_dir() else [src]:
            _copy(f, out / "codesign" / f.relative_to(CODESIGN_DIR))


def notebook(text: str) -> str:
    """nbformat v4 JSON from percent-format text (`# %%` code cells, `# %% [markdown]` markdown cells)."""
    cells = []
    for i, chunk in enumerate(re.split(r"^# %%", text, flags=re.M)[1:]):
        header, _, body = chunk.partition("\n")
        markdown = "[markdown]" in header
        lines = body.strip("\n").split("\n")
        if markdown:
            lines = [re.sub(r"^# ?", "", line) for line in lines]
        source = [line + "\n" for line in lines[:-1]] + lines[-1:]
        cell = {"cell_type": "markdown" if markdown else "code", "id": f"cell-{i}", "metadata": {}, "source": source}
        if not markdown:
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    doc = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                       "name": "python3"},
                                        "language_info": {"name": "python"}},
           "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def build_deploy_package(project_dir: str | Path, out_dir: str | Path, class_names: list[str] | None = None,
                         model_type: str | None = None, max_batch: int = 4) -> Path:
    """Write the deploy package of a compiled project (see the module docstring); returns `out_dir`.

    class_names: labels of the classifier outputs (default: the IR's meta['class_names'], if any).
    model_type: picks the runtime's postprocess (default: the IR's model_config['model']).
    max_batch: how many feature-map arenas a runtime may allocate (frames in flight).
    """
    project, out = Path(project_dir), Path(out_dir)
    if not project.is_dir():
        raise CodesignError(f"{project}: no such project directory; run `codesign compile` first")
    if max_batch < 1:
        raise CodesignError(f"max_batch={max_batch} must be at least 1")
    _check_project(project)
    engine = engine_manifest(project)
    overlay = _overlay(project)
    if overlay:
        stamp = overlay[0].with_suffix(OVERLAY_STAMP)
        if stamp.is_file() and read_json(stamp, "overlay stamp") != engine:
            raise CodesignError(f"{overlay[0]} was built from other engine sources than {project}'s (recompiled "
                                "since?); run `codesign bitstream` again before deploying")
    timing = overlay_timing(project, overlay[0]) if overlay else None
    graph = load(project / pkg.MODEL)
    config = graph.meta.get("model_config", {})
    names = class_names if class_names is not None else graph.meta.get("class_names")
    n_out = graph.tensors[graph.output].shape[-1]  # classes: the logits, or a detector's heatmap channels
    if names is not None and len(names) != n_out:
        raise CodesignError(f"{len(names)} class names for a model with {n_out} outputs")
    name = overlay[0].stem if overlay else safe_identifier(graph.name)

    _prepare_out_dir(out)
    for rel in PROJECT_FILES:
        _copy(project / rel, out / rel)
    for sub in ENGINE_SOURCES:
        for f in sorted(p for p in (project / sub).rglob("*") if p.is_file()):
            _copy(f, out / pkg.ENGINE_DIR / f.relative_to(project))
    if overlay:
        for f in overlay:
            _copy(f, out / OVERLAY_DIR / f.name)
    _copy_runtime(out)
    meta = {"format": pkg.FORMAT, "version": pkg.VERSION, "name": name,
            "model": {"name": graph.name, "type": model_type or config.get("model", "unknown"),
                      "input_shape": list(graph.tensors[graph.input].shape),
                      "output_shape": list(graph.tensors[graph.output].shape),
                      "outputs": [{"name": o, "shape": list(graph.tensors[o].shape)} for o in graph.outputs],
                      "class_names": list(names) if names is not None else None},
            "runtime": {"max_batch": max_batch},
            "overlay": {"bit": f"{OVERLAY_DIR}/{overlay[0].name}", "hwh": f"{OVERLAY_DIR}/{overlay[1].name}",
                        "stamped": overlay[0].with_suffix(OVERLAY_STAMP).is_file(), "timing": timing}
            if overlay else None}
    pkg.dump_json(out / pkg.META, meta)
    pkg.dump_json(out / pkg.ENGINE, engine)

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    calls = len(read_json(project / pkg.SCHEDULE, "schedule")["calls"])  # checked by _check_project
    ctx = {"meta": meta, "hw": engine["hw"], "registers": engine["interface"]["registers"],
           "device": "pynq" if overlay else "sim", "calls": calls}
    (out / "README.md").write_text(env.get_template("README.md.j2").render(**ctx))
    (out / "example.ipynb").write_text(notebook(env.get_template("example.py.j2").render(**ctx)))
    _copy(TEMPLATES / "run.py", out / "run.py")
    pkg.write_manifest(out)
    return out
