"""Estimator report: per-call table, roofline, resources vs the board, as PNG + JSON.

    write_report(graph, hw, out_dir) → {"json": …, "table": …, "roofline": …, "resources": …}

Plots use matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..figures import pyplot
from ..graph import Graph
from ..hw.config import HardwareConfig
from .cycles import FrameEstimate, estimate
from .params import ModelParams, ResourceParams
from .resources import RESOURCE_KINDS, ResourceEstimate, resources

BOUND_COLORS = {"compute": "tab:blue", "memory": "tab:orange", "control": "tab:red", "host": "tab:gray"}


def roofline_data(est: FrameEstimate) -> dict:
    """Roofs and one point per engine call (ops, DDR bytes, attained GOP/s, distance to roof)."""
    peak = est.peak_gops
    bw = est.params.ddr_gbps or est.board.ddr_gbps
    pts = []
    for c in est.calls:
        if c.on_host or not c.ops:
            continue
        roof = min(peak, bw * c.intensity)
        pts.append({"name": c.name, "flags": c.flags, "ops": c.ops, "dram_bytes": c.dram_bytes,
                    "intensity": c.intensity, "gops": c.gops, "roof_gops": roof,
                    "fraction_of_roof": c.gops / roof if roof else 0.0, "bound": c.bound,
                    "gops_with_control": c.ops / c.time_s / 1e9 if c.time_s else 0.0})
    return {"peak_gops": peak, "ddr_gbps": bw, "ridge_intensity": peak / bw, "points": pts,
            "frame": {"gops": est.gops, "fps": est.fps}}


def plot_roofline(est: FrameEstimate, path: str | Path) -> Path:
    plt = pyplot()
    data = roofline_data(est)
    peak, bw = data["peak_gops"], data["ddr_gbps"]
    xs = [p["intensity"] for p in data["points"]] or [1.0]
    lo, hi = min(min(xs) / 4, data["ridge_intensity"] / 8), max(max(xs) * 4, data["ridge_intensity"] * 8)
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(grid, [min(peak, bw * x) for x in grid], color="black", lw=2, label="roofline")
    ax.axhline(peak, color="black", ls=":", lw=1)
    ax.text(hi, peak * 1.08, f"compute roof {peak:.0f} GOP/s (PI·PO·f)", ha="right", fontsize=8)
    ax.text(lo * 1.2, bw * lo * 1.5, f"DDR {bw:g} GB/s", rotation=0, fontsize=8)
    for bound, color in BOUND_COLORS.items():
        pts = [p for p in data["points"] if p["bound"] == bound]
        if pts:
            ax.scatter([p["intensity"] for p in pts], [p["gops"] for p in pts], c=color, s=28,
                       label=f"calls, {bound}-bound", edgecolors="black", linewidths=0.4, zorder=3)
    ctrl = [p for p in data["points"] if p["gops_with_control"] < p["gops"] * 0.95]
    if ctrl:
        ax.scatter([p["intensity"] for p in ctrl], [p["gops_with_control"] for p in ctrl], marker="x", c="tab:red",
                   s=22, label="incl. its share of control", zorder=3)
    worst = sorted(data["points"], key=lambda p: p["fraction_of_roof"])[:3]
    for i, p in enumerate(worst):
        ax.annotate(f"{p['name']} ({p['fraction_of_roof']:.0%} of roof)", (p["intensity"], p["gops"]), fontsize=7,
                    xytext=(6, -12 - 10 * i), textcoords="offset points",
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "gray"})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (ops / DDR byte)")
    ax.set_ylabel("GOP/s")
    ax.set_title(f"{est.hw.pi}×{est.hw.po} @ {est.hw.clock_mhz:g} MHz on {est.board.name}: "
                 f"{est.fps:.1f} FPS, {est.gops:.0f} GOP/s delivered (batch {est.batch}, {est.control})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_resources(res: ResourceEstimate, path: str | Path) -> Path:
    plt = pyplot()
    cap = res.capacity()
    comps = list(res.breakdown)
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9.5, 4.8), dpi=110)
    kinds = [k for k in RESOURCE_KINDS if cap[k] or res.used()[k]]
    labels = [{"lut": "LUT", "ff": "FF", "bram36": "BRAM36", "uram": "URAM", "dsp": "DSP"}[k] for k in kinds]
    bottoms = [0.0] * len(kinds)
    for i, comp in enumerate(comps):
        vals = [100 * res.breakdown[comp][k] / cap[k] if cap[k] else 0 for k in kinds]
        if any(vals):
            ax.bar(labels, vals, bottom=bottoms, color=cmap(i % 10), label=comp, edgecolor="white", linewidth=0.5)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
    for x, k in enumerate(kinds):
        ax.text(x, bottoms[x] + 2, f"{res.used()[k]:,.0f} / {cap[k]:,}", ha="center", fontsize=8)
    ax.axhline(100, color="red", ls="--", lw=1.2, label=f"{res.board.name} capacity")
    ax.set_ylabel("% of board")
    ax.set_ylim(0, max(110, max(bottoms) * 1.15))
    ax.set_title(f"{res.hw.pi}×{res.hw.po}, W{res.hw.weight_bits}, {res.hw.bus_bits}-bit bus: "
                 f"{'fits' if res.fits() else 'does NOT fit'} {res.board.name}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(graph: Graph, hw: HardwareConfig, out_dir: str | Path, batch: int = 1, control: str = "descriptor",
                 shuffle_on_cpu: bool = False, params: ModelParams | None = None,
                 rparams: ResourceParams | None = None) -> dict[str, Path]:
    """Per-call table (text + JSON), roofline.png and resources.png for `graph` on `hw`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    est = estimate(graph, hw, batch=batch, control=control, shuffle_on_cpu=shuffle_on_cpu, params=params)
    res = resources(hw, params, rparams, est.board)
    table = out / "estimate.txt"
    table.write_text(est.summary() + "\n" + res.summary() + "\n\n" + est.table() + "\n")
    data = {"estimate": est.to_dict(), "resources": res.to_dict(), "roofline": roofline_data(est)}
    js = out / "estimate.json"
    js.write_text(json.dumps(data, indent=1))
    return {"json": js, "table": table, "roofline": plot_roofline(est, out / "roofline.png"),
            "resources": plot_resources(res, out / "resources.png")}
