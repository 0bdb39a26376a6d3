"""Front doors that need no torch: other tools' quantized graphs → the integer IR."""
from .qonnx import QonnxImportError, import_qonnx

__all__ = ["QonnxImportError", "import_qonnx"]
