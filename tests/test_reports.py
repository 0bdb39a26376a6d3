"""The vendor-report gates: csynth.xml (per-loop II, resources), Vivado timing and utilization,
and what `codesign bitstream`, `codesign deploy` and the driver do with them.

The vendor tools are faked by shell scripts on PATH that leave reports laid out as Vitis HLS
2023.x and Vivado 2023.x write them (the parsers have not yet met a real run's reports).
"""
from __future__ import annotations

import json
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest

from codesign.cli import main
from codesign.deploy import build_deploy_package
from codesign.driver.device import DeviceError
from codesign.driver.package import META, write_manifest
from codesign.driver.runtime import Runtime
from codesign.hls.project import write_project
from codesign.hls.reports import (IMPL_JSON, ReportError, parse_csynth, parse_utilization, parse_xml,
                                  pragma_targets)
from codesign.hls.tcl import HLS_SOLUTION, hls_project_dir
from codesign.hw.limits import sized_for

REPO = Path(__file__).resolve().parents[1]

# Vitis HLS 2023.2 csynth.xml, cut down: the top's own loop summary, and per module its loops
# (named by the source label; an inlined copy gets a ".N" suffix) with PipelineII/Depth/TripCount.
CSYNTH = """<profile>
    <ReportVersion>
        <Version>2023.2</Version>
    </ReportVersion>
    <UserAssignments>
        <unit>ns</unit>
        <ProductFamily>zynquplus</ProductFamily>
        <Part>xczu3eg-sbva484-1-i</Part>
        <TopModelName>codesign_engine</TopModelName>
        <TargetClockPeriod>4.00</TargetClockPeriod>
        <ClockUncertainty>1.08</ClockUncertainty>
        <FlowTarget>vivado</FlowTarget>
    </UserAssignments>
    <PerformanceEstimates>
        <PipelineType>no</PipelineType>
        <SummaryOfTimingAnalysis>
            <unit>ns</unit>
            <EstimatedClockPeriod>2.920</EstimatedClockPeriod>
        </SummaryOfTimingAnalysis>
        <SummaryOfOverallLatency>
            <unit>clock cycles</unit>
            <Best-caseLatency>undef</Best-caseLatency>
            <Worst-caseLatency>undef</Worst-caseLatency>
        </SummaryOfOverallLatency>
        <SummaryOfLoopLatency>
            <calls>
                <Slack>2.92</Slack>
                <TripCount>undef</TripCount>
                <Latency>undef</Latency>
                <AbsoluteTimeLatency>undef</AbsoluteTimeLatency>
                <IterationLatency>undef</IterationLatency>
                <InstanceList/>
            </calls>
        </SummaryOfLoopLatency>
    </PerformanceEstimates>
    <AreaEstimates>
        <Resources>
            <BRAM_18K>{bram}</BRAM_18K>
            <DSP>{dsp}</DSP>
            <FF>42311</FF>
            <LUT>51877</LUT>
            <URAM>0</URAM>
        </Resources>
        <AvailableResources>
            <BRAM_18K>432</BRAM_18K>
            <DSP>360</DSP>
            <FF>141120</FF>
            <LUT>70560</LUT>
            <URAM>0</URAM>
        </AvailableResources>
    </AreaEstimates>
    <ModuleInformation>
        <Module>
            <Name>conv_mac</Name>
            <Loops>
                <mac/>
            </Loops>
            <PerformanceEstimates>
                <SummaryOfLoopLatency>
                    <mac>
                        <Name>mac</Name>
                        <Slack>2.92</Slack>
                        <TripCount>
                            <range>
                                <min>1</min>
                                <max>25088</max>
                            </range>
                        </TripCount>
                        <Latency>7 ~ 25094</Latency>
                        <AbsoluteTimeLatency>28.000 ns ~ 0.100 ms</AbsoluteTimeLatency>
                        <PipelineII>1</PipelineII>
                        <PipelineDepth>7</PipelineDepth>
                        <PipelineType>yes</PipelineType>
                        <InstanceList/>
                    </mac>
                </SummaryOfLoopLatency>
            </PerformanceEstimates>
        </Module>
        <Module>
            <Name>read_words</Name>
            <PerformanceEstimates>
                <SummaryOfLoopLatency>
                    <words.2>
                        <Name>words.2</Name>
                        <PipelineDepth>3</PipelineDepth>
                        <TripCount>undef</TripCount>
                        <PipelineII>{words_ii}</PipelineII>
                        <Latency>undef</Latency>
                    </words.2>
                    <VITIS_LOOP_88_1>
                        <Name>VITIS_LOOP_88_1</Name>
                        <TripCount>4</TripCount>
                        <Latency>8</Latency>
                        <IterationLatency>2</IterationLatency>
                        <InstanceList/>
                    </VITIS_LOOP_88_1>
                </SummaryOfLoopLatency>
            </PerformanceEstimates>
        </Module>
    </ModuleInformation>
</profile>
"""

