"""The vendor tools' reports as figures, and the gates a build must pass (DESIGN §8, "synthesized").

After Vitis HLS: `<hls_dir>/<solution>/syn/report/csynth.xml` gives per-loop achieved II, depth,
trip count and latency for every module, and the engine's resources beside the part's. Each
pipelined loop's target II is read from the rendered sources (`label: for (...) {
HLS_PRAGMA(PIPELINE II = X)`, X a number or a `#define`d name), so a loop that misses its pragma,
or a design that does not fit the part, fails the step with the list of what missed.

After Vivado: vivado.tcl writes `reports/timing.json` (worst setup and hold slack, the engine
clock and its period, read with get_timing_paths / get_clocks), `reports/timing_summary.rpt` and
`reports/utilization.rpt`. A negative WNS fails `codesign bitstream` unless it is explicitly
allowed; the figures, with the highest clock the routed design would meet, are written to
`reports/implementation.json` and travel with the .bit into the deploy package.

XML is parsed by element name with a parser that refuses DTDs and entities; the utilization table
by its column headers. Neither parser has yet met a report from a real Vitis/Vivado run: their
fixtures (tests/test_reports.py) follow the layout of Vitis HLS 2023.x / Vivado 2023.x reports.
"""
from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CodesignError
from ..readers import read_json, read_xml

REPORTS_DIR = "reports"
HLS_JSON = f"{REPORTS_DIR}/hls.json"  # the parsed csynth.xml (written by run_vendor_flow)
IMPL_JSON = f"{REPORTS_DIR}/implementation.json"  # the parsed Vivado reports (written by run_vendor_flow)
TIMING_JSON = f"{REPORTS_DIR}/timing.json"  # written by vivado.tcl
TIMING_RPT = f"{REPORTS_DIR}/timing_summary.rpt"  # written by vivado.tcl, for people
UTILIZATION_RPT = f"{REPORTS_DIR}/utilization.rpt"  # written by vivado.tcl
HLS_RESOURCES = ("BRAM_18K", "DSP", "FF", "LUT", "URAM")
_LOOP_FIELDS = {"TripCount", "Latency", "PipelineII", "PipelineDepth", "IterationLatency"}
_DUPLICATE = re.compile(r"\.\d+\Z")  # Vitis suffixes a loop inlined in several places: VITIS_LOOP_35_2.2


class ReportError(CodesignError):
    """A vendor report is missing, unreadable or not laid out as expected."""


class GateFailed(CodesignError):
    """The synthesized or implemented design misses a target (II, resources, timing)."""


def parse_xml(path: Path) -> ET.Element:
    """The root element of a Vitis report; a DOCTYPE or ENTITY declaration, which a Vitis report never
    has, is refused (readers.read_xml)."""
    return read_xml(path, "report", ReportError)


def _number(el: ET.Element | None) -> int | None:
    """An integer figure: '12', a range '3 ~ 12' or <range><min/><max/></range> (its max); None for
    'undef', '-' or absent."""
    if el is None:
        return None
    values = [t for t in (el.itertext()) if t.strip()]
    nums = [int(n) for t in values for n in re.findall(r"-?\d+", t)]
    if not nums or any(t.strip() in ("undef", "-") for t in values):
        return None
    return max(nums)


def _float(el: ET.Element | None) -> float | None:
    try:
        return float(el.text) if el is not None and el.text else None
    except ValueError:
        return None


@dataclass
class LoopFigure:
    module: str
    name: str  # as Vitis names it: the source label, or VITIS_LOOP_<line>_<n>
    ii: int | None  # achieved; None: not pipelined
    depth: int | None
    trip_count: int | None  # the maximum when a range
    latency: int | None
    target_ii: int | None = None  # from the source's PIPELINE pragma; None: no pragma found

    @property
    def missed(self) -> str | None:
        """Why the loop misses its target, or None."""
        if self.target_ii is None:
            return None
        if self.ii is None:
            return f"{self.module}/{self.name} is not pipelined (pragma II={self.target_ii})"
        if self.ii > self.target_ii:
            return f"{self.module}/{self.name} II={self.ii} > pragma II={self.target_ii}"
        return None


@dataclass
class HlsSynthesis:
    top: str
    part: str
    target_period_ns: float | None
    estimated_period_ns: float | None
    resources: dict[str, int]
    available: dict[str, int]
    loops: list[LoopFigure] = field(default_factory=list)

    def misses(self) -> list[str]:
        out = [m for loop in self.loops if (m := loop.missed)]
        for kind in HLS_RESOURCES:
            used, cap = self.resources.get(kind, 0), self.available.get(kind)
            if cap is not None and used > cap:
                out.append(f"{kind} {used:,} > {cap:,} available")
        return out

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "misses": self.misses()}


def _loops(summary: ET.Element | None, module: str, out: list[LoopFigure]) -> None:
    """Loop elements are named by the loop and hold its figures; nested loops are nested elements."""
    for el in list(summary) if summary is not None else []:
        if not _LOOP_FIELDS & {child.tag for child in el}:
            continue
        name = el.findtext("Name") or el.tag
        out.append(LoopFigure(module, name, _number(el.find("PipelineII")), _number(el.find("PipelineDepth")),
                              _number(el.find("TripCount")), _number(el.find("Latency"))))
        _loops(el, module, out)


