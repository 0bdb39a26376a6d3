"""Performance / resource model (codesign.estimate) against published design points and its own rules."""
from __future__ import annotations

import math

import numpy as np
import pytest

from codesign.estimate import (SYNETGY_RESOURCES, SYNETGY_TIMING, ModelParams, estimate, explore, resources,
                               synetgy_config, workload, write_report)
from codesign.estimate.cycles import call_estimate, view_words
from codesign.estimate.reference import CODENET, SYNETGY, relative_error
from codesign.estimate.synthetic import diracdeltanet_ir
from codesign.estimate.workload import CallWork, windows_on_host
from codesign.hw.config import HardwareConfig
from codesign.hw.limits import sized_for
from codesign.models import MODELS

FPS_TOLERANCE = 0.25  # acceptance (issue #4): every published FPS within ±25 %
RESOURCE_TOLERANCE = 0.30  # and every published resource within ±30 %
# Regression: the errors docs/estimator.md states, in percent. A change that moves any of them by more
# than REGRESSION_PP percentage points fails, so the documented validation cannot drift silently;
# update the docs and these numbers together.
REGRESSION_PP = 1.0
DOCUMENTED_SYNETGY_FPS = {1: -20.2, 2: -7.9, 4: +8.3, 8: +13.3, 16: +24.1}
DOCUMENTED_SYNETGY_RESOURCES = {"lut": +15.3, "ff": +0.3, "bram36": -20.8, "dsp": 0.0}
DOCUMENTED_CODENET_CALL_RMS = 4.97
DOCUMENTED_CODENET_FPS = {"a": -14.5, "b": -15.0, "c": -11.9, "d": -7.4, "e": -8.3}
DOCUMENTED_CODENET_RESOURCES = {"lut": +0.7, "ff": -8.1, "bram36": -22.0, "dsp": -20.0}


def assert_documented(errors: dict, documented: dict, what: str) -> None:
    """Each error (a fraction) within REGRESSION_PP points of the value docs/estimator.md states."""
    drift = {k: f"{100 * errors[k]:+.1f}% (documented {documented[k]:+.1f}%)" for k in documented
             if abs(100 * errors[k] - documented[k]) > REGRESSION_PP}
    assert not drift, f"{what} moved from docs/estimator.md: {drift}"


@pytest.fixture(scope="session")
def ddn224():
    """Full-size DiracDeltaNet 224² IR, built from the structure (no torch export)."""
    return diracdeltanet_ir(224)


@pytest.fixture(scope="session")
def ddn_workload(ddn224):
    return workload(ddn224)


# ---- validation against Synetgy (FPGA'19) ---------------------------------------------------------

def test_synetgy_frame_rate_within_25_percent(ddn_workload):
    hw = synetgy_config()
    errors = {}
    for batch, published in SYNETGY.fps.items():
        e = estimate(ddn_workload, hw, batch=batch, control="per_layer", shuffle_on_cpu=True, params=SYNETGY_TIMING)
        errors[batch] = relative_error(e.fps, published)
        print(f"Synetgy batch {batch:>2}: model {e.fps:6.1f} FPS, published {published:5.1f}, "
              f"error {100 * errors[batch]:+.1f}%")
    bad = {b: f"{100 * x:+.1f}%" for b, x in errors.items() if abs(x) > FPS_TOLERANCE}
    assert not bad, f"FPS error beyond ±25 % at batch {bad}"
    assert_documented(errors, DOCUMENTED_SYNETGY_FPS, "Synetgy FPS error")
    # Batching must help, as it did for Synetgy (control is paid per layer per batch).
    fps = [estimate(ddn_workload, hw, batch=b, control="per_layer", shuffle_on_cpu=True,
                    params=SYNETGY_TIMING).fps for b in SYNETGY.fps]
    assert fps == sorted(fps)


def test_synetgy_resources_within_30_percent():
    r = resources(synetgy_config(), SYNETGY_TIMING, SYNETGY_RESOURCES)
    errors = {}
    for kind, published in SYNETGY.resources.items():
        errors[kind] = relative_error(r.used()[kind], published)
        print(f"Synetgy {kind:<6}: model {r.used()[kind]:>8,.0f}, published {published:>8,.0f}, "
              f"error {100 * errors[kind]:+.1f}%{'  (calibrated)' if kind == 'dsp' else ''}")
    bad = {k: f"{100 * x:+.1f}%" for k, x in errors.items() if abs(x) > RESOURCE_TOLERANCE}
    assert not bad, f"resource error beyond ±30 %: {bad}"
    assert_documented(errors, DOCUMENTED_SYNETGY_RESOURCES, "Synetgy resource error")
    assert r.fits()


