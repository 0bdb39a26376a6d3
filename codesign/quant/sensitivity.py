"""Per-layer quantization sensitivity of a trained classifier (issue #16, the input to a bit allocation).

Two measures per weighted layer (every Conv2d and Linear with trainable weights), on the float twin of
a checkpoint (its latent weights; BN in eval mode) and a fixed set of training images:

- Hessian: the trace of the loss's Hessian with respect to the layer's weights, by Hutchinson's
  estimator — E[vᵀHv] over Rademacher vectors v, one Hessian-vector product (double backprop) per
  sample for all layers at once: the cross terms v_lᵀ H_lm v_m vanish in expectation (PyHessian,
  HAWQ). HAWQ-v2's sensitivity of quantizing layer l to b bits is Ω_l(b) = tr(H_l)/n_l · ‖Q_b(W_l) − W_l‖²,
  the second-order loss increase of that perturbation with the layer's mean curvature.
- Quantization loss: the measured loss increase when that layer alone is quantized to b bits
  (`quantize_weight`: per output channel, symmetric, narrow range — Brevitas' Int*WeightPerChannelFloat
  at b bits), the cheaper check.

`codesign sensitivity --checkpoint C` prints both, ranks the layers by Ω, and writes
sensitivity.json and sensitivity.png.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..errors import CodesignError
from ..figures import pyplot


class SensitivityError(CodesignError):
    """A model or setting sensitivity cannot measure; one line."""


@dataclass
class LayerSensitivity:
    name: str
    params: int
    hessian_trace: float  # tr(H_l), Hutchinson estimate
    trace_stderr: float  # its standard error over the samples
    perturbation: float  # ‖Q_b(W_l) − W_l‖²
    omega: float  # HAWQ-v2: tr(H_l) / n_l · ‖Q_b(W_l) − W_l‖²
    quant_loss_increase: float  # loss(only this layer at b bits) − loss(float)


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers a bit width applies to: Conv2d and Linear modules with a trainable weight, in model order."""
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and isinstance(m.weight, nn.Parameter) and m.weight.requires_grad]
    if not layers:
        raise SensitivityError("the model has no trainable Conv2d or Linear layer")
    return layers


def quantize_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric narrow-range fake quantization to `bits` (the scale maps the channel's
    largest magnitude to 2^(b−1) − 1), as the QAT weight quantizers do."""
    if not 2 <= bits <= 8:
        raise SensitivityError(f"{bits}-bit weights: the engine takes 2..8")
    top = (1 << (bits - 1)) - 1
    scale = w.detach().abs().flatten(1).amax(1).clamp_min(1e-12) / top
    shape = (-1,) + (1,) * (w.dim() - 1)
    return (w / scale.view(shape)).round().clamp(-top, top) * scale.view(shape)


def _loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    with torch.no_grad():
        total = sum(F.cross_entropy(model(images[i:i + batch]), labels[i:i + batch], reduction="sum").item()
                    for i in range(0, len(images), batch))
    return total / len(images)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 256) -> float:
    """Top-1 in percent."""
    with torch.no_grad():
        right = sum(int((model(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum())
                    for i in range(0, len(images), batch))
    return 100.0 * right / len(images)


def hessian_traces(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, samples: int, seed: int = 0,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per weighted layer, Hutchinson's estimate of tr(H) of the mean cross-entropy over `images` and its
    standard error: `samples` Hessian-vector products over the whole image set."""
    params = [m.weight for _, m in weighted_layers(model)]
    model.eval()
    loss = F.cross_entropy(model(images), labels)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(seed)
    draws = np.zeros((samples, len(params)))
    for s in tqdm(range(samples), desc="Hessian trace", disable=not progress, leave=False):
        vs = [torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1 for p in params]
        hvs = torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=s < samples - 1)
        draws[s] = [float((hv * v).sum()) for hv, v in zip(hvs, vs)]
    stderr = draws.std(axis=0, ddof=1) / np.sqrt(samples) if samples > 1 else np.full(len(params), np.nan)
    return draws.mean(axis=0), stderr


def measure(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, bits: int = 2, samples: int = 16,
            seed: int = 0, progress: bool = True) -> list[LayerSensitivity]:
    """Both measures for every weighted layer of a float classifier (model order)."""
    layers = weighted_layers(model)
    model.eval()
    traces, stderr = hessian_traces(model, images, labels, samples, seed, progress)
    base = _loss(model, images, labels, 256)
    out = []
    for (name, m), tr, se in zip(tqdm(layers, desc="quantization loss", disable=not progress, leave=False),
                                 traces, stderr):
        w = m.weight.data.clone()
        q = quantize_weight(w, bits)
        pert = float(((q - w) ** 2).sum())
        m.weight.data.copy_(q)
        try:
            increase = _loss(model, images, labels, 256) - base
        finally:
            m.weight.data.copy_(w)
        out.append(LayerSensitivity(name, w.numel(), float(tr), float(se), pert, float(tr) / w.numel() * pert,
                                    increase))
    return out


def quantize_layers(model: nn.Module, names: list[str], bits: int) -> None:
    """Replace the named layers' weights by their `bits`-bit quantization (in place)."""
    modules = dict(weighted_layers(model))
    for n in names:
        w = modules[n].weight
        w.data.copy_(quantize_weight(w.data, bits))


def spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation of two measures over the same layers (ties broken by order)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 1 else 1.0


def write_outputs(result: list[LayerSensitivity], meta: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """sensitivity.json (every figure, ranked) and sensitivity.png (both measures per layer, log scale)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ranked = sorted(result, key=lambda r: -r.omega)
    js = out / "sensitivity.json"
    js.write_text(json.dumps({**meta, "ranking": [r.name for r in ranked],
                              "layers": [asdict(r) for r in result]}, indent=1, sort_keys=True) + "\n")
    plt = pyplot()
    fig, ax = plt.subplots(2, 1, figsize=(max(6.0, 0.35 * len(result)), 6.5), sharex=True)
    x = np.arange(len(result))
    ax[0].bar(x, [max(r.omega, 1e-12) for r in result], color="tab:blue")
    ax[0].set_yscale("log")
    ax[0].set_ylabel(f"Ω = tr(H)/n · ‖Q{meta['bits']}(W) − W‖²")
    ax[0].set_title(f"per-layer sensitivity at {meta['bits']}-bit weights ({meta['checkpoint']})")
    ax[1].bar(x, [max(r.quant_loss_increase, 1e-12) for r in result], color="tab:orange")
    ax[1].set_yscale("log")
    ax[1].set_ylabel(f"loss increase, layer alone at {meta['bits']} bits")
    ax[1].set_xticks(x, [r.name for r in result], rotation=90, fontsize=7)
    fig.tight_layout()
    png = out / "sensitivity.png"
    fig.savefig(png, dpi=110, metadata={"Software": None})  # no version stamp: same inputs, same bytes
    plt.close(fig)
    return js, png


__all__ = ["LayerSensitivity", "SensitivityError", "accuracy", "hessian_traces", "measure", "quantize_layers",
           "quantize_weight", "spearman", "weighted_layers", "write_outputs"]
