// Requantization (docs/integer-contract.md, "1x1 convolution"):
//
//   y = clamp((acc * M + B + 2^(S-1)) >> S, 0, act_max)
//
// on a 48-bit signed intermediate (one DSP48E2 post-adder), >> arithmetic. The contract bounds
// |acc*M| + |B| + 2^(S-1) < 2^47, so truncating the product and B to 48 bits is exact.
//
// Constants per output channel c in wmem at q_addr + 2c (docs/engine.md):
//   word 0: bits 0..31 = M (two's complement), bits 32..63 = B bits 0..31
//   word 1: bits 0..31 = B bits 32..63 (B sign-extended to 64 bits)
#ifndef CODESIGN_ENGINE_REQUANT_H
#define CODESIGN_ENGINE_REQUANT_H

#include "types.h"

namespace codesign {

CODESIGN_CSIM_BEGIN

typedef ap_int<32> rq_mult_t;
typedef ap_int<48> rq_wide_t;

// Load the requant constants of cout output channels into mult[] / bias[].
template <int BUS, int MAXC>
void load_requant(const ap_uint<BUS>* wmem, int q_addr, int cout, rq_mult_t mult[MAXC],
                  rq_wide_t bias[MAXC]) {
  HLS_PRAGMA(INLINE off)
  static_assert(BUS >= 64, "requant constants need 64-bit words");
load:
  for (int c = 0; c < MAXC; ++c) {
    HLS_PRAGMA(PIPELINE II = 2)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAXC)
    if (c >= cout) break;
    const ap_uint<BUS> w0 = wmem[q_addr + 2 * c];
    const ap_uint<BUS> w1 = wmem[q_addr + 2 * c + 1];
    ap_uint<64> b64;
    b64.range(31, 0) = w0.range(63, 32);
    b64.range(63, 32) = w1.range(31, 0);
    mult[c] = rq_mult_t(w0.range(31, 0));
    bias[c] = rq_wide_t(ap_int<64>(b64));  // |B| < 2^40: the low 48 bits hold it
  }
}

// One output value. act_max <= 2^A - 1 (the descriptor's saturation value).
template <int ACC_BITS, int A>
ap_uint<A> requant(const ap_int<ACC_BITS>& acc, const rq_mult_t& mult, const rq_wide_t& bias,
                   int shift, const ap_uint<A>& act_max) {
  HLS_PRAGMA(INLINE)
  rq_wide_t t = rq_wide_t(acc * mult);
  t += bias;
  t += rq_wide_t(1) << (shift - 1);
  t >>= shift;  // arithmetic: t is signed
  if (t < 0) return 0;
  if (t > act_max) return act_max;
  return ap_uint<A>(t);
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_REQUANT_H