# reports/timing.json as vivado.tcl writes it (bd_base.tcl.j2).
TIMING = '{{"clock": "clk_pl_0", "period_ns": 4.000, "target_mhz": 250, "wns_ns": {wns}, "whs_ns": 0.012}}\n'

# report_utilization of an UltraScale+ design (Vivado 2023.x: with the Prohibited column).
UTILIZATION = """Copyright 1986-2023 Xilinx, Inc. All Rights Reserved.
| Tool Version : Vivado v.2023.2 (lin64) Build 4029153 Fri Oct 13 20:13:54 MDT 2023
| Design       : system_wrapper
| Device       : xczu3eg-sbva484-1-i
| Design State : Routed

1. CLB Logic
------------

+----------------------------+-------+-------+------------+-----------+-------+
|          Site Type         |  Used | Fixed | Prohibited | Available | Util% |
+----------------------------+-------+-------+------------+-----------+-------+
| CLB LUTs                   | 53120 |     0 |          0 |     70560 | 75.28 |
|   LUT as Logic             | 50112 |     0 |          0 |     70560 | 71.02 |
|   LUT as Memory            |  3008 |     0 |          0 |     28800 | 10.44 |
| CLB Registers              | 44870 |     0 |          0 |    141120 | 31.80 |
+----------------------------+-------+-------+------------+-----------+-------+

3. BLOCKRAM
-----------

+-------------------+-------+-------+------------+-----------+-------+
|     Site Type     |  Used | Fixed | Prohibited | Available | Util% |
+-------------------+-------+-------+------------+-----------+-------+
| Block RAM Tile    | 160.5 |     0 |          0 |       216 | 74.31 |
|   RAMB36/FIFO*    |   155 |     0 |          0 |       216 | 71.76 |
|   RAMB18          |    11 |     0 |          0 |       432 |  2.55 |
+-------------------+-------+-------+------------+-----------+-------+

4. ARITHMETIC
-------------

+----------------+------+-------+------------+-----------+-------+
|    Site Type   | Used | Fixed | Prohibited | Available | Util% |
+----------------+------+-------+------------+-----------+-------+
| DSPs           |  360 |     0 |          0 |       360 | 100.00 |
|   DSP48E2 only |  360 |       |            |           |       |
+----------------+------+-------+------------+-----------+-------+
"""


def csynth(words_ii: int = 1, bram: int = 318, dsp: int = 360) -> str:
    return CSYNTH.format(words_ii=words_ii, bram=bram, dsp=dsp)


# ---- parsers -------------------------------------------------------------------------------------

def test_csynth_loops_and_resources_by_element_name(tmp_path):
    path = tmp_path / "csynth.xml"
    path.write_text(csynth(words_ii=2))
    synth = parse_csynth(path, {"mac": 1, "words": 1})
    loops = {(loop.module, loop.name): loop for loop in synth.loops}
    assert set(loops) == {("conv_mac", "mac"), ("read_words", "words.2"), ("read_words", "VITIS_LOOP_88_1")}
    mac = loops["conv_mac", "mac"]
    assert (mac.ii, mac.depth, mac.trip_count, mac.latency, mac.target_ii) == (1, 7, 25088, 25094, 1)
    words = loops["read_words", "words.2"]  # the inlined copy is matched to its label
    assert (words.ii, words.trip_count, words.target_ii) == (2, None, 1)
    assert loops["read_words", "VITIS_LOOP_88_1"].ii is None and loops["read_words", "VITIS_LOOP_88_1"].target_ii is None
    assert synth.resources == {"BRAM_18K": 318, "DSP": 360, "FF": 42311, "LUT": 51877, "URAM": 0}
    assert synth.available["BRAM_18K"] == 432 and synth.estimated_period_ns == 2.92 and synth.top == "codesign_engine"
    assert synth.misses() == ["read_words/words.2 II=2 > pragma II=1"]


