"""CoDeNet through the command line: train → export → golden (AP50, boxes, PNGs) → compare."""
import re

import numpy as np
import pytest
from PIL import Image

from codesign.cli import main
from codesign.data.synthetic_voc import write_synthetic_voc
from codesign.data.voc import load_detection_set
from codesign.detection import draw_detections
from codesign.detection.train import evaluate_ap
from codesign.graph import load
from codesign.quant.compare import compare_detection, count_equal_boxes
from codesign.train.checkpoint import load_checkpoint

RES = 64


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny CoDeNet trained by `codesign train --model codenet`, exported by `codesign export`."""
    tmp = tmp_path_factory.mktemp("codenet-cli")
    voc = write_synthetic_voc(tmp / "shapes", 160, RES, seed=0)
    ckpt, ir = tmp / "codenet.pt", tmp / "codenet.ir"
    assert main(["train", "--model", '{"model": "codenet", "width": 0.25}', "--config", "a", "--dataset", str(voc),
                 "--resolution", str(RES), "--float-epochs", "12", "--qat-epochs", "1", "--batch-size", "16", "--lr", "0.01",
                 "--threads", "1", "--no-progress", "-o", str(ckpt)]) == 0
    assert main(["export", str(ckpt), "-o", str(ir)]) == 0
    return voc, ckpt, ir


def test_train_command_builds_the_detector_it_was_asked_for(trained):
    _, ckpt, ir = trained
    model, meta = load_checkpoint(ckpt)
    assert (model.config["model"], model.config["config"], model.config["width"]) == ("codenet", "a", 0.25)
    assert model.config["quant"]["act_bits"] == 8 and model.config["quant"]["weight_bits"] == 4
    assert [h["phase"] for h in meta["metrics"]["history"]] == ["float"] * 12 + ["qat"]
    assert meta["metrics"]["qat_ap50"] > 1  # it has learned something, so the AP checks below can fail
    assert load(ir).meta["class_names"] == ["circle", "square", "triangle", "cross", "star"]


def test_golden_reports_ap50_and_draws_boxes(trained, tmp_path, capsys):
    voc, ckpt, ir = trained
    assert main(["golden", "--ir", str(ir), "--dataset", str(voc), "--split", "test", "--draw", str(tmp_path),
                 "--score", "0.05"]) == 0
    out = capsys.readouterr().out
    golden_ap = float(re.search(r"AP50 \(VOC07 11-point\) on (\d+) images .*: ([\d.]+) %", out).group(2))
    data = load_detection_set(voc, "test", RES)
    fq_ap, _ = evaluate_ap(load_checkpoint(ckpt)[0], data)
    assert fq_ap > 1 and abs(golden_ap - fq_ap) <= 1.0, out  # the same model, integer vs fake-quant
    for name in ("circle", "star"):
        assert re.search(rf"^  {name} +(n/a|[\d.]+) %$", out, re.M), out
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.stem for p in pngs] == sorted(data.ids)
    pixels = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert pixels.shape == (4 * RES, 4 * RES, 3)  # enlarged for small inputs
    white = np.all(pixels == 255, axis=-1)
    assert white.any()  # the ground-truth boxes


def test_golden_prints_boxes_of_image_files(trained, capsys):
    voc, _, ir = trained
    images = sorted((voc / "JPEGImages").glob("*.jpg"))[:2]
    assert main(["golden", "--ir", str(ir), "--images", *map(str, images), "--score", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{images[0]}: 100 boxes with score ≥ 0.0: ")
    assert re.search(r"(circle|square|triangle|cross|star) [\d.]+ \[-?\d+, -?\d+, -?\d+, -?\d+\]", lines[0])


def test_compare_finds_the_golden_boxes_equal(trained, capsys):
    voc, ckpt, ir = trained
    report = compare_detection(load_checkpoint(ckpt)[0], load(ir), load_detection_set(voc, "test", RES),
                               min_score=0.02)
    assert report.boxes >= 20  # enough confident boxes for the share to mean something
    # the trained preset is held to 98 % in tests/test_detection.py; a wrong dequantization gave 33 %
    assert report.box_agreement >= 0.95, report.format()
    assert report.fakequant_ap50 > 1 and abs(report.golden_ap50 - report.fakequant_ap50) <= 1.0
    assert min(report.layer_identical.values()) >= 0.9  # spread seeds again (94.7 % when written)
    assert main(["compare", "--checkpoint", str(ckpt), "--ir", str(ir), "--dataset", str(voc), "--score", "0.02"]) == 0
    assert "equal boxes golden vs fake-quant" in capsys.readouterr().out


def test_count_equal_boxes_needs_class_box_and_score():
    from codesign.detection import Detections

    def d(boxes, scores, labels):
        return Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.asarray(labels))

    ref = [d([[0, 0, 10, 10], [5, 5, 9, 9], [1, 1, 2, 2]], [0.9, 0.5, 0.01], [0, 1, 0])]
    assert count_equal_boxes(ref, ref, 0.1) == (4, 4)  # 2 boxes each way; 0.01 is below min_score
    near = [d([[0, 0, 10, 10.5], [5, 5, 9, 9]], [0.94, 0.5], [0, 0])]  # the first equal, the second's class not
    assert count_equal_boxes(ref, near, 0.1) == (4, 2)
    assert count_equal_boxes(ref, [d([[0, 0, 10, 12]], [0.9], [0])], 0.1) == (3, 0)  # IoU 0.83
    assert count_equal_boxes(ref, [d([[0, 0, 10, 10]], [0.84], [0])], 0.1) == (3, 0)  # score 0.06 off
    assert count_equal_boxes(ref, [d(np.zeros((0, 4)), [], [])], 0.1) == (2, 0)
    extra = [d([[0, 0, 10, 10], [5, 5, 9, 9], [20, 20, 30, 30]], [0.9, 0.5, 0.7], [0, 1, 2])]
    assert count_equal_boxes(ref, extra, 0.1) == (5, 4)  # a box only the other model has counts too
    flat = [d([[3, 3, 3, 8]], [0.5], [0])]  # zero width (an untrained size head): equal to itself only
    assert count_equal_boxes(flat, flat, 0.1) == (2, 2)
    assert count_equal_boxes(flat, [d([[3, 3, 3, 9]], [0.5], [0])], 0.1) == (2, 0)
    with pytest.raises(ValueError, match="1 and 2 images"):
        count_equal_boxes(ref, ref + ref, 0.1, 0.5)


def test_train_picks_the_trainer_by_the_last_model_option(capsys):
    from codesign.cli import _train_model

    assert _train_model(["--model", "diracdeltanet", "--model=codenet"]) == "codenet"
    assert _train_model(["--model", '{"model": "codenet", "width": 0.5}']) == "codenet"
    assert _train_model(["--lr", "0.1", "--model"]) is None  # argparse reports the missing value
    assert _train_model(["--model", "{not json"]) is None
    # no abbreviations: `--mod codenet` must not train a classifier; a usage error is one line
    assert main(["train", "--mod", "codenet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized arguments: --mod codenet" in err[0]
    assert main(["train", "--model", "no/such.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no/such.json: no such model config" in err[0]


def test_compare_refuses_a_checkpoint_the_ir_was_not_exported_from(trained, tiny_graph, tmp_path, capsys):
    from codesign.graph import save

    voc, ckpt, _ = trained
    other = save(tiny_graph, tmp_path / "dirac.ir")
    assert main(["compare", "--checkpoint", str(ckpt), "--ir", str(other), "--dataset", str(voc)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was not exported from" in err[0] and "model ('diracdeltanet' vs 'codenet')" in err[0]


def test_golden_refuses_a_data_set_with_other_classes(trained, tmp_path, capsys):
    import shutil

    voc, _, ir = trained
    other = shutil.copytree(voc, tmp_path / "voc")
    names = (other / "classes.txt").read_text().split()
    (other / "classes.txt").write_text("\n".join(names + ["hexagon"]) + "\n")
    assert main(["golden", "--ir", str(ir), "--dataset", str(other)]) == 2
    assert "has 6 classes but the detector's heatmap has 5" in capsys.readouterr().err


def test_detection_commands_reject_bad_input(trained, tmp_path, capsys):
    voc, ckpt, ir = trained
    assert main(["golden", "--ir", str(ir), "--dataset", str(voc), "--split", "nope"]) == 2
    assert main(["golden", "--ir", str(ir), "--dataset", str(tmp_path / "missing")]) == 2
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert main(["golden", "--ir", str(ir), "--images", str(bad)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("codesign: error:")]
    assert len(errors) == 3 and "nope" in errors[0] and "bad.jpg" in errors[2], errors
    assert main(["train", "--model", "codenet", "--config", "z"]) == 2  # a usage error: one line, no usage block
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --config: invalid choice: 'z'" in err[0]


def test_one_flag_per_bit_width_across_commands(capsys):
    """--weight-bits / --act-bits / --first-bits mean the same in summary, train and the detector's train,
    and reach the model config each builds."""
    from codesign.cli import train_parser
    from codesign.detection.train import detection_config_from_args
    from codesign.train.trainer import config_from_args

    det = train_parser("codenet").parse_args(["--model", "codenet", "--act-bits", "6", "--weight-bits", "3"])
    det.model_config = None
    assert detection_config_from_args(det).model["quant"] == {"act_bits": 6, "weight_bits": 3}
    cls = train_parser(None).parse_args(["--model", "diracdeltanet", "--act-bits", "2", "--first-bits", "6"])
    quant = config_from_args(cls).model["quant"]
    assert quant["act_bits"] == 2 and quant["first_weight_bits"] == 6
    assert main(["summary", "--model", "diracdeltanet", "--act-bits", "2", "--resolution", "32", "--classes", "10"]) == 0
    with pytest.raises(SystemExit):
        main(["train", "--model", "codenet", "--help"])
    out = capsys.readouterr().out
    assert "--act-bits" in out and "--synthetic-images" in out and "--fc-bits" not in out