def test_shuffle_on_cpu_and_per_layer_control_cost_what_the_paper_says(ddn_workload):
    hw = synetgy_config()
    with_copy = estimate(ddn_workload, hw, batch=16, control="per_layer", shuffle_on_cpu=True, params=SYNETGY_TIMING)
    without = estimate(ddn_workload, hw, batch=16, control="per_layer", shuffle_on_cpu=False, params=SYNETGY_TIMING)
    assert with_copy.fps < without.fps
    # At batch 1, per-layer control (register reads) costs more than the engine's compute (DESIGN.md §3).
    b1 = estimate(ddn_workload, hw, batch=1, control="per_layer", shuffle_on_cpu=True, params=SYNETGY_TIMING)
    assert b1.control_s > b1.engine_s


@pytest.fixture(scope="session")
def codenet_irs():
    """The five CoDeNet IRs (configs a–e, 20 classes), built from the structure (~0.1 s each)."""
    from codesign.estimate.synthetic import codenet_ir
    return {p.config["config"]: codenet_ir(p.config["config"]) for p in CODENET}


def _codenet_call_errors(params) -> list[float]:
    from codesign.estimate import codenet_config
    from codesign.estimate.cycles import per_layer_wall_s
    from codesign.estimate.reference import CODENET_CALLS_MS
    from codesign.estimate.synthetic import codenet_notebook_call
    hw = codenet_config()
    out = []
    for d, ic, oc, stride, ms in CODENET_CALLS_MS:
        e = call_estimate(codenet_notebook_call(d, ic, oc, stride), hw, params, 6.0)
        out.append(relative_error(1e3 * per_layer_wall_s(e.engine_s, e.starts, params), ms))
    return out


def _rms(errors) -> float:
    return math.sqrt(sum(x * x for x in errors) / len(errors))


FITTED = ("tile_drain_cycles", "linebuf_pixel_cycles", "window_pixel_cycles", "reg_read_ms", "start_overhead_ms")
FIT_STEP = {"tile_drain_cycles": 1, "linebuf_pixel_cycles": 1, "window_pixel_cycles": 1, "reg_read_ms": 0.005,
            "start_overhead_ms": 0.005}


def test_codenet_calls_against_the_authors_measurements():
    """CODENET_TIMING's five fitted numbers reproduce the artifact notebook's 16 per-call times."""
    from codesign.estimate import CODENET_TIMING
    from codesign.estimate.reference import CODENET_CALLS_MS
    errors = _codenet_call_errors(CODENET_TIMING)
    for (d, ic, oc, stride, ms), err in zip(CODENET_CALLS_MS, errors):
        print(f"CoDeNet call D{d} {ic}->{oc} s{stride}: model {ms * (1 + err):.3f} ms, measured {ms:.3f}, "
              f"error {100 * err:+.1f}%")
    rms = _rms(errors)
    print(f"CoDeNet per-call RMS {100 * rms:.2f}% (documented {DOCUMENTED_CODENET_CALL_RMS}%)")
    assert max(map(abs, errors)) <= 0.10
    assert abs(100 * rms - DOCUMENTED_CODENET_CALL_RMS) <= 0.01
    # The committed values are the fit's optimum, not a hand-picked point: no one-step move of any of the
    # five on the fit's grid lowers the RMS (the whole-grid search: bench/estimate_codenet_fit.py --check).
    for name in FITTED:
        for sign in (-1, 1):
            value = round(getattr(CODENET_TIMING, name) + sign * FIT_STEP[name], 3)
            if value < (FIT_STEP[name] if name == "reg_read_ms" else 0):
                continue
            assert _rms(_codenet_call_errors(CODENET_TIMING.with_(**{name: value}))) >= rms, (name, value)


