"""The engine's AXI-Lite register map, derived from the generated HLS top function.

Nothing here is hand-typed per engine: `parse_top` reads the argument list and the s_axilite
pragmas of `src/codesign_engine.cpp` (what Vitis HLS compiles), and `allocate` applies the Vitis
HLS allocation rule once. On the board, `check_against_hwh` compares the result with the map PYNQ
parses from the .hwh, so a bitstream built from other sources is refused before anything runs.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import CodesignError

TOP = "codesign_engine"
CONTROL_BUNDLE = "control"
TOP_SOURCE = "src/codesign_engine.cpp"  # in a project, relative to its directory

# ap_ctrl_hs block at the start of every HLS s_axilite bundle.
CTRL, GIE, IER, ISR = 0x00, 0x04, 0x08, 0x0C
AP_START, AP_DONE, AP_IDLE, AP_READY = 0x1, 0x2, 0x4, 0x8
FIRST_ARG = 0x10
POINTER_BITS = 64  # Vitis HLS m_axi offsets are 64-bit (config_interface -m_axi_addr64, the default)
CONTROL_REGISTERS = ("CTRL", "GIER", "IP_IER", "IP_ISR")  # PYNQ's names for the block above

# The arguments the driver binds, by their names in the top function (docs/engine.md, "Memories and
# ports"); their offsets always come from the parsed interface.
ENGINE_ARGS = ("desc", "n_desc", "wmem", "fmem_rd", "fmem_old", "fmem_wr")

_SCALAR_BITS = {"bool": 8, "char": 8, "short": 16, "int": 32, "unsigned": 32, "float": 32, "long": 64,
                "double": 64}


class RegisterMapError(CodesignError):
    """The engine interface cannot be derived, or the bitstream's differs from the one derived."""


@dataclass(frozen=True)
class Argument:
    name: str
    bits: int  # value width; pointers carry a POINTER_BITS address
    pointer: bool


@dataclass(frozen=True)
class Register:
    name: str
    offset: int  # byte offset of the first data word
    words: int  # 32-bit data words (a reserved word follows them)


@dataclass(frozen=True)
class RegisterMap:
    registers: tuple[Register, ...]

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise RegisterMapError(f"the engine interface has no argument '{name}' "
                               f"(it has: {', '.join(r.name for r in self.registers)})")

    def require(self, names: tuple[str, ...] = ENGINE_ARGS) -> None:
        for name in names:
            self[name]

    def words(self, name: str, value: int) -> list[tuple[int, int]]:
        """(offset, 32-bit word) writes that set argument `name` to `value`, low word first."""
        reg = self[name]
        if not 0 <= value < 1 << (32 * reg.words):
            raise RegisterMapError(f"value {value:#x} does not fit register '{name}' ({32 * reg.words} bits)")
        return [(reg.offset + 4 * i, (value >> (32 * i)) & 0xFFFFFFFF) for i in range(reg.words)]

    def value(self, name: str, read) -> int:
        """The value of argument `name`, reading 32-bit words with `read(offset)`."""
        reg = self[name]
        return sum(int(read(reg.offset + 4 * i)) << (32 * i) for i in range(reg.words))

    def to_json(self) -> list[dict]:
        return [asdict(r) for r in self.registers]

    @classmethod
    def from_json(cls, data: list[dict]) -> "RegisterMap":
        return cls(tuple(Register(**r) for r in data))


def allocate(args: list[Argument]) -> RegisterMap:
    """The Vitis HLS rule: after the 16-byte ap_ctrl/interrupt block, each argument in signature
    order takes ceil(bits / 32) data words and one reserved word."""
    offset, regs = FIRST_ARG, []
    for a in args:
        words = math.ceil((POINTER_BITS if a.pointer else a.bits) / 32)
        regs.append(Register(a.name, offset, words))
        offset += 4 * (words + 1)
    return RegisterMap(tuple(regs))


# ---- parsing the generated top function --------------------------------------------------------

