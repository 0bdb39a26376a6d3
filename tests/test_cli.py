"""The `codesign` command: bad input is one readable line on stderr and a non-zero exit."""
import re
import subprocess
import sys

import numpy as np
import pytest

from codesign.cli import main
from codesign.golden import GoldenInputError, GoldenModel
from codesign.graph import save
from codesign.quant import export_model


@pytest.fixture(scope="module")
def ir_file(tiny_model, tmp_path_factory):
    return save(export_model(tiny_model), tmp_path_factory.mktemp("ir") / "tiny.ir")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("codesign: error: ")
    return err[0]


def test_corrupt_ir_is_one_line(ir_file, tmp_path, capsys):
    bad = tmp_path / "bad.ir"
    data = bytearray(ir_file.read_bytes())
    bad.write_bytes(bytes(data[: len(data) // 2]))
    assert main(["golden", "--ir", str(bad), "--dataset", "digits"]) == 2
    assert "corrupt" in _one_error_line(capsys)


def test_version_mismatched_ir_is_one_line(ir_file, tmp_path, capsys):
    import zipfile

    bad = tmp_path / "v9.ir"
    with zipfile.ZipFile(ir_file) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "graph.json":
                data = data.replace(b'"version": 1', b'"version": 9')
            dst.writestr(item, data)
    assert main(["summary", "--ir", str(bad)]) == 2
    line = _one_error_line(capsys)
    assert "version 9" in line and "re-export" in line


def test_missing_ir_file(capsys, tmp_path):
    assert main(["golden", "--ir", str(tmp_path / "none.ir"), "--dataset", "digits"]) == 2
    assert "no such IR file" in _one_error_line(capsys)


def test_unreadable_image(ir_file, tmp_path, capsys):
    img = tmp_path / "x.png"
    img.write_bytes(b"not a png")
    assert main(["golden", "--ir", str(ir_file), "--images", str(img)]) == 2
    assert "cannot read image" in _one_error_line(capsys)


def test_golden_cli_predicts_image_files(ir_file, tmp_path, capsys):
    from PIL import Image

    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        Image.fromarray(np.random.RandomState(i).randint(0, 256, (32, 32, 3)).astype(np.uint8)).save(p)
        paths.append(str(p))
    assert main(["golden", "--ir", str(ir_file), "--images", *paths]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and all(line.split(": class ")[1].split()[0].isdigit() for line in out)


def test_wrong_input_shape_to_golden_model(ir_file):
    from codesign.graph import load

    golden = GoldenModel(load(ir_file))
    with pytest.raises(GoldenInputError, match=r"shape \(1, 30, 32, 3\); the model expects \(N, 32, 32, 3\) uint8"):
        golden.run(np.zeros((1, 30, 32, 3), np.uint8))


def test_unknown_board_and_bad_hw(ir_file, tmp_path, capsys):
    assert main(["compile", "--model", str(ir_file), "--board", "zx81", "-o", str(tmp_path / "p")]) == 2
    assert "unknown board 'zx81'" in _one_error_line(capsys)
    hw = tmp_path / "hw.yaml"
    hw.write_text("pi: [1, 2\n")
    assert main(["compile", "--model", str(ir_file), "--hw", str(hw), "-o", str(tmp_path / "p")]) == 2
    assert "not valid YAML" in _one_error_line(capsys)


def test_design_that_does_not_fit_the_board(ir_file, tmp_path, capsys):
    """A user's engine over the budget of its board is refused, judged on the rendered engine: one line
    naming the resource, its count against the board's and the margin, and the largest consumers."""
    from codesign.hw.config import HardwareConfig

    big = HardwareConfig(pi=64, po=64).save(tmp_path / "big.yaml")
    assert main(["compile", "--model", str(ir_file), "--hw", str(big), "-o", str(tmp_path / "p")]) == 2
    line = _one_error_line(capsys)
    assert "does not fit ultra96v2 (64x64 array)" in line
    assert re.search(r"LUT [\d,]+ > 70,560 x 0\.85: conv1x1:64 MAC lanes x 64 slice products [\d,]+", line), line
    assert not (tmp_path / "p").exists()  # nothing written
    # the margin is the user's: at 0.5 the 32x32 default engine of this model no longer fits either
    small = HardwareConfig().save(tmp_path / "small.yaml")
    assert main(["compile", "--model", str(ir_file), "--hw", str(small), "--margin", "0.5", "-o", str(tmp_path / "p")]) == 2
    assert "x 0.5: conv1x1:32 MAC lanes" in _one_error_line(capsys)


def test_default_engine_shrinks_to_fit_a_small_board(ir_file, tmp_path, capsys):
    """Without --hw, compile takes the default 32x32 engine when it fits, else the fastest smaller array that
    does (PYNQ-Z2: 53,200 LUT, too few for 32 x 32 4-bit MAC lanes) and says so."""
    from codesign.hls.fit import project_resources
    from codesign.hw.config import HardwareConfig

    # (this model's 32x32 engine takes 85.2 % of the Ultra96's LUT: over the default margin, under 0.9)
    assert main(["compile", "--model", str(ir_file), "--margin", "0.9", "-o", str(tmp_path / "u96")]) == 0
    out = capsys.readouterr().out
    assert "does not fit" not in out and "32x32 engine: LUT" in out
    assert main(["compile", "--model", str(ir_file), "--board", "pynq-z2", "-o", str(tmp_path / "z2")]) == 0
    out = capsys.readouterr().out
    assert "32x32 does not fit pynq-z2 (LUT" in out and "the fastest array that fits" in out
    hw = HardwareConfig.load(tmp_path / "z2" / "hw.yaml")
    assert hw.pi * hw.po < 32 * 32
    fit = project_resources(tmp_path / "z2")
    assert max(fit.utilization().values()) <= 0.85 and not fit.violations()


def test_python_m_entry_point_exits_nonzero_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "codesign", "summary", "--ir", str(tmp_path / "x.ir")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_summary_of_codenet_takes_its_config_and_defaults(capsys):
    """`summary --model codenet --config c`: the paper's model (512², 20 classes) without naming them."""
    assert main(["summary", "--model", "codenet", "--config", "c"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("codenet: 512×512 input, 20 classes, width 1.0")
    params = float(re.search(r"([\d.]+) M parameters", out).group(1))
    assert abs(params / 1.59 - 1) < 0.05
    assert main(["summary", "--config", "c"]) == 2  # DiracDeltaNet has no configs
    assert "config" in capsys.readouterr().err


def test_explore_command_writes_the_choice_and_its_fps_is_the_counted_one(tiny_graph, tmp_path, capsys):
    """explore's printed FPS for its choice is within 10 % of the same frame with the engine cycle-counted."""
    from codesign.hw.config import HardwareConfig

    ir = save(tiny_graph, tmp_path / "tiny.ir")
    assert main(["explore", "--model", str(ir), "--jobs", "1", "--count", "-o", str(tmp_path / "ex")]) == 0
    out = capsys.readouterr().out
    chosen = re.search(r"^\*(\d+)x(\d+)/(\d+)b/\S+", out, re.M)
    hw = HardwareConfig.load(tmp_path / "ex" / "hw_best.yaml")
    assert (hw.pi, hw.po, hw.bus_bits) == tuple(int(g) for g in chosen.groups())
    printed = float(out.split(chosen.group(0))[1].split()[0])
    counted = float(re.search(r"batch 1: ([\d.]+) FPS with the engine cycle-counted", out).group(1))
    assert "modeled (analytic estimator of the engine as written)" in out
    assert abs(printed / counted - 1) <= 0.10, (printed, counted)
    assert (tmp_path / "ex" / "pareto.png").stat().st_size > 1000