def test_codenet_notebook_frame_in_sample():
    """The notebook's own frame (cell 18: 2× backbone, 80 classes, 256²): its 56 calls are the fit's 16 shapes
    repeated, so this is a frame-level consistency check (call mix, ARM shuffle), not a held-out one."""
    from codesign.estimate import CODENET_TIMING as p, codenet_config
    from codesign.estimate.cycles import per_layer_wall_s
    from codesign.estimate.reference import CODENET_CALLS_MS, CODENET_NOTEBOOK_FRAME_MS as measured
    from codesign.estimate.synthetic import codenet_notebook_call, codenet_notebook_network
    net = codenet_notebook_network()
    assert len(net["calls"]) == 56 and len(net["shuffles"]) == 16
    assert set(net["calls"]) == {r[:4] for r in CODENET_CALLS_MS}
    hw = codenet_config()
    conv_ms = 0.0
    for call in net["calls"]:
        e = call_estimate(codenet_notebook_call(*call), hw, p, 6.0)
        conv_ms += 1e3 * per_layer_wall_s(e.engine_s, e.starts, p)
    shuffle_ms = sum(1e3 * d * d * c / (p.arm_copy_gbps * 1e9) + p.arm_op_overhead_ms for d, c in net["shuffles"])
    measured_sum = measured["convtime"] + measured["channel_shuffle"]
    for what, model, meas in (("convtime", conv_ms, measured["convtime"]),
                              ("channel_shuffle", shuffle_ms, measured["channel_shuffle"]),
                              ("conv + shuffle", conv_ms + shuffle_ms, measured_sum)):
        print(f"CoDeNet notebook frame (cell 18) {what}: model {model:.2f} ms, measured {meas:.2f} ms, "
              f"error {100 * relative_error(model, meas):+.1f}%")
    assert abs(relative_error(conv_ms, measured["convtime"])) <= 0.05
    assert abs(relative_error(shuffle_ms, measured["channel_shuffle"])) <= 0.20


def codenet_estimate(g, params=None):
    """A CoDeNet config on CoDeNet's engine and host flow (per-layer PYNQ control, shuffle on the ARM)."""
    from codesign.estimate import CODENET_TIMING, codenet_config
    return estimate(g, codenet_config(g), batch=1, control="per_layer", shuffle_on_cpu=True,
                    params=params or CODENET_TIMING)


def test_codenet_frame_rate_within_25_percent(codenet_irs):
    errors, ms = {}, {}
    for point in CODENET:
        cfg = point.config["config"]
        e = codenet_estimate(codenet_irs[cfg])
        errors[cfg] = relative_error(e.fps, point.fps[1])
        ms[cfg] = (e.frame_ms, 1e3 / point.fps[1])
        print(f"CoDeNet {cfg}: model {e.fps:5.1f} FPS, published {point.fps[1]:4.1f}, error {100 * errors[cfg]:+.1f}%")
    bad = {c: f"{100 * x:+.1f}%" for c, x in errors.items() if abs(x) > FPS_TOLERANCE}
    assert not bad, f"FPS error beyond ±25 %: {bad}"
    assert_documented(errors, DOCUMENTED_CODENET_FPS, "CoDeNet FPS error")
    # Structure the model must get right: the ordering, and the stem on the ARM (a vs b, d vs e differ
    # only in the stem: published +6.1 ms and +25.1 ms per frame).
    fps = [1e3 / ms[c][0] for c in "abcde"]
    assert fps == sorted(fps, reverse=True)
    for x, y in (("a", "b"), ("d", "e")):
        model, pub = ms[y][0] - ms[x][0], ms[y][1] - ms[x][1]
        print(f"stem {x}→{y}: model +{model:.1f} ms, published +{pub:.1f} ms")
        assert abs(model / pub - 1) <= 0.30


def test_codenet_resources_within_30_percent():
    from codesign.estimate import CODENET_RESOURCE_PARAMS, CODENET_TIMING, codenet_config
    from codesign.estimate.reference import CODENET_RESOURCES
    r = resources(codenet_config(), CODENET_TIMING, CODENET_RESOURCE_PARAMS)  # the bitstream that ran a–e
    errors = {k: relative_error(r.used()[k], v) for k, v in CODENET_RESOURCES.items()}
    for k, v in CODENET_RESOURCES.items():
        print(f"CoDeNet {k:<6}: model {r.used()[k]:>8,.0f}, published {v:>8,.0f}, error {100 * errors[k]:+.1f}%")
    bad = {k: f"{100 * x:+.1f}%" for k, x in errors.items() if abs(x) > RESOURCE_TOLERANCE}
    assert not bad, f"resource error beyond ±30 %: {bad}"
    assert_documented(errors, DOCUMENTED_CODENET_RESOURCES, "CoDeNet resource error")
    assert r.fits()
    assert "line_buffers" not in r.breakdown  # no pool/shift unit in CoDeNet's engine