def _resources(el: ET.Element | None) -> dict[str, int]:
    return {kind: n for kind in HLS_RESOURCES if (n := _number(el.find(kind) if el is not None else None)) is not None}


def pragma_targets(src_dir: Path) -> dict[str, int]:
    """{loop label: target II} of every labelled loop whose body opens with a PIPELINE pragma in
    the sources under `src_dir`. A label used with different targets keeps the smallest (strict)."""
    texts = [p.read_text(errors="replace") for p in sorted(Path(src_dir).glob("*")) if p.suffix in (".h", ".cpp")]
    defines = {n: int(v) for t in texts for n, v in re.findall(r"^\s*#define\s+(\w+)\s+(\d+)\s*$", t, re.M)}
    loop = re.compile(r"\b(\w+)\s*:\s*for\s*\((?:[^()]|\([^()]*\))*\)\s*\{\s*"
                      r"(?:HLS_PRAGMA\(\s*|#\s*pragma\s+HLS\s+)PIPELINE\s+II\s*=\s*(\w+)")
    targets: dict[str, int] = {}
    for text in texts:
        for label, ii in loop.findall(text):
            value = int(ii) if ii.isdigit() else defines.get(ii)
            if value is not None:
                targets[label] = min(value, targets.get(label, value))
    return targets


def parse_csynth(path: Path, targets: dict[str, int] | None = None) -> HlsSynthesis:
    """The figures of a csynth.xml; `targets` ({label: II}, see pragma_targets) set each loop's target."""
    root = parse_xml(path)
    if root.tag != "profile" or root.find("AreaEstimates/Resources") is None:
        raise ReportError(f"{path}: not a Vitis HLS synthesis report (no <profile>/<AreaEstimates>/<Resources>)")
    top = root.findtext("UserAssignments/TopModelName") or ""
    loops: list[LoopFigure] = []
    modules = root.findall("ModuleInformation/Module")
    if modules:  # every module with its own loops (the top one included)
        for module in modules:
            _loops(module.find("PerformanceEstimates/SummaryOfLoopLatency"), module.findtext("Name") or "?", loops)
    else:  # older layouts: only the top function's loops
        _loops(root.find("PerformanceEstimates/SummaryOfLoopLatency"), top, loops)
    for loop in loops:
        loop.target_ii = (targets or {}).get(_DUPLICATE.sub("", loop.name))
    return HlsSynthesis(top, root.findtext("UserAssignments/Part") or "",
                        _float(root.find("UserAssignments/TargetClockPeriod")),
                        _float(root.find("PerformanceEstimates/SummaryOfTimingAnalysis/EstimatedClockPeriod")),
                        _resources(root.find("AreaEstimates/Resources")),
                        _resources(root.find("AreaEstimates/AvailableResources")), loops)


# ---- Vivado ------------------------------------------------------------------------------------

# report_utilization rows (UltraScale+ / 7-series names) → the estimator's resource names
_UTIL_ROWS = {"lut": ("CLB LUTs", "Slice LUTs"), "ff": ("CLB Registers", "Slice Registers"),
              "bram36": ("Block RAM Tile",), "uram": ("URAM",), "dsp": ("DSPs",)}


