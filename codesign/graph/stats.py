"""Per-layer work of an IR graph: MACs and weight counts (what the estimator and summary read)."""
from __future__ import annotations

from .ir import Graph, Layer
from .opdef import op_def


def layer_macs(graph: Graph, layer: Layer) -> int:
    """Multiply-accumulates of one image through `layer` (its op class; 0 for data-movement ops)."""
    return op_def(layer.op).macs(graph, layer)


def activation(graph: Graph, layer: Layer) -> str:
    """What a requantizing layer's clamp is: "ReLU" (an unsigned output, clamped at 0) or "linear" (a
    signed one, docs/integer-contract.md "Signed activations"); "" for a layer without a requant."""
    if "mult" not in layer.params:
        return ""
    return "linear" if graph.tensors[layer.output].signed else "ReLU"


def format_graph_summary(graph: Graph) -> str:
    lines = [f"IR '{graph.name}': {len(graph.layers)} layers, input {graph.tensors[graph.input].shape} (H, W, C)",
             f"{'layer':<28} {'op':<14} {'output (H,W,C)':<16} {'bits':>4} {'act':<6} {'weights':>10} {'MACs':>14}"]
    total_macs = total_w = 0
    for layer in graph.layers:
        t = graph.tensors[layer.output]
        n_w = int(layer.params["weight"].size) if "weight" in layer.params else 0
        macs = layer_macs(graph, layer)
        total_macs += macs
        total_w += n_w
        lines.append(f"{layer.name:<28} {layer.op:<14} {str(t.shape):<16} {t.bits:>4} {activation(graph, layer):<6} "
                     f"{n_w:>10,} {macs:>14,}")
    lines.append(f"total: {total_macs / 1e6:.2f} M MACs, {total_w / 1e6:.3f} M integer weights")
    return "\n".join(lines)
