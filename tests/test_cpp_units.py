"""The C++ unit tests of the HLS stages (tests/cpp/run.sh) as part of the suite, so `make test` and CI
run them: the engine's self-test against its C++ reference, the rendered testbench on good vectors
(must pass) and on corrupted ones (must fail), and the C-simulation library through ctypes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent / "cpp" / "run.sh"


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_cpp_unit_tests_of_the_hls_stages(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "BUILD": str(tmp_path)}
    r = subprocess.run(["sh", str(RUN)], env=env, capture_output=True, text=True, timeout=900)
    log = f"{r.stdout[-6000:]}\n{r.stderr[-4000:]}"
    assert r.returncode == 0, log
    assert r.stdout.rstrip().endswith("ALL C++ TESTS PASSED"), log
