"""CenterNet targets, loss, NumPy decode, VOC07 AP50, drawing and the detection trainer."""
import argparse
import math

import numpy as np
import pytest
import torch

from codesign.data.synthetic_voc import write_synthetic_voc
from codesign.data.voc import load_detection_set
from codesign.detection import (Detections, centernet_targets, class_ap, decode, detection_loss, draw_detections,
                                focal_loss, gaussian_radius, mean_ap, voc07_ap)
from codesign.decode import maxpool3x3, sigmoid
from codesign.detection.targets import batch_targets
from codesign.detection.train import (DetectionTrainConfig, add_detection_train_arguments, augment,
                                      detection_config_from_args, evaluate_ap, train_detection)
from codesign.models import build_model
from codesign.train.checkpoint import load_checkpoint


def dets(boxes, scores, labels=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(boxes, np.asarray(scores, np.float32), np.asarray(labels or [0] * len(boxes), np.int64))


def test_voc07_ap_by_hand():
    # Class 0. Image A: g1 = [0,0,10,10], g2 = [20,20,30,30] difficult. Image B: g3 = [0,0,10,10].
    # npos = 2 (g1, g3; difficult boxes are not positives).
    # Detections, best first:
    #   d1 A [0,0,10,10]  0.9  IoU(g1) = 1            → TP (g1 taken)
    #   d2 B [0,0,10,5]   0.8  IoU(g3) = 50/100 = 0.5 → FP (needs IoU > 0.5)
    #   d3 A [20,20,30,30] 0.7 best match g2, difficult → ignored (neither TP nor FP)
    #   d4 A [1,0,10,10]  0.6  IoU(g1) = 0.9, g1 taken → FP (duplicate)
    #   d5 B [0,0,10,9]   0.5  IoU(g3) = 0.9          → TP
    # cumulative TP 1,1,1,1,2; FP 0,1,1,2,2 → recall .5,.5,.5,.5,1; precision 1,.5,.5,1/3,.5
    # 11-point: t = 0,.1,…,.5 (6 points) → max precision at recall ≥ t = 1;
    #           t = .6,…,1 (5 points) → only the last point reaches: 0.5.  AP = (6·1 + 5·0.5)/11 = 8.5/11
    detections = [dets([[0, 0, 10, 10], [20, 20, 30, 30], [1, 0, 10, 10]], [0.9, 0.7, 0.6]),
                  dets([[0, 0, 10, 5], [0, 0, 10, 9]], [0.8, 0.5])]
    gt_boxes = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([[0, 0, 10, 10]], np.float32)]
    gt_labels = [np.array([0, 0]), np.array([0])]
    gt_difficult = [np.array([False, True]), np.array([False])]
    assert class_ap(detections, gt_boxes, gt_labels, gt_difficult, 0) == pytest.approx(8.5 / 11)
    # Class 1 has one ground-truth box and no detection: AP 0. Class 2 has no ground truth: NaN, not averaged.
    gt_labels_3 = [np.array([0, 0]), np.array([1])]
    gt_boxes_3 = [gt_boxes[0], np.array([[50, 50, 60, 60]], np.float32)]
    m, per_class = mean_ap(detections, gt_boxes_3, gt_labels_3, gt_difficult, num_classes=3)
    # class 0 now has npos = 1 (g1 only): d1 TP, d2 FP, d3 ignored, d4 FP, d5 FP (no class-0 box in B)
    # recall 1 from the first detection on, precision 1 there → AP 1
    assert per_class[0] == pytest.approx(100) and per_class[1] == 0 and math.isnan(per_class[2])
    assert m == pytest.approx(50)


def test_voc07_ap_edges():
    assert voc07_ap(np.array([1.0]), np.array([1.0])) == pytest.approx(1.0)
    assert voc07_ap(np.array([0.25]), np.array([1.0])) == pytest.approx(3 / 11)  # t = 0, .1, .2
    empty = [dets(np.zeros((0, 4)), [])]
    assert class_ap(empty, [np.array([[0, 0, 1, 1]], np.float32)], [np.array([0])], [np.array([False])], 0) == 0.0


