"""Arrows point down the flow (docs/architecture.md, "Layers"): no module imports from a higher layer, the
back end never imports torch or the torch front end, and what the board runs imports neither jinja2 nor
the HLS back end. Every import statement counts, also the ones inside functions."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "codesign"

# The back end, lowest first: a module may import its own layer and the ones below.
LAYERS = (
    {"errors", "figures", "architectures", "images", "locations", "readers"},
    {"graph"},
    {"golden", "decode", "ops", "importers"},
    {"hw"},
    {"driver"},
    {"estimate"},
    {"hls"},
    {"deploy"},
)
# The torch front end (training, QAT models, export): it may use the IR layers below, not the hardware ones.
FRONT_END = {"data", "models", "train", "detection", "quant"}
FRONT_END_MAY_USE = {"errors", "figures", "architectures", "images", "locations", "readers", "graph", "golden", "decode", "ops",
                     "importers"}
TOP = {"cli", "__main__", "__init__"}  # the command line: anything
TORCH = {"torch", "brevitas", "torchvision"}
# what a deploy package runs on the board (deploy.RUNTIME_MODULES): NumPy and PyYAML only
BOARD = {"errors", "figures", "images", "locations", "readers", "decode", "golden", "graph", "ops", "hw", "driver"}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file."""
    tree = ast.parse(path.read_text())
    pkg = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]  # ('codesign', 'hw') for codesign/hw/x.py
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ((node.module,) if node.module else ()))
                if not node.module:  # from . import x: x is a module of the package
                    out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
                    continue
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
    return out


def _target_unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "codesign" and len(parts) > 1 else ("__init__" if module == "codesign" else None)


def _layer(unit: str) -> int | None:
    return next((i for i, units in enumerate(LAYERS) if unit in units), None)


def _violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        where = path.relative_to(PACKAGE.parent)
        for line, mod in _imports(path):
            top = mod.split(".")[0]
            target = _target_unit(mod)
            if unit in TOP:
                continue
            if top in TORCH and unit not in FRONT_END:
                bad.append(f"{where}:{line}: the back end imports {mod}")
            if top == "jinja2" and unit in BOARD:
                bad.append(f"{where}:{line}: board runtime imports {mod}")
            if target is None or target == unit:
                continue
            if unit in FRONT_END:
                if target not in FRONT_END | FRONT_END_MAY_USE:
                    bad.append(f"{where}:{line}: the front end imports the hardware side ({mod})")
                continue
            if target in FRONT_END:
                bad.append(f"{where}:{line}: the back end imports the torch front end ({mod})")
                continue
            mine, theirs = _layer(unit), _layer(target)
            if mine is None:
                bad.append(f"{where}: '{unit}' is in no layer (add it to LAYERS and docs/architecture.md)")
            elif theirs is not None and theirs > mine:
                bad.append(f"{where}:{line}: {unit} (layer {mine}) imports {mod} (layer {theirs})")
            elif theirs is None and target not in TOP:
                bad.append(f"{where}:{line}: imports '{target}', which is in no layer")
            elif target in TOP:
                bad.append(f"{where}:{line}: imports the command line ({mod})")
    return bad


def test_no_import_points_up_the_flow():
    bad = _violations()
    assert not bad, "\n".join(bad)


def test_the_check_catches_an_upward_import(tmp_path, monkeypatch):
    """The rule is live: a driver module that imports the HLS back end, or golden importing torch, fails."""
    fake = tmp_path / "codesign"
    for unit, text in (("driver/x.py", "from ..hls.csim import CsimEngine\n"),
                       ("golden/y.py", "def f():\n    import torch\n"),
                       ("estimate/z.py", "from ..quant import export_model\n")):
        (fake / unit).parent.mkdir(parents=True, exist_ok=True)
        (fake / unit).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    bad = _violations()
    assert any("driver (layer 4) imports codesign.hls.csim (layer 6)" in b for b in bad), bad
    assert any("back end imports torch" in b for b in bad) and any("torch front end" in b for b in bad)


@pytest.mark.parametrize("unit", sorted(u for layer in LAYERS for u in layer) + sorted(FRONT_END))
def test_every_layer_exists(unit):
    assert (PACKAGE / unit).is_dir() or (PACKAGE / f"{unit}.py").is_file(), unit
