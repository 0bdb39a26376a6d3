"""`codesign import`: ordinary Brevitas networks (not codesign's classes), exported to QONNX, imported into
the IR; the golden model agrees with the qonnx package's executor, and the engine's C-simulation with the
golden model (issue #13). Power-of-two scales make every requant exact, so agreement is exact there."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qonnx")
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402

from codesign.cli import main  # noqa: E402
from codesign.golden import GoldenModel  # noqa: E402
from codesign.golden import ops as kernels  # noqa: E402
from codesign.graph import load  # noqa: E402
from codesign.hls.project import write_project  # noqa: E402
from codesign.hls.simulate import simulate_project  # noqa: E402
from codesign.hw.limits import sized_for  # noqa: E402
from codesign.hw.scheduler import schedule  # noqa: E402
from codesign.importers.qonnx import ties_reachable  # noqa: E402

from .qonnx_models import MobileNetV1ish, RolledShift, VGGish, calibrated, export  # noqa: E402


def _import(onnx_path: Path, tmp: Path) -> Path:
    ir = tmp / (onnx_path.stem + ".ir")
    assert main(["import", str(onnx_path), "-o", str(ir)]) == 0
    return ir


def _reference(onnx_path: Path, graph, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """qonnx's executor on the original file: the output and, per IR activation tensor, its integers."""
    mw = ModelWrapper(str(onnx_path))
    ctx = execute_onnx(mw, {mw.graph.input[0].name: x}, return_full_exec_context=True)
    acts = {ir: np.round(ctx[onnx] / graph.tensors[ir].scale).transpose(0, 2, 3, 1)
            for ir, onnx in graph.meta["onnx_tensors"].items()}
    return ctx[mw.graph.output[0].name], acts


def _agreement(onnx_path: Path, graph, n: int, seed: int = 0) -> tuple[int, int, bool]:
    """(identical activation integers, all of them, every float output identical) over n random images."""
    golden = GoldenModel(graph)
    rng = np.random.default_rng(seed)
    same = total = 0
    outputs_equal = True
    for _ in range(n):
        x = rng.random((1, *graph.meta["float_input"]["shape"]), dtype=np.float32)
        ref, acts = _reference(onnx_path, graph, x)
        _, trace = golden.run(golden.quantize_input(x), trace=True)
        for name, want in acts.items():
            same += int(np.sum(trace[name] == want))
            total += want.size
        outputs_equal &= np.array_equal(golden.run_float(x), ref)
    return same, total, outputs_equal


def _csim(graph, tmp: Path) -> str:
    project = write_project(graph, sized_for(graph), tmp / "proj")
    result = simulate_project(project.path)
    assert result.per_call.calls_checked == len(project.schedule.calls)
    assert result.end_to_end.logits_equal
    return result.testbench


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    d = tmp_path_factory.mktemp("mobilenet")
    return export(calibrated(MobileNetV1ish(w_bits=4, a_bits=4), 32), d / "mobilenet_w4a4.onnx", 32), d


def test_mobilenet_w4a4_imports_runs_exactly_schedules_and_csims(mobilenet):
    onnx_path, d = mobilenet
    graph = load(_import(onnx_path, d))
    ops = [layer.op for layer in graph.layers]
    assert ops == ["conv2d"] + ["dwconv3x3", "conv1x1"] * 3 + ["globalsumpool", "linear"]
    assert graph.layer(graph.layers[1].name).attrs["stride"] == 1 and graph.layers[3].attrs["stride"] == 2
    same, total, outputs_equal = _agreement(onnx_path, graph, 4)
    assert same == total and outputs_equal, f"{same}/{total}"
    sched = schedule(graph, sized_for(graph))
    assert sched.host_pre_layers == []  # the dense stem runs on the engine's window unit
    assert sched.calls[0].conv == graph.layers[0].name
    assert sched.host_layers == [graph.layers[-2].name, graph.layers[-1].name]
    assert _csim(graph, d).startswith("PASS")


@pytest.mark.slow  # a Brevitas export and an engine build: ~90 s on 2 cores (the fast fuzz covers signed C-sim)
def test_linear_bottleneck_signed_activations_import_exactly_and_csim(tmp_path):
    """Signed Quant nodes between layers (a depthwise conv without a ReLU, MobileNetV2-style) become
    signed tensors: the golden model equals the qonnx executor bit for bit, and the engine sized for
    the graph (signed_acts) C-simulates it bit-exactly."""
    onnx_path = export(calibrated(MobileNetV1ish(w_bits=4, a_bits=4, linear_dw=True), 32), tmp_path / "lin.onnx", 32)
    graph = load(_import(onnx_path, tmp_path))
    signed = [layer.op for layer in graph.layers if graph.tensors[layer.output].signed and layer.op != "linear"]
    assert signed == ["dwconv3x3"] * 3
    assert all(graph.tensors[layer.output].bits == 4 for layer in graph.layers if layer.op == "dwconv3x3")
    same, total, outputs_equal = _agreement(onnx_path, graph, 4)
    assert same == total and outputs_equal, f"{same}/{total}"
    assert sized_for(graph).signed_acts
    assert _csim(graph, tmp_path).startswith("PASS")


