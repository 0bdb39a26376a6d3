"""One class per op (codesign/ops, docs/adding-an-op.md): an op's knowledge lives in its class, the rest of
the flow asks the registry."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from codesign.golden import GoldenModel
from codesign.graph import Graph, IRError, Layer, TensorInfo, validate
from codesign.graph.opdef import ENGINE_STAGES, HOST, OPS, VIEW, OpDef, op_def, register
from codesign.graph.stats import layer_macs

PACKAGE = Path(__file__).resolve().parents[1] / "codesign"
# a comparison of an op's name with a literal, or membership in a literal collection of names
BRANCH = re.compile(r"""\bop\s*(==|!=)\s*["']|\bop\s+(not\s+)?in\s*[(\[{]\s*["']|[}\]]\.get\(\s*\w+\.op\b""")


def test_no_module_branches_on_op_names():
    """Outside the op classes and their registry nothing compares an op's name with a string."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "ops" or rel.as_posix() == "graph/opdef.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if BRANCH.search(line):
                bad.append(f"codesign/{rel}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_the_branch_pattern_catches_the_old_ladders():
    for line in ('if layer.op == "conv1x1":', 'elif layer.op in ("shift", "slice"):', "if sp.op != 'deform3x3'",
                 'spatial={"dwconv3x3": "dw"}.get(sp.op, "")'):
        assert BRANCH.search(line), line
    assert not BRANCH.search("if layer.op not in OPS:")


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_class_is_complete(name):
    """Each registered op checks its layers and executes them in the golden model; it runs somewhere."""
    op = op_def(name)
    assert type(op).check is not OpDef.check and type(op).prepare is not OpDef.prepare, name
    assert op.stage in ENGINE_STAGES + (VIEW, HOST)
    assert (op.stage == VIEW) == bool(op.view)
    assert op.params.keys() <= {"weight", "mult", "bias", "out_scale"}


def test_an_unknown_op_names_the_known_ones():
    with pytest.raises(IRError, match=r"unknown op 'conv5x5' \(known: concat, conv1x1, .*upsample2x\)"):
        op_def("conv5x5")


def _graph_with(op: str, attrs: dict) -> Graph:
    t = {"input": TensorInfo((4, 4, 3), 8, False, 1 / 255), "y": TensorInfo((4, 4, 3), 8, False, 1 / 255)}
    return Graph("g", "input", "y", t, [Layer("l", op, ["input"], "y", attrs)])


def test_a_new_op_is_one_class():
    """Registering a class is all validation, the golden model and the MAC count need (the engine needs its
    HLS unit and the scheduler stage too: docs/adding-an-op.md)."""
    @register
    class Invert(OpDef):  # 255 - x on 8-bit values, on the host
        name = "invert_test"
        attrs = ("levels",)

        def check(self, graph, layer):
            if layer.attrs["levels"] != 256:
                raise IRError(f"layer '{layer.name}': levels must be 256")

        def prepare(self, graph, layer, bounds):
            return (lambda xs: (255 - xs[0]).astype(np.uint8)), 255

    try:
        g = _graph_with("invert_test", {"levels": 256})
        validate(g)
        x = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
        np.testing.assert_array_equal(GoldenModel(g).run(x), 255 - x)
        assert layer_macs(g, g.layers[0]) == 0
        with pytest.raises(IRError, match="missing attribute 'levels'"):
            validate(_graph_with("invert_test", {}))
        with pytest.raises(IRError, match="levels must be 256"):
            validate(_graph_with("invert_test", {"levels": 3}))
    finally:
        del OPS["invert_test"]
