"""Design-space exploration: sweep engine parameters for a model IR on a board.

Every candidate `HardwareConfig` is sized for the graph (`sized_for`: buffers exactly as large as
the network needs), estimated (FPS at batch 1 and batch N, resources) in a process pool, and
dropped when it does not fit the board. The choice is the fitting config with the best FPS at
`rank_batch` (ties: the smaller design); the Pareto front is over (FPS ↑, LUT ↓, BRAM ↓, DSP ↓).
"""
from __future__ import annotations

import itertools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import CodesignError
from ..graph import Graph
from ..hw.config import Board, HardwareConfig
from ..hw.fuse import fuse
from ..hw.limits import check_fits, requirements, sized_for, weight_tiles_needed
from ..hw.plan import ScheduleError
from .cycles import estimate
from .params import ModelParams, ResourceParams
from ..figures import pyplot
from .resources import resources
from .workload import Workload, workload


class ExploreError(CodesignError):
    """No configuration of the swept space fits the board."""


@dataclass
class Candidate:
    hw: HardwareConfig
    fps: float  # batch 1
    fps_n: float  # batch N
    latency_ms: float  # batch 1
    lut: int
    ff: int
    bram36: float
    dsp: int
    fits: bool
    uram: int = 0
    reason: str = ""
    pareto: bool = False
    code_checked: bool = False  # judged by the code-derived model (code_fit), not only the analytic one

    def to_dict(self) -> dict[str, Any]:
        return {"hw": self.hw.to_dict(), "fps": self.fps, "fps_n": self.fps_n, "latency_ms": self.latency_ms,
                "lut": self.lut, "ff": self.ff, "bram36": self.bram36, "uram": self.uram, "dsp": self.dsp,
                "fits": self.fits, "code_checked": self.code_checked,
                "reason": self.reason, "pareto": self.pareto}

    @property
    def label(self) -> str:
        return f"{self.hw.pi}x{self.hw.po}/{self.hw.bus_bits}b/{self.hw.clock_mhz:g}MHz"


@dataclass
class ExploreResult:
    board: Board
    batch_n: int
    rank_batch: int
    control: str
    candidates: list[Candidate]
    best: HardwareConfig
    meta: dict = field(default_factory=dict)

    @property
    def feasible(self) -> list[Candidate]:
        return [c for c in self.candidates if c.fits]

    @property
    def pareto(self) -> list[Candidate]:
        return [c for c in self.candidates if c.pareto]

    @property
    def best_candidate(self) -> Candidate:
        return next(c for c in self.candidates if c.hw == self.best)

    def save_best(self, path: str | Path) -> Path:
        """The chosen config as YAML (HardwareConfig.save)."""
        return self.best.save(path)

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board.name, "batch_n": self.batch_n, "rank_batch": self.rank_batch,
                "control": self.control, "best": self.best.to_dict(),
                "candidates": [c.to_dict() for c in self.candidates], "meta": self.meta}

    def table(self) -> str:
        rows = [f"{'config':<22} {'FPS b1':>8} {f'FPS b{self.batch_n}':>9} {'LUT':>7} {'FF':>7} {'BRAM':>6} "
                f"{'DSP':>5}  fits  pareto  (fits: code = judged on the rendered engine, else analytic)"]
        for c in sorted(self.candidates, key=lambda c: (-c.fits, -c.fps)):
            mark = "*" if c.hw == self.best else " "
            rows.append(f"{mark}{c.label:<21} {c.fps:>8.1f} {c.fps_n:>9.1f} {c.lut:>7,} {c.ff:>7,} {c.bram36:>6g} "
                        f"{c.dsp:>5}  {'yes ' if c.fits else 'no  '}{'code' if c.code_checked else '    '}"
                        f"  {'yes' if c.pareto else ''}"
                        f"{'' if c.fits else '   ' + c.reason}")
        return "\n".join(rows)

    def plot(self, path: str | Path) -> Path:
        return plot_pareto(self, path)


