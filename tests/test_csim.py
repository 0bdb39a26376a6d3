"""Generated HLS C++: compiled with g++ against the ap_types headers, bit-exact against the golden model."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from codesign.cli import main
from codesign.graph import Graph, Layer, TensorInfo, load, save, validate
from codesign.driver.simulator import CXXFLAGS
from codesign.hls.csim import CsimEngine, run_testbench
from codesign.hls.project import write_project
from codesign.hls.simulate import simulate_project
from codesign.hw import funcsim, layout
from codesign.hw.config import HardwareConfig
from codesign.hw.limits import sized_for
from codesign.hw.scheduler import schedule
from codesign.hw.verify import verify
from codesign.quant import requant_constants

from .conftest import random_images, split_wtiles

# One engine build serves every fuzz case: limits generous enough for all of them, and a MAC
# array (PI=4, PO=8) that the random channel counts rarely fill exactly. Up to 80 output channels:
# a conv with a fused shift splits only at multiples of lcm(PO, 5) = 40.
FUZZ_HW = HardwareConfig(pi=4, po=8, act_bits=4, weight_bits=8, bus_bits=64, max_channels=80, max_width=12,
                         max_line=12 * 80, max_weights=40 * 80)


@pytest.fixture(scope="module")
def tiny_project(tiny_graph, tmp_path_factory):
    return write_project(tiny_graph, sized_for(tiny_graph), tmp_path_factory.mktemp("proj") / "tiny")


def test_tiny_network_csim_bit_exact(tiny_project):
    result = simulate_project(tiny_project.path)
    assert result.per_call.calls_checked == len(tiny_project.schedule.calls)
    assert result.end_to_end.logits_equal
    assert result.testbench.startswith("PASS")


def test_testbench_cosim_modes_separate_memories_and_few_calls(tiny_project):
    # what cosim_design runs: distinct read and write arenas, copied between calls as DDR shows them
    full = run_testbench(tiny_project.path, "--separate-memories")
    assert full.returncode == 0 and full.stdout.strip().endswith("(separate memories)"), full.stdout + full.stderr
    short = run_testbench(tiny_project.path, "--separate-memories", "--calls", "2")
    n = len(tiny_project.schedule.calls)
    assert short.returncode == 0 and short.stdout.strip() == f"PASS 2 of {n} calls (--calls: whole-frame checks skipped)"
    for bad in (("--calls", "0"), ("--calls",), ("--bogus",)):
        assert run_testbench(tiny_project.path, *bad).returncode == 2


def _perturb_requant(project: Path, call_name: str) -> int:
    """Add 3·2^S to one channel's B of `call_name` in both copies of wmem; returns the channel."""
    import json

    sched = json.loads((project / "schedule.json").read_text())
    d = next(c for c in sched["calls"] if c["name"] == call_name)["descriptor"]
    bus = sched["hw"]["bus_bits"]
    channel = d["cout"] // 2
    for f in (project / "data" / "wmem.bin", project / "tb" / "vectors" / "wmem.bin"):
        w = np.fromfile(f, dtype=np.uint8)
        q = d["q_addr"] * bus // 8
        m, b = layout.unpack_requant(w[q:], d["cout"], bus)
        b[channel] += 3 << d["shift"]
        packed = layout.pack_requant(m, b, bus)
        w[q:q + packed.size] = packed
        w.tofile(f)
    return channel


