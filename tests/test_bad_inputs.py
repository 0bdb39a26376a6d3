"""The bad-input corpus (tests/bad_inputs/ and the model-dependent files built below) through every CLI
entry that accepts each kind of file: exit 2, exactly one line on stderr, no traceback; the pickles that
execute code and the hostile XML leave no side effect (issue #14)."""
from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from codesign.cli import main
from codesign.graph import save

CORPUS = Path(__file__).parent / "bad_inputs"
STATIC = {"empty": CORPUS / "empty.bin", "binary": CORPUS / "binary.bin", "garbage_json": CORPUS / "garbage.json",
          "not_yaml": CORPUS / "not_yaml.yaml"}


class _Evil:
    """Unpickling it runs `touch MARKER` (what torch.load(weights_only=False) would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _rezip(src: Path, dst: Path, edit) -> Path:
    """A copy of the IR zip with graph.json edited by `edit(doc)`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "graph.json":
                doc = json.loads(data)
                edit(doc)
                data = json.dumps(doc).encode()
            zout.writestr(item, data)
    return dst


@pytest.fixture(scope="module")
def corpus(tiny_graph, tmp_path_factory):
    """{kind: {name: path}} and the good files the commands need beside a bad one."""
    d = tmp_path_factory.mktemp("bad")
    good_ir = save(tiny_graph, d / "good.ir")
    marker = d / "PWNED"

    def tensor0(doc):  # the first tensor entry of graph.json, whatever its layout
        t = doc["tensors"]
        return t[next(iter(t))] if isinstance(t, dict) else t[0]

    ir = {**STATIC,
          "truncated": d / "truncated.ir", "version": _rezip(good_ir, d / "v99.ir", lambda doc: doc.update(version=99)),
          "nan_scale": _rezip(good_ir, d / "nan.ir", lambda doc: tensor0(doc).update(scale=float("nan"))),
          "zero_size": _rezip(good_ir, d / "zero.ir", lambda doc: tensor0(doc).update(shape=[0, 32, 3])),
          "unknown_op": _rezip(good_ir, d / "op.ir", lambda doc: doc["layers"][0].update(op="conv7x7"))}
    ir["truncated"].write_bytes(good_ir.read_bytes()[: good_ir.stat().st_size // 2])
    evil_pt, evil_pickle = d / "evil.pt", d / "evil_plain.pt"
    buf = io.BytesIO()
    import torch

    torch.save({"model": _Evil(marker), "meta": {}}, buf)
    evil_pt.write_bytes(buf.getvalue())
    evil_pickle.write_bytes(pickle.dumps(_Evil(marker)))
    ckpt = {"empty": STATIC["empty"], "binary": STATIC["binary"], "evil_torch": evil_pt, "evil_pickle": evil_pickle}
    hw = {"not_yaml": CORPUS / "not_yaml.yaml", "wrong_schema": CORPUS / "wrong_schema.yaml",
          "list": CORPUS / "list.yaml", "binary": STATIC["binary"], "empty": STATIC["empty"]}
    images = {"truncated": CORPUS / "truncated.png", "text": CORPUS / "text.png", "binary": STATIC["binary"],
              "empty": STATIC["empty"], "bomb": CORPUS / "bomb.png"}  # bomb: a 100000² PNG header, 69 bytes
    # a compiled project whose schedule or hardware config was damaged after compile
    assert main(["compile", "--model", str(good_ir), "--margin", "0.9", "-o", str(d / "proj")]) == 0
    projects = {}
    for name, (rel, data) in {"schedule_garbage": ("schedule.json", b'{"calls": ['),
                              "schedule_binary": ("schedule.json", (CORPUS / "binary.bin").read_bytes()),
                              "hw_binary": ("hw.yaml", (CORPUS / "binary.bin").read_bytes())}.items():
        p = d / f"proj-{name}"
        shutil.copytree(d / "proj", p)
        (p / rel).write_bytes(data)
        projects[name] = p
    assert main(["deploy", "--project", str(d / "proj"), "-o", str(d / "pkg")]) == 0
    packages = {}
    for name, data in {"manifest_binary": (CORPUS / "binary.bin").read_bytes(), "manifest_list": b"[1, 2]",
                       "manifest_empty": b""}.items():
        p = d / f"pkg-{name}"
        shutil.copytree(d / "pkg", p)
        (p / "manifest.json").write_bytes(data)
        packages[name] = p
    voc = {}
    for name, (rel, src) in {"classes_binary": ("classes.txt", CORPUS / "binary_classes.txt"),
                             "billion_laughs": ("Annotations/x.xml", CORPUS / "billion_laughs.xml"),
                             "xxe": ("Annotations/x.xml", CORPUS / "xxe.xml")}.items():
        root = d / f"voc-{name}"
        (root / "Annotations").mkdir(parents=True)
        (root / "JPEGImages").mkdir()
        (root / "ImageSets" / "Main").mkdir(parents=True)
        (root / "ImageSets" / "Main" / "train.txt").write_text("x\n")
        (root / "ImageSets" / "Main" / "test.txt").write_text("x\n")
        (root / "JPEGImages" / "x.jpg").write_bytes((CORPUS / "truncated.png").read_bytes())
        if rel != "Annotations/x.xml":
            (root / "Annotations" / "x.xml").write_text("<annotation><size><width>8</width><height>8</height>"
                                                        "</size></annotation>")
        (root / rel).write_bytes(src.read_bytes())
        voc[name] = root
    return {"ir": ir, "ckpt": ckpt, "hw": hw, "images": images, "project": projects, "voc": voc, "package": packages,
            "good_ir": good_ir, "marker": marker, "out": d}


COMMANDS = {
    "ir": [lambda f, c: ["summary", "--ir", f],
           lambda f, c: ["golden", "--ir", f, "--dataset", "digits"],
           lambda f, c: ["compile", "--model", f, "-o", str(c["out"] / "never")],
           lambda f, c: ["report", "--model", f, "-o", str(c["out"] / "never")],
           lambda f, c: ["explore", "--model", f, "--jobs", "1", "-o", str(c["out"] / "never")]],
    "ckpt": [lambda f, c: ["export", f, "-o", str(c["out"] / "never.ir")],
             lambda f, c: ["summary", "--checkpoint", f]],
    "hw": [lambda f, c: ["compile", "--model", str(c["good_ir"]), "--hw", f, "-o", str(c["out"] / "never")],
           lambda f, c: ["report", "--model", str(c["good_ir"]), "--hw", f, "-o", str(c["out"] / "never")]],
    "images": [lambda f, c: ["golden", "--ir", str(c["good_ir"]), "--images", f]],
    "project": [lambda f, c: ["csim", "--project", f, "--no-testbench"],
                lambda f, c: ["deploy", "--project", f, "-o", str(c["out"] / "never")]],
    "package": [lambda f, c: ["run", "--package", f, str(CORPUS / "truncated.png")],
                lambda f, c: ["benchmark", "--package", f, "--frames", "2"]],
    "voc": [lambda f, c: ["train", "--model", "codenet", "--dataset", f, "--width", "0.25", "--resolution", "64",
                          "--float-epochs", "0", "--qat-epochs", "0", "--no-progress",
                          "-o", str(c["out"] / "never.pt")]],
}
NAMES = {"ir": list(STATIC) + ["truncated", "version", "nan_scale", "zero_size", "unknown_op"],
         "ckpt": ["empty", "binary", "evil_torch", "evil_pickle"],
         "hw": ["not_yaml", "wrong_schema", "list", "binary", "empty"],
         "images": ["truncated", "text", "binary", "empty", "bomb"],
         "project": ["schedule_garbage", "schedule_binary", "hw_binary"],
         "package": ["manifest_binary", "manifest_list", "manifest_empty"],
         "voc": ["classes_binary", "billion_laughs", "xxe"]}
CASES = [(kind, name, i) for kind, names in NAMES.items() for name in names for i in range(len(COMMANDS[kind]))]


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40, len(CASES)


@pytest.mark.parametrize("kind, name, i", CASES, ids=[f"{k}-{n}-{COMMANDS[k][i](n, {'out': Path('.'), 'good_ir': ''})[0]}"
                                                      for k, n, i in CASES])
def test_bad_file_is_one_line(corpus, kind, name, i, capsys):
    argv = COMMANDS[kind][i](str(corpus[kind][name]), corpus)
    rc = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, (argv, err)
    assert len(lines) == 1 and lines[0].startswith("codesign: error: "), (argv, err)
    assert "Traceback" not in err
    assert not corpus["marker"].exists(), "a pickle ran code"
    assert not (corpus["out"] / "never").exists() and not (corpus["out"] / "never.ir").exists()


XML_UNDER_A_MEMORY_CAP = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # 1 GiB: the laughs expand to ~3 GB
from codesign.errors import CodesignError
from codesign.readers import read_xml
for path in sys.argv[1:]:
    try:
        read_xml(path)
        print("PARSED", path)
    except CodesignError as e:
        print("REFUSED", e)
"""


def test_hostile_xml_is_refused_under_a_memory_cap(tmp_path):
    """Every XML the tools read goes through readers.read_xml: a DOCTYPE or ENTITY declaration is refused
    before anything is expanded, in the file's declared encoding too (a UTF-16 billion laughs), and the
    whole run fits a 1 GiB address space; a plain annotation still parses."""
    import subprocess
    import sys

    laughs = (CORPUS / "billion_laughs.xml").read_text()
    utf16 = tmp_path / "laughs16.xml"
    utf16.write_bytes(laughs.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
                      .encode("utf-16"))
    plain = tmp_path / "plain.xml"
    plain.write_text("<annotation><size><width>4</width><height>4</height></size></annotation>")
    files = [CORPUS / "billion_laughs.xml", CORPUS / "xxe.xml", utf16, plain]
    proc = subprocess.run([sys.executable, "-c", XML_UNDER_A_MEMORY_CAP, *map(str, files)], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[1], env={"OPENBLAS_NUM_THREADS": "1",
                                                                                      "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["REFUSED"] * 3 + ["PARSED"], proc.stdout
    assert all("DOCTYPE or ENTITY declaration" in line for line in lines[:3])