def test_codenet_workload_covers_every_call_type(codenet_irs):
    from codesign.estimate import CODENET_TIMING, codenet_config
    wl = workload(codenet_irs["b"], act_bits=8)
    flags = {c.flags for c in wl.calls}
    assert {"COPY", "CONV+DW", "CONV+DW+STRIDE2", "DW+STRIDE2", "DEFORM", "CONV+UPSAMPLE", "KXK+CONV+POOL"} <= flags
    assert not any(h.pre for h in wl.host)  # the stem conv2d (+ its max-pool) is an engine call
    # as CoDeNet's published flow ran it (the paper preset): the stem on the ARM, its pool a call of its own
    published = windows_on_host(wl)
    assert {h.op for h in published.host if h.pre} == {"conv2d"} and "POOL" in {c.flags for c in published.calls}
    wl = published
    assert {h.op for h in wl.host if not h.pre} == {"conv1x1_head"}
    hw = codenet_config(codenet_irs["b"])
    ideal = CODENET_TIMING.with_(microarch="ideal")
    e = estimate(wl, hw, control="per_layer", params=ideal)
    by = {c.name: c for c in e.calls}
    up = next(c for c in e.calls if "UPSAMPLE" in c.flags)
    assert up.cycles["write"] >= 4 * up.cycles["spatial"] // 2  # 4× the written pixels
    assert any(c.rmw_bytes for c in by.values())  # interleaved (strided) writes merge
    # One tap per cycle (our C++) is slower on depthwise calls than CoDeNet's 9-tap unit.
    for p in (ideal, CODENET_TIMING):
        slow = estimate(wl, hw, control="per_layer", params=p.with_(spatial_taps_per_cycle=1))
        assert slow.engine_s > estimate(wl, hw, control="per_layer", params=p).engine_s
    # CoDeNet's flow: stem conv + max-pool on the ARM, the shuffle's copies by the ARM instead of the
    # engine, the heads' last 1×1 on the engine, conv5's 1024 outputs in two calls of 512.
    cn = codenet_estimate(codenet_irs["b"])
    assert cn.host_s["backbone.stem"] == pytest.approx(7.9e-3, rel=0.05)  # the published ARM stem time
    assert cn.host_s["backbone.stem_pool"] > 0 and cn.host_s["shuffle"] > 0
    names = {c.name: c for c in cn.calls}
    assert "backbone.stem_pool" not in names and not any(c.flags == "COPY" for c in cn.calls)
    assert {"heads.heatmap.out", "heads.size.out", "heads.offset.out"} <= set(names)
    assert names["backbone.conv5"].starts == 2 and names["neck.neck1.deform"].starts == 2
    assert sum(c.starts for c in cn.calls) == len(cn.calls) + 2


def test_explore_codenet_b_on_ultra96(codenet_irs):
    from codesign.estimate.reference import CODENET as POINTS
    g = codenet_irs["b"]
    result = explore(g, "ultra96v2", workers=1)
    best = result.best
    assert resources(best).fits()
    e = estimate(g, best)
    print(f"explore CoDeNet b on Ultra96: {best.pi}x{best.po} bus {best.bus_bits}: {e.fps:.1f} FPS "
          f"vs published {POINTS[1].fps[1]} FPS; {e.summary()}")
    assert e.fps > 0


# ---- the model's rules ------------------------------------------------------------------------------

def _conv_call(cin: int, cout: int, h: int = 14, w: int = 14) -> CallWork:
    return CallWork(name="c", layers=("c",), conv=True, prepool=False, pool=False, shift=False, in_h=h, in_w=w,
                    in_cbuf=cin, in_rot=0, cin=cin, in_store_bits=4, in_value_bits=4, out_cbuf=cout, out_rot=0,
                    cout=cout, out_bits=4, weight_bits=4, macs=h * w * cin * cout, reads_graph_input=False)


