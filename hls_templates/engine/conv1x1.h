// The PI x PO MAC array: 1x1 convolution + requantization of a pixel stream.
//
// Weights (docs/engine.md, "Weights"): [Cout][Cin] row-major in wmem, each row padded to a
// multiple of lanes_w = BUS / W_BITS values (a row starts on a word), two's complement, lowest
// bits first. They are loaded per call into an on-chip buffer of PO x PI tiles:
//
//   wbuf[t][o][i] = W[ct*PO + o][it*PI + i],  t = ct * nci + it,  nci = ceil(cin / PI)
//
// completely partitioned on (o, i), so one tile feeds the whole array in one cycle. Per pixel
// the array runs ceil(cout/PO) x ceil(cin/PI) tiles; channel counts that are not multiples of
// PI / PO are handled by zero padding of the input vector (the weights of padded input lanes
// are never initialised but always multiply 0) and by dropping padded outputs.
#ifndef CODESIGN_ENGINE_CONV1X1_H
#define CODESIGN_ENGINE_CONV1X1_H

#include "packing.h"
#include "requant.h"
#include "types.h"

namespace codesign {

CODESIGN_CSIM_BEGIN

// Upper bound on the tiles of one call with Cin, Cout <= MAXC and Cin x Cout <= MAXW:
// ceil(a/PI) ceil(b/PO) <= ab/(PI PO) + a/PI + b/PO + 1.
constexpr int max_weight_tiles(int pi, int po, int maxc, int maxw) {
  return ceil_div(maxw, pi * po) + ceil_div(maxc, pi) + ceil_div(maxc, po) + 1;
}

template <int BUS, int W_BITS, int PI, int PO, int MAXC, int MAXT>
void load_weights(const ap_uint<BUS>* wmem, int w_addr, int cin, int cout,
                  ap_int<W_BITS> wbuf[MAXT][PO][PI]) {
  HLS_PRAGMA(INLINE off)
  typedef lanes_t<BUS, W_BITS> L;
  constexpr int LW = L::LANES;
  constexpr int MAX_WPR = ceil_div(MAXC, LW);
  const int wpr = ceil_div(cin, LW);
  const int nci = ceil_div(cin, PI);
  int addr = w_addr;
rows:
  for (int co = 0; co < MAXC; ++co) {
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAXC)
    if (co >= cout) break;
    const int tbase = (co / PO) * nci;
    const int o = co % PO;
  words:
    for (int k = 0; k < MAX_WPR; ++k) {
      HLS_PRAGMA(PIPELINE II = 1)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_WPR)
      if (k >= wpr) break;
      ap_uint<W_BITS> lane[LW];
      HLS_PRAGMA(ARRAY_PARTITION variable = lane complete)
      L::unpack(wmem[addr + k], lane);
      for (int l = 0; l < LW; ++l) {
        HLS_PRAGMA(UNROLL)
        const int ci = k * LW + l;
        if (ci < cin) wbuf[tbase + ci / PI][o][ci % PI] = ap_int<W_BITS>(lane[l]);
      }
    }
    addr += wpr;
  }
}

// The conv stage of the dataflow region: npix pixels of cin channels (ceil(cin/PI) vectors of
// PI values each, zero beyond cin) in, npix pixels of cout channels (ceil(cout/PO) vectors of
// PO values, zero beyond cout) out.
template <int PI, int PO, int W_BITS, int ACC_BITS, int IB, int A, int MAXC, int MAXT, int MAXPIX>
void conv1x1_stage(hls::stream<vec_t<PI, IB> >& in, hls::stream<vec_t<PO, A> >& out, int npix,
                   int cin, int cout, const ap_int<W_BITS> wbuf[MAXT][PO][PI],
                   const rq_mult_t mult[MAXC], const rq_wide_t bias[MAXC], int shift,
                   int act_max) {
  HLS_PRAGMA(INLINE off)
  constexpr int MAX_CI_T = ceil_div(MAXC, PI);
  constexpr int MAX_CO_T = ceil_div(MAXC, PO);
  typedef ap_int<ACC_BITS> acc_t;
  const int nci = ceil_div(cin, PI);
  const int nco = ceil_div(cout, PO);
  const ap_uint<A> amax = act_max;
  ap_uint<IB> x[MAX_CI_T][PI];
  HLS_PRAGMA(ARRAY_PARTITION variable = x complete dim = 2)
pixels:
  for (int px = 0; px < MAXPIX; ++px) {
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAXPIX)
    if (px >= npix) break;
  load_x:
    for (int it = 0; it < MAX_CI_T; ++it) {
      HLS_PRAGMA(PIPELINE II = 1)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_CI_T)
      if (it >= nci) break;
      const vec_t<PI, IB> v = in.read();
      for (int i = 0; i < PI; ++i) {
        HLS_PRAGMA(UNROLL)
        x[it][i] = v.v[i];
      }
    }
  out_tiles:
    for (int ct = 0; ct < MAX_CO_T; ++ct) {
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_CO_T)
      if (ct >= nco) break;
      acc_t acc[PO];
      HLS_PRAGMA(ARRAY_PARTITION variable = acc complete)
      for (int o = 0; o < PO; ++o) {
        HLS_PRAGMA(UNROLL)
        acc[o] = 0;
      }
      const int tbase = ct * nci;
    in_tiles:
      for (int it = 0; it < MAX_CI_T; ++it) {
        HLS_PRAGMA(PIPELINE II = 1)
        HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_CI_T)
        if (it >= nci) break;
      mac_o:
        for (int o = 0; o < PO; ++o) {
          HLS_PRAGMA(UNROLL)
          acc_t s = 0;
        mac_i:
          for (int i = 0; i < PI; ++i) {
            HLS_PRAGMA(UNROLL)
            s += wbuf[tbase + it][o][i] * x[it][i];
          }
          acc[o] += s;
        }
      }
      vec_t<PO, A> y;
    requant_o:
      for (int o = 0; o < PO; ++o) {
        HLS_PRAGMA(UNROLL)
        const int c = ct * PO + o;
        y.v[o] = c < cout ? requant<ACC_BITS, A>(acc[o], mult[c], bias[c], shift, amax)
                          : ap_uint<A>(0);
      }
      out.write(y);
    }
  }
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_CONV1X1_H