def parse_utilization(path: Path) -> dict[str, dict[str, float]]:
    """{resource: {"used", "available"}} from a report_utilization text report, each table read by
    its header row ('Site Type', 'Used', 'Available')."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        raise ReportError(f"{path}: cannot be read ({e.strerror or e})") from None
    out: dict[str, dict[str, float]] = {}
    columns: list[str] = []
    for line in lines:
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "Site Type" in cells and "Used" in cells and "Available" in cells:
            columns = cells
            continue
        if not columns or len(cells) != len(columns):
            continue
        row = dict(zip(columns, cells))
        for kind, names in _UTIL_ROWS.items():
            if row["Site Type"] in names and kind not in out:
                try:
                    out[kind] = {"used": float(row["Used"]), "available": float(row["Available"])}
                except ValueError:
                    raise ReportError(f"{path}: row {row['Site Type']!r} has no numbers in Used/Available") from None
    missing = [k for k in ("lut", "ff", "bram36", "dsp") if k not in out]
    if missing:
        raise ReportError(f"{path}: no {', '.join(missing)} row in any 'Site Type | Used | Available' table")
    return out


@dataclass
class Implementation:
    clock: str  # the engine clock's name in the design (clk_pl_0 on zynqmp)
    period_ns: float
    target_mhz: float  # the clock the engine config was compiled for (hw.clock_mhz)
    wns_ns: float  # worst setup slack
    whs_ns: float | None  # worst hold slack
    utilization: dict[str, dict[str, float]]
    allowed_violation: bool = False  # built with --allow-timing-violation
    bitstream_sha256: str = ""  # the .bit these figures belong to

    @property
    def clock_mhz(self) -> float:
        return 1000.0 / self.period_ns

    @property
    def fmax_mhz(self) -> float:
        """The highest clock the routed design meets: 1 / (period - WNS)."""
        return 1000.0 / (self.period_ns - self.wns_ns) if self.period_ns > self.wns_ns else math.inf

    @property
    def met(self) -> bool:
        return self.wns_ns >= 0 and (self.whs_ns is None or self.whs_ns >= 0)

    def violation(self) -> str | None:
        """One line saying how timing is missed, or None."""
        if self.met:
            return None
        hold = f", WHS {self.whs_ns:.3f} ns" if self.whs_ns is not None and self.whs_ns < 0 else ""
        return (f"timing not met on clock {self.clock} ({self.period_ns:g} ns = {self.clock_mhz:.1f} MHz): "
                f"WNS {self.wns_ns:.3f} ns{hold}; the routed design meets {self.fmax_mhz:.1f} MHz")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "clock_mhz": self.clock_mhz, "fmax_mhz": self.fmax_mhz, "met": self.met}

    @classmethod
    def from_json(cls, data: dict) -> "Implementation":
        return cls(**{k: data[k] for k in ("clock", "period_ns", "target_mhz", "wns_ns", "whs_ns", "utilization",
                                           "allowed_violation", "bitstream_sha256")})


def parse_implementation(project_dir: Path) -> Implementation:
    """The figures of the reports vivado.tcl left in `project_dir`/reports."""
    path = Path(project_dir) / TIMING_JSON
    if not path.is_file():
        raise ReportError(f"{path}: no such file; vivado.tcl writes it after routing")
    data = read_json(path, "timing summary", ReportError)
    try:
        timing = {k: data[k] for k in ("clock", "period_ns", "target_mhz", "wns_ns", "whs_ns")}
    except (KeyError, TypeError) as e:
        raise ReportError(f"{path}: not the timing summary vivado.tcl writes ({type(e).__name__}: {e})") from None
    if not isinstance(timing["period_ns"], (int, float)) or not isinstance(timing["wns_ns"], (int, float)) \
            or timing["period_ns"] <= 0:
        raise ReportError(f"{path}: no clock period or setup slack (period_ns={timing['period_ns']!r}, "
                          f"wns_ns={timing['wns_ns']!r}): were any timing paths constrained?")
    return Implementation(str(timing["clock"]), float(timing["period_ns"]), float(timing["target_mhz"]),
                          float(timing["wns_ns"]), None if timing["whs_ns"] is None else float(timing["whs_ns"]),
                          parse_utilization(Path(project_dir) / UTILIZATION_RPT))


def load_figures(project_dir: Path) -> tuple[dict | None, dict | None]:
    """The parsed HLS and implementation figures a vendor run left in the project (None: not run)."""
    out = []
    for rel in (HLS_JSON, IMPL_JSON):
        path = Path(project_dir) / rel
        out.append(read_json(path, "report (re-run `codesign bitstream`)", ReportError) if path.is_file() else None)
    return out[0], out[1]


def side_by_side(estimated: dict[str, float], hls: dict | None, impl: dict | None) -> str:
    """Estimated resources (the estimator's names: lut, ff, bram36, uram, dsp) beside those Vitis HLS
    and Vivado reported, one row per resource, and the clock each stage met."""
    from ..figures import MODELED, SYNTHESIZED

    hls_res = (hls or {}).get("resources", {})
    synth = {"lut": hls_res.get("LUT"), "ff": hls_res.get("FF"), "uram": hls_res.get("URAM"), "dsp": hls_res.get("DSP"),
             "bram36": hls_res["BRAM_18K"] / 2 if "BRAM_18K" in hls_res else None}
    routed = {k: v["used"] for k, v in (impl or {}).get("utilization", {}).items()}

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}" if v % 1 else f"{v:,.0f}"

    lines = [f"{'resource':<8} {'estimate':>10} {'HLS':>10} {'routed':>10}",
             *(f"{k.upper() if k != 'bram36' else 'BRAM36':<8} {cell(v):>10} {cell(synth[k]):>10} "
               f"{cell(routed.get(k)):>10}" for k, v in estimated.items())]
    if hls:
        lines.append(f"HLS: estimated clock period {hls.get('estimated_period_ns')} ns "
                     f"(target {hls.get('target_period_ns')} ns); "
                     + (f"misses: {'; '.join(hls['misses'])}" if hls.get("misses") else "every pragma II met"))
    if impl:
        lines.append(f"routed: {impl['clock']} {impl['clock_mhz']:.1f} MHz, WNS {impl['wns_ns']:.3f} ns, "
                     f"meets up to {impl['fmax_mhz']:.1f} MHz" + ("" if impl["met"] else " (TIMING NOT MET)"))
    lines.append(f"estimate: {MODELED}; HLS and routed: {SYNTHESIZED} (HLS and routed count the engine, routed "
                 "the whole design: engine, SmartConnects, reset)")
    return "\n".join(lines)
