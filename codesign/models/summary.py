"""Per-layer shapes, parameters and MACs of a torch model, measured by one forward pass."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LayerStats:
    name: str
    kind: str
    out_shape: tuple[int, ...]
    params: int
    macs: int


def _is_quantizer(name: str) -> bool:
    return any(part in ("act_quant", "weight_quant", "input_quant", "output_quant", "bias_quant")
               for part in name.split("."))


def summarize(model: nn.Module, resolution: int) -> list[LayerStats]:
    """One row per convolution / linear layer (the modules that hold MACs and weights)."""
    rows: list[LayerStats] = []
    hooks = []

    def hook_for(name: str):
        def hook(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            if isinstance(mod, nn.Conv2d):
                per_out = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
                kind = f"conv{mod.kernel_size[0]}x{mod.kernel_size[1]}" + ("/dw" if mod.groups > 1 else "")
            else:
                per_out, kind = mod.in_features, "linear"
            params = sum(p.numel() for n, p in mod.named_parameters() if not _is_quantizer(n))
            rows.append(LayerStats(name, kind, tuple(out.shape[1:]), params, out[0].numel() * per_out))
        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            hooks.append(mod.register_forward_hook(hook_for(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, resolution, resolution))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def count_params(model: nn.Module) -> int:
    """Trainable parameters (weights, biases, BN affine), excluding quantizer scales."""
    return sum(p.numel() for n, p in model.named_parameters() if not _is_quantizer(n))


def format_summary(rows: list[LayerStats], total_params: int, title: str) -> str:
    lines = [title, f"{'layer':<28} {'type':<10} {'output (C,H,W)':<18} {'params':>10} {'MACs':>14}"]
    for r in rows:
        lines.append(f"{r.name:<28} {r.kind:<10} {str(r.out_shape):<18} {r.params:>10,} {r.macs:>14,}")
    macs = sum(r.macs for r in rows)
    lines.append(f"total: {macs / 1e6:.2f} M MACs, {total_params / 1e6:.3f} M parameters "
                 f"({len(rows)} conv/linear layers)")
    return "\n".join(lines)
