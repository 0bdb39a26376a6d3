"""What a printed figure means (DESIGN §8): the labels every FPS or resource number carries.

One place, so the CLI, the benchmarks, the driver and the docs say the same words.
"""
CYCLE_COUNTED = "cycle-counted C-sim (pragma IIs assumed met)"
MODELED = "modeled (analytic estimator of the engine as written)"
PAPER_PRESET = "modeled (paper-reproduction preset)"
PUBLISHED = "published"
SYNTHESIZED = "synthesized (parsed from the Vitis HLS / Vivado reports)"
CODE_DERIVED = "code-derived (the rendered engine's memories and arithmetic, priced by documented rules)"


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