@pytest.mark.parametrize("bits", [2, 4])
def test_vgg_imports_and_runs_exactly(bits, tmp_path):
    onnx_path = export(calibrated(VGGish(w_bits=bits, a_bits=bits), 32, seed=bits), tmp_path / f"vgg_w{bits}.onnx", 32)
    graph = load(_import(onnx_path, tmp_path))
    assert [layer.op for layer in graph.layers].count("conv2d") == 7
    assert all(graph.tensors[t].bits == bits for t in graph.meta["onnx_tensors"])
    same, total, outputs_equal = _agreement(onnx_path, graph, 3)
    assert same == total and outputs_equal, f"{same}/{total}"
    # every dense 3×3 conv (conv2d, with its 2×2 max-pool fused) runs on the engine; the FC on the host
    sched = schedule(graph, sized_for(graph))
    assert [c.conv for c in sched.calls if c.conv] == [layer.name for layer in graph.layers if layer.op == "conv2d"]
    assert _csim(graph, tmp_path).startswith("PASS")


def test_ties_round_to_even_as_qonnx_does(tmp_path):
    """Without biases a power-of-two requant lands exactly halfway often: QONNX's ROUND takes the even
    integer, so those layers carry rounding = half_even and agree exactly; rounded up they would not.
    The engine, built with the tie logic (sized_for sets half_even), C-simulates them bit-exactly."""
    model = calibrated(MobileNetV1ish(w_bits=4, a_bits=4), 32, seed=3)
    for m in model.modules():
        if getattr(m, "bias", None) is not None and m.bias is not None and not hasattr(m, "running_mean"):
            m.bias.data.zero_()
    onnx_path = export(model, tmp_path / "nobias.onnx", 32)
    graph = load(_import(onnx_path, tmp_path))
    assert graph.meta["half_even"] and not graph.meta["inexact_requant"]
    same, total, outputs_equal = _agreement(onnx_path, graph, 2)
    assert same == total and outputs_equal
    for layer in graph.layers:
        layer.attrs.pop("rounding", None)
    same_up, total_up, _ = _agreement(onnx_path, graph, 2)
    assert same_up < total_up
    graph = load(tmp_path / "nobias.ir")
    sched = schedule(graph, sized_for(graph))
    engine_layers = {name for c in sched.calls for name in (c.conv, c.spatial) if name}
    assert sized_for(graph).half_even and set(graph.meta["half_even"]) & engine_layers
    assert _csim(graph, tmp_path).startswith("PASS")


def test_float_scales_with_batchnorm_agree_on_almost_every_integer(tmp_path):
    """Float scales and BN: M/2^S only approximates the float32 scale ratio the executor computes, so a
    value within float error of a rounding boundary can land on the other side; measured over every
    activation integer of 4 images."""
    onnx_path = export(calibrated(MobileNetV1ish(w_bits=4, a_bits=4, po2=False, bn=True), 32, seed=5),
                       tmp_path / "float_bn.onnx", 32)
    graph = load(_import(onnx_path, tmp_path))
    assert graph.meta["inexact_requant"] and not graph.meta["half_even"]
    same, total, _ = _agreement(onnx_path, graph, 4)
    print(f"float scales + BN: {same}/{total} = {100 * same / total:.3f} % identical activation integers")
    assert same / total >= 0.99


DIRAC5_TAPS = [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1)]  # (row, column) of the 3×3 kernel: above, left, centre, ...


def test_a_one_hot_depthwise_kernel_is_the_shift_and_a_roll_a_one_input_concat(tmp_path):
    """A float one-hot kernel in the dirac5 layout imports as `shift`; a roll of a tensor that no concat made
    becomes a one-input concat with that rotation; both exact, so every integer equals the executor's."""
    onnx_path = export(calibrated(RolledShift(DIRAC5_TAPS), 8), tmp_path / "rolled.onnx", 8)
    graph = load(_import(onnx_path, tmp_path))
    assert [layer.op for layer in graph.layers] == ["conv1x1", "concat", "shift", "conv1x1", "globalsumpool", "linear"]
    concat = graph.layers[1]
    assert concat.inputs == [graph.layers[0].output] and concat.attrs == {"rotate": 3}
    same, total, outputs_equal = _agreement(onnx_path, graph, 3)
    assert same == total and outputs_equal, f"{same}/{total}"


