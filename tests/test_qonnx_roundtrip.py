"""One front door (issue #13): our own DiracDeltaNet exported by `codesign export` (the module walk) and through
Brevitas → QONNX → `codesign import` gives the same integer IR, and CoDeNet's QONNX is refused by name.

The two IRs are structurally equal: the same layers with the same ops, attributes and parameters (weights,
M, B, S), wired the same way, over tensors with the same shapes, bits and scales. They differ only in names
(module paths against ONNX node names), in `meta` (model config against importer provenance), and in the
order of two independent layers of a down block (the skip and main branches' 1×1 convs, which the QONNX
graph lists the other way round; the golden model's results do not depend on it). `_correspondence` pairs
the layers by walking both graphs back from their outputs, so neither names nor that order matter.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

pytest.importorskip("qonnx")

from codesign.data import load_digits  # noqa: E402
from codesign.golden import GoldenModel  # noqa: E402
from codesign.graph import Graph  # noqa: E402
from codesign.importers.qonnx import QonnxImportError, import_qonnx  # noqa: E402
from codesign.models.calibrated import random_calibrated_model  # noqa: E402
from codesign.quant import export_model  # noqa: E402
from codesign.quant.qonnx_export import export_qonnx  # noqa: E402

from .conftest import TINY  # noqa: E402

# the `digits` training preset's model (codesign/train/trainer.py), calibrated instead of trained
DIGITS = {"model": "diracdeltanet", "num_classes": 10, "width": 0.5, "resolution": 32}


def _correspondence(a: Graph, b: Graph, a_outputs: list[str] | None = None) -> dict[str, str]:
    """Tensor names of `a` → those of `b`, pairing producers from the graph outputs (or `a_outputs`: the
    part of `a` that `b` is) back to the input; an AssertionError names the first pair of layers that
    differ (op, attributes, parameters, tensor info)."""
    pa = {lay.output: lay for lay in a.layers}
    pb = {lay.output: lay for lay in b.layers}
    pairs: dict[str, str] = {a.input: b.input}
    todo = list(zip(a_outputs or a.outputs, b.outputs, strict=True))
    while todo:
        ta, tb = todo.pop()
        if ta in pairs:
            assert pairs[ta] == tb, f"{ta} pairs with both {pairs[ta]} and {tb}"
            continue
        assert ta != a.input and tb != b.input, f"{ta} / {tb}: one is the graph input, the other is not"
        la, lb = pa[ta], pb[tb]
        where = f"layer {la.name} (export) / {lb.name} (import)"
        assert (la.op, la.attrs) == (lb.op, lb.attrs), where
        assert la.params.keys() == lb.params.keys(), where
        for k in la.params:
            assert la.params[k].dtype == lb.params[k].dtype and np.array_equal(la.params[k], lb.params[k]), \
                f"{where}: parameter {k}"
        assert a.tensors[ta] == b.tensors[tb], f"{where}: {a.tensors[ta]} != {b.tensors[tb]}"
        pairs[ta] = tb
        todo += list(zip(la.inputs, lb.inputs, strict=True))
    assert len(set(pairs.values())) == len(pairs), "two tensors of the export map to one of the import"
    assert len(pairs) == len(b.tensors), "layers outside the outputs' cone"
    assert a_outputs or len(pairs) == len(a.tensors), "layers outside the outputs' cone"
    return pairs


# the digits preset's size is slow (torch.onnx takes ~20 s over it): `make test-all`
@pytest.fixture(scope="module", params=[TINY, pytest.param(DIGITS, marks=pytest.mark.slow)], ids=["tiny", "digits"])
def exported_qonnx(request, tmp_path_factory):
    """(the Brevitas model, its QONNX file) for a DiracDeltaNet config."""
    model = random_calibrated_model(request.param, 0, 10, batch=16)
    return model, export_qonnx(model, tmp_path_factory.mktemp("rt") / "dirac.onnx", model.config["resolution"])


@pytest.fixture(scope="module")
def both_ways(exported_qonnx) -> tuple[Graph, Graph]:
    model, onnx_path = exported_qonnx
    return export_model(model), import_qonnx(onnx_path)


def test_qonnx_export_carries_quant_nodes_and_runs(exported_qonnx):
    """FINN/hls4ml users take the model as QONNX: Quant nodes with the scales and bit widths, executable by
    qonnx's reference executor with the same result as the Brevitas model."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model, onnx_path = exported_qonnx
    wrapper = ModelWrapper(str(onnx_path))
    ops = [n.op_type for n in wrapper.graph.node]
    assert ops.count("Quant") >= 30 and "Conv" in ops
    res = model.config["resolution"]
    x = np.random.default_rng(11).integers(0, 256, (1, 3, res, res)).astype(np.float32) / 255
    out = execute_onnx(wrapper, {wrapper.graph.input[0].name: x})[wrapper.graph.output[0].name]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.allclose(out, ref, atol=1e-4) and out.argmax() == ref.argmax()


