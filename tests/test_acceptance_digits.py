"""Acceptance on scikit-learn's digits: train float → QAT W4A4 with the `digits` preset (`make
demo`) and the `digits-quick` one (`make demo-quick`), export, and compare the golden model with the
fake-quant model (slow: a few CPU minutes)."""
import pytest

from codesign.data import load_dataset
from codesign.quant import export_model
from codesign.quant.compare import compare
from codesign.train.checkpoint import load_checkpoint
from codesign.train.trainer import PRESETS, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["digits", "digits-quick"])
def trained(request, tmp_path_factory):
    import dataclasses

    out = tmp_path_factory.mktemp("digits") / "model.pt"
    train(dataclasses.replace(PRESETS[request.param], out=str(out), progress=False))
    return load_checkpoint(out)


def test_digits_accuracy_and_golden_agreement(trained):
    model, meta = trained
    metrics = meta["metrics"]
    float_acc, qat_acc = metrics["float_acc"], metrics["qat_acc"]  # percent
    print(f"\nfloat {float_acc:.2f} %, W4A4 QAT {qat_acc:.2f} %")
    assert float_acc >= 95.0
    assert float_acc - qat_acc <= 1.5

    graph = export_model(model)
    test = load_dataset("digits", graph.tensors[graph.input].shape[0], "test")
    report = compare(model, graph, test.images, test.labels)
    print(report.format())
    assert report.top1_agreement >= 0.99
    assert abs(report.golden_accuracy - report.fakequant_accuracy) <= 0.005
    assert min(report.layer_identical.values()) >= 0.99
    assert abs(100 * report.fakequant_accuracy - qat_acc) < 1e-9  # the same model, the same test split