def test_csynth_element_order_does_not_matter(tmp_path):
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    a.write_text(csynth(words_ii=3))
    # the same report with the children of every loop and of Resources reversed
    text = csynth(words_ii=3)
    text = re.sub(r"(<words\.2>)(.*?)(</words\.2>)",
                  lambda m: m[1] + "".join(reversed(re.findall(r"\s*<\w+>[^<]*</\w+>", m[2]))) + m[3], text, flags=re.S)
    text = re.sub(r"(<Resources>)(.*?)(</Resources>)",
                  lambda m: m[1] + "".join(reversed(re.findall(r"\s*<\w+>[^<]*</\w+>", m[2]))) + m[3], text, flags=re.S)
    b.write_text(text)
    assert text != a.read_text()
    assert parse_csynth(a, {"words": 1}).to_json() == parse_csynth(b, {"words": 1}).to_json()


def test_csynth_over_budget_and_unpipelined_loops_are_misses(tmp_path):
    path = tmp_path / "csynth.xml"
    path.write_text(csynth(bram=500, dsp=361))
    misses = parse_csynth(path, {"mac": 1, "VITIS_LOOP_88_1": 1}).misses()
    assert misses == ["read_words/VITIS_LOOP_88_1 is not pipelined (pragma II=1)", "BRAM_18K 500 > 432 available",
                      "DSP 361 > 360 available"]


@pytest.mark.parametrize("text", [
    '<?xml version="1.0"?>\n<!DOCTYPE profile [<!ENTITY a "aaaa">]>\n<profile>&a;</profile>',
    '<!doctype profile SYSTEM "file:///etc/passwd"><profile/>',
])
def test_xml_with_entities_is_refused(tmp_path, text):
    path = tmp_path / "csynth.xml"
    path.write_text(text)
    with pytest.raises(ReportError, match="DOCTYPE or ENTITY declaration|not well-formed XML"):
        parse_xml(path)


def test_not_a_csynth_report_is_one_line(tmp_path):
    path = tmp_path / "csynth.xml"
    path.write_text("<profile><PerformanceEstimates/></profile>")
    with pytest.raises(ReportError, match="not a Vitis HLS synthesis report"):
        parse_csynth(path)
    path.write_text("<profile>")
    with pytest.raises(ReportError, match="not well-formed"):
        parse_csynth(path)


def test_pragma_targets_cover_every_pipeline_pragma_of_the_engine(project):
    targets = pragma_targets(project.path / "src")
    pragmas = sum(len(re.findall(r"PIPELINE II\s*=", p.read_text())) for p in (REPO / "hls_templates" / "engine").glob("*.h"))
    labelled = set(re.findall(r"^\s*(\w+):\s*$", "\n".join(p.read_text() for p in (project.path / "src").glob("*.h")),
                              re.M))
    assert pragmas > 10 and set(targets) <= labelled
    assert {"mac", "wread", "fetch", "words", "rq"} <= set(targets) and set(targets.values()) == {1}