def test_diracdeltanet_through_qonnx_is_the_exported_ir(both_ways):
    exported, imported = both_ways
    pairs = _correspondence(exported, imported)
    ops = sorted({lay.op for lay in imported.layers})
    assert ops == ["concat", "conv1x1", "globalsumpool", "linear", "maxpool2x2", "shift", "slice"]
    assert len(pairs) == len(exported.tensors) and len(imported.layers) == len(exported.layers)
    # the model's rotations are the concats' `rotate`, not slices and a second concat
    assert [lay.attrs["rotate"] for lay in imported.layers if lay.op == "concat"] == \
        [lay.attrs["rotate"] for lay in exported.layers if lay.op == "concat"]
    assert imported.meta["half_even"] == []  # float scales: no exact requant, no tie rule


def test_diracdeltanet_both_ways_gives_identical_golden_integers_on_digits(both_ways):
    exported, imported = both_ways
    pairs = _correspondence(exported, imported)
    images = load_digits(exported.tensors[exported.input].shape[0], "test").images  # 360 images
    ya, ta = GoldenModel(exported).run(images, trace=True)
    yb, tb = GoldenModel(imported).run(images, trace=True)
    assert ya.shape == (360, 1, 1, 10)
    assert np.array_equal(ya, yb)
    for name_a, name_b in pairs.items():  # every intermediate tensor too, not just the logits
        assert np.array_equal(ta[name_a], tb[name_b]), name_a


def _deform_net() -> torch.nn.Module:
    """The smallest graph with CoDeNet's deformable block: input quantizer, a 1×1 conv, DeformConvBNAct."""
    from codesign.models.deform import DeformConvBNAct
    from codesign.models.layers import ConvBNAct, InputQuant, QuantSpec

    torch.manual_seed(0)
    spec = QuantSpec(act_bits=8)
    return torch.nn.Sequential(InputQuant(spec), ConvBNAct(3, 8, spec), DeformConvBNAct(8, spec)).eval()


def test_the_deformable_convolution_is_refused_by_name(tmp_path):
    onnx_path = export_qonnx(_deform_net(), tmp_path / "deform.onnx", 16)
    with pytest.raises(QonnxImportError) as e:
        import_qonnx(onnx_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert "(GatherElements)" in msg and "deformable convolution's sampling" in msg and "codesign export" in msg


@pytest.mark.slow
def test_codenet_through_qonnx_is_refused_at_its_first_deformable_conv(tmp_path):
    from .test_codenet_ir import CODENET_TINY

    model = random_calibrated_model(CODENET_TINY)
    onnx_path = export_qonnx(model, tmp_path / "codenet.onnx", model.config["resolution"])
    with pytest.raises(QonnxImportError, match=r"node '[^']+' \(GatherElements\)[^\n]*deformable"):
        import_qonnx(onnx_path)
    export_model(model)  # the module walk is CoDeNet's path


@pytest.mark.slow  # ~30 s, most of it torch.onnx
def test_codenet_backbone_through_qonnx_is_the_exported_backbone(tmp_path):
    """Everything of CoDeNet up to the neck (the stride-4 stem conv2d, ShuffleNetV2 units: split, depthwise
    3×3 stride 1 and 2, the 2-way channel shuffle as `concat` interleave 2, conv5) imports to the layers
    `codesign export` writes for it, with identical integers on synthetic VOC images. The neck is where the
    two paths part: its deformable convolution has no QONNX form (the tests above)."""
    from codesign.data.synthetic_voc import synthetic_image

    from .test_codenet_ir import CODENET_TINY

    model = random_calibrated_model(CODENET_TINY)
    exported = export_model(model)
    res = model.config["resolution"]
    imported = import_qonnx(export_qonnx(model.backbone, tmp_path / "backbone.onnx", res))
    pairs = _correspondence(exported, imported, ["backbone.conv5"])
    assert {"conv2d", "dwconv3x3"} <= {lay.op for lay in imported.layers}
    shuffles = [lay.attrs.get("interleave") for lay in imported.layers if lay.op == "concat"]
    assert shuffles == [lay.attrs.get("interleave") for lay in exported.layers if lay.op == "concat"]
    assert shuffles == [2] * 16  # one per ShuffleNetV2 unit: 4 + 8 + 4
    images = np.stack([synthetic_image(0, i, res)[0] for i in range(16)])
    _, ta = GoldenModel(exported).run(images, trace=True)
    yb, tb = GoldenModel(imported).run(images, trace=True)
    assert np.array_equal(ta["backbone.conv5"], yb)
    for name_a, name_b in pairs.items():
        assert np.array_equal(ta[name_a], tb[name_b]), name_a
