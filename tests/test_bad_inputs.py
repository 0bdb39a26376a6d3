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


# ---- QONNX graphs through `codesign import` (issue #13) --------------------------------------------

def _qonnx_graph(conv: dict | None = None, weight_bits: int = 4, input_dims=(1, 4, 8, 8), act_signed: int = 0,
                 relu: bool = True, extra=None, quant: bool = True):
    """A small QONNX classifier as Brevitas writes one: Quant(x) → Conv(Quant(W)) → Relu → Quant → GAP →
    Flatten → Gemm(Quant(W)); `conv` overrides the Conv's attributes and weight shape, `extra(nodes, inits)`
    edits the graph before it is made."""
    from onnx import TensorProto, helper, numpy_helper

    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1], "group": 1, "w": (4, 4, 3, 3),
            **(conv or {})}
    rng = np.random.default_rng(0)
    c = lambda name, v: numpy_helper.from_array(np.asarray(v, np.float32), name)  # noqa: E731
    inits = [c("s_in", 2.0 ** -8), c("zp", 0.0), c("b8", 8), c("s_w", 2.0 ** -3), c("bw", weight_bits),
             c("s_a", 2.0 ** -2), c("b4", 4), c("w", rng.uniform(-1, 1, conv.pop("w"))),
             c("fc", rng.uniform(-1, 1, (10, 4)))]
    qd = "qonnx.custom_op.general"
    q = lambda i, s, b, o, signed, name: helper.make_node("Quant", [i, s, "zp", b], [o], name, domain=qd,  # noqa: E731
                                                          signed=signed, narrow=signed, rounding_mode="ROUND")
    nodes = [q("x", "s_in", "b8", "xq", 0, "quant_input"), q("w", "s_w", "bw", "wq", 1, "quant_w"),
             helper.make_node("Conv", ["xq", "wq" if quant else "w"], ["y"], "conv", **conv),
             *([helper.make_node("Relu", ["y"], ["r"], "relu")] if relu else []),
             q("r" if relu else "y", "s_a", "b4", "a", act_signed, "quant_act"),
             helper.make_node("GlobalAveragePool", ["a"], ["p"], "pool"),
             helper.make_node("Flatten", ["p"], ["f"], "flatten"), q("fc", "s_w", "b4", "fcq", 1, "quant_fc"),
             helper.make_node("Gemm", ["f", "fcq"], ["out"], "fc", transB=1)]
    if not quant:
        nodes = [n for n in nodes if n.op_type != "Quant"]
        nodes[0].input[0] = "x"
        nodes[1].input[0] = "y" if not relu else nodes[1].input[0]
        nodes[2].input[0] = "r"
        nodes[-1].input[1] = "fc"
    if extra:
        extra(nodes, inits)
    dims = [d for d in input_dims]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(qd, 1)])


def _drop_init(name):
    return lambda nodes, inits: inits.remove(next(i for i in inits if i.name == name))


def _cycle(nodes, inits):
    nodes[2].input[0] = "a"  # the conv reads the quantizer after it


def _residual(nodes, inits):
    from onnx import helper

    nodes.insert(5, helper.make_node("Add", ["a", "a"], ["a2"], "residual_add"))
    nodes[6].input[0] = "a2"


def _avgpool(nodes, inits):
    from onnx import helper

    nodes[5] = helper.make_node("AveragePool", ["a"], ["p"], "avgpool3", kernel_shape=[3, 3], strides=[3, 3])


# name: (graph builder or raw bytes, what the one line must say)
QONNX_BAD = {
    "dynamic_shape": (lambda: _qonnx_graph(input_dims=("N", 4, 8, 8)), "static NCHW"),
    "weights_9bit": (lambda: _qonnx_graph(weight_bits=9), "weights of 9 bits"),
    "grouped_conv": (lambda: _qonnx_graph({"group": 2, "w": (4, 2, 3, 3)}), "grouped convolution"),
    "dilation": (lambda: _qonnx_graph({"dilations": [2, 2], "pads": [2, 2, 2, 2]}), "dilation [2, 2]"),
    "kernel_4": (lambda: _qonnx_graph({"kernel_shape": [4, 4], "w": (4, 4, 4, 4)}), "kernel 4×4"),
    "missing_initializer": (lambda: _qonnx_graph(extra=_drop_init("w")), "missing initializer"),
    "cyclic": (lambda: _qonnx_graph(extra=_cycle), "cycle"),
    "float_onnx": (lambda: _qonnx_graph(quant=False), "not QONNX"),
    "signed_act_no_relu": (lambda: _qonnx_graph(act_signed=1, relu=False), "signed 4-bit activation"),
    "residual_add": (lambda: _qonnx_graph(extra=_residual), "residual"),
    "avgpool_3x3": (lambda: _qonnx_graph(extra=_avgpool), "AveragePool"),
    "truncated": ("truncated", "not an ONNX model"),
    "empty": (b"", "empty"),
    "binary": ((CORPUS / "binary.bin").read_bytes(), "not an ONNX model"),
    "text": (b'{"graph": "not protobuf"}\n', "not an ONNX model"),
}


@pytest.fixture(scope="module")
def qonnx_corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("qonnx_bad")
    files = {}
    for name, (src, _) in QONNX_BAD.items():
        p = d / f"{name}.onnx"
        if src == "truncated":
            data = _qonnx_graph().SerializeToString()
            p.write_bytes(data[: len(data) // 2])
        elif isinstance(src, bytes):
            p.write_bytes(src)
        else:
            p.write_bytes(src().SerializeToString())
        files[name] = p
    good = d / "good.onnx"
    good.write_bytes(_qonnx_graph().SerializeToString())
    return files, good, d


def test_the_good_qonnx_graph_of_the_corpus_imports(qonnx_corpus, capsys):
    """The control: the graph every bad one is edited from imports, so each refusal is the edit's."""
    _, good, d = qonnx_corpus
    assert main(["import", str(good), "-o", str(d / "good.ir")]) == 0, capsys.readouterr().err
    assert (d / "good.ir").exists()


@pytest.mark.parametrize("name", sorted(QONNX_BAD))
def test_bad_qonnx_graph_is_one_line(qonnx_corpus, name, capsys):
    files, _, d = qonnx_corpus
    rc = main(["import", str(files[name]), "-o", str(d / "never.ir")])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("codesign: error: ") and "Traceback" not in err, err
    assert str(files[name]) in lines[0] and QONNX_BAD[name][1] in lines[0], lines[0]
    assert not (d / "never.ir").exists()
