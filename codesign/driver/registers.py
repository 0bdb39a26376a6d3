"""The engine's AXI-Lite register map as the driver uses it.

The map is not the driver's own: hw/interface.py defines the engine's ports once and allocates
their registers by the Vitis HLS rule; the same definition renders the top function, so the
bitstream built from it has its registers where the driver writes them. On the board,
`check_against_hwh` compares the map with the one PYNQ parses from the overlay's .hwh, so a
bitstream built from other sources is refused before anything runs.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..errors import CodesignError
from ..hw import interface
from ..hw.interface import Register

CONTROL_REGISTERS = ("CTRL", "GIER", "IP_IER", "IP_ISR")  # PYNQ's names for the ap_ctrl/interrupt block


class RegisterMapError(CodesignError):
    """A register map (a package's, a bitstream's) that is not the engine's."""


@dataclass(frozen=True)
class RegisterMap:
    registers: tuple[Register, ...]

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise RegisterMapError(f"the engine interface has no argument '{name}' "
                               f"(it has: {', '.join(r.name for r in self.registers)})")

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


def engine_register_map() -> RegisterMap:
    """The register map of the engine hw/interface.py defines."""
    return RegisterMap(interface.REGISTERS)


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
