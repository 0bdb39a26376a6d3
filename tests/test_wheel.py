"""A wheel carries the engine templates and the board files and runs the flow outside the checkout.

The wheel is built from a copy of the sources with a marker added to one engine template and one
board template, installed into a fresh virtual environment in a temporary folder, and run from
there: `codesign compile` + `codesign csim` on the tiny IR. The markers in the generated project
prove the files were read from the installed package, not from this checkout. The environment
has no pip and no packages of its own; a .pth line lends it this venv's site-packages for the
dependencies (torch, numpy, jinja2, hls4ml...), without running that folder's .pth files, so the
editable install of the checkout stays invisible.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from codesign.graph import save
from codesign.locations import BOARDS, HLS_TEMPLATES

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("codesign", "hls_templates", "boards", "pyproject.toml", "setup.py", "README.md")
MARK = "installed-copy-marker"

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="C-simulation needs g++")


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, \
        f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def _data_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    for template in ("hls_templates/project_README.md.j2", "boards/bd_base.tcl.j2"):
        with open(src / template, "a") as f:
            f.write(f"{'#' if template.endswith('.tcl.j2') else ''}{MARK}\n")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(out), str(src)], cwd=src)
    [whl] = out.glob("codesign-*.whl")
    return whl


def test_the_wheel_carries_every_template_and_board_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in (HLS_TEMPLATES, BOARDS):
        shipped = {n.split(f"codesign/_data/{folder.name}/", 1)[1] for n in names
                   if n.startswith(f"codesign/_data/{folder.name}/")}
        assert shipped == _data_files(folder), folder.name
    assert "codesign/locations.py" in names and not any(n.startswith(("tests/", "hls_templates/")) for n in names)


def test_installed_wheel_compiles_and_csims_outside_the_checkout(wheel, tiny_graph, tmp_path):
    env_dir = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], cwd=tmp_path)
    python = env_dir / "bin" / "python"
    target = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       cwd=tmp_path).strip())
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile", "-q",
          "--target", str(target), str(wheel)], cwd=tmp_path)
    (target / "_codesign_test_deps.pth").write_text("".join(p + "\n" for p in site.getsitepackages()))

    work = tmp_path / "work"
    work.mkdir()
    save(tiny_graph, work / "tiny.ir")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    where = _run([str(python), "-c", "import codesign, codesign.locations as l; "
                                     "print(codesign.__file__); print(l.HLS_TEMPLATES); print(l.BOARDS)"],
                 cwd=work, env=env).split()
    assert all(Path(p).is_relative_to(target) for p in where), where

    codesign = [str(python), "-m", "codesign"]
    _run(codesign + ["compile", "--model", "tiny.ir", "--board", "ultra96v2", "-o", "proj"], cwd=work, env=env)
    assert MARK in (work / "proj" / "README.md").read_text()  # hls_templates/ from the wheel
    assert MARK in (work / "proj" / "vivado.tcl").read_text()  # boards/ from the wheel
    out = _run(codesign + ["csim", "--project", "proj"], cwd=work, env=env)
    assert "C++ testbench: PASS" in out and out.rstrip().endswith("C-SIM PASS"), out
