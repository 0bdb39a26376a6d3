"""Model definition, summary, export to the IR and agreement with the fake-quant model."""
import numpy as np
import pytest
import torch
from torch import nn

from codesign.cli import main
from codesign.graph import load, save
from codesign.models import ModelConfigError, QuantSpec, build_model
from codesign.models.layers import ConvBNAct, InputQuant
from codesign.models.summary import count_params, summarize
from codesign.quant import ExportError, export_model, requant_constants
from codesign.quant.compare import compare

from .conftest import TINY, calibrated_qat_model, random_images


def test_reference_config_macs_and_params():
    model = build_model({"model": "diracdeltanet"}, quantize=False)
    macs = sum(r.macs for r in summarize(model, 224))
    params = count_params(model)
    assert abs(macs / 330e6 - 1) <= 0.02, macs
    assert abs(params / 3.3e6 - 1) <= 0.05, params


def test_summary_cli_prints_reference_totals(capsys):
    assert main(["summary", "--model", "diracdeltanet", "--resolution", "224", "--classes", "1000"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("total: 330.18 M MACs, 3.29")


def test_architecture_shapes():
    model = build_model({"model": "diracdeltanet"}, quantize=False)
    rows = {r.name: r for r in summarize(model, 224)}
    assert rows["stem1.conv"].out_shape == (32, 224, 224)
    assert rows["stage1_0.skip.conv"].out_shape == (64, 28, 28)
    assert rows["stage2_7.project.conv"].out_shape == (128, 14, 14)
    assert rows["stage3_3.expand.conv"].out_shape == (512, 7, 7)
    assert rows["head.conv"].out_shape == (1024, 7, 7)
    assert rows["fc.fc"].out_shape == (1000,)
    assert sum(1 for n in rows if n.startswith("stage2_") and n.endswith("project.conv")) == 8


@pytest.mark.parametrize("field,value", [("weight_bits", 1), ("act_bits", 9), ("first_weight_bits", 0),
                                         ("fc_weight_bits", 16)])
def test_bit_width_out_of_range(field, value):
    with pytest.raises(ModelConfigError, match=f"{field}={value} is outside the supported range 2..8"):
        QuantSpec(**{field: value})


def test_bit_width_cli_error_is_one_line(capsys):
    assert main(["summary", "--act-bits", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "codesign: error: act_bits=9 is outside the supported range 2..8"


def test_export_matches_fake_quant_on_random_model(tiny_model):
    graph = export_model(tiny_model)
    images = random_images(48, 32)
    report = compare(tiny_model, graph, images)
    assert report.top1_agreement >= 0.99
    assert min(report.layer_identical.values()) >= 0.99
    # The calibration must leave activations informative, or the agreement would be vacuous.
    _, trace = __import__("codesign.golden", fromlist=["run"]).run(graph, images, trace=True)
    stem = trace["stem1"]
    assert 0.1 < np.mean(stem > 0) and np.mean(stem == 15) < 0.5


def test_export_is_deterministic(tiny_model, tmp_path):
    a = save(export_model(tiny_model), tmp_path / "a.ir").read_bytes()
    b = save(export_model(tiny_model), tmp_path / "b.ir").read_bytes()
    assert a == b
    graph = load(tmp_path / "a.ir")
    assert [layer.op for layer in graph.layers][:3] == ["conv1x1", "maxpool2x2", "shift"]
    assert graph.layers[-1].op == "linear"


def test_shared_trunk_quantizer_gives_concat_inputs_one_scale(tiny_model):
    graph = export_model(tiny_model)
    for layer in graph.layers:
        if layer.op == "concat":
            assert len({graph.tensors[i].scale for i in layer.inputs}) == 1
            assert layer.attrs["rotate"] == graph.tensors[layer.output].shape[2] // 4


def test_unsupported_module_is_named():
    spec = QuantSpec()
    model = nn.Sequential(InputQuant(spec), ConvBNAct(3, 8, spec), nn.Conv2d(8, 8, 3, padding=1))
    with pytest.raises(ExportError, match=r"unsupported module '2' \(Conv2d\)"):
        export_model(model, resolution=8)


def test_float_model_refused():
    model = build_model(TINY, quantize=False)
    with pytest.raises(ExportError, match="float weights|not quantized"):
        export_model(model)


def test_sequential_with_custom_forward_refused():
    class Odd(nn.Sequential):
        def forward(self, x):
            return super().forward(x) * 2

    spec = QuantSpec()
    with pytest.raises(ExportError, match=r"unsupported module '1' \(Odd\)"):
        export_model(nn.Sequential(InputQuant(spec), Odd(ConvBNAct(3, 4, spec))), resolution=8)


def test_requant_constants_precision_and_bounds():
    rng = np.random.RandomState(1)
    k = rng.uniform(-1e-2, 1e-2, 64)
    b = rng.uniform(-20, 20, 64)
    m, bias, s = requant_constants(k, b, acc_max=2 ** 17)
    assert np.all(np.abs(m) < 2 ** 23)
    assert np.max(np.abs(m / 2.0 ** s - k) / np.abs(k)) < 2 ** -15
    assert 2 ** 17 * np.abs(m).max() + np.abs(bias).max() + 2 ** (s - 1) < 2 ** 47


def test_qat_model_reproduces_stem_requant_exactly():
    """Spot-check the contract on one layer by hand: y = clamp((acc*M + B + 2^(S-1)) >> S)."""
    model = calibrated_qat_model(seed=3)
    graph = export_model(model)
    conv = graph.layer("stem1")
    x = random_images(1, 32, seed=5)[0].reshape(-1, 3).astype(np.int64)
    acc = x @ conv.params["weight"].astype(np.int64).T
    s = conv.attrs["shift"]
    y = np.clip((acc * conv.params["mult"] + conv.params["bias"] + (1 << (s - 1))) >> s, 0, 15)
    with torch.no_grad():
        xt = torch.from_numpy(random_images(1, 32, seed=5)).permute(0, 3, 1, 2).float() / 255
        ref = model.stem1(model.input(xt))
    scale = float(model.stem1.act.act_quant.scale())
    ref_int = torch.round(ref / scale).permute(0, 2, 3, 1).reshape(-1, y.shape[1]).numpy()
    assert np.mean(ref_int == y) >= 0.99
