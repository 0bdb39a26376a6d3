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
# a second library for a much smaller config, loaded first into the same process: the engine's
# static buffers must stay private to each library (see CODESIGN_CSIM_BEGIN in types.h)
"$py" "$here/render.py" "$build/gen_small" max_channels=16 max_width=8 max_line=64 max_weights=256
cxx="g++ -std=c++14 -O1 -Wall -Werror -isystem $ap -I$here -I$root/hls_templates/engine"
gcxx="g++ -std=c++14 -O1 -Wall -Werror -isystem $ap -I$build/gen -I$root/hls_templates/engine"
scxx="g++ -std=c++14 -O1 -Wall -Werror -isystem $ap -I$build/gen_small -I$root/hls_templates/engine"
# The five builds are independent: run them side by side (one per core), each logged, and stop on
# the first that fails with its compiler output.
build_bg() {  # build_bg NAME COMMAND...: in the background, log in $build/NAME.log
  name=$1; shift
  ( timed "$@" > "$build/$name.log" 2>&1; echo $? > "$build/$name.rc" ) &
}
rm -f "$build"/*.rc
echo "== build engine_selftest, testbench (rendered top.cpp + testbench.cpp), csim_api libraries"
build_bg engine_selftest $cxx "$here/engine_selftest.cpp" -o "$build/engine_selftest"
# the same self-test with the signed-activation path compiled in (hardware signed_acts): its own
# signed cases, and every unsigned case unchanged on the signed engine
build_bg engine_selftest_signed $cxx -DCODESIGN_SIGNED_ACTS=1 "$here/engine_selftest.cpp" -o "$build/engine_selftest_signed"
build_bg testbench $gcxx "$build/gen/top.cpp" "$build/gen/testbench.cpp" -o "$build/testbench"
build_bg csim_lib $gcxx -fPIC -shared "$build/gen/top.cpp" "$build/gen/csim_api.cpp" -o "$build/libcodesign_csim.so"
build_bg csim_lib_small $scxx -fPIC -shared "$build/gen_small/top.cpp" "$build/gen_small/csim_api.cpp" \
  -o "$build/libcodesign_csim_small.so"
wait
for name in engine_selftest engine_selftest_signed testbench csim_lib csim_lib_small; do
  cat "$build/$name.log"
  if [ "$(cat "$build/$name.rc")" != 0 ]; then echo "FAIL: build of $name"; exit 1; fi
done
echo "== run engine_selftest"; "$build/engine_selftest"
echo "== run engine_selftest (signed_acts)"; "$build/engine_selftest_signed"
"$build/engine_selftest" --export "$build/vectors"
echo "== testbench on good vectors (must PASS)"; "$build/testbench" "$build/vectors"
echo "== testbench on corrupted vectors (must fail)"
if "$build/testbench" "$build/vectors_bad"; then echo "FAIL: testbench did not detect the mismatch"; exit 1; fi
echo "== csim_api shared libraries + ctypes check"
"$py" "$here/csim_ctypes_check.py" "$build/libcodesign_csim.so" "$build/vectors" "$build/libcodesign_csim_small.so"
if [ "$1" = "--bench" ]; then echo "== bench"; "$build/engine_selftest" --bench 224; fi
echo "ALL C++ TESTS PASSED"