def test_channel_edges_cost_a_whole_tile():
    hw = HardwareConfig(pi=32, po=32, weight_bits=4)
    p = ModelParams(mac_in_bits=4)
    full = call_estimate(_conv_call(64, 64), hw, p, 6.0)
    edge = call_estimate(_conv_call(64, 65), hw, p, 6.0)  # one output channel past a multiple of PO
    assert full.cycles["mac"] == 14 * 14 * 2 * 2
    assert edge.cycles["mac"] == 14 * 14 * 2 * 3  # a whole extra PO tile for one channel
    assert edge.compute_cycles >= 1.5 * full.compute_cycles
    cin_edge = call_estimate(_conv_call(33, 64), hw, p, 6.0)
    assert cin_edge.cycles["mac"] == 14 * 14 * 2 * 2  # ceil(33/32) = 2 input tiles
    # utilization of the array: 65/96 of the PO lanes do useful work
    assert edge.macs / (edge.cycles["mac"] * hw.pi * hw.po) == pytest.approx(64 * 65 / (64 * 96))


def test_merge_sums_the_listed_fields_only():
    """A layer split into several calls (`_merge`): every numeric field is either summed or taken from the
    first part, by an explicit list (not by the fields' annotation strings)."""
    import typing

    from codesign.estimate.cycles import MERGE_FIRST, MERGE_SUMMED, CallEstimate
    hints = typing.get_type_hints(CallEstimate)
    numeric = {k for k, t in hints.items() if t in (int, float)}
    assert numeric == set(MERGE_SUMMED) | {"passes"}
    assert set(hints) == set(MERGE_SUMMED) | set(MERGE_FIRST) | {"cycles", "bound"}
    hw = HardwareConfig(pi=16, po=16, weight_bits=4)
    p = ModelParams(max_call_cout=32)
    whole = call_estimate(_conv_call(64, 64), hw, ModelParams(), 6.0)
    split = call_estimate(_conv_call(64, 64), hw, p, 6.0)  # two calls of 32 output channels
    half = call_estimate(_conv_call(64, 32), hw, ModelParams(), 6.0)
    assert split.starts == 2 and split.macs == whole.macs and split.passes == half.passes == 1
    assert split.engine_s == pytest.approx(2 * half.engine_s)
    assert split.cycles == {k: 2 * v for k, v in half.cycles.items()}
    assert split.name == whole.name


def test_codenet_full_calls_run_both_stages_as_the_notebook_does(codenet_irs):
    """full_calls (CoDeNet's notebook: skip1 = skip3 = deform = 0 on every call): a 3×3-only call also runs an
    IC → IC 1×1, a 1×1-only call also runs the 3×3 window, a deformable call runs as a plain 3×3; a call
    that has both stages (every one the fit used) is unchanged."""
    from codesign.estimate import CODENET_TIMING, codenet_config
    from codesign.estimate.synthetic import codenet_notebook_call
    wl = workload(codenet_irs["b"], act_bits=8)
    hw = codenet_config(codenet_irs["b"])
    full, skip = CODENET_TIMING, CODENET_TIMING.with_(full_calls=False)
    by_flags = {}
    for c in wl.calls:
        by_flags.setdefault(c.flags, c)
    dw, conv, deform = by_flags["DW+STRIDE2"], by_flags["CONV"], by_flags["DEFORM"]
    a, b = call_estimate(dw, hw, full, 6.0), call_estimate(dw, hw, skip, 6.0)
    assert a.cycles["mac"] > b.cycles["mac"] and a.engine_s > b.engine_s
    a, b = call_estimate(conv, hw, full, 6.0), call_estimate(conv, hw, skip, 6.0)
    assert a.cycles["spatial"] > b.cycles["spatial"] and a.engine_s > b.engine_s
    a = call_estimate(deform, hw, full, 6.0)
    assert a.read_bytes < call_estimate(deform, hw, skip, 6.0).read_bytes  # no dilation map read
    both = codenet_notebook_call(32, 128, 128, 1)
    assert call_estimate(both, hw, full, 6.0) == call_estimate(both, hw, skip, 6.0)
    slow, fast = (codenet_estimate(codenet_irs["b"], p) for p in (full, skip))
    print(f"CoDeNet b: {slow.fps:.1f} FPS with every call full (the notebook), {fast.fps:.1f} with skip flags")
    assert slow.fps < fast.fps


def test_view_words_and_read_modify_write():
    assert view_words(128, 0, 128, 32) == (4, 0)
    assert view_words(128, 64, 64, 32) == (2, 0)  # word-aligned half: written without reading
    assert view_words(128, 96, 64, 32) == (2, 0)  # wrapping view, still whole words
    assert view_words(128, 16, 64, 32) == (3, 2)  # misaligned: two partly covered words → RMW
    c = _conv_call(64, 48)
    c2 = CallWork(**{**c.__dict__, "out_cbuf": 128, "out_rot": 16})
    e = call_estimate(c2, HardwareConfig(pi=32, po=32, weight_bits=4), ModelParams(), 6.0)
    assert e.rmw_bytes > 0