def _evaluate(task: tuple) -> Candidate:
    wl, hw, board, params, rparams, control, batch_n, margin = task
    e1 = estimate(wl, hw, batch=1, control=control, params=params, board=board)
    en = estimate(wl, hw, batch=batch_n, control=control, params=params, board=board)
    r = resources(hw, params, rparams, board)
    bad = r.violations(margin)
    return Candidate(hw=hw, fps=e1.fps, fps_n=en.fps, latency_ms=e1.latency_ms, lut=r.lut, ff=r.ff,
                     bram36=r.bram36, dsp=r.dsp, uram=r.uram, fits=not bad, reason="; ".join(bad))


def pareto_front(points: Sequence[Candidate], keys: Iterable[str] = ("lut", "bram36", "uram", "dsp"),
                 rank: str = "fps") -> list[Candidate]:
    """Points not dominated on (rank ↑, every key ↓)."""
    keys = tuple(keys)

    def dominates(a: Candidate, b: Candidate) -> bool:
        ge = getattr(a, rank) >= getattr(b, rank) and all(getattr(a, k) <= getattr(b, k) for k in keys)
        gt = getattr(a, rank) > getattr(b, rank) or any(getattr(a, k) < getattr(b, k) for k in keys)
        return ge and gt

    return [p for p in points if not any(dominates(q, p) for q in points if q is not p)]


