"""`make compile|csim|bitstream|deploy|report MODEL=…`: the front door for a built-in model or the user's file.

Make runs with the virtual environment running these tests (VENV/BIN/STAMP) and with `-o STAMP`,
so it never creates or reinstalls a venv; codesign runs as `python -m codesign` from the checkout
under test. Built-in models are only dry-run (`-n`): nothing here trains.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codesign.graph import save

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
STAMP = f"{VENV}/.installed-stamp"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make(*args: str, build: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = ["make", "--no-print-directory", "-o", STAMP, f"VENV={VENV}", f"BIN={Path(sys.executable).parent}",
           f"STAMP={STAMP}", f"CODESIGN={sys.executable} -m codesign", f"BUILD={build}", *args]
    env = {k: v for k, v in os.environ.items() if k not in ("MODEL", "CONFIG", "BOARD", "HW", "BUILD", "MAKEFLAGS")}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def ok(*args: str, build: Path, timeout: float = 60) -> str:
    """stdout of a make run that must succeed without any make warning."""
    r = make(*args, build=build, timeout=timeout)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr.lower(), r.stderr
    return r.stdout


def commands(stdout: str, sub: str) -> list[str]:
    """The dry-run lines running `codesign <sub>`."""
    return [line for line in stdout.splitlines() if re.search(rf"codesign {sub}\b", line)]


@pytest.fixture(scope="module")
def ir_file(tiny_graph, tmp_path_factory) -> Path:
    return save(tiny_graph, tmp_path_factory.mktemp("user") / "tiny.ir")


# ---- built-in names -------------------------------------------------------------------------

def test_builtin_diracdeltanet_trains_on_digits_then_compiles(tmp_path):
    out = ok("-n", "csim", "MODEL=diracdeltanet", build=tmp_path)
    [train] = commands(out, "train")
    assert "--model diracdeltanet --dataset digits --preset digits " in train
    assert f"{tmp_path}/demo-diracdeltanet/model.pt" in train
    [compile_] = commands(out, "compile")
    assert f"--model {tmp_path}/demo-diracdeltanet/model.ir --board ultra96v2 -o {tmp_path}/diracdeltanet-ultra96v2" \
        in compile_
    assert commands(out, "csim") == [f"{sys.executable} -m codesign csim --project {tmp_path}/diracdeltanet-ultra96v2"]


@pytest.mark.parametrize("target", ["compile", "csim", "bitstream", "deploy", "report"])
def test_builtin_codenet_config_c_without_warnings(tmp_path, target):
    out = ok("-n", target, "MODEL=codenet", "CONFIG=c", build=tmp_path)
    assert any("synthetic_voc" in line for line in out.splitlines())
    [train] = commands(out, "train")
    assert "--model codenet --config c" in train and f"-o {tmp_path}/demo-codenet-c/model.pt" in train
    [export] = commands(out, "export")
    assert f"-o {tmp_path}/demo-codenet-c/model.ir" in export
    assert commands(out, target)


def test_codenet_default_config_is_the_demo_checkpoint(tmp_path):
    """MODEL=codenet (config a) and `make demo-codenet` share one checkpoint and one recipe."""
    both = ok("-n", "bitstream", "demo-codenet", "MODEL=codenet", build=tmp_path)
    [train] = commands(both, "train")
    assert "--config a" in train and f"-o {tmp_path}/demo-codenet/model.pt" in train
    assert f"--project {tmp_path}/codenet-ultra96v2" in commands(both, "bitstream")[0]


@pytest.mark.parametrize("target, preset, suffix", [("demo", "digits", ""), ("demo-quick", "digits-quick", "-quick")])
def test_demo_is_unchanged(tmp_path, target, preset, suffix):
    """`make demo` trains the digits preset, `make demo-quick` the quick one, each into its own
    folder; then the same steps, each timed ("== <step>: N s wall")."""
    out = ok("-n", target, build=tmp_path)
    lines = commands(out, r"\w+")
    assert [line.split(" -m codesign ", 1)[1].split()[0] for line in lines] == [
        "train", "export", "summary", "golden", "compare", "compile", "csim"]
    assert all(re.match(r"TIMEFORMAT='== \w+: %1R s wall'; time ", line) for line in lines), lines
    assert f"--preset {preset} -o {tmp_path}/demo-diracdeltanet{suffix}/model.pt" in lines[0]
    assert f"--qonnx {tmp_path}/demo-diracdeltanet{suffix}/model.qonnx.onnx" in out
    assert f"csim --project {tmp_path}/diracdeltanet{suffix}-ultra96v2 --cycles" in out


# ---- the user's own files -------------------------------------------------------------------

@pytest.mark.parametrize("target", ["compile", "csim", "bitstream", "deploy", "report"])
def test_ir_file_is_used_as_is(tmp_path, ir_file, target):
    out = ok("-n", target, f"MODEL={ir_file}", build=tmp_path)
    assert not commands(out, "train") and not commands(out, "export")
    sub = "report" if target == "report" else "compile"
    assert f"{sub} --model {ir_file} --board ultra96v2" in commands(out, sub)[0]


def test_ir_file_at_a_demo_path_is_not_remade(tmp_path, ir_file):
    """The issue's case: an IR the user has at build/demo-diracdeltanet/model.ir, no checkpoint beside it."""
    ir = tmp_path / "demo-diracdeltanet" / "model.ir"
    ir.parent.mkdir()
    shutil.copy(ir_file, ir)
    out = ok("-n", "csim", f"MODEL={ir}", build=tmp_path)
    assert not commands(out, "train") and not commands(out, "export")
    assert f"compile --model {ir} " in out