def test_memory_bound_call_is_limited_by_ddr():
    """The "ideal" model's DDR term (the "engine" model follows the cycle count, which has none)."""
    hw = HardwareConfig(pi=64, po=64, weight_bits=4, bus_bits=128)
    # A wide-input, few-output call with a slow DDR: memory dominates.
    e = call_estimate(_conv_call(512, 8, 56, 56), hw, ModelParams(mac_in_bits=4, microarch="ideal"), 0.5)
    assert e.bound == "memory"
    assert e.engine_s >= e.memory_s
    # dataflow overlap: the call takes max(compute, memory) + fill, not the sum
    assert e.engine_s < e.compute_s + e.memory_s + e.weight_s + e.overhead_s


def test_descriptor_control_beats_per_layer_at_batch_1(ddn224):
    hw = sized_for(ddn224)
    desc = estimate(ddn224, hw, batch=1, control="descriptor")
    per_layer = estimate(ddn224, hw, batch=1, control="per_layer")
    print(f"descriptor {desc.fps:.1f} FPS vs per-layer {per_layer.fps:.1f} FPS at batch 1")
    assert desc.fps > 3 * per_layer.fps
    assert desc.control_s < per_layer.control_s / 10


def test_batching_overlaps_host_with_engine(ddn_workload):
    hw = sized_for(diracdeltanet_ir(32, width=0.25)).with_(max_width=224, max_line=7168, max_weights=524288)
    for n in (1, 4, 16):
        e = estimate(ddn_workload, hw, batch=n, control="descriptor")
        # steady state: host work of neighbouring batches hides under the engine (or vice versa)
        assert e.period_s == pytest.approx(e.control_s + max(e.engine_s, e.host_total_s))
        assert e.latency_s == pytest.approx(e.control_s + e.engine_s + e.host_total_s)
        assert e.period_s <= e.latency_s
    b1, b16 = (estimate(ddn_workload, hw, batch=n) for n in (1, 16))
    assert b16.fps >= b1.fps
    assert b16.latency_ms > b1.latency_ms


def test_estimate_rejects_bad_arguments(ddn_workload):
    with pytest.raises(ValueError, match="control"):
        estimate(ddn_workload, HardwareConfig(), control="interrupt")
    with pytest.raises(ValueError, match="batch"):
        estimate(ddn_workload, HardwareConfig(), batch=0)


def test_estimate_accepts_graph_and_workload_alike(ddn224, ddn_workload):
    hw = sized_for(ddn224)
    a, b = estimate(ddn224, hw), estimate(ddn_workload, hw)
    assert a.fps == pytest.approx(b.fps)
    assert a.macs == 330_178_560
    assert sum(c.macs for c in a.calls) + 1_024_000 == a.macs  # engine convs + the FC on the ARM


def test_resources_fit_check():
    big = resources(HardwareConfig(pi=64, po=64, weight_bits=8, mac_bits=8))
    assert not big.fits() and any("dsp" in v for v in big.violations())
    small = resources(HardwareConfig(pi=8, po=8, weight_bits=8, max_weights=64 * 1024))
    assert small.fits()
    # LUT MACs for 4×4 bits, DSP MACs for an 8-bit array (mac_bits 8)
    lut_macs = resources(HardwareConfig(pi=16, po=16, weight_bits=4), ModelParams(mac_in_bits=4))
    dsp_macs = resources(HardwareConfig(pi=16, po=16, weight_bits=8, mac_bits=8))
    assert lut_macs.breakdown["mac_array"]["dsp"] == 0 and dsp_macs.breakdown["mac_array"]["dsp"] == 128
    assert lut_macs.breakdown["mac_array"]["lut"] > 10 * dsp_macs.breakdown["mac_array"]["lut"] / 4


# ---- exploration and reports ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def explored(ddn224, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    return explore(ddn224, "ultra96v2", workers=2, out_dir=out), out


