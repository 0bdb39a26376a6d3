"""Bit-exact NumPy golden model of the integer IR (no torch): the reference the HLS engine is tested against."""
from .executor import GoldenInputError, GoldenModel, run

__all__ = ["GoldenInputError", "GoldenModel", "run"]
