"""CoDeNet: size against the paper, every configuration, QAT, the block interfaces."""
import pytest
import torch

from codesign.models import ModelConfigError, build_model
from codesign.models.codenet import CODENET_CONFIGS, CoDeNet, ShuffleBlock, interleave_channels
from codesign.models.deform import DeformConv3x3, DeformConvBNAct
from codesign.models.layers import QuantSpec
from codesign.models.summary import count_params, summarize
from codesign.train.checkpoint import load_checkpoint, save_checkpoint

PAPER_PARAMS, PAPER_MACS = 1.59e6, 1.14e9
TINY = {"model": "codenet", "num_classes": 5, "config": "a", "width": 0.25, "resolution": 64,
        "quant": {"weight_bits": 4, "act_bits": 8, "first_weight_bits": 8}}


def test_config_c_matches_the_paper():
    model = build_model({"model": "codenet", "config": "c", "num_classes": 20}, quantize=False)
    assert model.config["resolution"] == 512
    params = count_params(model)
    rows = summarize(model, 512)
    macs = sum(r.macs for r in rows)
    taps = sum(r.macs for r in rows if r.kind.startswith("deform"))
    print(f"\nCoDeNet config c, 512², 20 classes: {params / 1e6:.3f} M params (paper 1.59 M), "
          f"{macs / 1e9:.3f} G MACs incl. {taps / 1e6:.1f} M deformable taps (paper 1.14 G)")
    assert abs(params / PAPER_PARAMS - 1) < 0.05
    assert abs(macs / PAPER_MACS - 1) < 0.05
    assert taps == 9 * (1024 * 16 * 16 + 256 * 32 * 32 + 128 * 64 * 64)  # 9.4 M: neck1..3 at 16², 32², 64²


def test_summary_counts_the_deformable_taps_and_the_offset_convs():
    """The square deformable conv applies `dw`'s weights through a gather, never through the conv's
    forward: `summarize` still gives the taps a row (9 MACs per output value, as a depthwise 3×3),
    after the offset conv's own row (1×1, c → 1)."""
    model = build_model(TINY, quantize=False)
    rows = summarize(model, TINY["resolution"])
    by_name = {r.name: r for r in rows}
    blocks = [name for name, m in model.named_modules() if isinstance(m, DeformConvBNAct)]
    assert len(blocks) == 3
    for name in blocks:
        taps, offset = by_name[f"{name}.dw"], by_name[f"{name}.offset"]
        c, h, w = taps.out_shape
        assert taps.kind == "deform3x3/dw" and taps.macs == 9 * c * h * w and taps.params == 9 * c
        assert offset.kind == "conv1x1" and offset.out_shape == (1, h, w) and offset.macs == c * h * w
        assert rows.index(offset) < rows.index(taps)
    # every weight the model holds is in some row (BN affine parameters aside)
    bn = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert sum(r.params for r in rows) == count_params(model) - bn


@pytest.mark.parametrize("depthwise", [True, False])
def test_summary_counts_the_ablation_family_taps(depthwise):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 1), DeformConv3x3(8, 8, depthwise=depthwise, square=False))
    rows = {r.name: r for r in summarize(model, 6)}
    assert rows["1.offset"].kind == "conv3x3" and rows["1.offset"].macs == 18 * 8 * 9 * 36
    per_out = 9 if depthwise else 9 * 8
    assert rows["1"].kind == "deform3x3" + ("/dw" if depthwise else "") and rows["1"].macs == 8 * 36 * per_out


def test_default_quantization_is_w4a8():
    """Without "quant" CoDeNet is W4A8 with 8-bit first-layer weights (DiracDeltaNet keeps W4A4);
    the fields an explicit "quant" gives win, the others keep CoDeNet's defaults."""
    config = {"model": "codenet", "config": "a", "num_classes": 3, "width": 0.125, "resolution": 64}
    model = build_model(config)
    assert model.config["quant"] == {"quantize": True, "weight_bits": 4, "act_bits": 8, "first_weight_bits": 8,
                                     "fc_weight_bits": 8}
    assert model.backbone.stage2_0.branch_main[0].act.act_quant.bit_width() == 8
    assert model.backbone.stem.conv.quant_weight().bit_width == 8
    assert model.neck.neck1.conv.conv.quant_weight().bit_width == 4
    assert build_model(config, quantize=False).config["quant"]["act_bits"] == 8
    explicit = build_model({**config, "quant": {"act_bits": 4, "first_weight_bits": 6}})
    assert explicit.config["quant"] == {"quantize": True, "weight_bits": 4, "act_bits": 4, "first_weight_bits": 6,
                                        "fc_weight_bits": 8}
    assert explicit.backbone.stage2_0.branch_main[0].act.act_quant.bit_width() == 4
    dirac = build_model({"model": "diracdeltanet", "width": 0.25, "resolution": 32})
    assert dirac.config["quant"]["act_bits"] == 4


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


def test_depthwise_convs_are_linear_as_published():
    """ShuffleNetV2's depthwise convs end in BN and a signed quantizer (no ReLU); dw_relu=True
    builds the old variant with the ReLU after them."""
    model = build_model(TINY)
    for act in (model.backbone.stage2_0.branch_proj[0].act, model.backbone.stage3_1.branch_main[1].act):
        assert act.act_quant.is_signed and type(act).__name__ == "QuantIdentity"
    relu = build_model({**TINY, "dw_relu": True})
    assert not relu.backbone.stage3_1.branch_main[1].act.act_quant.is_signed
    assert type(build_model(TINY, quantize=False).backbone.stage3_1.branch_main[1].act).__name__ == "Identity"


@pytest.mark.parametrize("bad, match", [({"config": "z"}, "config"), ({"resolution": 100}, "multiple of 32"),
                                        ({"width": 0}, "width"), ({"num_classes": 0}, "num_classes"),
                                        ({"max_dilation": 99}, "max_dilation")])
def test_bad_settings(bad, match):
    with pytest.raises(ModelConfigError, match=match):
        build_model({**TINY, **bad}, quantize=False)


def test_exported_depthwise_outputs_are_signed_and_summary_shows_no_relu_after_them():
    """The exported CoDeNet: every backbone depthwise conv writes a signed tensor, and `codesign summary`
    lists it as linear (no ReLU); the neck's deformable convs and the 1×1 convs keep their ReLU."""
    from codesign.graph.stats import format_graph_summary
    from codesign.quant.export import export_model

    graph = export_model(build_model(TINY))
    rows = {line.split()[0]: line for line in format_graph_summary(graph).splitlines()[2:-1]}
    dws = [layer for layer in graph.layers if layer.op == "dwconv3x3" and layer.name.startswith("backbone")]
    assert dws and all(graph.tensors[layer.output].signed for layer in dws)
    assert all(" linear " in rows[layer.name] and "ReLU" not in rows[layer.name] for layer in dws)
    assert all(" ReLU " in rows[layer.name] for layer in graph.layers if layer.op in ("conv1x1", "deform3x3"))
