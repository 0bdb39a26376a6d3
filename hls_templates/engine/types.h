// Common types and helpers of the codesign engine (docs/engine.md).
//
// Header-only, synthesizable: static sizes, no heap, no recursion, no std containers.
#ifndef CODESIGN_ENGINE_TYPES_H
#define CODESIGN_ENGINE_TYPES_H

// The C-simulation model of the Xilinx arbitrary-precision types trips GCC's -Wuninitialized
// when it is inlined into user code (its default constructors leave the value unset on
// purpose). The warnings are attributed to the vendor header, so silencing them here keeps
// -Wall -Werror meaningful for our own code.
#ifndef __SYNTHESIS__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <ap_int.h>
#include <hls_stream.h>
#ifndef __SYNTHESIS__
#pragma GCC diagnostic pop
#endif

// HLS_PRAGMA(X) is `#pragma HLS X` for synthesis and nothing for C-simulation: GCC < 13 cannot
// silence -Wunknown-pragmas in C++ with `#pragma GCC diagnostic` (GCC bug 53431), and the
// C-simulation builds with -Wall -Werror. _Pragma in a macro is the form UG1399 documents.
#ifdef __SYNTHESIS__
#define CODESIGN_PRAGMA_STR(x) _Pragma(#x)
#define HLS_PRAGMA(x) CODESIGN_PRAGMA_STR(HLS x)
#else
#define HLS_PRAGMA(x)
#endif

// The engine's headers wrap their code in CODESIGN_CSIM_BEGIN / _END. For C-simulation they
// set (for synthesis they are empty):
//  - loop labels name the loops in HLS reports; g++ -Wall would flag those no goto uses;
//  - hidden visibility: the static buffers of the engine's templates (weights, line buffers)
//    would otherwise be STB_GNU_UNIQUE symbols, bound once per process. Their names do not
//    carry every config value, so two C-sim libraries built for different configs and loaded
//    into one process (ctypes) would share one buffer sized for the first: memory corruption.
#ifndef __SYNTHESIS__
#define CODESIGN_CSIM_BEGIN                                      \
  _Pragma("GCC diagnostic push")                                 \
  _Pragma("GCC diagnostic ignored \"-Wunused-label\"")          \
  _Pragma("GCC visibility push(hidden)")
#define CODESIGN_CSIM_END         \
  _Pragma("GCC visibility pop")   \
  _Pragma("GCC diagnostic pop")
#else
#define CODESIGN_CSIM_BEGIN
#define CODESIGN_CSIM_END
#endif

namespace codesign {

constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }
constexpr int cmax(int a, int b) { return a > b ? a : b; }
constexpr int cmin(int a, int b) { return a < b ? a : b; }

// N channel values of B bits: the element of every stream between the pipeline stages
// (PI values between the reader and the MAC array, PO values after it).
template <int N, int B>
struct vec_t {
  static constexpr int BITS = N * B;
  ap_uint<B> v[N];
};
#if CODESIGN_SIGNED_ACTS

// A stored B-bit activation as the integer it stands for (docs/integer-contract.md, "Signed
// activations"): the streams carry the stored bits; the units that compute sign-extend a signed
// tensor's values here (one more bit: B-bit unsigned and B-bit two's complement in B + 1 signed).
template <int B>
ap_int<B + 1> act_value(const ap_uint<B>& v, bool sgn) {
  HLS_PRAGMA(INLINE)
  return sgn ? ap_int<B + 1>(ap_int<B>(v)) : ap_int<B + 1>(v);
}
#endif

// One pipelined iteration's write of a memory, kept in registers so that the next iteration can
// read it back (a read-after-write at distance 1, which the memory's write path cannot serve; the
// histogram idiom): each iteration records its write in a fresh forward_t, reads through the
// previous one, and hands its own on at the end. Longer distances are left to the memory, which is
// what lets the loop declare `DEPENDENCE inter false` on it.
template <class T>
struct forward_t {
  bool on = false;
  int a = 0;
  T v = T();

