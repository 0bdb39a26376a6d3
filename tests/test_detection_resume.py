"""CoDeNet training under DDP (2 gloo ranks on the CPU) and `--resume`: bit-identical continuation,
in the float phase and inside QAT, on both input paths; refusals in one line."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from codesign.data.synthetic_voc import write_synthetic_voc
from codesign.data.voc import load_detection_set
from codesign.detection.train import (DetectionTrainConfig, add_detection_train_arguments,
                                      detection_config_from_args, evaluate_ap, train_detection)
from codesign.train.checkpoint import CheckpointError, load_checkpoint, resume_path, save_checkpoint

from .ranks import assert_resumed_like_whole, run_ranks

RES = 64
MODEL = {"model": "codenet", "config": "a", "width": 0.25}


@pytest.fixture(scope="module")
def voc(tmp_path_factory) -> Path:
    return Path(write_synthetic_voc(tmp_path_factory.mktemp("voc"), 64, RES, seed=0))  # 38 train / 13 test


def config(voc: Path, out: Path, **kw) -> DetectionTrainConfig:
    base = dict(model=MODEL, dataset=str(voc), resolution=RES, float_epochs=2, qat_epochs=2, batch_size=8,
                subset=32, lr=0.01, progress=False, threads=1, workers=0, out=str(out))
    return DetectionTrainConfig(**{**base, **kw})


def _ddp_runs(voc: str, out_dir: str, loader: str) -> None:
    import torch.distributed as dist

    from codesign.detection.train import _in_image_order
    from codesign.train.distributed import Runtime

    rt = Runtime(dist.get_rank(), dist.get_world_size())
    images = list(range(13))  # an odd count: the shards differ in length
    assert _in_image_order(images[rt.rank::rt.world], len(images), rt) == images

    def run(name: str, **kw) -> Path:
        return train_detection(config(Path(voc), Path(out_dir) / name, loader=loader, **kw), log=lambda msg: None)

    run("whole.pt")  # 2 float + 2 QAT epochs, uninterrupted
    assert run("parts.pt", stop_after=1).name == "parts.resume.pt"  # float epoch 1, then stop
    run("parts.pt", resume="auto", stop_after=2)  # float epoch 2, calibration, QAT epoch 1, stop
    run("parts.pt", resume="auto")  # QAT epoch 2, from the QAT state (no new calibration)


@pytest.mark.slow  # ~50 s per loader on 2 loaded cores: four 2-rank runs of a tiny CoDeNet
@pytest.mark.parametrize("loader", ["memory", "stream"])
def test_ddp_detection_resume_is_bit_identical(voc, tmp_path, loader):
    """2 ranks (gloo): a run stopped in the float phase and again inside QAT, resumed twice, ends with
    exactly the uninterrupted run's weights and history; its AP50 (detections gathered from the ranks'
    test shards) is the single-process AP50 of the same model."""
    run_ranks(_ddp_runs, 2, str(voc), str(tmp_path), loader)
    meta = assert_resumed_like_whole(tmp_path, world=2, train_images=32)
    phases = [(e["phase"], e["epoch"]) for e in meta["metrics"]["history"]]
    assert phases == [("float", 1), ("float", 2), ("qat", 1), ("qat", 2)]
    whole = load_checkpoint(tmp_path / "whole.pt")[0]
    assert evaluate_ap(whole, load_detection_set(voc, "test", RES, limit=32))[0] == \
        pytest.approx(meta["metrics"]["qat_ap50"])


def test_detection_state_loads_weights_only_and_refuses_other_settings(voc, tmp_path):
    cfg = config(voc, tmp_path / "d.pt", float_epochs=1, qat_epochs=1, batch_size=16, subset=16, stop_after=1)
    state_path = train_detection(cfg, log=lambda msg: None)
    assert state_path == resume_path(cfg.out)
    raw = torch.load(state_path, weights_only=True)  # plain data and tensors only
    assert (raw["phase"], raw["epoch"], raw["world_size"]) == ("float", 1, 1)
    assert isinstance(raw["ranks"][0]["rng"]["torch"], torch.Tensor) and "rng" in raw["ranks"][0]["data"]

    def refused(match: str, **kw) -> None:
        with pytest.raises(CheckpointError, match=match) as e:
            train_detection(config(voc, tmp_path / "d.pt", float_epochs=1, qat_epochs=1, batch_size=16, subset=16,
                                   **kw), log=lambda msg: None)
        assert "\n" not in str(e.value)

    refused(r"lr=0\.01, this one has lr=0\.02", resume="auto", lr=0.02)
    refused("does not exist", resume=str(tmp_path / "none.resume.pt"))
    from codesign.models import build_model

    save_checkpoint(tmp_path / "model.pt", build_model({**MODEL, "num_classes": 5, "resolution": RES}), {})
    refused("a model checkpoint, not a training state", resume=str(tmp_path / "model.pt"))
    # what only changes where and how the run goes may differ; it then finishes and leaves no state behind
    out = train_detection(config(voc, tmp_path / "d.pt", float_epochs=1, qat_epochs=1, batch_size=16, subset=16,
                                 resume="auto", draw=1, workers=2), log=lambda msg: None)
    assert load_checkpoint(out)[1]["metrics"]["history"][0]["epoch"] == 1 and not state_path.exists()


def test_resume_options_on_the_command_line(voc, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_detection_train_arguments(parser)
    cfg = detection_config_from_args(parser.parse_args(["--resume", "--stop-after", "3"]))
    assert (cfg.resume, cfg.stop_after) == ("auto", 3)
    assert detection_config_from_args(parser.parse_args(["--resume", "x.resume.pt"])).resume == "x.resume.pt"
    from codesign.cli import main

    missing = tmp_path / "none.resume.pt"
    assert main(["train", "--model", "codenet", "--dataset", str(voc), "--resume", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{missing} does not exist" in err[0], err
