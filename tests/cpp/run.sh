#!/bin/sh
# Builds and runs the C++ tests of the HLS engine (see README). Usage: tests/cpp/run.sh [--bench]
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
py="${PYTHON:-$root/.venv/bin/python}"  # the venv `make venv` creates, unless PYTHON names another
ap=$("$py" -c 'import hls4ml, os; print(os.path.join(os.path.dirname(hls4ml.__file__), "templates/vivado/ap_types"))')
build="${BUILD:-$root/build/cpp}"
# each build's seconds, where GNU time is installed
timed() { if [ -x /usr/bin/time ]; then /usr/bin/time -f "   %e s" "$@"; else "$@"; fi; }
mkdir -p "$build"
"$py" "$here/render.py" "$build/gen"
cxx="g++ -std=c++14 -O2 -Wall -Werror -isystem $ap -I$here -I$root/hls_templates/engine"
echo "== build engine_selftest"; timed $cxx "$here/engine_selftest.cpp" -o "$build/engine_selftest"
echo "== run engine_selftest"; "$build/engine_selftest"
gcxx="g++ -std=c++14 -O2 -Wall -Werror -isystem $ap -I$build/gen -I$root/hls_templates/engine"
echo "== build testbench (rendered top.cpp + testbench.cpp)"
timed $gcxx "$build/gen/top.cpp" "$build/gen/testbench.cpp" -o "$build/testbench"
"$build/engine_selftest" --export "$build/vectors"
echo "== testbench on good vectors (must PASS)"; "$build/testbench" "$build/vectors"
echo "== testbench on corrupted vectors (must fail)"
if "$build/testbench" "$build/vectors_bad"; then echo "FAIL: testbench did not detect the mismatch"; exit 1; fi
echo "== build csim_api shared library + ctypes check"
timed $gcxx -fPIC -shared "$build/gen/top.cpp" "$build/gen/csim_api.cpp" -o "$build/libcodesign_csim.so"
# a second library for a much smaller config, loaded first into the same process: the engine's
# static buffers must stay private to each library (see CODESIGN_CSIM_BEGIN in types.h)
"$py" "$here/render.py" "$build/gen_small" max_channels=16 max_width=8 max_line=64 max_weights=256
g++ -std=c++14 -O2 -Wall -Werror -isystem $ap -I$build/gen_small -I$root/hls_templates/engine -fPIC -shared \
  "$build/gen_small/top.cpp" "$build/gen_small/csim_api.cpp" -o "$build/libcodesign_csim_small.so"
"$py" "$here/csim_ctypes_check.py" "$build/libcodesign_csim.so" "$build/vectors" "$build/libcodesign_csim_small.so"
if [ "$1" = "--bench" ]; then echo "== bench"; "$build/engine_selftest" --bench 224; fi
echo "ALL C++ TESTS PASSED"
