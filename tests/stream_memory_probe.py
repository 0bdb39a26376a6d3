"""Run by tests/test_train_stream.py in a fresh process: for each image folder given, one training epoch
(loader "stream", or "memory" for the control) of a fixed number of steps (2 DataLoader workers), then the peak resident memory so
far as one JSON line.

Peak RSS: getrusage's ru_maxrss (KiB on Linux) of this process (RUSAGE_SELF) and of the largest of
its waited-for children (RUSAGE_CHILDREN: the DataLoader workers, joined at the end of each epoch).
Both are high-water marks, so a later, larger folder can only raise them."""
import json
import resource
import sys

from codesign.train import TrainConfig, train

NET = {"model": "diracdeltanet", "width": 0.125, "stage_blocks": [1], "resolution": 96}


def main(out: str, steps: int, loader: str, folders: list[str]) -> None:
    for folder in folders:
        # stop_after=1: the float epoch only (calibration would read min(1024, N) images: more for a larger set)
        train(TrainConfig(model=NET, dataset=folder, float_epochs=1, qat_epochs=1, batch_size=32, workers=2,
                          loader=loader, steps_per_epoch=steps, threads=1, progress=False, hflip=True, out=out, stop_after=1))
        print(json.dumps({"folder": folder, "main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:])
