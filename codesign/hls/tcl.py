"""The vendor Tcl of a project: `vitis_hls.tcl` (C-sim, synthesis, IP export) and `vivado.tcl`
(block design, bitstream, PYNQ overlay), rendered from Jinja2 templates.

Nothing a user typed reaches a script unchecked: the project name goes through
`safe_identifier`, paths must be plain (no whitespace or Tcl metacharacters), and every board
field used is matched against what a part name or a PS port name can look like. So no value
needs Tcl quoting, and none can end a comment or start a command. Output is deterministic.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from ..errors import CodesignError
from ..hw.config import BOARDS_DIR, Board, HardwareConfig, HardwareConfigError
from ..hw.interface import CONTROL_BUNDLE, M_AXI_BUNDLES, TOP
from ..locations import HLS_TEMPLATES
from .names import safe_identifier
from .reports import REPORTS_DIR

# The engine as hw/interface.py defines it, and the IP that export_design makes of it.
IP_VENDOR, IP_LIBRARY, IP_VERSION = "xilinx.com", "hls", "1.0"
ENGINE_VLNV = f"{IP_VENDOR}:{IP_LIBRARY}:{TOP}:{IP_VERSION}"

HLS_STEPS = ("csim", "csynth", "cosim", "export")  # the order vitis_hls.tcl runs them in
DEFAULT_HLS_STEPS = ("csim", "csynth", "export")
HLS_SOLUTION = "solution1"
HLS_SCRIPT, VIVADO_SCRIPT = "vitis_hls.tcl", "vivado.tcl"
OVERLAY_DIR = "overlay"
BD_NAME = "system"  # short: Vivado paths nest it several times

# HP slave ports per family, and the index the PS configuration names them by
# (zynqmp: S_AXI_HPn_FPD is CONFIG.PSU__USE__S_AXI_GP{n+2}; zynq7: CONFIG.PCW_USE_S_AXI_HP{n}).
_HP_PORTS = {"zynqmp": (re.compile(r"S_AXI_HP([0-3])_FPD\Z"), 2, "S_AXI_HP0_FPD..S_AXI_HP3_FPD"),
             "zynq7": (re.compile(r"S_AXI_HP([0-3])\Z"), 0, "S_AXI_HP0..S_AXI_HP3")}
_HP_MAX_BITS = {"zynqmp": 128, "zynq7": 64}
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+=,@:][A-Za-z0-9_./+=,@:-]*\Z")  # not an option, nothing Tcl expands
_PLAIN_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


@dataclass
class HpPort:
    name: str  # the PS interface pin, e.g. S_AXI_HP0_FPD
    index: int  # its number in the PS configuration parameters
    smartconnect: str
    masters: list[str] = field(default_factory=list)  # engine interface pins, e.g. m_axi_fmem_rd


def hls_project_dir(project: str) -> str:
    return f"{project}_hls"


def vivado_project_dir(project: str) -> str:
    return f"{project}_vivado"


def ip_repo(project: str) -> str:
    return f"{hls_project_dir(project)}/{HLS_SOLUTION}/impl/ip"


def overlay_files(project_dir: Path, project: str) -> tuple[Path, Path]:
    """The .bit and .hwh vivado.tcl leaves in `project_dir` (`project` already safe)."""
    base = Path(project_dir) / OVERLAY_DIR / project
    return base.with_suffix(".bit"), base.with_suffix(".hwh")


def _plain_path(path: str | Path, project_dir: Path, what: str) -> str:
    """`path` as the scripts will see it: relative to the project directory when inside it."""
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.relative_to(Path(os.path.abspath(project_dir)))
        except ValueError:
            pass  # outside the project: stays absolute
    text = p.as_posix()
    if not _PLAIN_PATH.match(text):
        raise CodesignError(f"{what} path {str(path)!r} cannot go into vendor Tcl: use a path without spaces, "
                            "quotes, leading '-' or any of $ [ ] { } ; \\")
    return text


def _checked(board: Board, attr: str) -> str:
    value = getattr(board, attr)
    if not isinstance(value, str) or not _PLAIN_WORD.match(value):
        raise HardwareConfigError(f"board file {board.name!r}: {attr}={value!r} is not a plain name")
    return value


def _hp_ports(board: Board) -> list[HpPort]:
    """The HP ports with the engine masters each one carries: master i goes to port i mod n, so
    with fewer ports than masters the lightest (desc) shares the busiest port's path."""
    if board.family not in _HP_PORTS:
        raise HardwareConfigError(f"board {board.name!r}: family {board.family!r} is not one of "
                                  f"{', '.join(sorted(_HP_PORTS))}")
    pattern, offset, expected = _HP_PORTS[board.family]
    ports = []
    for name in board.hp_ports:
        match = pattern.match(name) if isinstance(name, str) else None
        if match is None:
            raise HardwareConfigError(f"board {board.name!r}: {name!r} is not a {board.family} HP port "
                                      f"(expected {expected})")
        ports.append(HpPort(name, int(match.group(1)) + offset, f"sc_{name.lower()}"))
    if not ports or len({p.name for p in ports}) != len(ports):
        raise HardwareConfigError(f"board {board.name!r}: hp_ports must list distinct HP ports, not {board.hp_ports!r}")
    for i, bundle in enumerate(M_AXI_BUNDLES):
        ports[i % len(ports)].masters.append(f"m_axi_{bundle}")
    return [p for p in ports if p.masters]