def _split_top_level(text: str) -> list[str]:
    """Split on commas outside <...> and (...) (template arguments may contain commas)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return [p.strip() for p in parts]


def _argument(decl: str) -> Argument:
    m = re.fullmatch(r"(.*?)([A-Za-z_]\w*)\s*(\[[^\]]*\])?", decl.strip(), re.S)
    if not m or not m.group(1).strip():
        raise RegisterMapError(f"cannot parse the top function argument '{decl}'")
    ctype, name = m.group(1).strip(), m.group(2)
    if "*" in ctype or m.group(3):
        return Argument(name, POINTER_BITS, True)
    width = re.search(r"ap_u?int<\s*(\d+)\s*>", ctype) or re.search(r"u?int(\d+)_t", ctype)
    if width:
        return Argument(name, int(width.group(1)), False)
    words = [w for w in re.findall(r"[A-Za-z_]\w*", ctype) if w in _SCALAR_BITS]
    if not words:
        raise RegisterMapError(f"top function argument '{decl}': unknown scalar width (use ap_uint<N> or intN_t)")
    return Argument(name, 64 if ctype.count("long") == 2 else _SCALAR_BITS[words[-1]], False)


def _pragmas(source: str) -> list[dict[str, str]]:
    """Each `#pragma HLS INTERFACE` as {key: value} (a bare word such as s_axilite is its mode)."""
    out = []
    for line in re.findall(r"#\s*pragma\s+HLS\s+INTERFACE\b([^\n]*)", source, re.I):
        fields: dict[str, str] = {}
        for tok in re.findall(r"(\w+)\s*=\s*(\w+)|(\w+)", line):
            key, value, bare = tok
            if bare:
                fields.setdefault("mode", bare.lower())
            else:
                fields[key.lower()] = value
        out.append(fields)
    return out


def parse_top(source: str, top: str = TOP, bundle: str = CONTROL_BUNDLE) -> list[Argument]:
    """The arguments of `top` that have registers in the s_axilite `bundle`, in signature order.

    An argument is there when an s_axilite pragma puts it in the bundle, or when it is an m_axi
    port with offset=slave and no s_axilite pragma of its own (HLS then uses the default bundle).
    """
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.S)
    m = re.search(rf"\bvoid\s+{re.escape(top)}\s*\(", code)
    if not m:
        raise RegisterMapError(f"no top function 'void {top}(...)' in the engine source")
    depth, end = 1, m.end()
    while depth:
        if end >= len(code):
            raise RegisterMapError(f"unbalanced parentheses in the signature of {top}")
        depth += {"(": 1, ")": -1}.get(code[end], 0)
        end += 1
    args = [_argument(d) for d in _split_top_level(code[m.end():end - 1]) if d and d != "void"]
    pragmas = _pragmas(code)
    lite = {p.get("port"): p.get("bundle", CONTROL_BUNDLE) for p in pragmas if p.get("mode") == "s_axilite"}
    slave = {p.get("port") for p in pragmas if p.get("mode") == "m_axi" and p.get("offset") == "slave"}
    if lite.get("return", bundle) != bundle:
        raise RegisterMapError(f"{top}: ap_ctrl (port=return) is not in the s_axilite bundle '{bundle}'")
    return [a for a in args if lite.get(a.name) == bundle or (a.name not in lite and a.name in slave
                                                             and bundle == CONTROL_BUNDLE)]


def project_register_map(project_dir: str | Path) -> tuple[list[Argument], RegisterMap]:
    """The arguments and register map of the engine a project's sources define."""
    path = Path(project_dir) / TOP_SOURCE
    if not path.is_file():
        raise RegisterMapError(f"{path} is missing; run `codesign compile` first")
    args = parse_top(path.read_text())
    return args, allocate(args)


# ---- the board's view: registers PYNQ parsed from the .hwh -------------------------------------

def check_against_hwh(ours: RegisterMap, hwh_registers: dict[str, dict]) -> None:
    """Refuse unless every register in PYNQ's map (name → {'address_offset': ...}) is where ours is.

    HLS names a multi-word argument's registers `<arg>_1`, `<arg>_2` (older versions `<arg>_V`), a
    one-word argument `<arg>`; the lowest offset of an argument's registers must be ours.
    """
    found: dict[str, int] = {}
    for reg_name, info in hwh_registers.items():
        if reg_name in CONTROL_REGISTERS:
            continue
        offset = int(info["address_offset"])
        owner = next((r.name for r in ours.registers
                      if reg_name == r.name or re.fullmatch(rf"{re.escape(r.name)}_(\d+|V)", reg_name)), None)
        if owner is None:
            raise RegisterMapError(f"the bitstream's engine has register '{reg_name}' at {offset:#x}, which the "
                                   "package's engine interface does not; the bitstream was built from other sources")
        found[owner] = min(offset, found.get(owner, offset))
    for r in ours.registers:
        if r.name not in found:
            raise RegisterMapError(f"the bitstream's engine has no register for argument '{r.name}'; "
                                   "the bitstream was built from other sources")
        if found[r.name] != r.offset:
            raise RegisterMapError(f"register '{r.name}' is at {found[r.name]:#x} in the bitstream (.hwh) but at "
                                   f"{r.offset:#x} in the package's engine interface; rebuild the bitstream")
