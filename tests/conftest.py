import numpy as np
import pytest
import torch

from codesign.models.calibrated import random_calibrated_model

TINY = {"model": "diracdeltanet", "num_classes": 10, "width": 0.25, "resolution": 32}


def calibrated_qat_model(config: dict = TINY, seed: int = 0, steps: int = 10) -> torch.nn.Module:
    """The tiny model (random weights, calibrated on random images; see random_calibrated_model)."""
    return random_calibrated_model(config, seed, steps, batch=16)


def random_images(n: int, res: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (n, res, res, 3)).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_model() -> torch.nn.Module:
    return calibrated_qat_model()


@pytest.fixture(scope="session")
def tiny_graph(tiny_model):
    """The tiny model's integer IR, exported once for every test file that needs it."""
    from codesign.quant import export_model

    return export_model(tiny_model)


def split_wtiles(graph, hw, rng: np.random.RandomState) -> int | None:
    """A weight-buffer depth (max_wtiles) at which the scheduler must split some conv of `graph` by output
    channel and can split every one: at least the largest smallest-part (PO channels; lcm(PO, 5) with a
    fused shift) and below the largest whole conv. None when there is no such depth."""
    from math import lcm

    from codesign.hw.layout import weight_slices
    from codesign.hw.fuse import fuse
    from codesign.hw.limits import call_mac_inputs

    lo = hi = 0
    for c in fuse(graph)[0]:
        if c.conv:
            conv = graph.layer(c.conv)
            cout, cin = conv.params["weight"].shape[0], call_mac_inputs(graph, c, hw)  # a k×k conv: its taps
            # buffer entries per PI x PO tile: one per weight slice (layout.weight_slices)
            nci = -(-cin // hw.pi) * weight_slices(conv.attrs["weight_bits"], hw.weight_bits, hw.mac_bits)
            lo = max(lo, nci * -(-min(lcm(hw.po, 5) if c.shift else hw.po, cout) // hw.po))
            hi = max(hi, nci * -(-cout // hw.po))
    return int(rng.randint(lo, hi)) if lo < hi else None
