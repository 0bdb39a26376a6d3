// Requantization (docs/integer-contract.md, "1x1 convolution"):
//
//   y = clamp((acc * M + B + 2^(S-1)) >> S, 0, act_max)
//
// or, on an engine built with the hardware config's half_even (Config::HALF_EVEN) and for a call
// whose HALF_EVEN / S_HALF_EVEN flag is set, round half to even (QONNX's ROUND): a tie,
// (acc * M + B) mod 2^S = 2^(S-1), whose rounded-up result is odd is decremented.
//
// on a 48-bit signed intermediate (one DSP48E2 post-adder), >> arithmetic. The contract bounds
// |acc*M| + |B| + 2^(S-1) < 2^47, so truncating the product and B to 48 bits is exact.
// M: the exporter's M_BITS = 24 gives |M| < 2^23 (codesign/quant/export.py requant_constants),
// so M is held as 24-bit signed and the product is accumulator x 24 bits; pack_requant
// (codesign/hw/layout.py) refuses a constant outside that range (and |B| >= 2^40).
//
// Constants per output channel c in wmem at q_addr + 2c (docs/engine.md):
//   word 0: bits 0..31 = M (two's complement), bits 32..63 = B bits 0..31
//   word 1: bits 0..31 = B bits 32..63 (B sign-extended to 64 bits)
//
// The MAC array's constants are stored per lane, mult[o][ct] = M[ct*PO + o] (dim 1 partitioned),
// so the requant process reads all PO lanes of output tile ct in one cycle.
#ifndef CODESIGN_ENGINE_REQUANT_H
#define CODESIGN_ENGINE_REQUANT_H

#include "cycles.h"
#include "types.h"

// IIs of the pipelined loops here (their PIPELINE pragmas and the cycle count, cycles.h).
#define CODESIGN_II_QLOAD 1
#define CODESIGN_II_REQUANT 1

namespace codesign {

CODESIGN_CSIM_BEGIN

constexpr int RQ_MULT_BITS = 24;  // |M| < 2^23 (docs/integer-contract.md)
typedef ap_int<RQ_MULT_BITS> rq_mult_t;
typedef ap_int<48> rq_wide_t;

// Pipeline depth of the constant loads: the m_axi read, the decode and the lane write.
constexpr int DEPTH_QLOAD = 3;
// Pipeline depth of the requant process: constant read 1, acc x 24-bit product on two cascaded
// DSP48E2s 3, + B + rounding 1, shift + clamp 1, stream write 1.
constexpr int DEPTH_REQUANT = 7;

// PO signed accumulators of one output tile: the MAC array -> requant stream's element.
template <int N, int B>
struct acc_vec_t {
  static constexpr int BITS = N * B;
  ap_int<B> v[N];
};

// One channel's constants from its two words.
template <int BUS>
void decode_requant(const ap_uint<BUS>& w0, const ap_uint<BUS>& w1, rq_mult_t& m, rq_wide_t& b) {
  HLS_PRAGMA(INLINE)
  ap_uint<48> b48;
  b48.range(31, 0) = w0.range(63, 32);
  b48.range(47, 32) = w1.range(15, 0);
  m = rq_mult_t(w0.range(RQ_MULT_BITS - 1, 0));  // |M| < 2^23: its low 24 bits hold it
  b = rq_wide_t(b48);                            // |B| < 2^40: the low 48 bits hold it
}

// Load the requant constants of cout output channels into mult[o][ct] / bias[o][ct]
// (channel ct*P + o): one burst of 2 * cout words, one word per cycle; the lane is chosen by an
// unrolled compare so that the partitioned dimension is only indexed by a constant.
template <int BUS, int P, int MAX_T>
void load_requant(const ap_uint<BUS>* wmem, int q_addr, int cout, int axi_latency,
                  rq_mult_t mult[P][MAX_T], rq_wide_t bias[P][MAX_T]) {
  HLS_PRAGMA(INLINE off)
  static_assert(BUS >= 64, "requant constants need 64-bit words");
  const int n = 2 * cout;
  ap_uint<BUS> w0 = 0;
  int lane = 0, ct = 0;
  CODESIGN_BURST(STAGE_LOAD, axi_latency);
  CODESIGN_LOOP_COUNTER(n_load);
load:
  for (int k = 0; k < n; ++k) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_QLOAD)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 2 max = 2 * P * MAX_T)
    CODESIGN_TRIP(n_load);
    const ap_uint<BUS> w = wmem[q_addr + k];
    if ((k & 1) == 0) {
      w0 = w;
    } else {
      rq_mult_t m;
      rq_wide_t b;
      decode_requant<BUS>(w0, w, m, b);
      for (int o = 0; o < P; ++o) {
        HLS_PRAGMA(UNROLL)
        if (o == lane) {
          mult[o][ct] = m;
          bias[o][ct] = b;
        }
      }
      if (++lane == P) {
        lane = 0;
        ++ct;
      }
    }
  }
  CODESIGN_LOOP_DONE(STAGE_LOAD, n_load, CODESIGN_II_QLOAD, DEPTH_QLOAD);
}

