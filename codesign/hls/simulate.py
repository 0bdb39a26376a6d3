"""`codesign csim`: a written project, C-simulated and compared with the golden model.

Three checks, any of which fails the run with one line naming the first differing layer, channel
and pixel: every engine call on its own (the memory before each call comes from the previous
C-simulated call), the whole descriptor table in one start with the host layers after it (the
logits), and the stand-alone C++ testbench on the project's vectors.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import CodesignError
from ..readers import read_text
from ..graph import load
from ..hw.config import HardwareConfig
from ..hw.plan import Schedule
from ..hw.scheduler import schedule
from ..hw.verify import VerifyReport, verify
from .csim import CsimEngine, run_testbench
from .project import test_image


class CsimMismatch(CodesignError):
    """The C-simulated engine differs from the golden model."""


@dataclass
class CsimResult:
    calls: int
    per_call: VerifyReport | None
    end_to_end: VerifyReport
    testbench: str | None
    seconds_per_frame: float

    def __str__(self) -> str:
        lines = []
        if self.per_call:
            lines.append(f"per call: {self.per_call.calls_checked}/{self.calls} engine calls bit-exact "
                         f"({self.per_call.values_checked:,} values)")
        lines.append(f"end to end: engine output and host outputs bit-exact ({self.seconds_per_frame:.2f} s per frame)")
        if self.testbench:
            lines.append(f"C++ testbench: {self.testbench}")
        lines.append("C-SIM PASS")
        return "\n".join(lines)


def load_project_schedule(project: Path) -> tuple[Schedule, object]:
    """The project's schedule, with the weights and descriptors exactly as written in data/; its
    schedule.json and descriptor table must be those of model.ir + hw.yaml (the scheduler's output
    for them), else the project was edited or damaged after `codesign compile`."""
    for f in ("model.ir", "hw.yaml", "schedule.json", "data/desc.bin", "data/wmem.bin"):
        if not (project / f).is_file():
            raise CodesignError(f"{project}: not a codesign project (missing {f}); run `codesign compile` first")
    graph = load(project / "model.ir")
    sched = schedule(graph, HardwareConfig.load(project / "hw.yaml"))
    if read_text(project / "schedule.json", "schedule") != sched.dumps() + "\n":
        raise CodesignError(f"{project}/schedule.json does not match model.ir + hw.yaml; re-run `codesign compile`")
    table = np.fromfile(project / "data" / "desc.bin", dtype="<u4")
    if not np.array_equal(table, sched.descriptor_table):
        raise CodesignError(f"{project}/data/desc.bin does not match model.ir + hw.yaml; re-run `codesign compile`")
    sched.wmem = np.fromfile(project / "data" / "wmem.bin", dtype=np.uint8)
    return sched, graph


def simulate_project(project: Path, per_call: bool = True, testbench: bool = True) -> CsimResult:
    sched, graph = load_project_schedule(project)
    engine = CsimEngine(project, sched.hw.bus_bits)
    image = test_image(graph)

    def fail(where: str, report: VerifyReport) -> None:
        if report.mismatch:
            raise CsimMismatch(f"{where}: {report.mismatch}")
        raise CsimMismatch(f"{where}: engine output matches but the host outputs differ")

    call_report = None
    if per_call:
        def bar(it):
            return tqdm(it, desc="C-sim per call", unit="call", leave=False, disable=None)  # bar only on a TTY

        call_report = verify(sched, graph, image, engine, per_call=True, progress=bar)
        if not call_report.ok:
            fail("per-call C-sim", call_report)
    t0 = time.perf_counter()
    whole = verify(sched, graph, image, engine, per_call=False)
    seconds = time.perf_counter() - t0
    if not whole.ok:
        fail("end-to-end C-sim", whole)
    tb_line = None
    if testbench:
        proc = run_testbench(project)
        out = (proc.stdout + proc.stderr).strip().splitlines()
        if proc.returncode != 0:
            detail = next((line for line in out if "MISMATCH" in line), out[-1] if out else "no output")
            raise CsimMismatch(f"C++ testbench failed (exit {proc.returncode}): {detail}")
        tb_line = out[-1] if out else "exit 0"
    return CsimResult(len(sched.calls), call_report, whole, tb_line, seconds)
