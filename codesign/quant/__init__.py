"""From a trained Brevitas model to integers: BN folding, requant constants, IR and QONNX export."""
from .export import ExportError, export_model, fold_bn, requant_constants

__all__ = ["ExportError", "export_model", "fold_bn", "requant_constants"]
