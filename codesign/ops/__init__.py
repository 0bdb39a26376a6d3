"""One class per op kind (docs/adding-an-op.md): importing this package registers them all in
codesign.graph.opdef.OPS, where validation, the golden model, the scheduler and the estimator look
them up.
"""
from . import conv, movement, spatial  # noqa: F401  (registers the ops)
from ..graph.opdef import OPS, op_def

__all__ = ["OPS", "op_def"]
