"""codesign's own QONNX custom ops, in the domain `codesign.importers.qonnx_ops` (this module).

qonnx finds a custom node's implementation by importing its domain as a Python module, as FINN's
`finn.custom_op.fpgadataflow` nodes are found; so a graph holding these nodes passes qonnx's
cleanup and shape inference, and qonnx's reference executor (`qonnx.core.onnx_exec`) runs it.

`SquareDeformConv` is CoDeNet's limited-range square deformable depthwise 3×3 (models/deform.py
`square_deform`, the IR op `deform3x3` before its requant): ONNX's `DeformConv` is another operator
(free fractional per-tap offsets, bilinear), so the exporter writes this node instead of the ~20
index ops torch.onnx would trace the gather into.

    SquareDeformConv(x (N, C, H, W), d (N, 1, H, W), weight (C, 1, 3, 3)) → (N, C, H, W)
    out[n, c, y, x] = Σ_k weight[c, 0, ky + 1, kx + 1] · x[n, c, y + ky·d, x + kx·d], d = d[n, 0, y, x],
    k = (ky, kx) ∈ {−1, 0, 1}², reads outside the image 0; d holds integers in [0, max_dilation].
"""
from __future__ import annotations

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

from ..golden.ops import deform_taps

DOMAIN = __name__
SQUARE_DEFORM = "SquareDeformConv"


class SquareDeformConv(CustomOp):
    """The node's attribute: max_dilation R, the largest d the dilation quantizer can produce."""

    def get_nodeattr_types(self) -> dict:
        return {"max_dilation": ("i", True, 0)}

    def make_shape_compatible_op(self, model):  # the output has the input's shape
        node = self.onnx_node
        return helper.make_node("Identity", [node.input[0]], [node.output[0]])

    def infer_node_datatype(self, model) -> None:
        model.set_tensor_datatype(self.onnx_node.output[0], DataType["FLOAT32"])

    def execute_node(self, context, graph) -> None:
        node = self.onnx_node
        x, d, weight = (np.asarray(context[i], np.float64) for i in node.input[:3])
        n, c, h, w = x.shape
        table = np.zeros((n, h * w + 1, c))
        table[:, :h * w] = x.transpose(0, 2, 3, 1).reshape(n, h * w, c)
        taps = weight.reshape(c, 9)
        rows = np.arange(n)[:, None, None]
        acc = np.zeros((n, h, w, c))
        dil = np.clip(np.round(d.transpose(0, 2, 3, 1)), 0, self.get_nodeattr("max_dilation"))
        for k, (flat, _) in enumerate(deform_taps(dil, h, w)):
            acc += table[rows, flat] * taps[:, k]
        context[node.output[0]] = acc.transpose(0, 3, 1, 2).astype(np.float32)

    def verify_node(self) -> list[str]:
        node = self.onnx_node
        ok = len(node.input) == 3 and self.get_nodeattr("max_dilation") >= 1
        return [] if ok else [f"{SQUARE_DEFORM} needs inputs (x, d, weight) and max_dilation ≥ 1"]


__all__ = ["DOMAIN", "SQUARE_DEFORM", "SquareDeformConv"]
