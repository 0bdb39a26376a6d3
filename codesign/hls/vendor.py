"""Run the vendor tools on a written project: `vitis_hls -f vitis_hls.tcl`, then
`vivado -mode batch -source vivado.tcl`.

Everything before this step runs without Xilinx tools; when they are missing the error says so in
one line and points at the complete project, which can be built later on a machine that has them.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from ..errors import CodesignError
from .reports import HLS_JSON, IMPL_JSON, GateFailed, ReportError, parse_csynth, parse_implementation, pragma_targets
from .tcl import HLS_SCRIPT, HLS_SOLUTION, HLS_STEPS, OVERLAY_DIR, VIVADO_SCRIPT, hls_project_dir

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
                    timeout: float | None = None, allow_timing_violation: bool = False) -> dict[str, Path]:
    """Run the vendor steps on the project in `project_dir`; returns {tool: its log file}.

    steps: any of csim, csynth, cosim, export (Vitis HLS, run in that order) and bitstream
    (Vivado: block design to the PYNQ overlay, see tcl.overlay_files). timeout: seconds per tool.
    Every tool is looked up before any runs, so a missing Vivado is reported before an hour of HLS.

    Gates (hls/reports.py): after csynth, a loop that misses its pragma II or resources over the
    part's fail the run (GateFailed) before Vivado starts; after Vivado, a negative setup or hold
    slack fails it unless `allow_timing_violation`. The parsed figures are written to reports/ either
    way, so `codesign report` and `codesign deploy` see what was built.
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
        if name == "vitis_hls" and "csynth" in hls_steps:
            _check_synthesis(project_dir)
    if BITSTREAM in steps:
        _check_implementation(project_dir, logs["vivado"], allow_timing_violation)
    return logs


def csynth_report(project_dir: Path) -> Path:
    """The csynth.xml of the project's (one) Vitis HLS project."""
    found = sorted(project_dir.glob(f"{hls_project_dir('*')}/{HLS_SOLUTION}/syn/report/csynth.xml"))
    if len(found) != 1:
        raise ReportError(f"vitis_hls finished but {'no' if not found else len(found)} "
                          f"{hls_project_dir('*')}/{HLS_SOLUTION}/syn/report/csynth.xml in {_one_line(project_dir)}")
    return found[0]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _check_synthesis(project_dir: Path) -> None:
    src = project_dir / "src"
    synth = parse_csynth(csynth_report(project_dir), pragma_targets(src) if src.is_dir() else {})
    _write_json(project_dir / HLS_JSON, synth.to_json())
    misses = synth.misses()
    if misses:
        raise GateFailed(f"HLS synthesis misses its targets: {'; '.join(misses)} (figures: "
                         f"{_one_line(project_dir / HLS_JSON)})")


def _check_implementation(project_dir: Path, log: Path, allow_timing_violation: bool) -> None:
    # Record which engine the .bit was built from, so deploy refuses it after a re-compile.
    from ..driver.package import sha256
    from .manifest import write_overlay_stamp

    bits = sorted((project_dir / OVERLAY_DIR).glob("*.bit"))
    if not bits:
        raise VendorToolFailed(f"vivado finished but wrote no .bit in {_one_line(project_dir / OVERLAY_DIR)}; "
                               f"see {log}")
    impl = parse_implementation(project_dir)
    impl.allowed_violation = allow_timing_violation and not impl.met
    impl.bitstream_sha256 = sha256(bits[0])
    # Written before the verdict: deploy reads it and refuses a .bit that failed timing.
    _write_json(project_dir / IMPL_JSON, impl.to_json())
    violation = impl.violation()
    if violation and not allow_timing_violation:
        raise GateFailed(f"{violation}; lower clock_mhz, or pass --allow-timing-violation to keep this bitstream")
    if (project_dir / "src").is_dir():  # a full codesign project (not just its scripts)
        write_overlay_stamp(project_dir, bits[0])
