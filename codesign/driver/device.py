"""One device interface, two backends: the PYNQ board and a simulated engine for CI.

The runtime only ever allocates buffers, moves bytes, writes and reads 32-bit registers and waits
for ap_done; it never knows which backend it talks to. `SimulatedDevice` keeps a small memory map
(buffers at fake physical addresses above 4 GiB, so both words of every address register matter)
and, when ap_start is written, decodes the same address/count registers the hardware would and
runs the project's C-simulation library on the buffers they point to.
"""
from __future__ import annotations

import ctypes
import platform
import time
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CodesignError
from ..hw import interface
from ..hw.interface import AP_DONE, AP_IDLE, AP_READY, AP_START, CTRL
from .registers import RegisterMap, check_against_hwh


class DeviceError(CodesignError):
    """The device cannot be opened or used."""


class DeviceUnavailable(DeviceError):
    """The requested backend cannot run here (no pynq, no board, no bitstream)."""


class EngineTimeout(DeviceError):
    """The engine did not raise ap_done in time."""


@dataclass
class DeviceBuffer:
    name: str
    nbytes: int
    address: int  # physical (device) address, what the engine's address registers take
    handle: Any  # backend object: a numpy array (simulated) or a pynq buffer


class Device(ABC):
    """allocate / free / write / read buffers, write / read registers, start and wait."""

    kind: str = ""
    timing_note: str = ""

    def __init__(self) -> None:
        self._live: dict[int, DeviceBuffer] = {}
        self._quarantined = ""  # why the buffers may not be freed (an engine that could not be stopped)

    # -- buffers
    def allocate(self, nbytes: int, name: str) -> DeviceBuffer:
        buf = self._allocate(max(int(nbytes), 1), name)
        self._live[id(buf)] = buf
        return buf

    def free(self, buf: DeviceBuffer) -> None:
        if self._live.pop(id(buf), None) is not None:
            self._free(buf)

    @property
    def live_buffers(self) -> list[DeviceBuffer]:
        return list(self._live.values())

    def close(self) -> None:
        """Free every buffer still allocated (idempotent); a busy engine is first reset (`recover`),
        and the buffers of one that cannot be stopped are never freed."""
        if self.live_buffers and not self._quarantined and not self.is_idle():
            self.recover()
        if self._quarantined:
            warnings.warn(f"{self.kind} device: {self._quarantined}", stacklevel=2)
            return
        for buf in self.live_buffers:
            self.free(buf)

    # -- engine control (ap_ctrl_hs), shared by both backends
    def start(self) -> None:
        self.write_register(CTRL, AP_START)

    def wait(self, timeout_s: float) -> None:
        """Poll ap_done (clear-on-read: seen once per run) until it is set or `timeout_s` passes; on a
        timeout the engine is reset before the error is raised (see `recover`)."""
        deadline = time.perf_counter() + timeout_s
        while not self.read_register(CTRL) & AP_DONE:
            if time.perf_counter() > deadline:
                raise EngineTimeout(f"the engine did not finish within {timeout_s:g} s on the {self.kind} device "
                                    f"(hung, or the timeout is too short for this model); {self.recover()}")
            time.sleep(0)  # yield; a frame takes milliseconds, so tight polling costs nothing

    def is_idle(self) -> bool:
        return bool(self.read_register(CTRL) & AP_IDLE)

    def reset_engine(self) -> None:
        """Pulse the reset of the engine and its AXI interconnect (ap_ctrl_hs has no abort).
        Raises DeviceError when the backend cannot."""
        raise DeviceError(f"the {self.kind} device cannot reset the engine")

    def recover(self) -> str:
        """Stop a busy engine before anything it may still access is freed or reloaded: reset it,
        and if it is not idle afterwards keep every buffer allocated for good (its AXI masters may
        still write them). Returns one clause saying which happened. The overlay is never
        downloaded again here: reprogramming the PL under AXI transactions in flight can hang the
        PS interconnect."""
        if self._quarantined:
            return self._quarantined
        try:
            self.reset_engine()
            if self.is_idle():
                return "the engine was reset and is idle"
            reason = "the engine is still busy after its reset"
        except DeviceError as e:
            reason = str(e).splitlines()[0]
        self._quarantined = (f"{reason}: its {len(self._live)} buffers stay allocated, as its AXI masters may still "
                             "access them; reboot the board before running again")
        return self._quarantined

    @abstractmethod
    def _allocate(self, nbytes: int, name: str) -> DeviceBuffer: ...

    @abstractmethod
    def _free(self, buf: DeviceBuffer) -> None: ...

    @abstractmethod
    def write(self, buf: DeviceBuffer, data: np.ndarray, offset: int = 0) -> None: ...

    @abstractmethod
    def read(self, buf: DeviceBuffer, nbytes: int, offset: int = 0) -> np.ndarray: ...

    @abstractmethod
    def write_register(self, offset: int, value: int) -> None: ...

    @abstractmethod
    def read_register(self, offset: int) -> int: ...