  void write(T* mem, int addr, const T& val) {
    mem[addr] = val;
    on = true;
    a = addr;
    v = val;
  }
  T read(const T* mem, int addr) const { return (on && a == addr) ? v : mem[addr]; }
};

// The descriptor fields of one call, decoded (docs/engine.md, "Descriptor").
struct call_t {
  bool prepool, conv, pool, shift, in8;
  bool dw, deform, stride2, upsample;  // the spatial unit (depthwise / deformable 3x3) and UPSAMPLE
  bool half_even, s_half_even;  // requant ties to even: the conv's, the spatial unit's (HE engines)
  bool kxk;  // the window unit: a k x k conv (kernel, kstride, pad from the window word)
#if CODESIGN_SIGNED_ACTS
  // two's complement activations (signed_acts engines): the input read (IN_SIGNED), the conv's
  // requant output (SIGNED), the spatial unit's (S_SIGNED)
  bool in_signed, sgn, s_sgn;
#endif
  int kernel, kstride, pad;
  int in_addr, in_h, in_w, in_cbuf, in_rot, cin;
  int out_addr, out_cbuf, out_rot, cout;
  int w_addr, q_addr, shift_s, act_max;
  int w_bits;  // CONV: the layer's weight width (0: the config's W_BITS), for the MAC passes
  int in_sh, out_sh;  // log2 of the views' channel strides (-1: a stride the engine does not take)
  int d_addr, d_cbuf, d_rot, d_max;  // deform: the dilation map's view, its range R
  int sw_addr, sq_addr, s_shift, s_act_max;  // spatial weights [9][C], requant, shift, saturation
  // derived
  int h1, w1;  // after PREPOOL or the window (the MAC array's pixel grid)
  int cin_mac;  // the MAC array's inputs per pixel: cin, or KXK's kernel^2 * ceil(cin/PI) * PI
  int h2, w2;  // after POOL (the spatial unit's input grid)
  int h3, w3;  // after the spatial unit (stride 2 halves, rounding up)
  int h4, w4;  // after UPSAMPLE: the output buffer's pixel grid
};

}  // namespace codesign

#endif  // CODESIGN_ENGINE_TYPES_H

// pass_through counts its cycles with the macros of cycles.h, and cycles.h includes this file
// for CODESIGN_CSIM_BEGIN: it is defined (once) as soon as both are complete, whichever of the
// two a unit includes first (every unit includes types.h, so it is there for all of them).
#ifndef CODESIGN_ENGINE_PASS_THROUGH_H
#include "cycles.h"
#ifdef CODESIGN_LOOP_DONE  // cycles.h fully read (not in the middle of including this file)
#define CODESIGN_ENGINE_PASS_THROUGH_H

// II of pass_through's loop (its PIPELINE pragma and the cycle count).
#define CODESIGN_II_PASS 1

namespace codesign {

CODESIGN_CSIM_BEGIN

// Pipeline depth of pass_through: stream read, stream write.
constexpr int DEPTH_PASS = 2;

// h x w pixels of ceil(c / P) vectors each, copied from `in` to `out`: what a stage does for a
// call that does not use it (its stream still has to flow), counted to STAGE. One flat loop.
template <int STAGE, int P, int B, int MAXC, int MAX_H, int MAX_W>
void pass_through(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out, int h, int w, int c) {
  HLS_PRAGMA(INLINE)
  constexpr int MAX_N = MAX_H * MAX_W * ceil_div(MAXC, P);
  const int n = h * w * ceil_div(c, P);
  CODESIGN_LOOP_COUNTER(trips);
pass:
  for (int j = 0; j < MAX_N; ++j) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_PASS)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_N)
    if (j >= n) break;  // one flat loop, run-time extent
    CODESIGN_TRIP(trips);
    out.write(in.read());
  }
  CODESIGN_LOOP_DONE(STAGE, trips, CODESIGN_II_PASS, DEPTH_PASS);
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_LOOP_DONE
#endif  // CODESIGN_ENGINE_PASS_THROUGH_H