def test_a_one_hot_kernel_in_another_layout_is_refused_by_name(tmp_path, capsys):
    onnx_path = export(calibrated(RolledShift([(1, 0), (1, 2)], roll=0), 8), tmp_path / "lr.onnx", 8)
    assert main(["import", str(onnx_path), "-o", str(tmp_path / "lr.ir")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "(Conv)" in err and "channel 0 reads offset (dy, dx) = (0, -1)" in err
    assert "dirac5" in err


def test_golden_cli_float_input_matches_run_float(mobilenet, capsys):
    onnx_path, d = mobilenet
    ir = d / "mobilenet_w4a4.ir" if (d / "mobilenet_w4a4.ir").exists() else _import(onnx_path, d)
    x = np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
    np.save(d / "x.npy", x)
    assert main(["golden", "--ir", str(ir), "--npy", str(d / "x.npy"), "--save", str(d / "y.npy")]) == 0
    got = np.load(d / "y.npy")
    assert got.shape == (2, 10) and np.array_equal(got, GoldenModel(load(ir)).run_float(x))
    ref, _ = _reference(onnx_path, load(ir), x[:1])
    assert np.array_equal(got[:1], ref)
    np.save(d / "bad.npy", np.zeros((1, 32, 32, 3), np.float32))  # NHWC: the wrong layout
    capsys.readouterr()
    assert main(["golden", "--ir", str(ir), "--npy", str(d / "bad.npy")]) == 2
    assert "(N, 3, 32, 32)" in capsys.readouterr().err


def test_requantize_half_even_only_changes_exact_ties():
    acc = np.arange(-40, 41, dtype=np.float64)
    mult, bias, shift = np.array([1]), np.array([0]), 3  # y = acc / 8
    out_up, out_even = np.empty(acc.shape, np.uint8), np.empty(acc.shape, np.uint8)
    m_s, o_s = kernels.requant_constants(mult, bias, shift)
    kernels.requantize(acc[:, None], m_s, o_s, 15, out_up[:, None])
    kernels.requantize(acc[:, None], m_s, o_s, 15, out_even[:, None], half_even=True)
    assert np.array_equal(out_even, np.clip(np.round(acc / 8), 0, 15))
    assert np.array_equal(out_up, np.clip(np.floor(acc / 8 + 0.5), 0, 15))
    assert ties_reachable(np.array([2]), np.array([0]), 3) and not ties_reachable(np.array([8]), np.array([1]), 3)


@pytest.mark.slow
def test_mobilenet_224_imports_runs_exactly_and_csims(tmp_path):
    t = time.perf_counter()
    onnx_path = export(calibrated(MobileNetV1ish(w_bits=4, a_bits=4, width=32), 224, batches=2), tmp_path / "mb224.onnx",
                       224)
    graph = load(_import(onnx_path, tmp_path))
    same, total, _ = _agreement(onnx_path, graph, 1)
    assert same == total
    # the 28×28 mean divides by 784 in the executor's float32, not exact; the integer logits are
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    ref, _ = _reference(onnx_path, graph, x)
    golden = GoldenModel(graph)
    logits = golden.run(golden.quantize_input(x)).reshape(1, -1)
    assert np.array_equal(np.round(ref / graph.tensors[graph.output].scale), logits)
    assert _csim(graph, tmp_path).startswith("PASS")
    print(f"224² MobileNet-style: {time.perf_counter() - t:.1f} s")


def test_every_tool_runs_on_an_imported_model(mobilenet, tmp_path, capsys):
    """An imported network is an IR like any other: summary, the estimator's report, explore, compile,
    deploy and the driver (on the simulated device, which runs the C-simulated engine) all take it, and
    the driver's integer outputs are the golden model's."""
    from PIL import Image

    from codesign.driver.runtime import Runtime

    onnx_path, d = mobilenet
    ir = str(_import(onnx_path, tmp_path))
    assert main(["summary", "--ir", ir]) == 0
    assert "conv2d" in capsys.readouterr().out
    assert main(["report", "--model", ir, "-o", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "estimate.json").is_file()
    assert main(["explore", "--model", ir, "--jobs", "1", "-o", str(tmp_path / "explore")]) == 0
    assert (tmp_path / "explore" / "hw_best.yaml").is_file()
    assert main(["compile", "--model", ir, "-o", str(tmp_path / "proj")]) == 0
    assert main(["deploy", "--project", str(tmp_path / "proj"), "-o", str(tmp_path / "pkg")]) == 0
    images = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    paths = []
    for i, img in enumerate(images):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(img).save(paths[-1])
    capsys.readouterr()
    assert main(["run", "--package", str(tmp_path / "pkg"), "--device", "sim", *paths]) == 0
    assert "img1.png" in capsys.readouterr().out
    with Runtime(tmp_path / "pkg", device="sim") as rt:
        np.testing.assert_array_equal(rt.forward(images), GoldenModel(load(ir)).run(images))
