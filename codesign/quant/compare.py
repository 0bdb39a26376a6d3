"""Agreement between the Brevitas fake-quant model and the integer golden model.

The two differ only where a value lies within float error of a rounding boundary or on a tie
(round-half-even in Brevitas, round-half-up in the contract). This measures how often: per
requantized layer, the share of activations whose integers are identical, and end to end the
top-1 agreement and both accuracies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..golden import run as golden_run
from ..graph import Graph
from ..models.layers import ConvBNAct


@dataclass
class AgreementReport:
    images: int
    top1_agreement: float
    fakequant_accuracy: float | None
    golden_accuracy: float | None
    layer_identical: dict[str, float] = field(default_factory=dict)

    def worst_layer(self) -> tuple[str, float]:
        name = min(self.layer_identical, key=self.layer_identical.get)
        return name, self.layer_identical[name]

    def format(self) -> str:
        lines = [f"images: {self.images}",
                 f"top-1 agreement golden vs fake-quant: {100 * self.top1_agreement:.2f} %"]
        if self.fakequant_accuracy is not None:
            lines.append(f"accuracy: fake-quant {100 * self.fakequant_accuracy:.2f} %, "
                         f"golden {100 * self.golden_accuracy:.2f} %")
        lines.append("identical activations per requantized layer:")
        lines += [f"  {name:<28} {100 * share:8.3f} %" for name, share in self.layer_identical.items()]
        name, share = self.worst_layer()
        lines.append(f"lowest: {name} {100 * share:.3f} %")
        return "\n".join(lines)


def fakequant_trace(model: nn.Module, images: np.ndarray, batch_size: int = 256
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits and the integer output (NHWC) of every ConvBNAct of the fake-quant model."""
    paths = {mod: name for name, mod in model.named_modules() if isinstance(mod, ConvBNAct)}
    captured: dict[str, list[np.ndarray]] = {name: [] for name in paths.values()}

    def hook(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        scale = float(mod.act.act_quant.scale().reshape(-1)[0])
        ints = torch.round(out / scale).to(torch.int64).permute(0, 2, 3, 1).numpy()
        captured[paths[mod]].append(ints)

    handles = [m.register_forward_hook(hook) for m in paths]
    model.eval()
    logits = []
    try:
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).float() / 255.0
                logits.append(model(x).numpy())
    finally:
        for h in handles:
            h.remove()
    return np.concatenate(logits), {k: np.concatenate(v) for k, v in captured.items()}


def compare(model: nn.Module, graph: Graph, images: np.ndarray, labels: np.ndarray | None = None
            ) -> AgreementReport:
    fq_logits, fq_layers = fakequant_trace(model, images)
    g_logits, trace = golden_run(graph, images, trace=True)
    fq_top1 = fq_logits.argmax(axis=1)
    g_top1 = g_logits.reshape(len(images), -1).argmax(axis=1)
    shares = {}
    for name, fq in fq_layers.items():
        if name not in trace:
            raise KeyError(f"golden trace has no tensor '{name}'")
        shares[name] = float(np.mean(fq == trace[name].astype(np.int64)))
    acc = (lambda p: float(np.mean(p == labels))) if labels is not None else (lambda p: None)
    return AgreementReport(len(images), float(np.mean(fq_top1 == g_top1)), acc(fq_top1), acc(g_top1), shares)