def test_utilization_by_column_headers(tmp_path):
    path = tmp_path / "utilization.rpt"
    path.write_text(UTILIZATION)
    util = parse_utilization(path)
    assert util["lut"] == {"used": 53120, "available": 70560} and util["ff"]["used"] == 44870
    assert util["bram36"] == {"used": 160.5, "available": 216} and util["dsp"] == {"used": 360, "available": 360}
    # 7-series layout (Slice LUTs, no Prohibited column): same figures by name
    def drop_prohibited(line: str) -> str:
        cells = line.split("|") if line.startswith("|") else line.split("+")
        return ("|" if line.startswith("|") else "+").join(cells[:4] + cells[5:]) if len(cells) > 6 else line

    path.write_text("\n".join(drop_prohibited(line) for line in UTILIZATION.replace("CLB LUTs", "Slice LUTs")
                              .replace("CLB Registers", "Slice Registers").splitlines()))
    assert parse_utilization(path)["lut"] == {"used": 53120, "available": 70560}
    path.write_text("| nothing | here |\n")
    with pytest.raises(ReportError, match="no lut, ff, bram36, dsp row"):
        parse_utilization(path)


# ---- the gates in `codesign bitstream` ----------------------------------------------------------

@pytest.fixture(scope="module")
def project(tiny_graph, tmp_path_factory):
    return write_project(tiny_graph, sized_for(tiny_graph), tmp_path_factory.mktemp("gates") / "tiny")


