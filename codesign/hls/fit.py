"""Does an engine fit its board? Resources of the engine as rendered, and the choice of one that fits.

The judge is the code-derived model (codesign/estimate/fit.py): the memories the rendered engine
declares (hls/inventory.py, read from its C-simulation library) and its arithmetic, priced. It is
what `codesign compile` refuses by and what `explore` and the default sizing choose by; the
analytic estimator only ranks the candidates (its FPS is the cycle count's, tests/test_cycles.py).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import CodesignError
from ..estimate.fit import DEFAULT_MARGIN, CodeDerivedResources, code_derived
from ..graph import Graph
from ..hw.config import HardwareConfig
from .inventory import axi_adapters, declared_memories
from .project import write_project

# Array shapes the default sizing falls back to when the default one does not fit (explore ranks them)
FALLBACK_SIZES = (32, 16, 8)


class DoesNotFit(CodesignError):
    """The engine for this model and config takes more of the board than the margin allows."""


def project_resources(project: str | Path) -> CodeDerivedResources:
    """The code-derived resources of a rendered project's engine on its hw.yaml's board."""
    project = Path(project)
    hw = HardwareConfig.load(project / "hw.yaml")
    return code_derived(hw, declared_memories(project), axi_adapters(project))


def rendered_resources(graph: Graph, hw: HardwareConfig) -> CodeDerivedResources:
    """Render the engine for graph on hw (in a scratch directory) and price what it declares."""
    with tempfile.TemporaryDirectory(prefix="codesign-fit-") as tmp:
        return project_resources(write_project(graph, hw, Path(tmp) / "p").path)


def refuse_unless_fits(graph: Graph, hw: HardwareConfig, margin: float = DEFAULT_MARGIN) -> CodeDerivedResources:
    """The resources, or DoesNotFit naming each resource over the margin and its largest consumers."""
    fit = rendered_resources(graph, hw)
    bad = fit.violations(margin)
    if bad:
        raise DoesNotFit(f"the design does not fit {hw.board} ({hw.pi}x{hw.po} array): {'; '.join(bad)} "
                         "(try a smaller --hw, or `codesign explore`)")
    return fit


def fitting_config(graph: Graph, hw: HardwareConfig, margin: float = DEFAULT_MARGIN,
                   sizes: tuple[int, ...] = FALLBACK_SIZES) -> tuple[HardwareConfig, CodeDerivedResources, str]:
    """hw when its engine fits; else the fastest PI x PO from `sizes` (estimator's FPS) whose engine
    fits. Returns the config, its resources and a note saying what was chosen and why."""
    fit = rendered_resources(graph, hw)
    bad = fit.violations(margin)
    if not bad:
        return hw, fit, ""
    from ..estimate.explore import ExploreError, explore

    fits: dict[HardwareConfig, CodeDerivedResources] = {hw: fit}  # the default is judged already

    def code_fit(cand: HardwareConfig) -> list[str]:
        if cand not in fits:
            fits[cand] = rendered_resources(graph, cand)
        return fits[cand].violations(margin)

    try:
        result = explore(graph, board=hw.board, base=hw, pis=sizes, pos=sizes, bus_bits=(hw.bus_bits,),
                         clocks_mhz=(hw.clock_mhz,), workers=1, code_fit=code_fit)
    except ExploreError as e:
        raise DoesNotFit(f"the design does not fit {hw.board}: {'; '.join(bad)}; nor does a smaller array ({e})") \
            from None
    best = result.best
    note = (f"{hw.pi}x{hw.po} does not fit {hw.board} ({bad[0].split(':')[0]}); chose {best.pi}x{best.po}, "
            f"the fastest array that fits ({result.best_candidate.fps:.1f} FPS modeled at batch 1; the smaller "
            "of equals)")
    return best, fits[best], note
