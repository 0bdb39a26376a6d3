"""The engine's interface, defined once (docs/engine.md, "Memories and ports"): the ports of its top
function, their m_axi bundles, and the AXI-Lite register map Vitis HLS gives them.

Everything else takes it from here:
- the C++: top.cpp.j2 and codesign_engine.h.j2 render the top function's signature and its
  INTERFACE pragmas, csim_api.cpp.j2 and testbench.cpp.j2 its calls (`template_context`);
- the block design (hls/tcl.py) connects the m_axi bundles to the board's HP ports, heaviest
  traffic first (`M_AXI_BUNDLES`); the resource model counts them (estimate/params.py);
- the driver writes each host value (`Port.binds`) at the offsets of `REGISTERS`, deploy records
  them in engine.json, and on the board they are compared with the register map of the overlay's
  .hwh (driver/registers.check_against_hwh), so a bitstream built from other sources is refused.

Pure Python (no jinja2, no numpy): the board's runtime imports it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

TOP = "codesign_engine"
CONTROL_BUNDLE = "control"  # the one s_axilite bundle: every port's register and ap_ctrl_hs

# The ap_ctrl_hs block at the start of every Vitis HLS s_axilite bundle (its control register and
# bits; then the global / IP interrupt enables and the interrupt status), then the arguments.
CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
AP_START, AP_DONE, AP_IDLE, AP_READY = 0x1, 0x2, 0x4, 0x8
FIRST_ARG = 0x10
ADDRESS_BITS = 64  # an m_axi port's offset register (config_interface -m_axi_addr64, the default)

# m_axi option values the template computes from the engine's AXI latency (top.cpp.j2): the
# latency itself, and the bursts in flight that keep a port streaming a word per cycle.
LATENCY, OUTSTANDING = "latency", "outstanding"


@dataclass(frozen=True)
class Port:
    """One argument of the top function; every one has its register in the control bundle."""

    name: str
    kind: str  # "m_axi": a pointer, an AXI master of its own bundle (its register: the address); "scalar"
    ctype: str  # C++ type of the value (scalar) or of the words (m_axi) in the signature
    binds: str  # the host value it carries; ports that bind the same one get the same value
    bits: int | None = None  # width of ctype; None: the engine's bus (CODESIGN_BUS_BITS, hw.bus_bits)
    const: bool = False  # m_axi: read only, Vitis builds no write channel
    traffic: int = 0  # m_axi: rank by traffic, 0 = heaviest (the order HP ports are given out in)
    options: tuple[tuple[str, int | str], ...] = ()  # m_axi pragma options after its depth, in order

    @property
    def bundle(self) -> str:
        """The m_axi bundle (the port's own, named after it); "" for a scalar."""
        return self.name if self.kind == "m_axi" else ""

    @property
    def register_bits(self) -> int:
        return ADDRESS_BITS if self.kind == "m_axi" else int(self.bits)

    @property
    def decl(self) -> str:
        """The declaration in the signature, e.g. `const ap_uint<32>* desc`."""
        return f"{'const ' if self.const else ''}{self.ctype}{'*' if self.kind == 'm_axi' else ''} {self.name}"


_BUS = "ap_uint<CODESIGN_BUS_BITS>"
# Reads in 256-beat bursts, as many in flight as the latency needs; the unused direction of a
# non-const port (fmem_wr's reads) or of a read port HLS still builds one for gets the smallest
# buffers (docs/estimator.md, "Code-derived resources").
_STREAM_READ = (("max_read_burst_length", 256), ("num_read_outstanding", OUTSTANDING))
_NO_WRITES = (("num_write_outstanding", 1), ("max_write_burst_length", 2))

# Signature order = register order. The three fmem ports are one buffer to the host: the reader,
# the prefetch of the old words a read-modify-write merges with, and the writer.
PORTS: tuple[Port, ...] = (
    Port("desc", "m_axi", "ap_uint<32>", "desc", bits=32, const=True, traffic=4,
         options=(("max_read_burst_length", 16), ("num_read_outstanding", 2))),
    Port("n_desc", "scalar", "ap_uint<32>", "n_desc", bits=32),
    Port("wmem", "m_axi", _BUS, "wmem", const=True, traffic=2, options=(*_STREAM_READ, ("latency", LATENCY))),
    Port("fmem_rd", "m_axi", _BUS, "fmem", const=True, traffic=0,
         options=(*_STREAM_READ, *_NO_WRITES, ("latency", LATENCY))),
    Port("fmem_old", "m_axi", _BUS, "fmem", const=True, traffic=3,
         options=(*_STREAM_READ, *_NO_WRITES, ("latency", LATENCY))),
    Port("fmem_wr", "m_axi", _BUS, "fmem", traffic=1,
         options=(("num_read_outstanding", 1), ("max_read_burst_length", 2), ("max_write_burst_length", 256),
                  ("num_write_outstanding", OUTSTANDING), ("latency", LATENCY))),
)

# Heaviest traffic first: the first pick of the board's HP ports (hls/tcl.py assigns them in order).
M_AXI_BUNDLES: tuple[str, ...] = tuple(p.bundle for p in sorted((p for p in PORTS if p.kind == "m_axi"),
                                                                 key=lambda p: p.traffic))


def port(name: str) -> Port:
    for p in PORTS:
        if p.name == name:
            return p
    raise KeyError(f"the engine has no port '{name}' (it has: {', '.join(p.name for p in PORTS)})")


# ---- the AXI-Lite register map -------------------------------------------------------------------

@dataclass(frozen=True)
class Register:
    name: str
    offset: int  # byte offset of the first data word
    words: int  # 32-bit data words (a reserved word follows them)


def allocate(ports: tuple[Port, ...] = PORTS) -> tuple[Register, ...]:
    """The Vitis HLS rule: after the 16-byte ap_ctrl/interrupt block, each port in signature order
    takes ceil(bits / 32) data words and one reserved word."""
    offset, regs = FIRST_ARG, []
    for p in ports:
        words = math.ceil(p.register_bits / 32)
        regs.append(Register(p.name, offset, words))
        offset += 4 * (words + 1)
    return tuple(regs)


REGISTERS: tuple[Register, ...] = allocate()


def arguments(ports: tuple[Port, ...] = PORTS) -> list[dict]:
    """The register widths the map is allocated from, as engine.json records them."""
    return [{"name": p.name, "bits": p.register_bits, "pointer": p.kind == "m_axi"} for p in ports]


def assign(**values: int) -> dict[str, int]:
    """{port: value} for every port that binds one of the host `values`, in signature order."""
    unknown = set(values) - {p.binds for p in PORTS}
    if unknown:
        raise KeyError(f"no engine port binds {', '.join(sorted(unknown))}")
    return {p.name: values[p.binds] for p in PORTS if p.binds in values}


def host_values(registers: dict[str, int]) -> dict[str, int]:
    """The host values the port registers hold ({port: value} → {binds: value}); ValueError when ports
    that bind one value disagree."""
    out: dict[str, int] = {}
    for binds in dict.fromkeys(p.binds for p in PORTS):
        names = [p.name for p in PORTS if p.binds == binds]
        if len({registers[n] for n in names}) != 1:
            raise ValueError(f"{', '.join(names[:-1])} and {names[-1]} must point at the same buffer "
                             f"(the engine's one {binds} buffer)")
        out[binds] = registers[names[0]]
    return out


def m_axi_bits(bus_bits: int) -> dict[str, int]:
    """The data width of each m_axi bundle, as the bitstream's .hwh records it (C_M_AXI_<B>_DATA_WIDTH)."""
    return {p.bundle: p.bits or bus_bits for p in PORTS if p.kind == "m_axi"}


# ---- the C++ -------------------------------------------------------------------------------------

def prototype(ports: tuple[Port, ...] = PORTS, top: str = TOP) -> str:
    """`void codesign_engine(...)`, two arguments a line (top.cpp.j2, codesign_engine.h.j2)."""
    head = f"void {top}("
    decls = [p.decl for p in ports]
    lines = [", ".join(decls[i:i + 2]) for i in range(0, len(decls), 2)]
    return head + (",\n" + " " * len(head)).join(lines) + ")"


def template_context(ports: tuple[Port, ...] = PORTS) -> dict:
    """What the engine templates take from the interface: `top`, `control`, `ports`, `prototype`."""
    return {"top": TOP, "control": CONTROL_BUNDLE, "ports": ports, "prototype": prototype(ports)}
