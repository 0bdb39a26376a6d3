"""One front door (issue #13): our own DiracDeltaNet and CoDeNet exported by `codesign export` (the module walk) and
through Brevitas → QONNX → `codesign import` give the same integer IR.

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
from .qonnx_models import calibrated  # noqa: E402

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


def _mini_detector() -> torch.nn.Module:
    """CoDeNet with its backbone cut to an input quantizer and a 1×1 conv, one neck block (the square deformable
    3×3, a 1×1, the nearest 2× upsample) and two heads (1×1, depthwise 3×3, the unquantized 1×1 output):
    every op of CoDeNet the backbone does not have, at a size the fast suite can export."""
    from collections import OrderedDict

    from codesign.models.codenet import CoDeNet, Head, NeckBlock
    from codesign.models.layers import ConvBNAct, InputQuant, QuantSpec

    torch.manual_seed(0)
    spec = QuantSpec(act_bits=8, weight_bits=4)
    model = CoDeNet(num_classes=3, config="a", width=0.125, resolution=32, spec=spec)
    model.backbone = torch.nn.Sequential(OrderedDict(input=InputQuant(spec), conv=ConvBNAct(3, 8, spec)))
    model.neck = torch.nn.Sequential(OrderedDict(neck1=NeckBlock(8, 8, spec)))
    model.heads = torch.nn.ModuleDict({"heatmap": Head(8, 3, spec), "size": Head(8, 2, spec)})
    # the offset conv starts at d = 1 everywhere (weight 0); random weights make the dilation vary per pixel
    torch.nn.init.normal_(model.neck.neck1.deform.offset.weight, 0.0, 2.0)
    return calibrated(model, 16)


@pytest.fixture(scope="module")
def mini_detector(tmp_path_factory):
    model = _mini_detector()
    return model, export_qonnx(model, tmp_path_factory.mktemp("det") / "mini_detector.onnx", 16)


def test_codenet_ops_round_trip_through_qonnx(mini_detector):
    """The deformable conv is one QONNX node (codesign's SquareDeformConv, not the tracer's gather arithmetic),
    the upsample one Resize, and the heads' float outputs plain Convs; imported, they are the layers
    `codesign export` writes, with identical integers on every tensor."""
    import onnx

    model, onnx_path = mini_detector
    ops = [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
    assert ops.count("SquareDeformConv") == 1 and ops.count("Resize") == 1
    assert not set(ops) & {"GatherElements", "Gather", "Einsum", "Where"}
    exported, imported = export_model(model, 16), import_qonnx(onnx_path)
    pairs = _correspondence(exported, imported)
    assert {"deform3x3", "upsample2x", "conv1x1_head"} <= {lay.op for lay in imported.layers}
    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    ya, ta = GoldenModel(exported).run(images, trace=True)
    _, tb = GoldenModel(imported).run(images, trace=True)
    d = next(lay.inputs[1] for lay in exported.layers if lay.op == "deform3x3")
    assert len(np.unique(ta[d])) >= 3, "the dilation map is (nearly) constant: the test would not see the gather"
    for name_a, name_b in pairs.items():
        assert np.array_equal(ta[name_a], tb[name_b]), name_a


def test_qonnx_executes_codesigns_deformable_node_as_the_golden_model(mini_detector):
    """qonnx's reference executor runs the SquareDeformConv node (its implementation is found through the node's
    domain, codesign.importers.qonnx_ops); its activations equal the golden model's integers. The requants
    approximate float BN (M/2^S), so a value within float error of a rounding boundary may differ."""
    from .test_qonnx_import import _reference

    _, onnx_path = mini_detector
    graph = import_qonnx(onnx_path)
    golden = GoldenModel(graph)
    deform = next(lay.name for lay in graph.layers if lay.op == "deform3x3")
    same = total = same_deform = 0
    for seed in range(3):  # the exported graph takes one image
        x = np.random.default_rng(seed).random((1, 3, 16, 16), dtype=np.float32)
        _, acts = _reference(onnx_path, graph, x)
        _, trace = golden.run(golden.quantize_input(x), trace=True)
        same += sum(int(np.sum(trace[k] == v)) for k, v in acts.items())
        total += sum(v.size for v in acts.values())
        same_deform += int(np.sum(trace[deform] == acts[deform]))
    assert same / total >= 0.99, f"{same} of {total}"
    assert same_deform >= 0.99 * 3 * np.prod(graph.tensors[deform].shape)


def test_a_traced_gather_is_refused_by_name(tmp_path):
    """A deformable conv that is not codesign's node (here the float ablation module, which torch.onnx traces into
    index arithmetic and GatherElements) is refused at the gather, naming the node the importer does take."""
    from codesign.models.deform import DeformConv3x3
    from codesign.models.layers import InputQuant, QuantSpec

    model = torch.nn.Sequential(InputQuant(QuantSpec(act_bits=8)), DeformConv3x3(3, 3)).eval()
    with pytest.raises(QonnxImportError) as e:
        import_qonnx(export_qonnx(model, tmp_path / "traced.onnx", 16))
    msg = str(e.value)
    assert "\n" not in msg
    assert "(GatherElements)" in msg and "deformable convolution's sampling" in msg and "SquareDeformConv" in msg


@pytest.mark.slow  # ~2 min on 2 cores, most of it torch.onnx and qonnx's cleanup of ~500 nodes
def test_codenet_through_qonnx_is_the_exported_codenet(tmp_path):
    """All of CoDeNet (stem conv2d, ShuffleNetV2 units, the 2-way shuffles, three neck blocks with the deformable
    conv and the upsample, three heads) through Brevitas → QONNX → import is the IR `codesign export` writes,
    with identical integers on every tensor for synthetic VOC images."""
    from codesign.data.synthetic_voc import synthetic_image

    from .test_codenet_ir import CODENET_TINY

    model = random_calibrated_model(CODENET_TINY)
    exported = export_model(model)
    res = model.config["resolution"]
    imported = import_qonnx(export_qonnx(model, tmp_path / "codenet.onnx", res))
    pairs = _correspondence(exported, imported)
    ops = [lay.op for lay in imported.layers]
    assert ops.count("deform3x3") == ops.count("upsample2x") == ops.count("conv1x1_head") == 3
    shuffles = [lay.attrs.get("interleave") for lay in imported.layers if lay.op == "concat"]
    assert shuffles == [lay.attrs.get("interleave") for lay in exported.layers if lay.op == "concat"]
    assert shuffles == [2] * 16  # one per ShuffleNetV2 unit: 4 + 8 + 4
    images = np.stack([synthetic_image(0, i, res)[0] for i in range(16)])
    _, ta = GoldenModel(exported).run(images, trace=True)
    _, tb = GoldenModel(imported).run(images, trace=True)
    for name_a, name_b in pairs.items():
        assert np.array_equal(ta[name_a], tb[name_b]), name_a
