"""The golden executor as a whole: input checks, trace, no torch, IR file round trip and corruption."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from codesign.golden import GoldenInputError, GoldenModel, run
from codesign.graph import Graph, IRError, Layer, TensorInfo, load, save

RES = 16


def dirac_graph(classes: int = 10, seed: int = 0) -> Graph:
    """A small DiracDeltaNet-shaped IR (stem, one down block, one normal block, head, FC) with
    random weights and requant constants that keep activations away from all-0/all-saturated."""
    rng = np.random.default_rng(seed)
    tensors = {"input": TensorInfo((RES, RES, 3), 8, False, 1 / 255)}
    layers: list[Layer] = []

    def add(op, inputs, shape, bits=None, signed=False, attrs=None, params=None):
        name = f"{op}{len(layers)}"
        src = tensors[inputs[0]]
        tensors[name] = TensorInfo(shape, bits or src.bits, signed, src.scale if bits is None else 0.05)
        layers.append(Layer(name, op, inputs, name, attrs or {}, params or {}))
        return name

    def conv(x, cout, weight_bits=4):
        h, w, cin = tensors[x].shape
        lim = (1 << (weight_bits - 1)) - 1
        weight = rng.integers(-lim, lim + 1, size=(cout, cin)).astype(np.int8)
        typical = np.sqrt(cin) * lim / 2 * tensors[x].max_value / 2
        mult = np.round(rng.uniform(0.5, 1.5, cout) * 6 / typical * 2**20).astype(np.int32)
        bias = np.round(rng.uniform(0, 8, cout) * 2**20).astype(np.int64)
        return add("conv1x1", [x], (h, w, cout), bits=4, attrs={"shift": 20, "weight_bits": weight_bits},
                   params={"weight": weight, "mult": mult, "bias": bias})

    def pool(x):
        h, w, c = tensors[x].shape
        return add("maxpool2x2", [x], (h // 2, w // 2, c))

    def shift(x):
        return add("shift", [x], tensors[x].shape, attrs={"pattern": "dirac5"})

    x = shift(pool(conv("input", 8, weight_bits=8)))
    x = shift(pool(conv(x, 16)))
    skip, main = conv(pool(x), 8), conv(shift(pool(conv(x, 16))), 8)  # down block
    h, w, _ = tensors[skip].shape
    x = add("concat", [skip, main], (h, w, 16), attrs={"rotate": 4})
    passed = add("slice", [x], (h, w, 8), attrs={"start": 0, "stop": 8})  # normal block
    branch = conv(shift(conv(add("slice", [x], (h, w, 8), attrs={"start": 8, "stop": 16}), 16)), 8)
    x = conv(add("concat", [passed, branch], (h, w, 16), attrs={"rotate": 4}), 32)
    s = add("globalsumpool", [x], (1, 1, 32), bits=(15 * h * w).bit_length())
    fc = rng.integers(-127, 128, size=(classes, 32)).astype(np.int8)
    logits = add("linear", [s], (1, 1, classes), bits=32, signed=True, attrs={"weight_bits": 8},
                 params={"weight": fc, "bias": rng.integers(-1000, 1000, size=classes)})
    return Graph("tiny-dirac", "input", logits, tensors, layers)


@pytest.fixture(scope="module")
def graph() -> Graph:
    return dirac_graph()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(5, RES, RES, 3)).astype(np.uint8)


def test_trace_holds_every_tensor(graph, images):
    out, trace = run(graph, images, trace=True)
    assert set(trace) == set(graph.tensors)
    for name, info in graph.tensors.items():
        assert trace[name].shape == (len(images),) + info.shape, name
        op = graph.producer(name).op if graph.producer(name) else "input"
        if op == "linear":
            assert trace[name].dtype == np.int64
        elif op == "globalsumpool":
            assert trace[name].dtype.kind == "u" and np.iinfo(trace[name].dtype).max >= info.max_value
        else:
            assert trace[name].dtype == np.uint8, name
            assert trace[name].max() <= info.max_value
    stem = trace[graph.layers[0].output]
    assert 0.1 < np.mean(stem > 0) and np.mean(stem == 15) < 0.5  # informative activations
    assert np.array_equal(out, trace[graph.output])
    assert np.array_equal(trace["input"], images)


def test_run_without_trace_and_predict_agree(graph, images):
    model = GoldenModel(graph)
    out, _ = model.run(images, trace=True)
    assert np.array_equal(model.run(images), out)
    assert out.shape == (len(images), 1, 1, 10) and out.dtype == np.int64
    assert np.array_equal(model.predict(images), out.reshape(len(images), -1).argmax(axis=1))
    # images are independent: a batch of one gives the same logits
    assert np.array_equal(model.run(images[2:3]), out[2:3])


def test_other_integer_dtypes_in_range_are_accepted(graph, images):
    model = GoldenModel(graph)
    assert np.array_equal(model.run(images.astype(np.int64)), model.run(images))


def test_empty_batch_gives_empty_outputs(graph):
    model = GoldenModel(graph)
    assert model.run(np.zeros((0, RES, RES, 3), np.int16)).shape == (0, 1, 1, 10)
    assert model.predict(np.zeros((0, RES, RES, 3), np.uint8)).shape == (0,)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, RES - 2, RES, 3), np.uint8), f"input images have shape (2, {RES - 2}, {RES}, 3); "
                                               f"the model expects (N, {RES}, {RES}, 3) uint8"),
    (np.zeros((RES, RES, 3), np.uint8), f"input images have shape ({RES}, {RES}, 3); the model expects"),
    (np.zeros((2, RES, RES, 3), np.float32), "input images have dtype float32; the model expects"),
    (np.full((1, RES, RES, 3), 256, np.int32), "input images hold values 256..256; the model expects"),
    (np.full((1, RES, RES, 3), -1, np.int16), "input images hold values -1..-1; the model expects"),
])
def test_bad_input_is_one_readable_line(graph, bad, message):
    with pytest.raises(GoldenInputError) as err:
        GoldenModel(graph).run(bad)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_conv_on_values_beyond_their_declared_bits_is_refused():
    """A sum (up to 255·4·4) fed to a conv that declares 8-bit input would break the requant bound."""
    tensors = {"x": TensorInfo((4, 4, 2), 8, False, 1.0), "s": TensorInfo((1, 1, 2), 8, False, 1.0),
               "y": TensorInfo((1, 1, 2), 4, False, 1.0)}
    params = {"weight": np.ones((2, 2), np.int8), "mult": np.ones(2, np.int32), "bias": np.zeros(2, np.int64)}
    layers = [Layer("sum", "globalsumpool", ["x"], "s"),
              Layer("conv", "conv1x1", ["s"], "y", {"shift": 4, "weight_bits": 4}, params)]
    with pytest.raises(IRError, match="can reach 4080, beyond its declared 8-bit range"):
        GoldenModel(Graph("g", "x", "y", tensors, layers))


def test_golden_does_not_import_torch():
    code = "import codesign.golden, sys; assert 'torch' not in sys.modules and 'brevitas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_save_load_roundtrip_gives_identical_outputs(graph, images, tmp_path):
    path = save(graph, tmp_path / "m.ir")
    out, trace = run(graph, images, trace=True)
    out2, trace2 = run(load(path), images, trace=True)
    assert np.array_equal(out, out2)
    assert trace.keys() == trace2.keys() and all(np.array_equal(trace[k], trace2[k]) for k in trace)


def rewrite(src: Path, dst: Path, edit) -> None:
    """Copy an IR zip member by member, passing each (name, bytes) through `edit`: a damaged but
    well-formed archive, so the loader's own checks (not zip CRCs) must catch it."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name in zin.namelist():
            zout.writestr(name, edit(name, zin.read(name)))


