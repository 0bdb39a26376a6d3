"""The cycle-counted C-simulation (hls_templates/engine/cycles.h, codesign/hls/cycles.py).

The count must be real: it comes from the loops as written (a changed pragma II changes it), it
adds up per call as cycles.h says, and the estimator and `explore` agree with it.
"""
import json
import re
import shutil

import numpy as np
import pytest

from codesign.cli import main
from codesign.estimate import estimate
from codesign.estimate.synthetic import codenet_ir, diracdeltanet_ir
from codesign.hls.cycles import CYCLE_COUNTED, count_frame, count_project
from codesign.hls.csim import CsimEngine
from codesign.hls.project import test_image as frame_image
from codesign.hls.project import write_project
from codesign.hw.config import HardwareConfig
from codesign.hw.limits import sized_for
from codesign.hw.scheduler import schedule
from codesign.locations import HLS_TEMPLATES
from codesign.hls.fit import fitting_config, project_resources
from codesign.estimate.fit import DEFAULT_MARGIN

ENGINE_DIR = HLS_TEMPLATES / "engine"
DATAFLOW = ("read", "unpack", "prepool", "window", "mac", "requant", "pool", "shift", "spatial", "pack", "prefetch", "write")


@pytest.fixture(scope="module")
def tiny_counted(tiny_graph, tmp_path_factory):
    hw = sized_for(tiny_graph, HardwareConfig())
    project = write_project(tiny_graph, hw, tmp_path_factory.mktemp("cyc") / "p")
    return project, count_project(project.path)


def test_every_call_is_counted_and_adds_up_as_cycles_h_says(tiny_counted):
    project, rep = tiny_counted
    assert len(rep.calls) == len(project.schedule.calls)
    for c in rep.calls:
        busy = {s: c.stages[s] for s in DATAFLOW}
        assert c.stages["desc"] > 0 and max(busy.values()) > 0, c
        # DESC + LOAD + the slowest dataflow process with its coupling + the fill of the others: never
        # less than the sequential part and the slowest process, never more than everything in sequence
        floor = c.stages["desc"] + c.stages["load"] + max(busy.values())
        assert floor <= c.total <= floor + c.coupling + sum(busy.values()), c
        assert 0 <= c.coupling <= sum(busy.values())
        if "CONV" in c.flags:
            assert c.stages["mac"] > 0 and c.stages["load"] > 0 and c.macs > 0
        # the old words are prefetched only when the output view leaves lanes of a word to others
        d = project.schedule.calls[rep.calls.index(c)].descriptor
        covers = d["out_stride"] <= 1 and d["cout"] >= d["out_cbuf"]
        assert (c.stages["prefetch"] == 0) == covers, c
    assert rep.frame_cycles == sum(c.total for c in rep.calls)
    assert rep.fps == pytest.approx(project.schedule.hw.clock_mhz * 1e6 / rep.frame_cycles)
    assert 0 < rep.mac_utilisation <= 1


def test_count_does_not_depend_on_pixel_values(tiny_counted):
    """The engine's loops have run-time bounds from the descriptors only: another image, same count."""
    project, rep = tiny_counted
    engine = CsimEngine(project.path, project.schedule.hw.bus_bits)
    other = np.random.RandomState(7).randint(0, 256, frame_image(project.graph).shape).astype(np.uint8)
    again = count_frame(project.schedule, project.graph, engine, other)
    assert [c.total for c in again.calls] == [c.total for c in rep.calls]


def test_cli_csim_cycles_prints_and_writes_labelled_json(tiny_counted, tmp_path, capsys):
    project, rep = tiny_counted
    out = tmp_path / "cycles.json"
    main(["csim", "--project", str(project.path), "--no-testbench", "--end-to-end-only", "--cycles", "--json", str(out)])
    text = capsys.readouterr().out
    assert "C-SIM PASS" in text and CYCLE_COUNTED in text and f"{rep.frame_cycles:,} cycles per frame" in text
    data = json.loads(out.read_text())
    assert data["label"] == CYCLE_COUNTED and data["frame_cycles"] == rep.frame_cycles
    assert [c["name"] for c in data["calls"]] == [c.name for c in rep.calls]
    assert data["mac_utilisation"] == pytest.approx(rep.mac_utilisation)


