"""codesign: a quantized CNN from PyTorch to an FPGA accelerator (docs/architecture.md)."""
from . import ops  # noqa: F401  (registers every op class before any graph is read)
