"""Data loaders, training (single process and DDP), checkpoints."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from codesign.data import DatasetError, ImageSet, load_dataset, load_digits, load_image_files, load_image_folder
from codesign.models import build_model
from codesign.train import (DIGITS_PRESET, CheckpointError, TrainConfig, add_train_arguments, evaluate,
                            load_checkpoint, save_checkpoint, train)
from codesign.train.trainer import augment, config_from_args

# One down-sampling stage at 16×16: trains in about a second per epoch.
TINY_NET = {"model": "diracdeltanet", "width": 0.125, "stage_blocks": [1], "resolution": 16}


def tiny_config(out: Path, **kw) -> TrainConfig:
    base = dict(model=TINY_NET, dataset="digits", float_epochs=1, qat_epochs=1, batch_size=32, subset=128,
                out=str(out), progress=False)
    return TrainConfig(**{**base, **kw})


# ---------------------------------------------------------------- data


def test_digits_shapes_splits_and_determinism():
    train_set, test_set = load_digits(32, "train"), load_digits(32, "test")
    assert (len(train_set), len(test_set)) == (1437, 360)
    assert train_set.images.shape == (1437, 32, 32, 3) and train_set.images.dtype == np.uint8
    assert train_set.labels.dtype == np.int64 and train_set.class_names == [str(i) for i in range(10)]
    assert np.array_equal(train_set.images[..., 0], train_set.images[..., 2])  # gray replicated
    assert train_set.images.max() == 255
    assert set(np.bincount(test_set.labels)) <= {35, 36, 37}  # stratified
    again = load_digits(32, "test")
    assert np.array_equal(again.images, test_set.images) and np.array_equal(again.labels, test_set.labels)
    assert not np.array_equal(load_digits(32, "test", seed=1).labels, test_set.labels)
    x = test_set.to_tensor()
    assert x.shape == (360, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x * 255, torch.from_numpy(test_set.images).permute(0, 3, 1, 2).float())
    assert load_digits(8, "test").images.shape == (360, 8, 8, 3)
    with pytest.raises(DatasetError, match="split"):
        load_digits(32, "val")


def write_png(path: Path, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def test_image_folder_split_and_preprocessing(tmp_path):
    for i in range(5):
        write_png(tmp_path / "cat" / f"{i}.png", (20, 12), 10 + i)
        write_png(tmp_path / "ant" / f"{i}.PNG", (12, 30), 200 + i)
    (tmp_path / "ant" / "notes.txt").write_text("ignored")
    train_set = load_image_folder(tmp_path, 8, "train")
    test_set = load_dataset(str(tmp_path), 8, "test")
    assert train_set.class_names == ["ant", "cat"]
    assert (len(train_set), len(test_set)) == (8, 2)
    assert sorted(test_set.labels.tolist()) == [0, 1]
    assert train_set.images.shape == (8, 8, 8, 3) and train_set.images.dtype == np.uint8
    # uniform images stay uniform through resize + crop; ants are bright, cats dark
    assert all((img == img[0, 0, 0]).all() for img in train_set.images)
    assert ((train_set.images[:, 0, 0, 0] > 100) == (train_set.labels == 0)).all()
    pixel_sets = [set(map(bytes, s.images)) for s in (train_set, test_set)]
    assert not pixel_sets[0] & pixel_sets[1]


def test_image_folder_train_val_layout(tmp_path):
    for split, n in (("train", 3), ("val", 1)):
        for c in ("b", "a"):
            for i in range(n):
                write_png(tmp_path / split / c / f"{i}.jpg", (9, 9), 50)
    assert len(load_image_folder(tmp_path, 4, "train")) == 6
    val = load_image_folder(tmp_path, 4, "test")
    assert len(val) == 2 and val.class_names == ["a", "b"]
    write_png(tmp_path / "val" / "zebra" / "0.png", (9, 9), 0)
    with pytest.raises(DatasetError, match="zebra"):
        load_image_folder(tmp_path, 4, "test")


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing", 8, "train")
    with pytest.raises(DatasetError, match="no class"):
        load_image_folder(tmp_path, 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_image_folder(tmp_path, 8)
    bad = tmp_path / "empty" / "broken.png"  # a class of one image: it lands in the test split
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match="broken.png") as e:
        load_image_folder(tmp_path, 8, "test")
    assert "\n" not in str(e.value)
    with pytest.raises(DatasetError, match="broken.png"):
        load_image_files([bad], 8)


def test_augment_stays_on_pixel_grid():
    images = torch.from_numpy(load_digits(16, "test").images[:8])
    gen = torch.Generator().manual_seed(0)
    out = augment(images, 2, True, gen)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert set(out.unique().tolist()) <= set(images.unique().tolist()) | {0}
    assert torch.equal(augment(images, 0, False, gen), images)


# ---------------------------------------------------------------- training and checkpoints


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return train(tiny_config(tmp_path_factory.mktemp("train") / "tiny.pt"))


def test_tiny_training_checkpoint_reloads_identically(tiny_checkpoint):
    model, meta = load_checkpoint(tiny_checkpoint)
    assert not model.training
    metrics = meta["metrics"]
    assert meta["config"]["num_classes"] == 10 and meta["config"]["quant"]["quantize"]
    assert [h["phase"] for h in metrics["history"]] == ["float", "qat"]
    assert set(metrics) >= {"float_acc", "qat_acc", "epochs", "history"}
    # the reloaded model is the trained one: same test accuracy as measured during training
    test_set = load_digits(16, "test").take(128)
    assert evaluate(model, test_set) == metrics["qat_acc"]
    x = test_set.to_tensor()[:16]
    again, _ = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    float_twin, _ = load_checkpoint(tiny_checkpoint, quantize=False)
    assert not float_twin.config["quant"]["quantize"]


def test_training_is_deterministic(tiny_checkpoint, tmp_path):
    _, first = load_checkpoint(tiny_checkpoint)
    _, second = load_checkpoint(train(tiny_config(tmp_path / "again.pt")))
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("seconds", "images_per_s")} for e in h]  # noqa: E731
    assert strip(first["metrics"]["history"]) == strip(second["metrics"]["history"])


def test_checkpoint_roundtrip_during_activation_statistics(tmp_path):
    """Brevitas saves a quantizer still collecting statistics with its running average as the
    scale; the reloaded model must compute exactly what the saved one did in eval mode."""
    torch.manual_seed(0)
    model = build_model({**TINY_NET, "num_classes": 10})
    x = load_digits(16, "test").to_tensor()[:32]
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    model.eval()
    path = save_checkpoint(tmp_path / "mid.pt", model, {"note": "mid-calibration"})
    loaded, meta = load_checkpoint(path)
    assert meta["metrics"] == {"note": "mid-calibration"}
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_checkpoint_errors(tiny_checkpoint, tmp_path):
    def fails(path, match):
        with pytest.raises(CheckpointError, match=match) as e:
            load_checkpoint(path)
        assert "\n" not in str(e.value)

    fails(tmp_path / "nothing.pt", "does not exist")
    data = tiny_checkpoint.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    fails(tmp_path / "truncated.pt", "not a readable checkpoint")
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    fails(tmp_path / "random.pt", "not a readable checkpoint")
    payload = torch.load(tiny_checkpoint, weights_only=True)
    torch.save({**payload, "version": 2}, tmp_path / "v2.pt")
    fails(tmp_path / "v2.pt", "version 2")
    torch.save({"weights": payload["state_dict"]}, tmp_path / "other.pt")
    fails(tmp_path / "other.pt", "not a codesign checkpoint")
    torch.save({**payload, "config": {**payload["config"], "width": 0.25}}, tmp_path / "wide.pt")
    fails(tmp_path / "wide.pt", "does not match")
    torch.save({**payload, "config": {**payload["config"], "stage_blocks": [2]}}, tmp_path / "deep.pt")
    fails(tmp_path / "deep.pt", "missing")
    torch.save({**payload, "config": {**payload["config"], "model": "resnet"}}, tmp_path / "resnet.pt")
    fails(tmp_path / "resnet.pt", "unknown model")


def test_command_line_overrides_preset(tmp_path):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    model_file = tmp_path / "net.json"
    model_file.write_text(json.dumps(TINY_NET))
    cfg = config_from_args(parser.parse_args(["--model", str(model_file), "--qat-epochs", "3", "--no-progress"]))
    assert cfg.model == TINY_NET and cfg.qat_epochs == 3 and cfg.progress is False
    assert cfg.float_epochs == DIGITS_PRESET.float_epochs and cfg.lr == DIGITS_PRESET.lr
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "{not json"])


def test_class_count_mismatch_is_reported(tmp_path):
    from codesign.errors import CodesignError

    with pytest.raises(CodesignError, match="num_classes=3"):
        train(tiny_config(tmp_path / "x.pt", model={**TINY_NET, "num_classes": 3}))


def test_ddp_two_processes(tmp_path):
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "codesign.train", "--model", json.dumps(TINY_NET), "--subset", "128", "--batch-size", "32",
           "--float-epochs", "1", "--qat-epochs", "1", "--no-progress", "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir() if p.suffix in (".pt", ".tmp")] == ["ddp.pt"]
    assert proc.stdout.count("wrote") == 1  # only rank 0 prints
    model, meta = load_checkpoint(out)
    assert meta["metrics"]["world_size"] == 2
    assert evaluate(model, load_digits(16, "test").take(128)) == meta["metrics"]["qat_acc"]


@pytest.mark.slow
def test_digits_preset_accuracy(tmp_path):
    """Acceptance: the digits preset reaches >= 95 % float, W4A4 QAT within 1.5 points."""
    import dataclasses

    _, meta = load_checkpoint(train(dataclasses.replace(DIGITS_PRESET, out=str(tmp_path / "d.pt"),
                                                        progress=False)))
    metrics = meta["metrics"]
    assert metrics["float_acc"] >= 95.0
    assert metrics["qat_acc"] >= metrics["float_acc"] - 1.5
