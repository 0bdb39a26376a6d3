"""Run the vendor tools on a written project: `vitis_hls -f vitis_hls.tcl`, then
`vivado -mode batch -source vivado.tcl`.

Everything before this step runs without Xilinx tools; when they are missing the error says so in
one line and points at the complete project, which can be built later on a machine that has them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from ..errors import CodesignError
from .tcl import HLS_SCRIPT, HLS_STEPS, VIVADO_SCRIPT

BITSTREAM = "bitstream"
LOG_DIR = "logs"
_INSTALL_HINT = {"vitis_hls": "Vitis HLS 2023.2+", "vivado": "Vivado 2023.2+"}
_INSTALL_VARS = ("XILINX_VITIS", "XILINX_HLS", "XILINX_VIVADO")  # set by settings64.sh


class VendorToolMissing(CodesignError):
    """A Xilinx tool the flow needs is not installed (or its settings64.sh not sourced)."""


class VendorToolFailed(CodesignError):
    """A Xilinx tool ran and failed; the message names its log."""


def _one_line(path: Path) -> str:
    return str(path).replace("\n", "\\n")


def find_tool(name: str) -> Path | None:
    """`name` on PATH, else in the bin/ of an install named by $XILINX_VITIS, $XILINX_HLS or $XILINX_VIVADO."""
    found = shutil.which(name)
    if found:
        return Path(found)
    for var in _INSTALL_VARS:
        home = os.environ.get(var)
        candidate = Path(home) / "bin" / name if home else None
        if candidate is not None and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _run(tool: Path, args: list[str], project_dir: Path, log: Path, env: dict[str, str],
         timeout: float | None) -> None:
    """Run one tool in `project_dir`, its output in `log`; its whole process tree is stopped on a
    timeout or an interrupt (Vivado starts child processes for its runs)."""
    with log.open("w") as out:
        proc = subprocess.Popen([str(tool), *args], cwd=project_dir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except BaseException as e:
            with contextlib.suppress(ProcessLookupError):  # it may have just finished
                if hasattr(os, "killpg"):
                    os.killpg(proc.pid, signal.SIGTERM)
                else:
                    proc.kill()
            proc.wait()
            if isinstance(e, subprocess.TimeoutExpired):
                raise VendorToolFailed(f"{tool.name} timed out after {timeout} s; log: {_one_line(log)}") from None
            raise
    if code != 0:
        raise VendorToolFailed(f"{tool.name} failed with exit code {code}; log: {_one_line(log)}")


def run_vendor_flow(project_dir: Path, steps: tuple[str, ...] = ("csynth", "export", "bitstream"),
                    timeout: float | None = None) -> dict[str, Path]:
    """Run the vendor steps on the project in `project_dir`; returns {tool: its log file}.

    steps: any of csim, csynth, cosim, export (Vitis HLS, run in that order) and bitstream
    (Vivado: block design to the PYNQ overlay, see tcl.overlay_files). timeout: seconds per tool.
    Every tool is looked up before any runs, so a missing Vivado is reported before an hour of HLS.
    """
    project_dir = Path(project_dir)
    unknown = sorted(set(steps) - set(HLS_STEPS) - {BITSTREAM})
    if unknown:
        raise CodesignError(f"unknown vendor step(s) {', '.join(unknown)} "
                            f"(known: {', '.join((*HLS_STEPS, BITSTREAM))})")
    hls_steps = [s for s in HLS_STEPS if s in steps]
    plan: list[tuple[str, str, list[str], dict[str, str]]] = []  # tool, script, arguments, environment
    if hls_steps:
        plan.append(("vitis_hls", HLS_SCRIPT, ["-f", HLS_SCRIPT], {"CODESIGN_HLS_STEPS": " ".join(hls_steps)}))
    if BITSTREAM in steps:
        plan.append(("vivado", VIVADO_SCRIPT, ["-mode", "batch", "-source", VIVADO_SCRIPT],
                     {"CODESIGN_JOBS": str(os.cpu_count() or 1)}))

    tools: dict[str, Path] = {}
    for name, script, _, _ in plan:
        if not (project_dir / script).is_file():
            raise CodesignError(f"{_one_line(project_dir / script)} not found: not a complete codesign project")
        path = find_tool(name)
        if path is None:
            raise VendorToolMissing(f"{name} not found on PATH (install {_INSTALL_HINT[name]} or source "
                                    f"settings64.sh); the complete project is in {_one_line(project_dir)}")
        tools[name] = path

    (project_dir / LOG_DIR).mkdir(exist_ok=True)
    logs: dict[str, Path] = {}
    for name, _, args, extra_env in plan:
        logs[name] = project_dir / LOG_DIR / f"{name}.log"
        _run(tools[name], args, project_dir, logs[name], {**os.environ, **extra_env}, timeout)
    if BITSTREAM in steps:
        # Record which engine the .bit was built from, so deploy refuses it after a re-compile.
        from ..deploy import write_overlay_stamp
        from .tcl import OVERLAY_DIR

        bits = sorted((project_dir / OVERLAY_DIR).glob("*.bit"))
        if not bits:
            raise VendorToolFailed(f"vivado finished but wrote no .bit in {_one_line(project_dir / OVERLAY_DIR)}; "
                                   f"see {logs['vivado']}")
        if (project_dir / "src").is_dir():  # a full codesign project (not just its scripts)
            write_overlay_stamp(project_dir, bits[0])
    return logs