def test_decode_finds_planted_peaks():
    c, h, w = 3, 16, 20
    heat = np.full((c, h, w), -8.0, np.float32)
    size = np.zeros((2, h, w), np.float32)
    offset = np.zeros((2, h, w), np.float32)
    heat[1, 5, 7], size[:, 5, 7], offset[:, 5, 7] = 3.0, (4, 2), (0.5, 0.25)
    heat[1, 5, 8] = 2.5  # a neighbour of the first peak: suppressed by the 3×3 max-pool
    heat[0, 12, 2], size[:, 12, 2] = 1.0, (2, 6)
    out = decode(heat, size, offset, k=3, stride=4)
    assert out.labels[:2].tolist() == [1, 0]
    np.testing.assert_allclose(out.scores[:2], sigmoid(np.array([3.0, 1.0], np.float32)), rtol=1e-6)
    # centre (7.5, 5.25) cells, size 4×2 cells → ×4 pixels
    np.testing.assert_allclose(out.boxes[0], np.array([7.5 - 2, 5.25 - 1, 7.5 + 2, 5.25 + 1]) * 4)
    np.testing.assert_allclose(out.boxes[1], np.array([2 - 1, 12 - 3, 2 + 1, 12 + 3]) * 4)
    assert out.scores[2] < 0.01  # the rest is background
    assert len(decode(heat, size, offset).scores) == 100


def test_maxpool3x3():
    x = np.random.default_rng(0).normal(size=(2, 5, 6)).astype(np.float32)
    ref = torch.nn.functional.max_pool2d(torch.from_numpy(x)[None], 3, 1, 1)[0].numpy()
    np.testing.assert_array_equal(maxpool3x3(x), ref)


def test_targets_round_trip_through_decode():
    boxes = np.array([[8, 12, 40, 30], [60, 60, 100, 124]], np.float32)
    labels = np.array([2, 0])
    t = centernet_targets(boxes, labels, num_classes=3, out_hw=(32, 32), stride=4)
    assert t["heatmap"].max() == 1.0 and t["heatmap"][2, 5, 6] == 1.0 and t["mask"].sum() == 2
    np.testing.assert_allclose(t["size"][:, 5, 6], [8, 4.5])
    logits = np.log(np.clip(t["heatmap"], 1e-6, 1 - 1e-6) / np.clip(1 - t["heatmap"], 1e-6, 1))
    out = decode(logits, t["size"], t["offset"], k=2)
    order = np.argsort(out.labels)[::-1]
    np.testing.assert_allclose(out.boxes[order], boxes, atol=1e-4)
    assert gaussian_radius(10, 10) > 0


def test_focal_loss_prefers_the_right_heatmap():
    t = torch.from_numpy(centernet_targets(np.array([[0, 0, 32, 32]], np.float32), np.array([0]), 1, (16, 16), 4)
                         ["heatmap"])[None]
    good = torch.where(t == 1, torch.tensor(6.0), torch.tensor(-6.0))
    assert focal_loss(good, t) < 0.01 < focal_loss(torch.zeros_like(t), t)
    assert torch.isfinite(focal_loss(torch.full_like(t, -200.0), t))


def test_augment_moves_boxes_with_pixels():
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 4:10, 2:8] = 255
    boxes, labels = [np.array([[2, 4, 8, 10]], np.float32)], [np.array([1])]
    rng = np.random.default_rng(0)
    for _ in range(10):
        out, b, l = augment(image, boxes, labels, shift=6, hflip=True, rng=rng)
        if len(b[0]):
            x0, y0, x1, y1 = b[0][0].astype(int)
            assert out[0, y0:y1, x0:x1].min() == 255 and out[0].sum() == 255 * 3 * (x1 - x0) * (y1 - y0)
            assert l[0].tolist() == [1]


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return write_synthetic_voc(tmp_path_factory.mktemp("voc") / "synthetic", 64, 64, seed=0)