def _as_bytes(data: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(data).reshape(-1).view(np.uint8)


# ---- simulated ---------------------------------------------------------------------------------

class SimulatedDevice(Device):
    """The engine's registers and memory on the host; ap_start runs the C-simulation library.

    `hang=True` is a fault knob: ap_start is accepted but ap_done never comes. `reset_works=False`
    another: the engine stays busy through its reset (`recover` must then keep the buffers).
    """

    kind = "simulated"
    timing_note = "simulated (C-simulation on the host CPU; not board timings)"
    BASE_ADDRESS = 0x8_0000_0000  # above 4 GiB: a driver that wrote only the low address word would fail
    ALIGN = 4096

    def __init__(self, library: str | Path, registers: RegisterMap, bus_bits: int, desc_words: int,
                 hang: bool = False):
        super().__init__()
        self.registers = registers
        self.hang = hang
        self.reset_works = True
        self.resets = 0
        self.desc_words = desc_words
        self.word_bytes = bus_bits // 8
        self._regs: dict[int, int] = {}
        self._ctrl = AP_IDLE
        self._next = self.BASE_ADDRESS
        self.lib = ctypes.CDLL(str(library))
        built_for = self.lib.codesign_engine_csim_bus_bits()
        if built_for != bus_bits:
            raise DeviceError(f"the C-simulation library is built for a {built_for}-bit bus, "
                              f"the package needs {bus_bits}")
        self._run = self.lib.codesign_engine_csim
        self._run.restype = ctypes.c_int
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p,
                              ctypes.c_uint64]
        self._cycles = self.lib.codesign_engine_csim_cycles
        self._cycles.restype = ctypes.c_int
        self._cycles.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self._cycle_row = self.lib.codesign_engine_csim_cycle_row()  # numbers per call, the total last
        self.started_cycles: list[int] = []  # cycle-counted engine cycles of each start (hls/cycles.py)

    def _allocate(self, nbytes: int, name: str) -> DeviceBuffer:
        buf = DeviceBuffer(name, nbytes, self._next, np.zeros(nbytes, dtype=np.uint8))
        self._next += -(-nbytes // self.ALIGN) * self.ALIGN
        return buf

    def _free(self, buf: DeviceBuffer) -> None:
        buf.handle = None

    def write(self, buf: DeviceBuffer, data: np.ndarray, offset: int = 0) -> None:
        b = _as_bytes(data)
        buf.handle[offset:offset + b.size] = b

    def read(self, buf: DeviceBuffer, nbytes: int, offset: int = 0) -> np.ndarray:
        return buf.handle[offset:offset + nbytes].copy()

    def write_register(self, offset: int, value: int) -> None:
        if offset == CTRL:
            if value & AP_START and not self.hang:
                self._ctrl = AP_START
                self._execute()
                self._ctrl = AP_DONE | AP_IDLE | AP_READY
            elif value & AP_START:
                self._ctrl = AP_START  # accepted, never finishes
            return
        self._regs[offset] = int(value) & 0xFFFFFFFF

    def reset_engine(self) -> None:
        self.resets += 1
        if self.reset_works:
            self._ctrl = AP_IDLE  # as after ap_rst_n: idle, nothing pending

    def read_register(self, offset: int) -> int:
        if offset == CTRL:
            value = self._ctrl
            self._ctrl &= ~(AP_DONE | AP_READY)  # ap_done and ap_ready clear on read, as in HLS
            return value
        return self._regs.get(offset, 0)

    def _resolve(self, address: int, what: str) -> tuple[np.ndarray, int]:
        """The live buffer bytes from `address` to the end of its buffer, and their length."""
        for buf in self._live.values():
            if buf.address <= address < buf.address + buf.nbytes:
                view = buf.handle[address - buf.address:]
                return view, view.size
        ports = ", ".join(p.name for p in interface.PORTS if p.binds == what)
        raise DeviceError(f"register {ports} holds {address:#x}, which is not in any allocated buffer "
                          "(the engine would access unmapped memory)")

    def _execute(self) -> None:
        """What the hardware does on ap_start: read the registers, run the table on those buffers."""
        try:  # each host value (hw/interface.py: the ports that bind it), from the port registers
            reg = interface.host_values({p.name: self.registers.value(p.name, self.read_register)
                                         for p in interface.PORTS})
        except ValueError as e:
            raise DeviceError(str(e)) from None
        desc, desc_bytes = self._resolve(reg["desc"], "desc")
        if reg["n_desc"] * self.desc_words * 4 > desc_bytes:
            raise DeviceError(f"n_desc={reg['n_desc']} descriptors do not fit the buffer 'desc' points at")
        wmem, wmem_bytes = self._resolve(reg["wmem"], "wmem")
        fmem, fmem_bytes = self._resolve(reg["fmem"], "fmem")
        rc = self._run(desc.ctypes.data, reg["n_desc"], wmem.ctypes.data, wmem_bytes // self.word_bytes,
                       fmem.ctypes.data, fmem_bytes // self.word_bytes)
        if rc != 0:
            raise DeviceError(f"the simulated engine rejected the descriptor table "
                              f"(codesign_engine_csim returned {rc})")
        n = self._cycles(None, 0)
        counts = np.zeros(max(n, 1) * self._cycle_row, dtype=np.uint64)
        self._cycles(counts.ctypes.data, n)
        self.started_cycles.append(int(counts.reshape(-1, self._cycle_row)[:n, -1].sum()))


# ---- PYNQ --------------------------------------------------------------------------------------

# The PL reset the block design's proc_sys_reset takes (ext_reset_in), as the PS drives it.
ZYNQMP_PL_RESETN0_EMIO = 95  # pynq.GPIO.get_gpio_pin index (counted from the first EMIO pin)
SLCR_BASE, SLCR_UNLOCK, SLCR_UNLOCK_KEY, SLCR_FPGA_RST_CTRL = 0xF800_0000, 0x008, 0xDF0D, 0x240
PL_RESET_HOLD_S = 0.001  # proc_sys_reset needs the input low for a few clocks; a millisecond is plenty


def pl_family() -> str:
    """zynqmp on a 64-bit Arm (Zynq UltraScale+: Ultra96, KV260, ZCU104), else zynq7 (PYNQ-Z2)."""
    return "zynqmp" if platform.machine() == "aarch64" else "zynq7"


def import_pynq() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pynq's own deprecation noise; errors below are one line
            import pynq
    except ImportError:
        raise DeviceUnavailable("device 'pynq' needs the pynq package, which is not installed: run on a PYNQ "
                                "board image (or pip install 'codesign[board]' there), or use device 'sim'") from None
    return pynq


class PynqDevice(Device):
    """The engine in a PYNQ overlay: pynq.allocate buffers, MMIO through the IP object."""

    kind = "pynq"

    def __init__(self, bitstream: Path | None, registers: RegisterMap, vlnv: str, bus_bits: int,
                 m_axi: tuple[str, ...]):
        super().__init__()
        pynq = import_pynq()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pynq warns "No devices found" before we can say it in one line
            devices = list(pynq.Device.devices)
        if not devices:
            raise DeviceUnavailable(f"pynq {getattr(pynq, '__version__', '')} is installed but found no FPGA device: "
                                    "this is not a PYNQ board (or XRT is not set up); use device 'sim' here")
        if bitstream is None or not bitstream.is_file() or not bitstream.with_suffix(".hwh").is_file():
            raise DeviceUnavailable("this deploy package has no bitstream (.bit + .hwh): Vitis HLS / Vivado were "
                                    "not run before it was built; run `codesign bitstream`, rebuild the package, "
                                    "or use device 'sim'")
        try:
            self.overlay = pynq.Overlay(str(bitstream))
        except Exception as e:  # pynq raises RuntimeError/ValueError/OSError/...: all mean the same here
            raise DeviceUnavailable(f"pynq could not load the overlay {bitstream.name}: "
                                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self._pynq = pynq
        name, ip = self._find_engine(vlnv)
        check_against_hwh(registers, ip.get("registers", {}))
        widths = interface.m_axi_bits(bus_bits)  # desc moves 32-bit words, the others bus words
        for bundle in m_axi:  # the .hwh records the port widths the bitstream was built with
            width = ip.get("parameters", {}).get(f"C_M_AXI_{bundle.upper()}_DATA_WIDTH")
            want = widths.get(bundle, bus_bits)
            if width is not None and int(width) != want:
                raise DeviceError(f"the bitstream's m_axi_{bundle} is {width} bits wide, the package needs {want}; "
                                  "the bitstream was built for another hardware config")
        self.ip = getattr(self.overlay, name)
        self.timing_note = f"board (PYNQ, {bitstream.name})"

    def _find_engine(self, vlnv: str) -> tuple[str, dict]:
        family = vlnv.rsplit(":", 1)[0]  # any version of the engine IP
        hits = [(n, ip) for n, ip in self.overlay.ip_dict.items() if str(ip.get("type", "")).startswith(family)]
        if len(hits) != 1:
            raise DeviceError(f"the overlay has {len(hits)} instances of {family} (expected exactly 1)")
        return hits[0]

    def _allocate(self, nbytes: int, name: str) -> DeviceBuffer:
        try:
            handle = self._pynq.allocate(shape=(nbytes,), dtype=np.uint8)
        except Exception as e:
            raise DeviceError(f"pynq.allocate of {nbytes} bytes for '{name}' failed "
                              f"(out of CMA memory?): {e}") from None
        address = getattr(handle, "device_address", None) or handle.physical_address  # PYNQ 3 / PYNQ 2
        return DeviceBuffer(name, nbytes, int(address), handle)

    def _free(self, buf: DeviceBuffer) -> None:
        buf.handle.freebuffer()

    def write(self, buf: DeviceBuffer, data: np.ndarray, offset: int = 0) -> None:
        b = _as_bytes(data)
        buf.handle[offset:offset + b.size] = b
        buf.handle.flush()  # caches → DDR before the engine reads

    def read(self, buf: DeviceBuffer, nbytes: int, offset: int = 0) -> np.ndarray:
        buf.handle.invalidate()  # drop stale cache lines the engine wrote behind
        return np.array(buf.handle[offset:offset + nbytes], dtype=np.uint8)

    def write_register(self, offset: int, value: int) -> None:
        self.ip.write(offset, int(value))

    def read_register(self, offset: int) -> int:
        return int(self.ip.read(offset))

    def reset_engine(self) -> None:
        """Pulse the PS's PL reset 0, which drives the block design's proc_sys_reset (boards/bd_base.tcl.j2):
        it resets the engine and its SmartConnects."""
        try:
            if pl_family() == "zynqmp":  # pl_resetn0 is PS GPIO EMIO 95 (UG1085: bank 5, bit 31)
                pin = self._pynq.GPIO(self._pynq.GPIO.get_gpio_pin(ZYNQMP_PL_RESETN0_EMIO), "out")
                pin.write(0)
                time.sleep(PL_RESET_HOLD_S)
                pin.write(1)
            else:  # Zynq-7000: FCLK_RESET0_N is bit 0 of SLCR FPGA_RST_CTRL (UG585), behind the SLCR lock
                slcr = self._pynq.MMIO(SLCR_BASE, 0x1000)
                slcr.write(SLCR_UNLOCK, SLCR_UNLOCK_KEY)
                slcr.write(SLCR_FPGA_RST_CTRL, 0x1)
                time.sleep(PL_RESET_HOLD_S)
                slcr.write(SLCR_FPGA_RST_CTRL, 0x0)
        except Exception as e:  # pynq raises OSError (not root), AttributeError, ...: all mean "no reset"
            raise DeviceError(f"the PL reset failed ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'no detail'})") from None