def explore(graph: Graph, board: str | Board = "ultra96v2", base: HardwareConfig | None = None,
            pis: Sequence[int] = (8, 16, 32, 64), pos: Sequence[int] = (8, 16, 32, 64),
            bus_bits: Sequence[int] = (64, 128), clocks_mhz: Sequence[float] | None = None,
            batch_n: int = 16, rank_batch: int = 1, control: str = "descriptor",
            params: ModelParams | None = None, rparams: ResourceParams | None = None,
            margin: float = 1.0, workers: int | None = None, out_dir: str | Path | None = None,
            code_fit: Callable[[HardwareConfig], list[str]] | None = None) -> ExploreResult:
    """Sweep PI × PO × bus width × clock for `graph` on `board`; choose the best fitting config.

    `code_fit` (hls/fit.py: render the engine, price what it declares) returns a candidate's
    resources over budget; given, it is the judge: candidates are tried in rank order and the first
    it passes is the choice (the analytic resource model, which only estimates, then ranks nothing
    out). Without it the analytic model at `margin` decides.

    `clocks_mhz` defaults to the board's engine clock (the model does not predict timing closure,
    so faster clocks than the board file's are not offered). `rank_batch` (1 or `batch_n`) is the
    batch whose FPS ranks the configs. With `out_dir`, writes explore.json, pareto.png and
    hw_best.yaml there.
    """
    b = board if isinstance(board, Board) else Board.load(board)
    if rank_batch not in (1, batch_n):
        raise ValueError(f"rank_batch={rank_batch} must be 1 or batch_n={batch_n}")
    sized = sized_for(graph, (base or HardwareConfig()).with_(board=b.name))
    calls, _ = fuse(graph)
    wl: Workload = workload(graph, sized.act_bits)
    clocks = list(clocks_mhz) if clocks_mhz else [b.clock_mhz]
    tasks = []
    for pi, po, bus, clk in itertools.product(pis, pos, bus_bits, clocks):
        hw = sized.with_(pi=pi, po=po, bus_bits=bus, clock_mhz=float(clk))
        hw = hw.with_(max_wtiles=weight_tiles_needed(graph, calls, hw))  # the buffer for this array shape
        # a k×k conv's MAC inputs and window row are whole PI-vectors: sized for this PI
        req = requirements(graph, calls, hw)
        hw = hw.with_(max_channels=max(hw.max_channels, req.max_channels),
                      max_weights=max(hw.max_weights, req.max_weights), window_line=max(hw.window_line, req.window_line))
        try:
            check_fits(req, hw, graph, calls)
        except ScheduleError:  # pragma: no cover - sized_for makes every sweep point schedulable
            continue
        tasks.append((wl, hw, b, params, rparams, control, batch_n, margin))
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            cands = list(pool.map(_evaluate, tasks, chunksize=max(1, len(tasks) // (4 * workers))))
    else:
        cands = [_evaluate(t) for t in tasks]
    rank = "fps" if rank_batch == 1 else "fps_n"

    def size(c: Candidate) -> float:
        return c.lut / b.lut + c.bram36 / b.bram36 + c.uram / max(1, b.uram) + c.dsp / max(1, b.dsp)

    def order(c: Candidate) -> tuple:
        return (round(getattr(c, rank), 6), -size(c))

    best = None
    if code_fit is not None:
        for c in sorted(cands, key=order, reverse=True):
            bad = code_fit(c.hw)
            c.code_checked, c.fits, c.reason = True, not bad, "; ".join(bad)
            if not bad:
                best = c
                break
        if best is None:
            raise ExploreError(f"none of {len(cands)} configurations fits {b.name} (code-derived): "
                               + "; ".join(f"{c.label}: {c.reason}" for c in cands[:3]))
    feasible = [c for c in cands if c.fits]
    if not feasible:
        raise ExploreError(f"none of {len(cands)} configurations fits {b.name}: "
                           + "; ".join(f"{c.label}: {c.reason}" for c in cands[:4]))
    for c in pareto_front(feasible, rank=rank):
        c.pareto = True
    best = best or max(feasible, key=order)
    result = ExploreResult(board=b, batch_n=batch_n, rank_batch=rank_batch, control=control, candidates=cands,
                           best=best.hw, meta={"graph": graph.name, "workers": workers, "swept": len(cands)})
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "explore.json").write_text(json.dumps(result.to_dict(), indent=1))
        result.plot(out / "pareto.png")
        result.save_best(out / "hw_best.yaml")
    return result


def plot_pareto(result: ExploreResult, path: str | Path) -> Path:
    plt = pyplot()

    rank = "fps" if result.rank_batch == 1 else "fps_n"
    cap = {"lut": result.board.lut, "bram36": result.board.bram36, "dsp": result.board.dsp}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), dpi=100, sharey=True)
    feas = result.feasible
    bad = [c for c in result.candidates if not c.fits]
    macs = sorted({c.hw.pi * c.hw.po for c in result.candidates})
    cmap = plt.get_cmap("viridis")
    for ax, key, label in zip(axes, ("lut", "bram36", "dsp"), ("LUT", "BRAM36", "DSP")):
        if bad:
            ax.scatter([getattr(c, key) for c in bad], [getattr(c, rank) for c in bad], marker="x", c="lightgray",
                       s=20, label="does not fit")
        ax.scatter([getattr(c, key) for c in feas], [getattr(c, rank) for c in feas],
                   c=[cmap(macs.index(c.hw.pi * c.hw.po) / max(1, len(macs) - 1)) for c in feas], s=30,
                   edgecolors="black", linewidths=0.4, label="fits", zorder=3)
        front = sorted(pareto_front(feas, keys=(key,), rank=rank), key=lambda c: getattr(c, key))
        if front:
            xs, ys = [], []
            for c in front:
                if xs:
                    xs.append(getattr(c, key))
                    ys.append(ys[-1])
                xs.append(getattr(c, key))
                ys.append(getattr(c, rank))
            ax.plot(xs, ys, color="tab:red", lw=1.5, label="Pareto front", zorder=2)
        best = result.best_candidate
        ax.scatter([getattr(best, key)], [getattr(best, rank)], marker="*", s=220, c="gold", edgecolors="black",
                   zorder=4, label=f"chosen {best.label}")
        ax.axvline(cap[key], color="red", ls="--", lw=1)
        ax.set_xlabel(f"{label} (board: {cap[key]:,})")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"FPS (batch {result.rank_batch}, {result.control} control)")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"Design space on {result.board.name}: {len(feas)} of {len(result.candidates)} configurations fit; "
                 f"colour = PI·PO", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