def fake_tool(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text(f"#!/bin/sh\nset -e\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def vendor(project, tmp_path, monkeypatch):
    """A copy of the project and fake vitis_hls / vivado on PATH; returns (project dir, set_reports)."""
    proj = Path(shutil.copytree(project.path, tmp_path / "proj"))
    fixtures, bin_dir = tmp_path / "fixtures", tmp_path / "bin"
    fixtures.mkdir()
    report = f"{hls_project_dir(project.name)}/{HLS_SOLUTION}/syn/report"
    # like the real tools, the fakes write their reports into the project (their cwd)
    fake_tool(bin_dir, "vitis_hls", f"mkdir -p {report}\ncp {fixtures}/csynth.xml {report}/csynth.xml\n"
                                    f"echo ran >> {fixtures}/vitis_hls.ran")
    fake_tool(bin_dir, "vivado", f"mkdir -p reports overlay\ncp {fixtures}/timing.json {fixtures}/utilization.rpt "
                                 f"reports/\nprintf bit > overlay/{project.name}.bit\n"
                                 f"printf '<ROOT/>' > overlay/{project.name}.hwh\necho ran >> {fixtures}/vivado.ran")
    for var in ("XILINX_VITIS", "XILINX_HLS", "XILINX_VIVADO"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    def set_reports(words_ii: int = 1, bram: int = 318, wns: float = 0.105) -> None:
        (fixtures / "csynth.xml").write_text(csynth(words_ii=words_ii, bram=bram))
        (fixtures / "timing.json").write_text(TIMING.format(wns=wns))
        (fixtures / "utilization.rpt").write_text(UTILIZATION)

    set_reports()
    return proj, set_reports, fixtures


def bitstream(capsys, proj: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["bitstream", "--project", str(proj), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_negative_wns_fails_bitstream_in_one_line(vendor, capsys, tmp_path):
    proj, set_reports, _ = vendor
    set_reports(wns=-0.412)
    code, _, err = bitstream(capsys, proj)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "WNS -0.412 ns" in err and "clk_pl_0" in err and "4 ns = 250.0 MHz" in err and "--allow-timing-violation" in err
    assert "meets 226.7 MHz" in err  # 1 / (4 ns + 0.412 ns)
    # the failed bitstream cannot be deployed
    with pytest.raises(Exception, match="timing not met"):
        build_deploy_package(proj, tmp_path / "pkg")


def test_override_keeps_the_bitstream_with_a_warning(vendor, capsys, tmp_path):
    proj, set_reports, _ = vendor
    set_reports(wns=-0.412)
    code, out, err = bitstream(capsys, proj, "--allow-timing-violation")
    assert code == 0 and "warning" in err and "WNS -0.412 ns" in err
    assert "meets up to 226.7 MHz" in out
    impl = json.loads((proj / IMPL_JSON).read_text())
    assert impl["allowed_violation"] is True and impl["met"] is False
    meta = json.loads((build_deploy_package(proj, tmp_path / "pkg") / META).read_text())
    assert meta["overlay"]["timing"]["allowed_violation"] is True


def test_ii_miss_fails_before_vivado(vendor, capsys):
    proj, set_reports, fixtures = vendor
    set_reports(words_ii=2)
    code, _, err = bitstream(capsys, proj)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "read_words/words.2 II=2 > pragma II=1" in err
    assert (fixtures / "vitis_hls.ran").is_file() and not (fixtures / "vivado.ran").exists()
    assert json.loads((proj / "reports" / "hls.json").read_text())["misses"] == ["read_words/words.2 II=2 > pragma II=1"]


def test_over_budget_resources_fail(vendor, capsys):
    proj, set_reports, fixtures = vendor
    set_reports(bram=433)
    code, _, err = bitstream(capsys, proj)
    assert code != 0 and "BRAM_18K 433 > 432 available" in err and not (fixtures / "vivado.ran").exists()


def test_happy_path_deploys_bit_and_hwh_with_timing(vendor, capsys, tmp_path):
    proj, _, _ = vendor
    code, out, err = bitstream(capsys, proj)
    assert code == 0 and err == "" and "WNS 0.105 ns" in out
    pkg = build_deploy_package(proj, tmp_path / "pkg")
    [bit] = (pkg / "overlay").glob("*.bit")
    assert bit.read_bytes() == b"bit" and bit.with_suffix(".hwh").is_file()
    timing = json.loads((pkg / META).read_text())["overlay"]["timing"]
    assert timing["met"] is True and timing["clock"] == "clk_pl_0" and timing["fmax_mhz"] > 250
    # figures of another .bit are refused
    (proj / "overlay" / bit.name).write_bytes(b"rebuilt by hand")
    with pytest.raises(Exception, match="another bitstream"):
        build_deploy_package(proj, tmp_path / "pkg2")


# ---- the driver refuses a package whose timing misses the engine's clock -------------------------

def _with_timing(pkg: Path, **timing) -> None:
    meta = json.loads((pkg / META).read_text())
    meta["overlay"]["timing"].update(timing)
    (pkg / META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    write_manifest(pkg)


def test_driver_checks_the_package_timing_before_loading(vendor, capsys, tmp_path, monkeypatch):
    proj, _, _ = vendor
    assert bitstream(capsys, proj)[0] == 0
    pkg = build_deploy_package(proj, tmp_path / "pkg")
    monkeypatch.setitem(sys.modules, "pynq", None)  # loading the overlay would fail: the check comes first
    _with_timing(pkg, met=False, wns_ns=-0.3)
    with pytest.raises(DeviceError, match=r"misses timing \(WNS -0.300 ns on clk_pl_0\).*250 MHz"):
        Runtime(pkg, device="pynq")
    _with_timing(pkg, met=True, wns_ns=0.0, fmax_mhz=200.0)
    with pytest.raises(DeviceError, match="meets only 200.0 MHz"):
        Runtime(pkg, device="pynq")
    _with_timing(pkg, allowed_violation=True)
    with pytest.warns(UserWarning, match="kept by --allow-timing-violation"), \
            pytest.raises(Exception, match="pynq"):  # past the check: pynq itself is missing here
        Runtime(pkg, device="pynq")


def test_report_prints_estimate_beside_synthesis(vendor, capsys, tmp_path):
    proj, _, _ = vendor
    assert main(["report", "--model", str(proj / "model.ir"), "--project", str(proj), "-o", str(tmp_path / "r")]) == 0
    assert "no synthesis figures" in capsys.readouterr().out
    assert bitstream(capsys, proj)[0] == 0
    assert main(["report", "--model", str(proj / "model.ir"), "--project", str(proj), "-o", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.split()[:1] in
            (["LUT"], ["BRAM36"], ["DSP"])}
    assert rows["LUT"][1:] == ["51,877", "53,120"] and rows["BRAM36"][1:] == ["159", "160.5"]
    assert rows["DSP"][1:] == ["360", "360"]
    assert "every pragma II met" in out and "WNS 0.105 ns" in out
    saved = json.loads((tmp_path / "r" / "synthesis.json").read_text())
    assert saved["hls"]["resources"]["LUT"] == 51877 and saved["implementation"]["met"] is True
