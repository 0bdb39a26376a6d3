"""QONNX export of the Brevitas model, for users who take it on to FINN or hls4ml."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .export import ExportError


def export_qonnx(model: nn.Module, path: str | Path, resolution: int) -> Path:
    """Write the fake-quant model as QONNX (Quant nodes carry scales and bit widths)."""
    from brevitas.export import export_qonnx as brevitas_export_qonnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        brevitas_export_qonnx(model, input_t=torch.zeros(1, 3, resolution, resolution), export_path=str(path))
    except Exception as e:  # the tracer's errors are long; one line is what a user needs
        raise ExportError(f"QONNX export failed: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        model.train(was_training)
    return path