def test_perturbed_requant_fails_csim_and_testbench_naming_the_layer(tiny_graph, tmp_path, capsys):
    project = write_project(tiny_graph, sized_for(tiny_graph), tmp_path / "bad").path
    _perturb_requant(project, "stage2_3.project")
    assert main(["csim", "--project", str(project)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stage2_3.project" in err[0] and "channel" in err[0] and "pixel" in err[0]
    for options in ((), ("--separate-memories",)):  # C-sim and what co-simulation runs name the same layer
        tb = run_testbench(project, *options)
        assert tb.returncode == 1
        assert re.match(r"MISMATCH layer stage2_3_project\w* channel \d+ pixel \(\d+,\d+\)", tb.stdout.strip())


def test_generated_sources_are_deterministic(tiny_graph, tmp_path):
    a = write_project(tiny_graph, sized_for(tiny_graph), tmp_path / "a").path
    b = write_project(tiny_graph, sized_for(tiny_graph), tmp_path / "b").path
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


SYNTH_FILES = ("src/*.h", "src/codesign_engine.cpp")


def _strip_csim_only(text: str) -> str:
    """Drop `#ifndef __SYNTHESIS__` blocks (C-simulation helpers the synthesis tool never sees)."""
    out, skipping, depth = [], False, 0
    for line in text.splitlines():
        directive = line.strip()
        if not skipping and re.match(r"#\s*ifndef\s+__SYNTHESIS__", directive):
            skipping, depth = True, 0
            continue
        if skipping:
            if re.match(r"#\s*if", directive):
                depth += 1
            elif re.match(r"#\s*(endif|else)", directive):
                if depth == 0:
                    skipping = False
                elif directive.startswith("#endif") or re.match(r"#\s*endif", directive):
                    depth -= 1
            continue
        out.append(line)
    return "\n".join(out)


def _synth_sources(project: Path) -> dict[str, str]:
    out = {}
    for pattern in SYNTH_FILES:
        for p in sorted(project.glob(pattern)):
            text = re.sub(r"//[^\n]*|/\*.*?\*/", "", p.read_text(), flags=re.S)
            out[p.name] = _strip_csim_only(text)
    return out


def test_synthesizable_code_has_no_heap_recursion_or_unbounded_loops(tiny_project):
    sources = _synth_sources(tiny_project.path)
    assert sources
    for name, text in sources.items():
        for banned in (r"\bnew\b", r"\bdelete\b", r"\bmalloc\b", r"\bfree\s*\(", r"std::vector", r"std::string",
                       r"\bwhile\s*\(", r"\bgoto\b"):
            assert not re.search(banned, text), f"{name}: {banned}"
        # Every for-loop compares its index with a compile-time bound (an UPPER_CASE constant or a
        # literal), or with a run-time bound and states its LOOP_TRIPCOUNT (HLS-STYLE.md: flat
        # loops with a run-time trip count) at the top of its body.
        for m in re.finditer(r"\bfor\s*\(([^;]*);([^;]*);[^)]*\)\s*\{", text):
            cond = m.group(2).strip()
            const = r"(?:\w+::)*[A-Z][A-Z0-9_]*|\d+"
            if re.fullmatch(rf"\w+\s*<=?\s*(?:{const})(?:\s*[-+*/]\s*(?:{const}))*", cond):
                continue
            assert re.fullmatch(r"\w+\s*<=?\s*[\w.]+", cond), f"{name}: for ({cond})"
            body = text[m.end():m.end() + 400]
            assert "LOOP_TRIPCOUNT" in body.split("for", 1)[0], f"{name}: for ({cond}) without LOOP_TRIPCOUNT"
        # No function calls itself (recursion): look for `name(` inside its own body.
        for m in re.finditer(r"\n[\w:<>, ]*?\b(\w+)\s*\([^;{)]*\)\s*(?:const\s*)?\{", text):
            fn = m.group(1)
            if fn in ("if", "for", "switch"):
                continue
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            assert not re.search(rf"\b{fn}\s*(<[^;]*?>)?\s*\(", text[m.end():i]), f"{name}: {fn} is recursive"


def test_generated_cpp_compiles_with_wall_werror(tiny_project):
    assert "-Wall" in CXXFLAGS and "-Werror" in CXXFLAGS
    CsimEngine(tiny_project.path, tiny_project.schedule.hw.bus_bits)  # raises CsimError on any warning


def test_every_tcl_script_of_the_project_parses(tiny_project):
    check = "set f [open [lindex $argv 0]]; set s [read $f]; close $f; if {![info complete $s]} {exit 1}"
    for script in ("vitis_hls.tcl", "vivado.tcl"):
        proc = subprocess.run(["tclsh", "/dev/stdin", str(tiny_project.path / script)], input=check, text=True)
        assert proc.returncode == 0, script


HOSTILE = 'x"; system("rm -rf /"); ]$HOME\n[exec reboot] {'


def test_hostile_layer_names_produce_safe_cpp_and_tcl(tiny_graph, tmp_path):
    renamed = {t: f"{HOSTILE}{i}" for i, t in enumerate(tiny_graph.tensors) if t != tiny_graph.input}
    graph = Graph(HOSTILE, tiny_graph.input, renamed.get(tiny_graph.output, tiny_graph.output),
                  {renamed.get(k, k): v for k, v in tiny_graph.tensors.items()},
                  [Layer(f"{HOSTILE}{i}", la.op, [renamed.get(x, x) for x in la.inputs], renamed[la.output],
                         la.attrs, la.params) for i, la in enumerate(tiny_graph.layers)], {})
    validate(graph)
    project = write_project(graph, sized_for(graph), tmp_path / "hostile")
    generated = [p for p in project.path.rglob("*") if p.suffix in (".cpp", ".h", ".tcl", ".txt")]
    for p in generated:
        text = p.read_text()
        for fragment in ('system("rm', "[exec reboot]", "$HOME"):
            assert fragment not in text, f"{p.name} contains {fragment!r}"
    result = simulate_project(project.path)  # still compiles (-Werror) and is bit-exact
    assert result.end_to_end.logits_equal
    test_every_tcl_script_of_the_project_parses(project)


def test_bitstream_without_vitis_is_one_line_and_leaves_a_project(tiny_graph, tmp_path, monkeypatch, capsys):
    ir = save(tiny_graph, tmp_path / "m.ir")
    out = tmp_path / "proj"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for var in ("XILINX_VITIS", "XILINX_HLS", "XILINX_VIVADO"):
        monkeypatch.delenv(var, raising=False)
    assert main(["compile", "--model", str(ir), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["bitstream", "--project", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vitis_hls" in err[0] and str(out) in err[0]
    for f in ("vitis_hls.tcl", "vivado.tcl", "src/codesign_engine.cpp", "src/config.h", "data/wmem.bin",
              "data/desc.bin", "schedule.json", "tb/testbench.cpp", "README.md", "model.ir", "hw.yaml"):
        assert (out / f).is_file(), f


# ---- fuzz: random single engine calls --------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_engine(tmp_path_factory):
    """Build the engine for FUZZ_HW once (from a trivial one-conv project)."""
    graph = _fuzz_graph(np.random.RandomState(0), 4, 4, 3, 3, 4, 4, (False, True, False, False), 0)
    project = write_project(graph, FUZZ_HW, tmp_path_factory.mktemp("fuzz") / "p")
    return CsimEngine(project.path, FUZZ_HW.bus_bits)


def _conv_layer(rng, name, x: TensorInfo, cout: int, out_bits: int, w_bits: int) -> tuple[Layer, TensorInfo]:
    lim = (1 << (w_bits - 1)) - 1
    w = rng.randint(-lim, lim + 1, (cout, x.shape[2])).astype(np.int8)
    acc_max = int(np.abs(w.astype(np.int64)).sum(axis=1).max()) * x.max_value
    out_max = (1 << out_bits) - 1
    # Scale so outputs spread over the whole range, including saturation at both ends.
    k = rng.uniform(-0.5, 1.5, cout) * 4 * out_max / max(acc_max, 1)
    b = rng.uniform(-0.5, 0.8, cout) * out_max
    m, bias, s = requant_constants(k, b, acc_max)
    out = TensorInfo((x.shape[0], x.shape[1], cout), out_bits, False, 0.1)
    return Layer(name, "conv1x1", [], name, {"shift": s, "weight_bits": w_bits},
                 {"weight": w, "mult": m, "bias": bias}), out


def _fuzz_graph(rng, h, w, cin, cout, a_bits, w_bits, flags, rotate) -> Graph:
    """image → conv0 (3→cin) → one fuzzed call [prepool][conv|copy][pool][shift] → (concat with rotation)."""
    prepool, conv, pool, shift = flags
    tensors = {"input": TensorInfo((h, w, 3), 8, False, 1 / 255)}
    layers = []
    l0, t0 = _conv_layer(rng, "conv0", tensors["input"], cin, a_bits, 8)
    l0.inputs = ["input"]
    layers.append(l0)
    tensors["conv0"] = t0
    x = "conv0"

    def add(name, op, shape, attrs=None):
        nonlocal x
        src = tensors[x]
        layers.append(Layer(name, op, [x], name, attrs or {}))
        tensors[name] = TensorInfo(shape, src.bits, src.signed, src.scale)
        x = name

    if prepool:
        hh, ww, c = tensors[x].shape
        # a second reader of conv0, so that the pool runs as conv1's PREPOOL, not as conv0's POOL
        layers.append(Layer("keep", "slice", ["conv0"], "keep", {"start": 0, "stop": 1}))
        tensors["keep"] = TensorInfo((hh, ww, 1), a_bits, False, tensors["conv0"].scale)
        add("prepool", "maxpool2x2", (hh // 2, ww // 2, c))
    if conv:
        lc, tc = _conv_layer(rng, "conv1", tensors[x], cout, a_bits, w_bits)
        lc.inputs = [x]
        layers.append(lc)
        tensors["conv1"] = tc
        x = "conv1"
    if pool:
        hh, ww, c = tensors[x].shape
        add("pool", "maxpool2x2", (hh // 2, ww // 2, c))
    if shift:
        add("shift", "shift", tensors[x].shape, {"pattern": "dirac5"})
    if rotate is not None and tensors[x].shape[:2] == (h, w) and x != "conv0":
        # Concatenate with a slice of conv0 (same quantizer scale) and rotate: views + partial writes.
        tensors[x] = TensorInfo(tensors[x].shape, tensors["conv0"].bits, False, tensors["conv0"].scale)
        keep = max(1, cin // 2)
        tensors["half"] = TensorInfo((h, w, keep), a_bits, False, tensors["conv0"].scale)
        layers.append(Layer("half", "slice", ["conv0"], "half", {"start": 0, "stop": keep}))
        total = keep + tensors[x].shape[2]
        tensors["cat"] = TensorInfo((h, w, total), a_bits, False, tensors["conv0"].scale)
        layers.append(Layer("cat", "concat", ["half", x], "cat", {"rotate": rotate % total}))
        x = "cat"
    graph = Graph("fuzz", "input", x, tensors, layers, {})
    validate(graph)
    return graph


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(2, 11), w=st.integers(2, 11), cin=st.integers(1, 40), cout=st.integers(1, 40),
       a_bits=st.integers(2, 4), w_bits=st.integers(2, 8),
       flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
       rotate=st.one_of(st.none(), st.integers(0, 80)), split=st.sampled_from([False, False, True]),
       seed=st.integers(0, 2 ** 31 - 1))
def test_fuzz_single_call_bit_exact(fuzz_engine, h, w, cin, cout, a_bits, w_bits, flags, rotate, split, seed):
    prepool, conv, pool, shift = flags
    if prepool and not conv:
        flags = (False, conv, True, shift)  # a lone pool is a POOL call, not PREPOOL
    assume(not (flags[0] and flags[2] and (h < 4 or w < 4)))  # two 2×2 pools need 4×4
    if split and conv and shift:
        cout += 40  # with a fused shift only parts of 40 channels are right: give it two
    rng = np.random.RandomState(seed)
    graph = _fuzz_graph(rng, h, w, cin, cout, a_bits, w_bits, flags, rotate)
    # a third of the cases get a weight buffer too shallow for a conv: the scheduler splits it
    depth = split_wtiles(graph, FUZZ_HW, rng) if split else None
    sched = schedule(graph, FUZZ_HW.with_(max_wtiles=depth or 0))
    assert (depth is not None) == any(c.channels for c in sched.calls)
    image = rng.randint(0, 256, (h, w, 3)).astype(np.uint8)
    report = verify(sched, graph, image, fuzz_engine, per_call=True)
    assert report.ok, report.mismatch
    assert report.calls_checked == len(sched.calls) >= 1 and report.logits_equal


@pytest.mark.parametrize("flags, cin, cout, depth, ranges", [
    # PREPOOL + conv + POOL, 20 → 36: 5 input tiles, a 10-tile buffer holds 2 output tiles a part
    ((True, True, True, False), 20, 36, 10, [(0, 16), (16, 32), (32, 36)]),
    # conv + POOL + SHIFT, 12 → 64: parts at multiples of lcm(PO, 5) = 40 (3 × 5 tiles), not of PO
    # (2 × 32 channels would fit too, but give channels 32..39 the directions of 0..7)
    ((False, True, True, True), 12, 64, 15, [(0, 40), (40, 64)]),
    # conv + SHIFT into a rotated concat (70 channels, the parts' views wrap around it)
    ((False, True, False, True), 12, 64, 15, [(0, 40), (40, 64)]),
])
def test_split_call_csim_bit_exact_per_call_and_end_to_end(fuzz_engine, flags, cin, cout, depth, ranges):
    """A conv too wide for the weight buffer, split by output channel, with its fused PREPOOL, POOL or
    SHIFT: the C-simulated engine (and the functional simulator) match golden part by part and end to
    end."""
    rng = np.random.RandomState(11)
    graph = _fuzz_graph(rng, 8, 8, cin, cout, 4, 4, flags, 7)
    hw = FUZZ_HW.with_(max_wtiles=depth)
    sched = schedule(graph, hw)
    parts = [c for c in sched.calls if c.conv == "conv1"]
    assert [p.channels for p in parts] == ranges
    assert all((p.prepool, p.pool, p.shift) == (flags[0], flags[2], flags[3]) for p in parts)
    if not flags[2]:  # written into the concat at a rotation: each part at its own channel offset
        view = sched.views[parts[0].output]
        cbuf = sched.buffers[view.buffer].cbuf
        assert cbuf == 70 and [p.descriptor["out_rot"] for p in parts] == [view.rot, (view.rot + 40) % cbuf]
    image = rng.randint(0, 256, (8, 8, 3)).astype(np.uint8)
    for executor in (fuzz_engine, lambda t, w, f: funcsim.run(t, w, f, hw)):
        per_call = verify(sched, graph, image, executor, per_call=True)
        assert per_call.ok and per_call.logits_equal, per_call.mismatch
        assert per_call.calls_checked == len(sched.calls)
        whole = verify(sched, graph, image, executor, per_call=False)
        assert whole.ok and whole.logits_equal, whole.mismatch


def test_split_project_testbench_checks_every_part(tmp_path):
    """The generated testbench checks each part of a split call against its own channels (calls.txt holds
    the part's view, expected_calls.bin its values), with one arena and with separate memories, and
    names the part on a mismatch."""
    graph = _fuzz_graph(np.random.RandomState(11), 8, 8, 12, 64, 4, 4, (False, True, False, True), 7)
    project = write_project(graph, FUZZ_HW.with_(max_wtiles=15), tmp_path / "split").path
    calls = (project / "tb" / "vectors" / "calls.txt").read_text().splitlines()
    assert [line.split()[5:7] for line in calls[1:3]] == [["6", "40"], ["46", "24"]]  # rot, n of each part
    for options in ((), ("--separate-memories",)):
        tb = run_testbench(project, *options)
        assert tb.returncode == 0 and tb.stdout.startswith("PASS 4 calls"), tb.stdout + tb.stderr
    _perturb_requant(project, "conv1[40:64]")
    tb = run_testbench(project)
    assert tb.returncode == 1 and re.match(r"MISMATCH layer conv1_40_64\w* channel \d+ pixel", tb.stdout.strip())
