"""The one hardware configuration: engine parameters + board, saved and loaded as YAML.

It drives the HLS templates, the Tcl, the packing of weights and feature maps, the scheduler and
the estimator, so they cannot disagree (TVM-VTA's idea).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import CodesignError
from ..locations import BOARDS
from ..readers import read_yaml

BOARDS_DIR = BOARDS
BUS_WIDTHS = (64, 128)


class HardwareConfigError(CodesignError):
    """A hardware configuration that is inconsistent or unknown."""


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    family: str  # "zynqmp" (Zynq UltraScale+) or "zynq7" (Zynq-7000): picks the block-design template
    clock_mhz: float
    lut: int
    ff: int
    bram36: int
    uram: int
    dsp: int
    ddr_gbps: float  # sustained DDR bandwidth the engine can expect, GB/s
    hp_ports: tuple[str, ...]  # PS slave ports the engine's AXI masters connect to
    pynq_board: str = ""
    # Cycles from an m_axi read request to its first beat, as the cycle count charges every burst
    # (HLS's m_axi `latency`); an assumption where the board file gives no measurement.
    axi_latency_ns: float = 200.0

    @classmethod
    def load(cls, name: str) -> "Board":
        path = BOARDS_DIR / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in BOARDS_DIR.glob("*.yaml")))
            raise HardwareConfigError(f"unknown board '{name}' (known: {known})")
        stat = path.stat()
        return _parsed_board(cls, path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _parsed_board(cls: type[Board], path: Path, mtime_ns: int, size: int) -> Board:
    """A board file parsed once per version of it: the estimator asks for the board's AXI latency on every
    call it models, and re-parsing the YAML each time was 80 % of an explore."""
    data = read_yaml(path, "board file", HardwareConfigError)
    try:
        data["hp_ports"] = tuple(data["hp_ports"])
        return cls(**data)
    except (TypeError, KeyError) as e:
        raise HardwareConfigError(f"{path}: malformed board file ({e})") from None


@dataclass(frozen=True)
class HardwareConfig:
    board: str = "ultra96v2"
    # 32 x 32 4-bit MACs in LUTs (Synetgy's array size): DiracDeltaNet's W4A4 trunk in one pass
    pi: int = 32
    po: int = 32
    act_bits: int = 4
    weight_bits: int = 8
    acc_bits: int = 32
    bus_bits: int = 128
    max_channels: int = 1024
    max_width: int = 224
    max_height: int = 224
    max_line: int = 224 * 64
    max_weights: int = 512 * 1024
    # Entries of the MAC array's weight buffer (its depth): a PI x PO tile of mac_bits-wide weight
    # slices each; 0: the bound that max_weights, max_channels and the slices imply (weight_tiles).
    # sized_for sets the model's exact need.
    max_wtiles: int = 0
    clock_mhz: float = 250.0
    max_desc: int = 1024  # engine calls of one frame: the descriptor table the engine walks
    max_dilation: int = 7  # R of the deformable conv: the spatial line buffer holds 2R+1 rows
    # Build the spatial unit (depthwise / deformable 3x3)? sized_for leaves it out of an engine
    # for a model without such a layer (its multipliers and line buffers are the engine's largest).
    spatial_unit: bool = True
    # Operand width of the MAC array's multipliers. Wider activations (the 8-bit image, A8) and
    # weights (an 8-bit stem) run in mac_bits-wide slices, one pass per slice pair; 4-bit
    # operands make LUT multipliers (Synetgy's 4-bit array), 8 makes one DSP48E2 per product.
    mac_bits: int = 4
    # The window unit of a dense k x k conv (conv2d, CoDeNet's stem): the largest kernel it takes
    # (0: built without the unit) and its line buffer's row in values, W x ceil(Cin/PI) x PI of the
    # widest input row; the unit holds max_kernel such rows. sized_for sets both from the model
    # (0 for one without a k x k conv); the default takes the 8-bit image at max_width.
    max_kernel: int = 7
    window_line: int = 224 * 32
    # Build the requant's round-half-to-even tie logic (per call by the HALF_EVEN / S_HALF_EVEN
    # flags; QONNX's ROUND, docs/integer-contract.md "Rounding")? sized_for sets it when an
    # engine-run layer has `rounding: half_even`; without it such a layer is refused.
    half_even: bool = False
    # Build the signed-activation path (two's complement feature maps: IN_SIGNED / SIGNED / S_SIGNED
    # calls, docs/integer-contract.md "Signed activations")? sized_for sets it when an engine call
    # reads or writes a signed tensor; without it such a call is refused, and the generated sources
    # are those of an unsigned engine, byte for byte (hls/project.py resolves the signed blocks).
    signed_acts: bool = False

    def __post_init__(self) -> None:
        for name in ("pi", "po", "max_channels", "max_width", "max_height", "max_line", "max_weights", "max_desc"):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0:
                raise HardwareConfigError(f"{name}={v!r} must be a positive integer")
        if self.bus_bits not in BUS_WIDTHS:
            raise HardwareConfigError(f"bus_bits={self.bus_bits} must be one of {BUS_WIDTHS}")
        for name in ("act_bits", "weight_bits"):
            # Packed values must tile a bus word exactly, so no value straddles two words.
            if getattr(self, name) not in (2, 4, 8):
                raise HardwareConfigError(f"{name}={getattr(self, name)!r} must be 2, 4 or 8")
        if self.mac_bits not in (2, 4, 8):
            raise HardwareConfigError(f"mac_bits={self.mac_bits!r} must be 2, 4 or 8")
        if not 16 <= self.acc_bits <= 32:
            raise HardwareConfigError(f"acc_bits={self.acc_bits} must be 16..32")
        for name in ("max_kernel", "window_line"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise HardwareConfigError(f"{name}={getattr(self, name)!r} must be a non-negative integer")
        if self.max_kernel > 15:
            raise HardwareConfigError(f"max_kernel={self.max_kernel} must be at most 15")
        for name in ("half_even", "signed_acts"):
            if not isinstance(getattr(self, name), bool):
                raise HardwareConfigError(f"{name}={getattr(self, name)!r} must be true or false")
        if not isinstance(self.max_wtiles, int) or self.max_wtiles < 0:
            raise HardwareConfigError(f"max_wtiles={self.max_wtiles!r} must be a non-negative integer")
        if self.clock_mhz <= 0:
            raise HardwareConfigError(f"clock_mhz={self.clock_mhz} must be positive")

    @classmethod
    def for_board(cls, board: str) -> "HardwareConfig":
        """The default engine on `board`: clocked at the board file's clock, at most 250 MHz."""
        b = Board.load(board)
        return cls(board=b.name, clock_mhz=min(250.0, b.clock_mhz))

    # ---- derived quantities used by templates, packing and scheduler ----
    @property
    def weight_tiles(self) -> int:
        """MAXT of the engine (config.h.j2): max_wtiles, or the bound of conv1x1.h max_weight_tiles
        (pw ceil(a/PI) ceil(b/PO) <= pw (ab/(PI PO) + a/PI + b/PO + 1) for a, b <= max_channels and
        pw = ceil(weight_bits / mac_bits) slices per weight)."""
        if self.max_wtiles:
            return self.max_wtiles
        def cdiv(a: int, b: int) -> int:
            return -(-a // b)
        tiles = cdiv(self.max_weights, self.pi * self.po) + cdiv(self.max_channels, self.pi) + cdiv(self.max_channels, self.po) + 1
        return tiles * cdiv(self.weight_bits, self.mac_bits)

    @property
    def lanes(self) -> int:
        return self.bus_bits // self.act_bits

    @property
    def lanes_in8(self) -> int:
        return self.bus_bits // 8

    @property
    def lanes_w(self) -> int:
        return self.bus_bits // self.weight_bits

    def board_info(self) -> Board:
        return Board.load(self.board)

    @property
    def axi_latency_cycles(self) -> int:
        """The board's m_axi read latency in engine clock cycles."""
        return math.ceil(self.board_info().axi_latency_ns * self.clock_mhz / 1000)

    def to_dict(self) -> dict[str, Any]:
        """The fields; `signed_acts` only when set, so the hw.yaml of an unsigned engine is unchanged."""
        d = asdict(self)
        if not self.signed_acts:
            del d["signed_acts"]
        return d

    def with_(self, **changes: Any) -> "HardwareConfig":
        return replace(self, **changes)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=True))
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "HardwareConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise HardwareConfigError(f"unknown hardware config keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> "HardwareConfig":
        path = Path(path)
        if not path.is_file():
            raise HardwareConfigError(f"{path}: no such hardware config")
        data = read_yaml(path, "hardware config", HardwareConfigError)
        if not isinstance(data, dict):
            raise HardwareConfigError(f"{path}: expected a mapping of hardware parameters")
        return cls.from_dict(data)