def test_a_few_steps_reduce_the_loss(tiny_voc):
    data = load_detection_set(tiny_voc, "train", 64)
    torch.manual_seed(0)
    model = build_model({"model": "codenet", "config": "a", "num_classes": 5, "width": 0.25, "resolution": 64},
                        quantize=False).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    targets = batch_targets(data.boxes[:16], data.labels[:16], 5, (16, 16), 4)
    x = data.to_tensor()[:16]
    losses = []
    for _ in range(15):
        loss, _ = detection_loss(model(x), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_training_run_writes_a_checkpoint(tiny_voc, tmp_path):
    cfg = DetectionTrainConfig(model={"model": "codenet", "config": "a", "width": 0.25}, dataset=str(tiny_voc),
                               resolution=64, float_epochs=1, qat_epochs=1, batch_size=16, out=str(tmp_path / "c.pt"),
                               progress=False, draw=2)
    path = train_detection(cfg, log=lambda msg: None)
    model, meta = load_checkpoint(path)
    assert meta["config"]["quant"]["act_bits"] == 8 and meta["config"]["quant"]["quantize"]
    assert set(meta["metrics"]["qat_class_ap50"]) == {"circle", "square", "triangle", "cross", "star"}
    assert [h["phase"] for h in meta["metrics"]["history"]] == ["float", "qat"]
    assert len(list((tmp_path / "c-detections").glob("*.png"))) == 2
    ap, _ = evaluate_ap(model, load_detection_set(tiny_voc, "test", 64))
    assert ap == pytest.approx(meta["metrics"]["qat_ap50"])


def test_draw_detections(tmp_path):
    from PIL import Image

    image = np.zeros((32, 32, 3), np.uint8)
    path = draw_detections(image, dets([[4, 4, 20, 20], [1, 1, 2, 2]], [0.9, 0.1]), ["thing"], tmp_path / "d.png",
                           ground_truth=np.array([[5, 5, 21, 21]]), scale=2)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (64, 64)
        assert np.asarray(im).any()


def test_command_line_options():
    parser = argparse.ArgumentParser()
    add_detection_train_arguments(parser)
    cfg = detection_config_from_args(parser.parse_args(
        ["--config", "b", "--width", "0.5", "--float-epochs", "3", "--no-hflip", "--model-config",
         '{"max_dilation": 5}']))
    assert cfg.model == {"model": "codenet", "config": "b", "width": 0.5, "max_dilation": 5}
    assert cfg.float_epochs == 3 and cfg.hflip is False and cfg.dataset == "synthetic"
    assert detection_config_from_args(parser.parse_args([])) == DetectionTrainConfig()


@pytest.mark.slow
def test_synthetic_preset_float_and_qat_ap(tmp_path):
    """The preset end to end (~9 CPU minutes): a meaningful float AP50, W4A8 QAT within 3 points of
    it, and the golden model's detections equal to the fake-quant model's on ≥ 98 % of boxes."""
    from codesign.data.synthetic_voc import DEMO_SET
    from codesign.quant import export_model
    from codesign.quant.compare import compare_detection

    cfg = DetectionTrainConfig(out=str(tmp_path / "codenet.pt"), progress=False)
    model, meta = load_checkpoint(train_detection(cfg))
    float_ap, qat_ap = meta["metrics"]["float_ap50"], meta["metrics"]["qat_ap50"]
    # the same images the preset trained and tested on: the generator is deterministic
    voc = write_synthetic_voc(tmp_path / "shapes", DEMO_SET["num_images"], cfg.resolution, seed=cfg.seed)
    report = compare_detection(model, export_model(model), load_detection_set(voc, cfg.test_split, cfg.resolution))
    print(f"\nsynthetic VOC AP50: float {float_ap:.2f} %, W4A8 QAT {qat_ap:.2f} % ({meta['metrics']['wall_s']} s)\n"
          + report.format())
    assert float_ap >= 40 and qat_ap >= float_ap - 3  # seed 0: 75.9 and 76.5 % when written
    assert report.fakequant_ap50 == pytest.approx(qat_ap)
    assert report.boxes >= 400 and report.box_agreement >= 0.98
    assert abs(report.golden_ap50 - qat_ap) <= 0.5
