"""Code-derived resources (codesign/hls/inventory.py, codesign/estimate/fit.py): the memories the
rendered engine declares, read from the C-simulation library and the pragmas, and what they cost."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from codesign.estimate.fit import bram18_count, code_derived, memory_cost
from codesign.hls.inventory import axi_adapters, declared_memories
from codesign.hls.project import write_project
from codesign.hw.config import HardwareConfig
from codesign.hw.interface import M_AXI_BUNDLES
from codesign.hw.limits import WEIGHT_TILES_CAP, sized_for

# a static array (one statement, not a function; the C-sim stage-name table is not hardware) or a
# dataflow stream, as the engine's headers declare them
STATIC_ARRAY = re.compile(r"^\s*static\s+(?!constexpr|inline|const char)([^;(]*\[[^;(]*);", re.M)
STREAM = re.compile(r"^\s*hls::stream<.+?>\s+(.+?);", re.M)


@pytest.fixture(scope="module")
def tiny_project(tiny_graph, tmp_path_factory):
    return write_project(tiny_graph, sized_for(tiny_graph, HardwareConfig()), tmp_path_factory.mktemp("fit") / "p")


@pytest.fixture(scope="module")
def full_project(tiny_graph, tmp_path_factory):
    """The tiny model on an engine with every unit built (the spatial unit and the window unit too)."""
    hw = sized_for(tiny_graph, HardwareConfig()).with_(spatial_unit=True, max_kernel=3, window_line=64 * 32)
    return write_project(tiny_graph, hw, tmp_path_factory.mktemp("fit") / "full")


def declared_in_source(src: Path) -> set[tuple[str, str]]:
    """(header, name) of every static array and local stream the rendered headers declare."""
    found = set()
    for header in sorted(src.glob("*.h")):
        text = header.read_text()
        for decl in STATIC_ARRAY.findall(text):
            decl = re.sub(r"<[^<>]*>", "", re.sub(r"<[^<>]*>", "", decl))  # template arguments (two levels)
            found |= {(header.name, name) for name in re.findall(r"(\w+)\s*\[", decl)}
        for decl in STREAM.findall(text):
            found |= {(header.name, name) for name in re.findall(r"(\w+)\(\"", decl)}
    return found


def test_every_memory_of_the_rendered_source_is_in_the_inventory(full_project):
    """The source is read independently of the registry: a declaration without its CODESIGN_MEMORY /
    CODESIGN_STREAM would be missed by the resource model, and this fails."""
    memories = declared_memories(full_project.path)
    source = declared_in_source(full_project.path / "src")
    assert len(source) >= 20  # the regexes still find the engine's declarations
    assert source == {(m.file, m.var) for m in memories}
    hw = full_project.schedule.hw
    by_name = {(m.file, m.var): m for m in memories}
    # banks from the ARRAY_PARTITION pragmas, sizes from the compiler
    assert by_name["engine.h", "wbuf"].banks == hw.po
    assert by_name["engine.h", "wsp"].banks == 9 * hw.po
    # the window unit's ring: max_kernel rows of window_line / PI packed PI-lane words, one memory
    ring = by_name["window.h", "ring"]
    assert (ring.banks, ring.depth, ring.width) == (1, 3 * 64, hw.pi * 8)
    assert by_name["spatial.h", "ring"].banks > 1 and by_name["io.h", "row"].banks == 1
    assert all(m.depth >= 1 and m.width >= 1 for m in memories)


def test_the_model_prices_every_memory_and_adapter(tiny_project):
    hw = tiny_project.schedule.hw
    memories, adapters = declared_memories(tiny_project.path), axi_adapters(tiny_project.path)
    assert sorted(a.bundle for a in adapters) == sorted(M_AXI_BUNDLES)
    fit = code_derived(hw, memories, adapters)
    priced = [r for r in fit.rows if r.unit != "m_axi"]
    for m in memories:
        assert any(r.unit == m.file.removesuffix(".h") and r.what.startswith(f"{m.var} ") for r in priced), m
    assert all(any(r.what.startswith(a.bundle + " ") for r in fit.rows if r.unit == "m_axi") for a in adapters)
    tot = fit.totals()
    assert tot["bram36"] == pytest.approx(sum(r.cost.get("bram36", 0) for r in fit.rows))
    assert set(fit.to_dict()) == {"lut", "ff", "bram36", "dsp"}
    assert all("util" in v for v in fit.to_dict().values())


def test_memory_rules():
    assert bram18_count(577, 256) == 15  # 1K x 18 per BRAM18
    assert bram18_count(512, 72) == 2 and bram18_count(16384, 1) == 1 and bram18_count(32768, 1) == 2
    assert memory_cost(1, 48, banks=32) == {"ff": 32 * 48}  # one word deep: registers
    assert memory_cost(32, 24, banks=32) == {"lut": 32 * 4 * 8}  # LUTRAM, RAM64M: 3 bits per 4 LUTs
    assert memory_cost(64, 256, stream=True) == {"lut": 512, "ff": 256}  # SRL FIFO
    assert memory_cost(514, 128, stream=True) == {"bram36": 4.0}


def test_a_pragma_change_changes_the_inventory(tiny_project, tmp_path):
    """The stream depths are the STREAM pragma's own expression (one macro), evaluated by the compiler."""
    mutant = Path(shutil.copytree(tiny_project.path, tmp_path / "mutant"))
    engine = mutant / "src" / "engine.h"
    text = engine.read_text()
    assert "CODESIGN_STREAM(s_acc, OUT_DEPTH);" in text
    engine.write_text(text.replace("CODESIGN_STREAM(s_acc, OUT_DEPTH);", "CODESIGN_STREAM(s_acc, 3 * OUT_DEPTH);"))
    before = {(m.file, m.var): m for m in declared_memories(tiny_project.path)}
    after = {(m.file, m.var): m for m in declared_memories(mutant)}
    assert after["engine.h", "s_acc"].depth == 3 * before["engine.h", "s_acc"].depth
    assert after["engine.h", "s_un"] == before["engine.h", "s_un"]


