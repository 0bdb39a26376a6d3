"""Round-half-to-even requantization on the engine (docs/integer-contract.md "Rounding"): constants chosen
so that many outputs are exact ties, golden model vs functional simulator vs C-simulation with both
roundings, on one engine built with the tie logic (hardware `half_even`)."""
from __future__ import annotations

import numpy as np
import pytest

from codesign.golden import GoldenModel
from codesign.graph import Graph, validate
from codesign.hls.csim import CsimEngine, CsimError
from codesign.hls.project import write_project
from codesign.hw import descriptor, funcsim
from codesign.hw.config import HardwareConfig
from codesign.hw.limits import sized_for
from codesign.hw.memory import initial_fmem
from codesign.hw.plan import ScheduleError
from codesign.hw.scheduler import schedule
from codesign.hw.verify import verify

from .test_codenet_csim import Builder

HW = HardwareConfig(pi=4, po=8, act_bits=8, weight_bits=8, bus_bits=64, max_channels=32, max_width=8, max_height=8,
                    max_line=8 * 32, max_weights=32 * 32, max_kernel=0, window_line=0, half_even=True)
H = W = 6


def tie_graph(spatial: str, half_even: bool, seed: int = 0) -> Graph:
    """image → conv1x1 (3 → 16) [→ dwconv3x3 | deform3x3], one engine call; requant constants with
    small S and odd M, so acc·M + B often lands exactly halfway (S = 1: whenever it is odd)."""
    rng = np.random.RandomState(seed)
    g = Builder(H, W)
    d = g.dilation(rng, "dsrc", "input", 1, 2) if spatial == "deform" else None
    x = g.conv(rng, "conv", "input", 16, 8)
    conv = g.layers[-1]
    conv.params["weight"] = rng.randint(-1, 2, conv.params["weight"].shape).astype(np.int8)
    conv.params["mult"] = rng.choice([1, 1, 1, 3], 16).astype(np.int64)
    conv.params["bias"] = rng.randint(-8, 9, 16).astype(np.int64)
    conv.attrs["shift"] = 1  # y ≈ (acc·M + B) / 2: a tie whenever acc·M + B is odd
    layers = [conv]
    if spatial == "dw":
        x = g.spatial(rng, "sp", "dwconv3x3", [x], 8)
    elif spatial == "deform":
        x = g.spatial(rng, "sp", "deform3x3", [x, d], 8, max_dilation=3)
    if spatial != "none":
        sp = g.layers[-1]
        sp.params["weight"] = rng.randint(-2, 3, sp.params["weight"].shape).astype(np.int8)
        sp.params["mult"] = rng.choice([1, 1, 3], 16).astype(np.int64)
        sp.params["bias"] = rng.randint(-8, 9, 16).astype(np.int64) * 2
        sp.attrs["shift"] = 2  # a tie whenever acc·M + B ≡ 2 (mod 4)
        sp.attrs["weight_bits"] = 4
        layers.append(sp)
    if half_even:
        for layer in layers:
            layer.attrs["rounding"] = "half_even"
    graph = Graph(f"ties_{spatial}", "input", x, g.tensors, g.layers, {})
    validate(graph)
    return graph


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    graph = tie_graph("deform", True)
    project = write_project(graph, HW, tmp_path_factory.mktemp("half_even") / "p")
    assert "HALF_EVEN = true;" in (project.path / "src" / "config.h").read_text()
    return CsimEngine(project.path, HW.bus_bits)


@pytest.mark.parametrize("spatial", ["none", "dw", "deform"])
def test_ties_csim_bit_exact_with_both_roundings(engine, spatial):
    image = np.random.RandomState(1).randint(0, 256, (H, W, 3)).astype(np.uint8)
    outputs = {}
    for even in (False, True):
        graph = tie_graph(spatial, even)
        sched = schedule(graph, HW)
        (call,) = [c for c in sched.calls if c.conv == "conv"]
        flags = call.descriptor["flags"]
        assert bool(flags & descriptor.flag_bits("HALF_EVEN")) == even
        assert bool(flags & descriptor.flag_bits("S_HALF_EVEN")) == (even and spatial != "none")
        for executor in (lambda t, w, f: funcsim.run(t, w, f, HW), engine):
            report = verify(sched, graph, image, executor, per_call=True)
            assert report.ok, report.mismatch
            assert report.calls_checked == len(sched.calls) and report.logits_equal
        _, trace = GoldenModel(graph).run(image[None], trace=True)
        outputs[even] = {name: trace[name] for name in ("conv", "sp") if name in trace}
    # the constants do make ties: the two roundings differ on many outputs of each requant
    for name in outputs[True]:
        differ = int(np.sum(outputs[True][name] != outputs[False][name]))
        assert differ >= 0.08 * outputs[True][name].size, (name, differ)


def test_a_half_even_layer_needs_the_tie_logic():
    graph = tie_graph("dw", True)
    assert sized_for(graph).half_even and not sized_for(tie_graph("dw", False)).half_even
    with pytest.raises(ScheduleError) as e:
        schedule(graph, HW.with_(half_even=False))
    msg = str(e.value)
    assert "\n" not in msg and "'conv'" in msg and "'sp'" in msg and "half_even: false" in msg


def test_an_engine_without_the_tie_logic_rejects_the_flags(tmp_path, capfd):
    """sized_for leaves the tie logic out (HALF_EVEN absent from config.h); such an engine rejects a
    descriptor with HALF_EVEN itself."""
    graph = tie_graph("none", True)
    sched = schedule(graph, HW)
    project = write_project(tie_graph("none", False), HW.with_(half_even=False), tmp_path / "p")
    assert "HALF_EVEN" not in (project.path / "src" / "config.h").read_text()
    image = np.random.RandomState(2).randint(0, 256, (H, W, 3)).astype(np.uint8)
    engine = CsimEngine(project.path, HW.bus_bits)
    with pytest.raises(CsimError, match="returned [1-9]"):  # > 0: descriptors rejected by check()
        engine(sched.descriptor_table, sched.wmem, initial_fmem(sched, image, graph))
    assert "rejected (check 32)" in capfd.readouterr().err
