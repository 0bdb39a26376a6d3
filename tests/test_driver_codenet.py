"""The PYNQ runtime on a detector: a reduced CoDeNet deploy package on the simulated device, the stem
on the engine's window unit, three engine outputs, three head outputs bit-exact with golden."""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from codesign.deploy import build_deploy_package
from codesign.decode import head_name
from codesign.driver import postprocess
from codesign.driver.package import load_package
from codesign.driver.runtime import Runtime
from codesign.golden import GoldenModel
from codesign.hls.project import write_project
from codesign.quant import export_model

from .test_codenet_csim import HW, REDUCED
from codesign.models.calibrated import random_calibrated_model


@pytest.fixture(scope="module")
def codenet_graph():
    return export_model(random_calibrated_model({**REDUCED, "config": "a"}, steps=3))


@pytest.fixture(scope="module")
def codenet_package(codenet_graph, tmp_path_factory):
    project = write_project(codenet_graph, HW, tmp_path_factory.mktemp("drv_codenet") / "p")
    return build_deploy_package(project.path, tmp_path_factory.mktemp("drv_codenet") / "pkg", max_batch=2)


@pytest.fixture(scope="module")
def frames():
    return np.random.RandomState(11).randint(0, 256, (2, 128, 128, 3)).astype(np.uint8)


def test_package_records_host_pre_layers_and_every_output(codenet_package, codenet_graph):
    pkg = load_package(codenet_package)
    s = pkg.schedule
    # the stem conv2d runs on the engine's window unit: the host writes the image itself
    assert s.host_pre_layers == [] and s.engine_inputs == ["input"]
    assert len(s.engine_outputs) == 3 and len(s.host_layers) == 3
    assert pkg.model_type == "codenet" and [o["name"] for o in pkg.meta["model"]["outputs"]] == codenet_graph.outputs
    assert (codenet_package / "codesign" / "decode.py").is_file()  # the CenterNet decode, NumPy only
    assert not (codenet_package / "codesign" / "detection").exists()  # no training code, no torch on the board
    assert not (codenet_package / "codesign" / "hls").exists()  # the simulated device needs no HLS back end


@pytest.mark.parametrize("batch", [1, 2])
def test_codenet_heads_bit_exact_on_the_simulated_device(codenet_package, codenet_graph, frames, batch):
    t0 = time.perf_counter()
    golden = GoldenModel(codenet_graph).run_outputs(frames)
    with Runtime(codenet_package, device="sim", batch=batch, top_k=10) as rt:
        out = rt.forward_outputs(frames)
        assert list(out) == codenet_graph.outputs
        for name in codenet_graph.outputs:  # heatmap, size, offset integers, frame after frame
            np.testing.assert_array_equal(out[name], golden[name])
        np.testing.assert_array_equal(rt.forward(frames[:1]), golden[codenet_graph.output][:1])
        results = rt.infer_batch(frames)
        assert len(rt.timings) == 2 and all(t.engine_s > 0 and t.pack_s > 0 for t in rt.timings)
    assert rt.closed and rt.device.live_buffers == []
    assert time.perf_counter() - t0 < 60

    heads = {head_name(n): n for n in codenet_graph.outputs}
    assert set(heads) == {"heatmap", "size", "offset"}
    from codesign.decode import decode

    for i, r in enumerate(results):
        assert isinstance(r, postprocess.Detection)
        for head, name in heads.items():
            np.testing.assert_array_equal(r.outputs[head], golden[name][i])

        def real(head):  # a head's integers × its per-output-channel scale
            scale = codenet_graph.layer(heads[head]).params["out_scale"]
            return np.transpose(golden[heads[head]][i] * scale, (2, 0, 1)).astype(np.float32)

        want = decode(real("heatmap"), real("size"), real("offset"), k=10, stride=4)
        assert len(r.detections.scores) == 10
        for got, exp in zip(r.detections, want):
            np.testing.assert_array_equal(got, exp)
        assert str(r).startswith("10 detections: ")


def test_the_detection_postprocess_is_pluggable(codenet_package, frames, monkeypatch):
    seen = []
    monkeypatch.setitem(postprocess._REGISTRY, "codenet", lambda outs, pkg, k: seen.append(sorted(outs)) or "mine")
    with Runtime(codenet_package, device="sim") as rt:
        assert rt.infer(frames[0]) == "mine"
    assert seen == [sorted(load_package(codenet_package).graph.outputs)]


def test_shipped_runtime_decodes_on_its_own(codenet_package, frames, tmp_path):
    """run.py of the package on an image file: its own runtime copy, its own decode, no torch, no jinja2, no
    HLS back end."""
    import subprocess

    from PIL import Image

    path = tmp_path / "frame.png"
    Image.fromarray(frames[0]).save(path)
    code = ("import runpy, sys; image, root = sys.argv[1:]; "
            "sys.argv = ['run.py', '--device', 'sim', '--top-k', '3', image]; sys.path.insert(0, '.'); "
            "import codesign.decode as d; assert d.__file__.startswith(root), d.__file__\n"
            "try:\n    runpy.run_path('run.py', run_name='__main__')\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "bad = [m for m in ('torch', 'jinja2', 'pynq', 'codesign.hls') if m in sys.modules]; assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(codenet_package)], cwd=codenet_package,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{path}: 3 detections: "), out.stdout