def _number(x: float) -> str:
    """A short, stable decimal (250.0 -> 250, 1000/300 -> 3.33333)."""
    return f"{x:.6g}"


def _environment() -> jinja2.Environment:
    # trim/lstrip_blocks: a block tag on its own line leaves no blank line, which matters inside
    # backslash-continued Tcl commands.
    return jinja2.Environment(loader=jinja2.FileSystemLoader([str(HLS_TEMPLATES), str(BOARDS_DIR)]),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
                              trim_blocks=True, lstrip_blocks=True)


def render_tcl(hw: HardwareConfig, project: str, sources: list[str], testbench: list[str],
               include_dirs: list[str], out_dir: Path, vectors_dir: str = "tb/vectors") -> dict[str, str]:
    """{file name: text} of the two scripts for the project directory `out_dir`.

    Paths may be relative to `out_dir` (preferred: the project can move) or absolute. The board
    family picks the block-design template; hw.clock_mhz is the engine clock and must not exceed
    the board's.
    """
    board = hw.board_info()
    if hw.clock_mhz > board.clock_mhz:
        raise HardwareConfigError(f"clock_mhz={_number(hw.clock_mhz)} exceeds the {board.name} board's "
                                  f"{_number(board.clock_mhz)} MHz; set clock_mhz: {_number(board.clock_mhz)}")
    ports = _hp_ports(board)
    name = safe_identifier(project)
    out_dir = Path(out_dir)
    context = {
        "project": name,
        "board": {attr: _checked(board, attr) for attr in ("name", "part", "family")},
        "clock_mhz": _number(hw.clock_mhz),
        "period_ns": _number(1000.0 / hw.clock_mhz),
        "top": TOP,
        "control": CONTROL_BUNDLE,
        "vlnv": ENGINE_VLNV,
        "ip_vendor": IP_VENDOR,
        "ip_library": IP_LIBRARY,
        "ip_version": IP_VERSION,
        "hls_dir": hls_project_dir(name),
        "solution": HLS_SOLUTION,
        "ip_repo": ip_repo(name),
        "vivado_dir": vivado_project_dir(name),
        "bd_name": BD_NAME,
        "overlay_dir": OVERLAY_DIR,
        "reports_dir": REPORTS_DIR,
        "hls_steps": HLS_STEPS,
        "default_steps": DEFAULT_HLS_STEPS,
        "sources": [_plain_path(p, out_dir, "source") for p in sources],
        "testbench": [_plain_path(p, out_dir, "testbench") for p in testbench],
        "include_dirs": [_plain_path(p, out_dir, "include") for p in include_dirs],
        "vectors_dir": _plain_path(vectors_dir, out_dir, "vectors"),
        "ports": ports,
        "hp_width": min(hw.bus_bits, _HP_MAX_BITS[board.family]),
    }
    env = _environment()
    return {
        HLS_SCRIPT: env.get_template("tcl/vitis_hls.tcl.j2").render(context),
        VIVADO_SCRIPT: env.get_template(f"bd_{board.family}.tcl.j2").render(context),
    }
