"""CoDeNet: size against the paper, every configuration, QAT, the block interfaces."""
import pytest
import torch

from codesign.models import ModelConfigError, build_model
from codesign.models.codenet import CODENET_CONFIGS, CoDeNet, ShuffleBlock, interleave_channels
from codesign.models.deform import DeformConvBNAct
from codesign.models.layers import QuantSpec
from codesign.models.summary import count_params, summarize
from codesign.train.checkpoint import load_checkpoint, save_checkpoint

PAPER_PARAMS, PAPER_MACS = 1.59e6, 1.14e9
TINY = {"model": "codenet", "num_classes": 5, "config": "a", "width": 0.25, "resolution": 64,
        "quant": {"weight_bits": 4, "act_bits": 8, "first_weight_bits": 8}}


def deform_tap_macs(model: torch.nn.Module, resolution: int) -> int:
    """The deformable depthwise taps (9 per output value), which `summarize` cannot see: the
    square op reads `dw`'s weights without calling it."""
    macs = []
    hooks = [m.register_forward_hook(lambda mod, i, out: macs.append(9 * out[0].numel()))
             for m in model.modules() if isinstance(m, DeformConvBNAct)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, resolution, resolution))
    for h in hooks:
        h.remove()
    return sum(macs)


def test_config_c_matches_the_paper():
    model = build_model({"model": "codenet", "config": "c", "num_classes": 20}, quantize=False)
    assert model.config["resolution"] == 512
    params = count_params(model)
    macs = sum(r.macs for r in summarize(model, 512))
    taps = deform_tap_macs(model, 512)
    print(f"\nCoDeNet config c, 512², 20 classes: {params / 1e6:.3f} M params (paper 1.59 M), "
          f"{macs / 1e9:.3f} G MACs in conv layers + {taps / 1e6:.1f} M deformable taps = "
          f"{(macs + taps) / 1e9:.3f} G (paper 1.14 G)")
    assert abs(params / PAPER_PARAMS - 1) < 0.05
    assert abs(macs / PAPER_MACS - 1) < 0.05 and abs((macs + taps) / PAPER_MACS - 1) < 0.05


@pytest.mark.parametrize("config", sorted(CODENET_CONFIGS))
def test_every_config_builds_and_runs(config):
    model = CoDeNet(num_classes=3, config=config, width=0.25, resolution=64, spec=QuantSpec(quantize=False))
    out = model(torch.rand(2, 3, 64, 64))
    assert set(out) == {"heatmap", "size", "offset"}
    assert out["heatmap"].shape == (2, 3, 16, 16) and out["size"].shape == out["offset"].shape == (2, 2, 16, 16)
    assert model.config["config"] == config


def test_full_size_2x_backbone_channels():
    model = CoDeNet(config="d", spec=QuantSpec(quantize=False))
    assert model.backbone.conv5.conv.out_channels == 2048
    assert model.backbone.stage2_0.branch_main[0].conv.out_channels == 244 // 2


def test_qat_forward_backward_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY)
    model.train()
    out = model(torch.rand(4, 3, 64, 64))
    sum(o.square().mean() for o in out.values()).backward()
    assert model.neck.neck1.deform.offset.weight.grad is not None
    assert model.heads["heatmap"].out.weight.grad.abs().sum() > 0
    path = save_checkpoint(tmp_path / "codenet.pt", model.eval(), {"ap50": 1.0})
    loaded, meta = load_checkpoint(path)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert meta["config"] == model.config


def test_float_weights_load_into_the_qat_model():
    from codesign.train.checkpoint import load_weights

    float_model = build_model(TINY, quantize=False)
    load_weights(build_model(TINY), float_model.state_dict())


def test_interleave_is_the_shufflenet_channel_shuffle():
    a, b = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    cat = torch.cat([a, b], 1)
    reference = cat.view(2, 2, 4, 3, 3).transpose(1, 2).reshape(2, 8, 3, 3)  # channel_shuffle(groups=2)
    assert torch.equal(interleave_channels(a, b), reference)
    assert torch.equal(interleave_channels(a, b)[:, 0::2], a)


def test_shuffle_blocks():
    spec = QuantSpec(quantize=False)
    down = ShuffleBlock(8, 16, 2, spec)
    assert down(torch.rand(1, 8, 8, 8)).shape == (1, 16, 4, 4) and down.branch_proj is not None
    same = ShuffleBlock(16, 16, 1, spec)
    x = torch.rand(1, 16, 4, 4)
    y = same(x)
    assert same.branch_proj is None and torch.equal(y[:, 0::2], x[:, :8])  # the passed half, interleaved
    with pytest.raises(ModelConfigError):
        ShuffleBlock(8, 16, 1, spec)


def test_concatenated_halves_share_one_quantizer():
    model = build_model(TINY)
    block = model.backbone.stage3_0
    assert block.branch_proj[1].act is block.branch_main[2].act is model.backbone.stage3_1.branch_main[2].act


def test_linear_depthwise_ablation_is_float_only():
    model = CoDeNet(num_classes=3, config="a", width=0.25, resolution=64, spec=QuantSpec(quantize=False),
                    dw_relu=False)
    assert model(torch.rand(1, 3, 64, 64))["heatmap"].shape == (1, 3, 16, 16)
    with pytest.raises(ModelConfigError, match="float-only"):
        build_model({**TINY, "dw_relu": False})


@pytest.mark.parametrize("bad, match", [({"config": "z"}, "config"), ({"resolution": 100}, "multiple of 32"),
                                        ({"width": 0}, "width"), ({"num_classes": 0}, "num_classes"),
                                        ({"max_dilation": 99}, "max_dilation")])
def test_bad_settings(bad, match):
    with pytest.raises(ModelConfigError, match=match):
        build_model({**TINY, **bad}, quantize=False)
