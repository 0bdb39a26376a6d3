"""The engine's memory interface as the host and the tools see it (docs/engine.md, "Memories and
ports"): its m_axi bundles, one AXI master each. top.cpp.j2 declares them; the block design
(hls/tcl.py), the deploy manifest and the resource model (estimate/params.py) count them from here."""
from __future__ import annotations

# Heaviest traffic first: the first pick of the board's HP ports (hls/tcl.py assigns them in order).
M_AXI_BUNDLES: tuple[str, ...] = ("fmem_rd", "fmem_wr", "wmem", "fmem_old", "desc")
