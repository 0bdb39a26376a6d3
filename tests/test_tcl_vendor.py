"""Board files, safe identifiers, the rendered vendor Tcl and the vendor-flow runner.

No Xilinx tool is needed: every script is parsed by a real Tcl interpreter (tclsh, the `tcl`
package) without being run, and dry-run with the vendor commands stubbed to check its logic.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.errors import CodesignError
from codesign.hls.names import RESERVED, safe_identifier
from codesign.hls.tcl import (BD_NAME, ENGINE_VLNV, HLS_SCRIPT, HLS_SOLUTION, M_AXI_BUNDLES, VIVADO_SCRIPT,
                              hls_project_dir, overlay_files, render_tcl, vivado_project_dir)
from codesign.hls.vendor import VendorToolFailed, VendorToolMissing, find_tool, run_vendor_flow
from codesign.hw.config import Board, HardwareConfig, HardwareConfigError

BOARDS = ("ultra96v2", "kv260", "zcu104", "pynq-z2")
SOURCES = ["src/codesign_engine.cpp", "src/config.h"]
TESTBENCH = ["tb/testbench.cpp"]
INCLUDES = ["src"]
HOSTILE = 'a"; exec rm -rf / ;]$x\n[b'
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

TCLSH = shutil.which("tclsh")
needs_tclsh = pytest.mark.skipif(TCLSH is None, reason="tclsh not installed (apt-get install tcl)")

# Parses a Tcl script without running it: `info complete` on the whole text and on each command,
# and each command compiled to bytecode (tcl::unsupported::disassemble), where a parse error such
# as "extra characters after close-quote" shows up as a `syntax` instruction. The bodies of if,
# foreach, ... are compiled inline; proc bodies are not, so they are checked as scripts too.
CHECKER = r"""
proc fail {where msg} {
    puts stderr "$where: $msg"
    exit 1
}
proc syntax_error {code} {
    if {[regexp {# "([^\n]*)"\n[^\n]*\n\s*\(\d+\) syntax } $code -> msg]} {
        return $msg
    }
    if {[regexp {\) syntax } $code]} {
        return "syntax error"
    }
    return ""
}
proc check_command {cmd where} {
    set text [string trim $cmd]
    if {$text eq "" || [string index $text 0] eq "#"} {
        return
    }
    set msg [syntax_error [tcl::unsupported::disassemble script $cmd]]
    if {$msg ne ""} {
        fail $where $msg
    }
    if {[string match "proc *" $text] && ![catch {llength $text} n] && $n == 4} {
        check_script [lindex $text 3] "$where (body of proc [lindex $text 1])"
    }
}
proc check_script {text where} {
    if {![info complete $text]} {
        fail $where "incomplete script (unbalanced braces, brackets or quotes)"
    }
    set chunk ""
    set line 0
    foreach row [split $text \n] {
        incr line
        if {$chunk eq ""} {
            set first $line
        }
        append chunk $row \n
        if {[info complete $chunk]} {
            check_command $chunk "$where:$first"
            set chunk ""
        }
    }
}
foreach path $argv {
    set f [open $path]
    set text [read $f]
    close $f
    check_script $text $path
}
puts ok
"""

# Runs a script with every vendor command stubbed (and nothing else: an unknown command is an
# error), printing each vendor call as a Tcl list, one per line.
VENDOR_COMMANDS = """
open_project set_top add_files open_solution set_part create_clock csim_design csynth_design cosim_design
export_design create_project set_property current_project update_ip_catalog get_ipdefs create_bd_design
create_bd_cell apply_bd_automation get_bd_pins get_bd_intf_pins get_bd_cells connect_bd_intf_net
connect_bd_net assign_bd_address validate_bd_design save_bd_design get_files make_wrapper current_fileset
update_compile_order launch_runs wait_on_run get_runs open_run report_timing_summary report_utilization get_clocks get_pins
get_timing_paths
""".split()
STUB = r"""
set ::calls {}
set ::vendor {%s}
proc unknown {args} {
    if {[lsearch -exact $::vendor [lindex $args 0]] < 0} {
        error "unexpected command: $args"
    }
    lappend ::calls $args
    return [lindex $args end]
}
proc get_board_parts {args} {
    return ""
}
proc get_property {name args} {
    switch -- $name {
        PROGRESS {return 100%%}
        DIRECTORY {return $::env(STUB_IMPL_DIR)}
        NAME {return clk_pl_0}
        PERIOD {return 4.000}
        SLACK {return [expr {[lsearch $args -hold] >= 0 ? 0.012 : 0.105}]}
    }
    return ""
}
rename exit real_exit
proc exit {{code 0}} {
    foreach call $::calls {
        puts $call
    }
    real_exit $code
}
set script [lindex $argv 0]
set argv [lrange $argv 1 end]
source $script
exit
""" % " ".join(VENDOR_COMMANDS)


def hw_for(board: str) -> HardwareConfig:
    return HardwareConfig(board=board, clock_mhz=Board.load(board).clock_mhz)


def render(board: str, project: str = "net", out_dir: Path = Path("build/net")) -> dict[str, str]:
    return render_tcl(hw_for(board), project, SOURCES, TESTBENCH, INCLUDES, out_dir)


def write(scripts: dict[str, str], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in scripts.items():
        (directory / name).write_text(text)
    return [directory / name for name in sorted(scripts)]


def tcl_parse(paths: list[Path], tmp_path: Path) -> subprocess.CompletedProcess:
    checker = tmp_path / "check.tcl"
    checker.write_text(CHECKER)
    return subprocess.run([TCLSH, str(checker), *map(str, paths)], capture_output=True, text=True, timeout=60)


def dry_run(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    stub = script.parent / "stub.tcl"
    stub.write_text(STUB)
    return subprocess.run([TCLSH, str(stub), str(script), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "STUB_IMPL_DIR": str(script.parent / "impl"), **(env or {})})


def calls(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# ---- board files -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BOARDS)
def test_board_files_load(name):
    board = Board.load(name)
    assert board.name == name
    for resource in ("lut", "ff", "bram36", "dsp"):
        assert getattr(board, resource) > 0
    assert board.uram >= 0 and board.clock_mhz > 0 and board.ddr_gbps > 0
    assert board.family in ("zynqmp", "zynq7") and board.hp_ports and board.pynq_board


def test_default_board_is_ultra96v2():
    board = HardwareConfig().board_info()
    assert (board.name, board.part, board.family) == ("ultra96v2", "xczu3eg-sbva484-1-i", "zynqmp")


def test_unknown_board_lists_known_boards():
    with pytest.raises(HardwareConfigError) as e:
        HardwareConfig(board="no-such-board").board_info()
    for name in BOARDS:
        assert name in str(e.value)


def test_clock_above_the_boards_is_rejected():
    with pytest.raises(HardwareConfigError, match="pynq-z2"):
        render_tcl(HardwareConfig(board="pynq-z2", clock_mhz=250.0), "net", SOURCES, TESTBENCH, INCLUDES, Path("p"))


# ---- safe identifiers --------------------------------------------------------------------------

@given(st.text())
def test_safe_identifier_is_an_identifier_deterministic_and_idempotent(name):
    ident = safe_identifier(name)
    assert IDENT.match(ident)
    assert ident not in RESERVED and "__" not in ident
    assert safe_identifier(name) == ident
    assert safe_identifier(ident) == ident


@settings(max_examples=200)
@given(st.lists(st.text(max_size=12) | st.sampled_from(["net", "net_1", "class", "1x", "é", "", "a b"]),
                max_size=30))
def test_safe_identifier_unique_within_used(names):
    used: set[str] = set()
    idents = [safe_identifier(n, used) for n in names]
    assert len(set(idents)) == len(idents)
    assert used == set(idents)
    again: set[str] = set()
    assert [safe_identifier(n, again) for n in names] == idents  # same sequence, same answers


def test_safe_identifier_examples():
    assert safe_identifier("resnet_18") == "resnet_18"  # clean names are kept
    assert re.fullmatch(r"class_[0-9a-f]{8}", safe_identifier("class"))
    assert re.fullmatch(r"n18_layers_[0-9a-f]{8}", safe_identifier("18 layers"))
    assert safe_identifier("Réseau").startswith("Reseau_")
    assert safe_identifier("a.b") != safe_identifier("a-b")  # sanitized alike, kept apart
    used = {"net"}
    assert safe_identifier("net", used) != "net" and len(used) == 2


# ---- rendered scripts --------------------------------------------------------------------------

@needs_tclsh
@pytest.mark.parametrize("board", BOARDS)
def test_scripts_parse_in_tclsh(board, tmp_path):
    scripts = render(board)
    assert sorted(scripts) == sorted([HLS_SCRIPT, VIVADO_SCRIPT])
    result = tcl_parse(write(scripts, tmp_path / board), tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@needs_tclsh
@pytest.mark.parametrize("bad, message", [
    ('set a "b"c\n', ":2: extra characters after close-quote"),
    ("set a {b}c\n", ":2: extra characters after close-brace"),
    ("if {1} {\n    set a [list {x}y]\n}\n", ":2: extra characters after close-brace"),
    ("proc p {} {\n    set a \"x\"y\n}\n", "(body of proc p):2: extra characters after close-quote"),
    ("set a {\n", "incomplete script"),
])
def test_tcl_checker_catches_syntax_errors(bad, message, tmp_path):
    script = tmp_path / "bad.tcl"
    script.write_text("set ok 1\n" + bad)
    result = tcl_parse([script], tmp_path)
    assert result.returncode != 0 and message in result.stderr


@pytest.mark.parametrize("board", BOARDS)
def test_rendering_is_deterministic(board):
    assert render(board) == render(board)


@needs_tclsh
def test_hostile_project_name_is_sanitized(tmp_path):
    ident = safe_identifier(HOSTILE)
    assert IDENT.match(ident)
    for board in ("ultra96v2", "pynq-z2"):
        scripts = render(board, HOSTILE)
        for text in scripts.values():
            assert ident in text
            for fragment in ('a"', '";', "exec rm", "rm -rf", ";]", "]$x", "$x\n", "\n[b", "[b"):
                assert fragment not in text
        assert tcl_parse(write(scripts, tmp_path / board), tmp_path).returncode == 0


@pytest.mark.parametrize("path", ["src/a b.cpp", "src/$x.cpp", "src/[x].cpp", "src/{x}.cpp", 'src/"x".cpp',
                                  "src/a;b.cpp", "src\\x.cpp", "-x.cpp", "src/x\n.cpp"])
def test_unsafe_paths_are_refused(path):
    with pytest.raises(CodesignError, match="vendor Tcl"):
        render_tcl(hw_for("ultra96v2"), "net", [path], TESTBENCH, INCLUDES, Path("p"))


def test_absolute_paths_inside_the_project_become_relative(tmp_path):
    project = tmp_path / "proj"
    scripts = render_tcl(hw_for("ultra96v2"), "net", [str(project / "src" / "e.cpp")], TESTBENCH,
                         [str(project / "src")], project)
    assert str(tmp_path) not in scripts[HLS_SCRIPT]
    assert "set sources [list src/e.cpp]" in scripts[HLS_SCRIPT]


def test_bad_board_ports_are_refused(monkeypatch):
    board = Board.load("ultra96v2")
    for ports in (("S_AXI_HP0",), ("S_AXI_HP0_FPD; exec x",), ()):
        monkeypatch.setattr(HardwareConfig, "board_info", lambda self, p=ports: Board(**{**board.__dict__,
                                                                                          "hp_ports": p}))
        with pytest.raises(HardwareConfigError, match="HP port|hp_ports"):
            render(board.name)


# ---- dry runs with the vendor commands stubbed -------------------------------------------------

@needs_tclsh
def test_vitis_hls_steps_are_selectable(tmp_path):
    script = write(render("ultra96v2"), tmp_path)[0]
    assert script.name == HLS_SCRIPT

    def flow(*args, **env):
        return [c.split()[0] for c in calls(dry_run(script, *args, env=env))
                if c.split()[0].endswith("_design")]

    assert flow() == ["csim_design", "csynth_design", "export_design"]
    assert flow(CODESIGN_HLS_STEPS="csim") == ["csim_design"]
    assert flow("csynth") == ["csynth_design"]
    assert flow("-f", "vitis_hls.tcl", "export", "csynth") == ["csynth_design", "export_design"]
    vectors = tmp_path.resolve() / "tb" / "vectors"
    cosim = [c for c in calls(dry_run(script, "cosim")) if c.startswith("cosim_design")]
    assert cosim == [f"cosim_design -argv {{{vectors} --separate-memories --calls 1}}"]
    cosim = [c for c in calls(dry_run(script, "cosim", env={"CODESIGN_COSIM_CALLS": "all"})) if c.startswith("cosim")]
    assert cosim == [f"cosim_design -argv {{{vectors} --separate-memories}}"]
    bad = dry_run(script, "cosim", env={"CODESIGN_COSIM_CALLS": "0"})
    assert bad.returncode != 0 and "CODESIGN_COSIM_CALLS='0'" in bad.stderr
    bad = dry_run(script, env={"CODESIGN_HLS_STEPS": "csim bogus"})
    assert bad.returncode != 0 and "unknown HLS step 'bogus'" in bad.stderr
    every = calls(dry_run(script))
    assert "set_part xczu3eg-sbva484-1-i" in every and "create_clock -period 4 -name default" in every
    assert f"add_files -tb {TESTBENCH[0]} -cflags -I{tmp_path.resolve() / 'src'}" in every
    assert any(c.startswith("export_design -format ip_catalog -vendor xilinx.com -library hls") for c in every)


@needs_tclsh
@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("layout", ["gen", "srcs"])
def test_vivado_script_wires_the_engine_and_writes_the_overlay(board, layout, tmp_path):
    project = "net"
    script = write(render(board, project), tmp_path)[1]
    assert script.name == VIVADO_SCRIPT
    (tmp_path / "impl").mkdir()
    (tmp_path / "impl" / f"{BD_NAME}_wrapper.bit").write_bytes(b"bit")
    handoff = tmp_path / vivado_project_dir(project) / f"{project}.{layout}" / "sources_1" / "bd" / BD_NAME / "hw_handoff"
    handoff.mkdir(parents=True)
    (handoff / f"{BD_NAME}.hwh").write_text("<hwh/>")

    every = calls(dry_run(script))
    bit, hwh = overlay_files(tmp_path, project)
    assert bit.read_bytes() == b"bit" and hwh.read_text() == "<hwh/>"
    assert any(ENGINE_VLNV in c and c.startswith("create_bd_cell") for c in every)
    masters = [c for c in every if c.startswith("connect_bd_intf_net") and "engine/m_axi_" in c]
    assert sorted(m.split()[1] for m in masters) == sorted(f"engine/m_axi_{b}" for b in M_AXI_BUNDLES)
    for port in Board.load(board).hp_ports:
        assert any(c.startswith("connect_bd_intf_net") and c.endswith(f"ps/{port}") for c in every)
    assert any(c.endswith("engine/s_axi_control") for c in every)
    assert "assign_bd_address" in every and "validate_bd_design" in every
    # the timing summary codesign bitstream reads (hls/reports.py), and the reports for people
    assert json.loads((tmp_path / "reports" / "timing.json").read_text()) == {
        "clock": "clk_pl_0", "period_ns": 4.0, "target_mhz": Board.load(board).clock_mhz, "wns_ns": 0.105,
        "whs_ns": 0.012}
    assert "report_timing_summary -max_paths 10 -file reports/timing_summary.rpt" in every
    assert "report_utilization -file reports/utilization.rpt" in every


# ---- the vendor-flow runner --------------------------------------------------------------------

def fake_tool(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    for var in ("XILINX_VITIS", "XILINX_HLS", "XILINX_VIVADO"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "build" / "x"
    write(render("ultra96v2", out_dir=path), path)
    return path


def test_missing_tool_is_one_line_naming_tool_and_project(project, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(VendorToolMissing) as e:
        run_vendor_flow(project)
    message = str(e.value)
    assert "\n" not in message and "vitis_hls" in message and str(project) in message
    assert isinstance(e.value, CodesignError)


def test_every_tool_is_looked_up_before_any_runs(project, tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "vitis_hls", f"{shutil.which('touch')} {tmp_path}/ran")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(VendorToolMissing, match="^vivado not found"):
        run_vendor_flow(project)
    assert not (tmp_path / "ran").exists()


def test_tool_failure_names_tool_code_and_log(project, tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "vitis_hls", 'echo "steps=$CODESIGN_HLS_STEPS args=$*"; exit 3')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(VendorToolFailed) as e:
        run_vendor_flow(project, steps=("csim",))
    log = project / "logs" / "vitis_hls.log"
    assert "vitis_hls" in str(e.value) and "exit code 3" in str(e.value) and str(log) in str(e.value)
    assert log.read_text().strip() == f"steps=csim args=-f {HLS_SCRIPT}"


def test_flow_runs_hls_then_vivado_in_the_project(project, tmp_path, monkeypatch):
    from .test_reports import TIMING, UTILIZATION, csynth

    order, reports = tmp_path / "order", tmp_path / "reports"
    reports.mkdir()
    (reports / "csynth.xml").write_text(csynth())
    (reports / "timing.json").write_text(TIMING.format(wns=0.1))
    (reports / "utilization.rpt").write_text(UTILIZATION)
    mkdir, cp = shutil.which("mkdir"), shutil.which("cp")
    syn = f"{hls_project_dir('x')}/{HLS_SOLUTION}/syn/report"
    fake_tool(tmp_path / "bin", "vitis_hls", f'echo "vitis_hls $CODESIGN_HLS_STEPS $(pwd)" >> {order}; '
                                             f'{mkdir} -p {syn}; {cp} {reports}/csynth.xml {syn}/')
    # Like the real block-design script, the fake leaves the overlay's .bit and the reports behind.
    fake_tool(tmp_path / "opt" / "bin", "vivado", f'echo "vivado $* $(pwd)" >> {order}; {mkdir} -p overlay reports; '
                                                  f': > overlay/x.bit; {cp} {reports}/timing.json '
                                                  f'{reports}/utilization.rpt reports/')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("XILINX_VIVADO", str(tmp_path / "opt"))
    assert find_tool("vivado") == tmp_path / "opt" / "bin" / "vivado"
    logs = run_vendor_flow(project)
    assert order.read_text().splitlines() == [f"vitis_hls csynth export {project}",
                                              f"vivado -mode batch -source {VIVADO_SCRIPT} {project}"]
    assert sorted(logs) == ["vitis_hls", "vivado"] and all(p.is_file() for p in logs.values())


def test_unknown_step_and_timeout(project, tmp_path, monkeypatch):
    with pytest.raises(CodesignError, match="unknown vendor step"):
        run_vendor_flow(project, steps=("synth",))
    fake_tool(tmp_path / "bin", "vitis_hls", f"{shutil.which('sleep')} 30")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(VendorToolFailed, match="timed out"):
        run_vendor_flow(project, steps=("csynth",), timeout=0.5)


def test_m_axi_bundles_are_the_engines_and_the_resource_model_counts_them():
    """hw/interface.py's bundles are exactly the m_axi ports the rendered top function declares, and the
    resource model charges one AXI master per bundle (no copied count)."""
    import jinja2

    from codesign.estimate.params import ResourceParams
    from codesign.hw.interface import template_context
    from codesign.locations import HLS_TEMPLATES

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HLS_TEMPLATES / "engine")),
                             undefined=jinja2.StrictUndefined)
    top = env.get_template("top.cpp.j2").render(hw=hw_for("ultra96v2"), **template_context())
    declared = re.findall(r"INTERFACE m_axi port = (\w+) bundle = (\w+)", top)
    assert declared and all(port == bundle for port, bundle in declared)
    assert sorted(b for _, b in declared) == sorted(M_AXI_BUNDLES)
    assert ResourceParams().axi_masters == len(M_AXI_BUNDLES)