def test_checkpoint_is_exported_when_changed_only(tmp_path):
    pt = tmp_path / "mine.pt"
    pt.write_bytes(b"stands in for a QAT checkpoint; -n runs nothing")
    build = tmp_path / "b"
    out = ok("-n", "compile", f"MODEL={pt}", build=build)
    assert not commands(out, "train")
    assert commands(out, "export") == [f"{sys.executable} -m codesign export {pt} -o {build}/mine/model.ir"]
    assert f"compile --model {build}/mine/model.ir --board ultra96v2 -o {build}/mine-ultra96v2" in out

    ir = build / "mine" / "model.ir"
    ir.parent.mkdir(parents=True)
    ir.write_bytes(b"")
    os.utime(pt, (1_000_000, 1_000_000))  # the checkpoint is older than its IR: no export
    out = ok("-n", "compile", f"MODEL={pt}", build=build)
    assert not commands(out, "export") and commands(out, "compile")
    os.utime(pt, None)  # a changed checkpoint: exported again
    os.utime(ir, (1_000_000, 1_000_000))
    assert commands(ok("-n", "compile", f"MODEL={pt}", build=build), "export")



def test_qonnx_file_is_imported_then_compiled(tmp_path):
    onnx_file = tmp_path / "mine.onnx"
    onnx_file.write_bytes(b"stands in for a QONNX file; -n runs nothing")
    build = tmp_path / "b"
    out = ok("-n", "csim", f"MODEL={onnx_file}", build=build)
    assert not commands(out, "train") and not commands(out, "export")
    assert commands(out, "import") == [f"{sys.executable} -m codesign import {onnx_file} -o {build}/mine/model.ir"]
    assert f"compile --model {build}/mine/model.ir --board ultra96v2 -o {build}/mine-ultra96v2" in out
    assert commands(out, "csim")

def test_hw_file_goes_to_compile_and_report(tmp_path, ir_file):
    hw = tmp_path / "small.yaml"
    hw.write_text("board: kv260\n")
    out = ok("-n", "compile", "report", f"MODEL={ir_file}", f"HW={hw}", build=tmp_path)
    assert f"compile --model {ir_file} --hw {hw} -o {tmp_path}/tiny-small" in out
    assert f"report --model {ir_file} --hw {hw} -o {tmp_path}/report-tiny-small" in out


def test_csim_of_the_users_ir_file(tmp_path, ir_file):
    """A full run: the user's IR → HLS project → bit-exact C-simulation, nothing trained or exported."""
    out = ok("csim", f"MODEL={ir_file}", build=tmp_path, timeout=600)
    assert not commands(out, "train") and not commands(out, "export")
    assert "end to end: engine output and host outputs bit-exact" in out
    assert (tmp_path / "tiny-ultra96v2").is_dir()


# ---- anything else: one line, before any work -----------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["MODEL=foo"], ["MODEL=foo", "diracdeltanet, codenet", ".pt/.onnx/.ir"]),
    (["MODEL={tmp}/missing.pt"], ["missing.pt", "no such file", "diracdeltanet, codenet", ".pt", ".ir"]),
    (["MODEL={tmp}/notes.txt"], ["notes.txt", "wrong extension", ".pt", ".onnx", ".ir", "diracdeltanet, codenet"]),
    (["MODEL={tmp}/missing.onnx"], ["missing.onnx", "no such file", ".onnx"]),
    (["MODEL=codenet", "CONFIG=f"], ["CONFIG=f", "a, b, c, d, e"]),
    (["MODEL=diracdeltanet", "CONFIG=c"], ["CONFIG=c", "only to MODEL=codenet"]),
    (["BOARD=nope"], ["BOARD=nope", "ultra96v2"]),
    (["HW={tmp}/nope.yaml"], ["HW=", "no such"]),
])
@pytest.mark.parametrize("target", ["csim", "bitstream"])
def test_bad_model_is_one_line_before_any_work(tmp_path, args, words, target):
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "model.onnx").write_bytes(b"")
    build = tmp_path / "b"
    r = make(target, *[a.format(tmp=tmp_path) for a in args], build=build)  # no -n: it must stop by itself
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0]
    assert r.stdout == "" and not build.exists()


def test_help_lists_targets_and_variables(tmp_path):
    out = ok("help", build=tmp_path)
    for target in ("demo", "demo-quick", "demo-codenet", "compile", "csim", "bitstream", "deploy", "report", "test"):
        assert re.search(rf"^make {target}\b", out, re.M), target
    for var in ("MODEL", "CONFIG", "BOARD", "HW", "BUILD"):
        assert re.search(rf"^{var}=", out, re.M), var