def _pipeline_macros(text: str) -> list[str]:
    return re.findall(r"HLS_PRAGMA\(PIPELINE II = (\w+)\)", text)


def test_every_pipelined_loop_takes_its_ii_from_a_counted_macro():
    """A pragma and its count cannot drift apart: every PIPELINE II is a CODESIGN_II_* macro that the
    same header passes to CODESIGN_LOOP_DONE."""
    seen = 0
    for header in sorted(ENGINE_DIR.glob("*.h")):
        text = header.read_text()
        for macro in _pipeline_macros(text):
            seen += 1
            assert macro.startswith("CODESIGN_II_"), f"{header.name}: PIPELINE II = {macro} is not a counted macro"
            assert re.search(rf"#define {macro} \d+", text), f"{header.name}: {macro} is not defined beside its loop"
            assert re.search(rf"CODESIGN_LOOP_(?:DONE|OVERLAPPED)\([^;]*{macro}", text), \
                f"{header.name}: {macro} is never counted"
    assert seen >= 10


def test_raising_one_loops_ii_raises_that_stage_and_the_call(tiny_counted, tmp_path):
    """Mutation: the MAC loop's II 1 → 2 in the generated source; the count follows the code."""
    project, rep = tiny_counted
    mutant = tmp_path / "mutant"
    shutil.copytree(project.path, mutant)
    header = mutant / "src" / "conv1x1.h"
    text = header.read_text()
    assert "#define CODESIGN_II_MAC 1" in text and "PIPELINE II = CODESIGN_II_MAC" in text
    header.write_text(text.replace("#define CODESIGN_II_MAC 1", "#define CODESIGN_II_MAC 2"))
    slow = count_project(mutant)
    for before, after in zip(rep.calls, slow.calls):
        if "CONV" in before.flags:
            assert after.stages["mac"] > before.stages["mac"], before.name
            assert after.stages["mac"] - before.stages["mac"] >= before.stages["mac"] // 3
        else:
            assert after.stages["mac"] == before.stages["mac"]
        for s in ("read", "prefetch", "write"):
            assert after.stages[s] == before.stages[s]
    assert slow.frame_cycles > rep.frame_cycles


# ---- the estimator is the code as written ------------------------------------------------------------

@pytest.fixture(scope="module", params=["diracdeltanet_224", "codenet_b"])
def counted_reference(request, tmp_path_factory):
    graph = diracdeltanet_ir() if request.param == "diracdeltanet_224" else codenet_ir("b")
    # the default Ultra96 config as `codesign compile` picks it (the largest array whose engine fits)
    hw, _, _ = fitting_config(graph, sized_for(graph, HardwareConfig.for_board("ultra96v2")))
    project = write_project(graph, hw, tmp_path_factory.mktemp("ref") / request.param)
    return request.param, graph, hw, count_project(project.path), project.path


def test_stalls_between_stages_are_charged(counted_reference):
    """A phase of a row or more in which a stage reads no input or writes no output (PREPOOL's rows that
    close no window, UPSAMPLE's second row copies, DEFORM's dilation bursts, the window unit's row reads
    and emits) adds to the call (cycles.h, "Coupling"): the FIFOs between the stages are a few vectors deep."""
    name, _, _, counted, _ = counted_reference
    coupled = [c for c in counted.calls
               if any(f in c.flags.split("+") for f in ("PREPOOL", "UPSAMPLE", "DEFORM", "KXK"))]
    assert coupled
    if name == "codenet_b":  # the stem: a 3x3 stride-2 conv + max-pool through the window unit
        stem = counted.calls[0]
        assert "KXK" in stem.flags.split("+") and stem.stages["window"] > 0 and stem.stages["prepool"] == 0
    for c in coupled:
        assert c.coupling > 0, c


