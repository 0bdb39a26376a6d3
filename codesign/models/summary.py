"""Per-layer shapes, parameters and MACs of a torch model, measured by one forward pass."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .deform import DeformConv3x3, DeformConvBNAct


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


def _deform_taps(name: str, mod: nn.Module) -> tuple[str, nn.Module | torch.Tensor] | None:
    """(row name, weight holder) of a deformable 3×3 whose taps are applied by a gather, not by a
    conv module's forward (so no conv hook sees them), or None for any other module."""
    if isinstance(mod, DeformConvBNAct):
        return f"{name}.dw", mod.dw  # `dw` holds the weights; its forward is never called
    if isinstance(mod, DeformConv3x3):
        return name, mod.weight
    return None


def summarize(model: nn.Module, resolution: int) -> list[LayerStats]:
    """One row per layer that holds MACs and weights: convolutions, linear layers, and the taps of
    the deformable 3×3 convs (9 MACs per output value and input channel it reads: 9 per output
    value for a depthwise one, like a depthwise 3×3 conv). A deformable conv's offset conv is a
    conv of its own (its row comes first)."""
    rows: list[LayerStats] = []
    hooks = []

    def params_of(mod: nn.Module | torch.Tensor) -> int:
        if isinstance(mod, torch.Tensor):
            return mod.numel()
        return sum(p.numel() for n, p in mod.named_parameters() if not _is_quantizer(n))

    def hook_for(name: str):
        def hook(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            if isinstance(mod, nn.Conv2d):
                per_out = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
                kind = f"conv{mod.kernel_size[0]}x{mod.kernel_size[1]}" + ("/dw" if mod.groups > 1 else "")
            else:
                per_out, kind = mod.in_features, "linear"
            rows.append(LayerStats(name, kind, tuple(out.shape[1:]), params_of(mod), out[0].numel() * per_out))
        return hook

    def deform_hook_for(row_name: str, weights: nn.Module | torch.Tensor):
        def hook(mod: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            w = weights.weight if isinstance(weights, nn.Module) else weights  # (Cout, Cin or 1, 3, 3)
            kind = "deform3x3" + ("/dw" if w.shape[1] == 1 else "")
            rows.append(LayerStats(row_name, kind, tuple(out.shape[1:]), params_of(weights),
                                   out[0].numel() * w[0].numel()))
        return hook

    for name, mod in model.named_modules():
        deform = _deform_taps(name, mod)
        if deform:
            hooks.append(mod.register_forward_hook(deform_hook_for(*deform)))
        elif isinstance(mod, (nn.Conv2d, nn.Linear)):
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
    lines = [title, f"{'layer':<28} {'type':<12} {'output (C,H,W)':<18} {'params':>10} {'MACs':>14}"]
    for r in rows:
        lines.append(f"{r.name:<28} {r.kind:<12} {str(r.out_shape):<18} {r.params:>10,} {r.macs:>14,}")
    macs = sum(r.macs for r in rows)
    lines.append(f"total: {macs / 1e6:.2f} M MACs, {total_params / 1e6:.3f} M parameters "
                 f"({len(rows)} conv/linear/deformable layers)")
    return "\n".join(lines)