def test_weight_buffer_is_as_deep_as_the_largest_conv_needs(tiny_graph):
    """sized_for sets max_wtiles to the model's largest ceil(cin/PI)·ceil(cout/PO) (not the loose bound from
    max_weights), the rendered engine is built with it; with a shallower buffer the scheduler splits the
    largest conv by output channel, and refuses a buffer too shallow for a conv's smallest part."""
    from codesign.hw.fuse import fuse
    from codesign.hw.plan import ScheduleError
    from codesign.hw.scheduler import schedule

    hw = sized_for(tiny_graph)
    calls, _ = fuse(tiny_graph)
    convs = [tiny_graph.layer(c.conv) for c in calls if c.conv]
    need = max(-(-tiny_graph.tensors[c.inputs[0]].shape[2] // hw.pi) * -(-tiny_graph.tensors[c.output].shape[2] // hw.po)
               for c in convs)
    assert hw.max_wtiles == hw.weight_tiles == need
    assert HardwareConfig(max_wtiles=0).weight_tiles > need  # the unsized bound
    assert not any(c.channels for c in schedule(tiny_graph, hw).calls)
    assert any(c.channels for c in schedule(tiny_graph, hw.with_(max_wtiles=need - 1)).calls)
    with pytest.raises(ScheduleError, match="weight tiles"):
        schedule(tiny_graph, hw.with_(max_wtiles=1))


def test_m_axi_buffers_are_two_bursts(tiny_project):
    """Two 256-beat bursts in flight cover the AXI latency (50 cycles): the adapters buffer no more."""
    by = {a.bundle: a for a in axi_adapters(tiny_project.path)}
    assert by["fmem_rd"].read_depth == by["fmem_old"].read_depth == by["wmem"].read_depth == 2 * 256
    assert by["fmem_wr"].write_depth == 2 * 256 and by["fmem_rd"].write_depth == 0


def test_a_model_without_a_3x3_gets_no_spatial_unit(tiny_project):
    """DiracDeltaNet has no depthwise / deformable layer: its engine is built without the spatial unit,
    whose line buffers and 9 x PO tap multipliers are then neither in the source nor in the model."""
    hw = tiny_project.schedule.hw
    assert not hw.spatial_unit
    assert "SPATIAL = false;" in (tiny_project.path / "src" / "config.h").read_text()
    memories = declared_memories(tiny_project.path)
    assert ("spatial.h", "ring") in declared_in_source(tiny_project.path / "src")  # the header is there,
    assert not [m for m in memories if m.file == "spatial.h"]  # but nothing of it is instantiated
    fit = code_derived(hw, memories, axi_adapters(tiny_project.path))
    assert not [r for r in fit.rows if r.unit == "spatial"]


def test_the_half_even_tie_logic_is_priced_only_where_built():
    """hardware half_even builds round-half-to-even tie logic into every requant lane (the conv's and the
    spatial unit's); without it (every model but a QONNX import with ties) it costs nothing."""
    hw = HardwareConfig(po=16, spatial_unit=True)
    assert not [r for r in code_derived(hw, [], []).rows if "half-even" in r.what]
    with_ties = code_derived(hw.with_(half_even=True), [], [])
    rows = [r for r in with_ties.rows if "half-even" in r.what]
    assert [r.unit for r in rows] == ["requant", "spatial"]
    assert all(16 * 20 <= r.cost["lut"] <= 16 * 80 and r.cost["dsp"] == 0 for r in rows)  # a few tens of LUTs a lane
    assert with_ties.totals()["lut"] - code_derived(hw, [], []).totals()["lut"] == sum(r.cost["lut"] for r in rows)


@pytest.mark.parametrize("board", ["kv260", "zcu104", "pynq-z2"])
def test_diracdeltanet_engine_compile_picks_fits_every_board(board):
    """Issue #11's acceptance on the other boards (Ultra96: tests/test_cycles.py): the engine `codesign compile
    --board` picks for DiracDeltaNet 224² takes at most 85 % of every resource, judged on its rendered code.
    PYNQ-Z2 (53,200 LUT) gets a smaller array than the default 32 x 32."""
    from codesign.estimate.synthetic import diracdeltanet_ir
    from codesign.hls.fit import fitting_config

    graph = diracdeltanet_ir()
    hw, fit, note = fitting_config(graph, sized_for(graph, HardwareConfig.for_board(board)))
    print(f"{board}: {hw.pi}x{hw.po} {fit.summary()} {note}")
    assert max(fit.utilization().values()) <= 0.85
    assert (hw.pi * hw.po < 32 * 32) == (board == "pynq-z2") == bool(note)
    # the head (512 -> 1024) fits the weight buffer whole or in parts, never deeper than sizing's cap
    assert hw.weight_tiles <= WEIGHT_TILES_CAP
