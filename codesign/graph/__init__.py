"""Integer IR of a quantized network: data objects, validation and (de)serialisation."""
from .io import load, save
from .ir import FORMAT, VERSION, Graph, IRError, Layer, TensorInfo, accumulator_bound, validate

__all__ = ["FORMAT", "VERSION", "Graph", "IRError", "Layer", "TensorInfo", "accumulator_bound",
           "load", "save", "validate"]