def test_estimator_matches_the_cycle_count_per_call_and_per_frame(counted_reference):
    """±15 % on every call, ±10 % on the frame, DiracDeltaNet 224² and CoDeNet config b at the default
    Ultra96 config (docs/estimator.md). Every call's error is printed."""
    name, graph, hw, counted, _ = counted_reference
    model = estimate(graph, hw)
    engine_calls = [c for c in model.calls if not c.on_host]
    assert len(engine_calls) == len(counted.calls)
    f = hw.clock_mhz * 1e6
    worst = 0.0
    for est, cnt in zip(engine_calls, counted.calls):
        err = est.engine_s * f / cnt.total - 1
        worst = max(worst, abs(err))
        print(f"{name} {cnt.name:<28} counted {cnt.total:>9} modeled {est.engine_s * f:>11.0f} {err:+.1%}")
    frame_err = sum(c.engine_s for c in engine_calls) * f / counted.frame_cycles - 1
    print(f"{name}: frame {frame_err:+.1%}, worst call {worst:.1%}")
    assert worst <= 0.15
    assert abs(frame_err) <= 0.10


def test_estimator_matches_the_cycle_count_of_split_convs(counted_reference):
    """A weight buffer of 100 tiles, below the largest convs' (DiracDeltaNet: the head in 6 parts, the
    stage-3 projects in 2 and the expands with their fused shift in 2 of 320 and 192 channels; CoDeNet:
    its 1024-channel layers): the estimator counts the parts as the scheduler makes them, per call
    within the same tolerances. The engine built for the full buffer runs them (MAX_WTILES only bounds
    a call, the count does not depend on it)."""
    name, graph, hw, whole, project = counted_reference
    capped = hw.with_(max_wtiles=100)
    sched = schedule(graph, capped)
    parts = [c for c in sched.calls if c.channels]
    assert len(parts) >= 4 and len(sched.calls) > len(whole.calls)
    if name == "diracdeltanet_224":
        assert [c.channels for c in parts if c.conv == "stage3_1.expand"] == [(0, 320), (320, 512)]
        assert len([c for c in parts if c.conv == "head"]) == 6
    counted = count_frame(sched, graph, CsimEngine(project, hw.bus_bits), frame_image(graph))
    engine_calls = [c for c in estimate(graph, capped).calls if not c.on_host]
    assert [c.name for c in engine_calls] == [c.name for c in counted.calls]
    f = hw.clock_mhz * 1e6
    errors = {cnt.name: est.engine_s * f / cnt.total - 1 for est, cnt in zip(engine_calls, counted.calls)}
    print(f"{name} split: worst part {max(abs(errors[c.name]) for c in parts):.1%}")
    assert max(map(abs, errors.values())) <= 0.15
    assert abs(sum(c.engine_s for c in engine_calls) * f / counted.frame_cycles - 1) <= 0.10


@pytest.mark.parametrize("pi, po", [(16, 16), (16, 64)])
def test_estimator_matches_the_cycle_count_on_other_array_shapes(pi, po, tmp_path):
    """The model is the code at any array shape, not one tuned to the default: DiracDeltaNet 224² with
    PI × PO = 16 × 16 and 16 × 64, the same tolerances."""
    graph = diracdeltanet_ir()
    hw = sized_for(graph, HardwareConfig(pi=pi, po=po))
    counted = count_project(write_project(graph, hw, tmp_path / "p").path)
    engine_calls = [c for c in estimate(graph, hw).calls if not c.on_host]
    f = hw.clock_mhz * 1e6
    errors = [est.engine_s * f / cnt.total - 1 for est, cnt in zip(engine_calls, counted.calls)]
    assert len(errors) == len(counted.calls)
    assert max(map(abs, errors)) <= 0.15
    assert abs(sum(c.engine_s for c in engine_calls) * f / counted.frame_cycles - 1) <= 0.10


def test_speed_targets_at_the_default_ultra96_config(counted_reference):
    """Issue #10's acceptance figures (bench/engine_cycles.py prints them with the papers beside)."""
    name, graph, hw, counted, project = counted_reference
    if name == "diracdeltanet_224":
        assert (hw.pi, hw.po) == (32, 32)
        assert counted.fps >= 200 and counted.mac_utilisation >= 0.5
    else:
        assert counted.fps >= 60
    # ... on an engine that fits the board: every resource within the default margin, on the rendered code
    fit = project_resources(project)
    assert not fit.violations(DEFAULT_MARGIN), fit.violations(DEFAULT_MARGIN)