def flip_array_byte(name: str, data: bytes) -> bytes:
    if not name.startswith("arrays/"):
        return data
    b = bytearray(data)
    b[-1] ^= 0x01  # last byte of the array data, after the .npy header
    return bytes(b)


def bump_version(name: str, data: bytes) -> bytes:
    if name != "graph.json":
        return data
    doc = json.loads(data)
    doc["version"] = 3  # newer than any this codesign reads
    return json.dumps(doc).encode()


def truncate(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])


@pytest.mark.parametrize("damage, message", [
    (truncate, "corrupt IR file"),
    (lambda src, dst: rewrite(src, dst, flip_array_byte), "checksum mismatch"),
    (lambda src, dst: rewrite(src, dst, bump_version), "IR version 3 is not supported"),
], ids=["truncated", "array-byte-flipped", "version"])
def test_damaged_ir_file_raises_one_line_irerror(graph, tmp_path, damage, message):
    good = save(graph, tmp_path / "good.ir")
    bad = tmp_path / "bad.ir"
    damage(good, bad)
    with pytest.raises(IRError) as err:
        load(bad)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "corrupt" in str(err.value) or "version" in str(err.value)


def test_any_single_bit_flip_gives_irerror_or_the_same_graph(graph, images, tmp_path):
    """Damage anywhere in the file (compressed streams, headers) is reported as IRError, never
    as a stray zlib/zip exception; flips in bytes the loader ignores leave the outputs unchanged."""
    data = save(graph, tmp_path / "good.ir").read_bytes()
    expected = run(graph, images)
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(data), size=60, replace=False):
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        (tmp_path / "bad.ir").write_bytes(bad)
        try:
            loaded = load(tmp_path / "bad.ir")
        except IRError as e:
            assert "\n" not in str(e)
            continue
        assert np.array_equal(run(loaded, images), expected)
