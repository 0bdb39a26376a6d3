"""Every limit the engine can honour is checked where a value enters: the IR check for the integer
contract's ranges, and every packer for its field, at the limit and one past it (issue #14)."""
from __future__ import annotations

import numpy as np
import pytest

from codesign.cli import main
from codesign.errors import CodesignError
from codesign.graph import Graph, IRError, Layer, TensorInfo, save, validate
from codesign.graph.ir import REQUANT_M_BITS
from codesign.hw import descriptor, layout


def _conv_graph(mult: int, bias: int = 0, shift: int = 40) -> Graph:
    t = {"input": TensorInfo((2, 2, 3), 8, False, 1 / 255), "y": TensorInfo((2, 2, 4), 4, False, 0.1)}
    conv = Layer("c", "conv1x1", ["input"], "y", {"shift": shift, "weight_bits": 4},
                 {"weight": np.ones((4, 3), np.int8), "mult": np.array([mult, 1, 1, 1], np.int64),
                  "bias": np.array([bias, 0, 0, 0], np.int64)})
    return Graph("g", "input", "y", t, [conv])


def test_the_reproducer_is_refused_by_the_ir_check_in_one_line(tmp_path, capsys, monkeypatch):
    """One 1×1 conv with M = 2^32 + 5, S = 40: the golden model computes it, the engine would wrap M."""
    with pytest.raises(IRError, match=r"channel 0 = 4294967301: \|M\| must be < 2\^23"):
        validate(_conv_graph(2 ** 32 + 5))
    ir = tmp_path / "m.ir"  # the file a user's own tool might write: save() itself refuses the graph
    monkeypatch.setattr("codesign.graph.io.validate", lambda g: None)
    save(_conv_graph(2 ** 32 + 5), ir)
    monkeypatch.undo()
    assert main(["compile", "--model", str(ir), "-o", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "|M| must be < 2^23" in err[0] and not (tmp_path / "p").exists()


@pytest.mark.parametrize("value, ok", [((1 << (REQUANT_M_BITS - 1)) - 1, True), (1 << (REQUANT_M_BITS - 1), False),
                                       (-(1 << (REQUANT_M_BITS - 1)) + 1, True), (-(1 << (REQUANT_M_BITS - 1)), False)])
def test_requant_multiplier_at_its_limit(value, ok):
    g = _conv_graph(value, shift=1)
    if ok:
        validate(g)
    else:
        with pytest.raises(IRError, match="must be < 2\\^23"):
            validate(g)


# B is bounded by the 48-bit intermediate: max|acc|·max|M| + max|B| + 2^(S−1) < 2^47; at S = 40 with three
# inputs of 255, weights 1 and M = 1, max|acc|·M = 765. S is 1..46.
@pytest.mark.parametrize("kwargs, error", [
    ({"mult": 1, "bias": (1 << 47) - (1 << 39) - 766}, None),
    ({"mult": 1, "bias": (1 << 47) - (1 << 39) - 765}, "requant intermediate bound"),
    ({"mult": 1, "shift": 1}, None), ({"mult": 1, "shift": 46}, None),
    ({"mult": 1, "shift": 0}, "requant shift"), ({"mult": 1, "shift": 47}, "requant shift")])
def test_requant_bias_and_shift_at_their_limits(kwargs, error):
    g = _conv_graph(**kwargs)
    if error is None:
        validate(g)
    else:
        with pytest.raises(IRError, match=error):
            validate(g)


def test_every_packer_refuses_one_past_its_field():
    # requant constants: M in 24 signed bits, B in 48
    m_hi, b_hi = (1 << (REQUANT_M_BITS - 1)) - 1, (1 << (layout.REQUANT_B_BITS - 1)) - 1
    m, b = layout.unpack_requant(layout.pack_requant(np.array([m_hi, -m_hi - 1]), np.array([b_hi, -b_hi - 1]), 128), 2, 128)
    assert m.tolist() == [m_hi, -m_hi - 1] and b.tolist() == [b_hi, -b_hi - 1]
    for mult, bias in ((m_hi + 1, 0), (0, b_hi + 1), (-m_hi - 2, 0)):
        with pytest.raises(layout.LayoutError, match="does not fit the engine's"):
            layout.pack_requant(np.array([mult]), np.array([bias]), 128)
    # weights: w_bits signed, as slices of the MAC array's width
    for bits in (2, 4, 8):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        w = np.array([[lo, hi]])
        assert np.array_equal(layout.unpack_weight_slices(layout.pack_weight_slices(w, bits, 4, 128), 1, 2,
                                                          layout.weight_slices(bits, 8, 4), 4, 128), w)
        for bad in (lo - 1, hi + 1):
            with pytest.raises(ValueError, match=f"do not fit {bits} signed bits"):
                layout.pack_weight_slices(np.array([[bad]]), bits, 4, 128)
    # feature maps: store_bits unsigned
    for bits in (4, 8):
        top = (1 << bits) - 1
        assert layout.unpack_fmap(layout.pack_fmap(np.full((1, 1, 3), top, np.uint8), bits, 128), 1, 1, 3, bits,
                                  128).max() == top
        if bits < 8:
            with pytest.raises(ValueError, match=f"does not fit {bits} bits"):
                layout.pack_fmap(np.full((1, 1, 3), top + 1, np.uint8), bits, 128)
    # descriptor words: the engine reads them as ints
    full = {name: 0 for name in descriptor.FIELDS}
    assert descriptor.decode(descriptor.encode([{**full, "in_addr": (1 << 31) - 1}]))[0]["in_addr"] == (1 << 31) - 1
    for bad in (1 << 31, -1):
        with pytest.raises(CodesignError, match="outside 0..2\\^31-1"):
            descriptor.encode([{**full, "in_addr": bad}])
