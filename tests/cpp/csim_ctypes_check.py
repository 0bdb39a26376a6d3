"""Calls codesign_engine_csim (csim_api.cpp.j2) through ctypes on exported vectors and compares
the whole arena with expected.bin: python csim_ctypes_check.py LIB DIR [OTHER_LIB]

OTHER_LIB (a build for another config) is loaded and run first in the same process: the two
libraries must not share the engine's static buffers."""
import ctypes, pathlib, sys

from codesign.hw.descriptor import WORDS  # 32-bit words per descriptor

if len(sys.argv) > 3:
    other = ctypes.CDLL(sys.argv[3])
    assert other.codesign_engine_csim(None, 0, None, 0, None, 0) == 0
lib = ctypes.CDLL(sys.argv[1])
d = pathlib.Path(sys.argv[2])
word = lib.codesign_engine_csim_bus_bits() // 8
desc, wmem = (d / "desc.bin").read_bytes(), (d / "wmem.bin").read_bytes()
fmem = bytearray((d / "fmem_in.bin").read_bytes())
expected = (d / "expected.bin").read_bytes()
fn = lib.codesign_engine_csim
fn.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64]
buf = (ctypes.c_uint8 * len(fmem)).from_buffer(fmem)
rc = fn(desc, len(desc) // (4 * WORDS), wmem, len(wmem) // word, ctypes.addressof(buf), len(fmem) // word)
assert rc == 0, f"codesign_engine_csim returned {rc}"
assert bytes(fmem) == expected, "fmem after codesign_engine_csim differs from the reference"
# a table reaching outside fmem is refused before anything runs
bad = bytearray(fmem)
rc = fn(desc, len(desc) // (4 * WORDS), wmem, len(wmem) // word, ctypes.addressof((ctypes.c_uint8 * len(bad)).from_buffer(bad)), 1)
assert rc < 0 and bytes(bad) == bytes(fmem), f"out-of-range table: rc={rc}"
print(f"PASS ctypes codesign_engine_csim: {len(desc) // (4 * WORDS)} descriptors, {len(fmem) // word} fmem words")