def test_explore_returns_fitting_choice_for_ultra96(explored):
    result, out = explored
    assert result.feasible and len(result.feasible) < len(result.candidates)
    for c in result.feasible:
        assert resources(c.hw).fits()
    assert all(not c.fits for c in result.candidates if c not in result.feasible)
    best = result.best_candidate
    assert best.fits and resources(result.best).fits()
    assert best.fps == max(c.fps for c in result.feasible)
    assert best.pareto
    # Pareto points are not dominated by any feasible point
    for p in result.pareto:
        assert not any(q.fps > p.fps and q.lut <= p.lut and q.bram36 <= p.bram36 and q.dsp <= p.dsp
                       for q in result.feasible)
    loaded = HardwareConfig.load(out / "hw_best.yaml")
    assert loaded == result.best
    print(f"explore choice on Ultra96: {best.label}, {best.fps:.1f} FPS (batch 1), {best.fps_n:.1f} FPS "
          f"(batch {result.batch_n}), LUT {best.lut}, BRAM36 {best.bram36}, DSP {best.dsp}")


def test_explore_with_a_code_fit_judge_takes_the_fastest_config_it_passes(ddn224):
    """With code_fit (the rendered engine's resources, hls/fit.py) explore tries candidates in rank order and
    chooses the first the judge passes; candidates it refused carry its reason."""
    seen = []

    def judge(hw):
        seen.append(hw)
        return [] if hw.pi * hw.po <= 256 else [f"LUT too many for {hw.pi}x{hw.po}"]

    result = explore(ddn224, "ultra96v2", pis=(8, 16, 32), pos=(8, 16, 32), bus_bits=(128,), workers=1,
                     code_fit=judge)
    assert result.best.pi * result.best.po <= 256 and seen[-1] == result.best
    refused = [c for c in result.candidates if c.code_checked and not c.fits]
    assert refused and all("LUT too many" in c.reason for c in refused)
    # every candidate ranked above the choice was judged, and refused
    rank = sorted(result.candidates, key=lambda c: -c.fps)
    above = rank[:rank.index(result.best_candidate)]
    assert all(c.code_checked and not c.fits for c in above if c.fps > result.best_candidate.fps)
    assert len(seen) == len(refused) + 1


def _assert_real_png(path):
    from PIL import Image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.load()
        assert im.width >= 400 and im.height >= 300
        arr = np.asarray(im.convert("RGB"))
    colors = np.unique(arr.reshape(-1, 3), axis=0)
    assert len(colors) > 16, f"{path.name}: only {len(colors)} colours"
    assert (arr < 250).any(axis=-1).mean() > 0.02, f"{path.name}: nearly blank"


def test_plots_are_real_images(explored, ddn224, tmp_path):
    result, out = explored
    _assert_real_png(out / "pareto.png")
    paths = write_report(ddn224, result.best, tmp_path)
    for key in ("roofline", "resources"):
        _assert_real_png(paths[key])
    import json

    data = json.loads(paths["json"].read_text())
    assert len(data["roofline"]["points"]) == len(data["estimate"]["calls"])
    assert data["roofline"]["peak_gops"] == pytest.approx(2 * result.best.pi * result.best.po * 0.25)
    assert {"compute", "memory", "control"} >= {c["bound"] for c in data["estimate"]["calls"]}
    assert "stage1_1.expand" in paths["table"].read_text()


@pytest.mark.slow
def test_synthetic_ir_matches_export():
    """The structural IR the tests use is the exporter's graph (names, ops, shapes, bits)."""
    from codesign.quant import export_model

    from .conftest import TINY, calibrated_qat_model

    exported = export_model(calibrated_qat_model(steps=1))
    synth = diracdeltanet_ir(TINY["resolution"], TINY["num_classes"], TINY["width"])
    assert [(l.name, l.op, l.inputs, l.output) for l in exported.layers] == \
        [(l.name, l.op, l.inputs, l.output) for l in synth.layers]
    for a, b in zip(exported.layers, synth.layers):
        assert {k: v for k, v in a.attrs.items() if k != "shift"} == {k: v for k, v in b.attrs.items() if k != "shift"}
        assert {k: v.shape for k, v in a.params.items()} == {k: v.shape for k, v in b.params.items()}
    for name, t in exported.tensors.items():
        s = synth.tensors[name]
        assert (t.shape, t.bits, t.signed) == (s.shape, s.bits, s.signed), name
    hw = sized_for(exported)
    assert estimate(exported, hw).fps == pytest.approx(estimate(synth, hw).fps)
    assert math.isfinite(estimate(exported, hw).fps)