// One output value. act_max <= 2^A - 1 (the descriptor's saturation value). HE: the engine has
// the tie logic (a constant: false compiles none of it); half_even: this call rounds ties to even.
#if CODESIGN_SIGNED_ACTS
// sgn: a signed output, clamped to [-(act_max + 1), act_max] and returned as its low A bits (two's
// complement storage).
template <int ACC_BITS, int A, bool HE = false>
ap_uint<A> requant(const ap_int<ACC_BITS>& acc, const rq_mult_t& mult, const rq_wide_t& bias,
                   int shift, const ap_uint<A>& act_max, bool half_even = false, bool sgn = false) {
#else
template <int ACC_BITS, int A, bool HE = false>
ap_uint<A> requant(const ap_int<ACC_BITS>& acc, const rq_mult_t& mult, const rq_wide_t& bias,
                   int shift, const ap_uint<A>& act_max, bool half_even = false) {
#endif
  HLS_PRAGMA(INLINE)
  const ap_int<ACC_BITS + RQ_MULT_BITS> p = acc * mult;  // accumulator x 24 bits
  rq_wide_t t = rq_wide_t(p);                            // |acc*M| < 2^47: exact
  t += bias;
  t += rq_wide_t(1) << (shift - 1);
  // A tie is exactly a sum whose low S bits are now 0 (an equality compare beside the shift);
  // its rounded-up result r = t >> S is then odd or even, and r - 1 for an odd r is r with bit
  // 0 cleared, so "to even" is one AND on bit 0.
  bool tie = false;
  if (HE) tie = half_even && (t & ((rq_wide_t(1) << shift) - 1)) == 0;
  t >>= shift;  // arithmetic: t is signed
  if (HE && tie) t[0] = 0;
#if CODESIGN_SIGNED_ACTS
  const rq_wide_t lo = sgn ? rq_wide_t(-rq_wide_t(act_max) - 1) : rq_wide_t(0);
  if (t < lo) return ap_uint<A>(lo);
#else
  if (t < 0) return 0;
#endif
  if (t > act_max) return act_max;
  return ap_uint<A>(t);
}

// The requant process of the dataflow region: npix pixels of nco = ceil(cout/PO) accumulator
// vectors in, as many PO-vectors of A bits out (zero beyond cout). Without CONV (a copy) the
// values pass through (they already are A-bit values, zero beyond cout). One flat loop.
// HE, half_even: as requant's.
#if CODESIGN_SIGNED_ACTS
// sgn: as requant's (a copy passes the stored bits, signed or not).
template <int PO, int ACC_BITS, int A, int MAX_CO_T, int MAXPIX, bool HE = false>
void requant_stage(hls::stream<acc_vec_t<PO, ACC_BITS> >& in, hls::stream<vec_t<PO, A> >& out,
                   int h, int w, int cout, bool conv, const rq_mult_t mult[PO][MAX_CO_T],
                   const rq_wide_t bias[PO][MAX_CO_T], int shift, int act_max, bool half_even = false,
                   bool sgn = false) {
#else
template <int PO, int ACC_BITS, int A, int MAX_CO_T, int MAXPIX, bool HE = false>
void requant_stage(hls::stream<acc_vec_t<PO, ACC_BITS> >& in, hls::stream<vec_t<PO, A> >& out,
                   int h, int w, int cout, bool conv, const rq_mult_t mult[PO][MAX_CO_T],
                   const rq_wide_t bias[PO][MAX_CO_T], int shift, int act_max, bool half_even = false) {
#endif
  HLS_PRAGMA(INLINE off)
  const int npix = h * w;  // here, not in the caller's DATAFLOW region (which holds only processes)
  const int nco = ceil_div(cout, PO);
  const int n = npix * nco;
  const ap_uint<A> amax = act_max;
  int ct = 0, left = cout;  // left: channels from this tile on (lanes o < left are real)
  CODESIGN_LOOP_COUNTER(n_rq);
rq:
  for (int k = 0; k < n; ++k) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_REQUANT)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAXPIX * MAX_CO_T)
    CODESIGN_TRIP(n_rq);
    const acc_vec_t<PO, ACC_BITS> a = in.read();
    vec_t<PO, A> y;
    for (int o = 0; o < PO; ++o) {
      HLS_PRAGMA(UNROLL)
      if (!conv)
        y.v[o] = ap_uint<A>(a.v[o]);
      else if (o < left)
#if CODESIGN_SIGNED_ACTS
        y.v[o] = requant<ACC_BITS, A, HE>(a.v[o], mult[o][ct], bias[o][ct], shift, amax, half_even, sgn);
#else
        y.v[o] = requant<ACC_BITS, A, HE>(a.v[o], mult[o][ct], bias[o][ct], shift, amax, half_even);
#endif
      else
        y.v[o] = 0;
    }
    out.write(y);
    if (++ct == nco) {
      ct = 0;
      left = cout;
    } else {
      left -= PO;
    }
  }
  CODESIGN_LOOP_DONE(STAGE_REQUANT, n_rq, CODESIGN_II_REQUANT, DEPTH_REQUANT);
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_REQUANT_H
