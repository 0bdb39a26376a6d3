// The spatial unit's 3x3 ops (docs/integer-contract.md): depthwise 3x3 (zero padding 1, stride 1
// or 2) and CoDeNet's limited-range square deformable depthwise 3x3, each followed by requant,
// on a pixel stream.
//
//   dw:     out[y, x, c] = requant(sum_k W[k][c] * in[y*s + ky, x*s + kx, c])
//   deform: out[y, x, c] = requant(sum_k W[k][c] * in[y + ky*d, x + kx*d, c]),  d = d(y, x) <= R
//
// taps k = 3*(ky+1) + (kx+1), reads outside the image are 0. Pixels arrive in raster order, each
// as ceil(C/P) vectors of P channel values; the dilation map arrives on its own stream, one value
// per input pixel (the reader reads it through the call's second input view).
//
// A ring of NR = 2*MAX_DILATION + 1 rows (flat, indexed x*C + c, so W x C <= MAX_LINE) holds
// the input rows around the output row: output row oy is emitted once input row
// min(H-1, oy*s + reach) has been read (reach = 1 for dw, the layer's R for deform), when the
// ring holds rows [oy*s - reach, oy*s + reach]. Every input row is read exactly once.
//
// Weights [9][C] and the requant constants are loaded per call (wmem at sw_addr, sq_addr), in
// the layouts of the 1x1 conv's weights (rows padded to whole words) and requant constants.
#ifndef CODESIGN_ENGINE_SPATIAL_H
#define CODESIGN_ENGINE_SPATIAL_H

#include "packing.h"
#include "requant.h"
#include "types.h"

namespace codesign {

CODESIGN_CSIM_BEGIN

// The weights of a spatial call: 9 rows (taps) of c values, each row padded to whole words.
template <int BUS, int W_BITS, int MAXC>
void load_spatial_weights(const ap_uint<BUS>* wmem, int sw_addr, int c, ap_int<W_BITS> wsp[9][MAXC]) {
  HLS_PRAGMA(INLINE off)
  typedef lanes_t<BUS, W_BITS> L;
  constexpr int LW = L::LANES;
  constexpr int MAX_WPR = ceil_div(MAXC, LW);
  const int wpr = ceil_div(c, LW);
taps:
  for (int t = 0; t < 9; ++t) {
  words:
    for (int k = 0; k < MAX_WPR; ++k) {
      HLS_PRAGMA(PIPELINE II = 1)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_WPR)
      if (k >= wpr) break;
      ap_uint<W_BITS> lane[LW];
      HLS_PRAGMA(ARRAY_PARTITION variable = lane complete)
      L::unpack(wmem[sw_addr + t * wpr + k], lane);
      for (int l = 0; l < LW; ++l) {
        HLS_PRAGMA(UNROLL)
        const int ch = k * LW + l;
        if (ch < c) wsp[t][ch] = ap_int<W_BITS>(lane[l]);
      }
    }
  }
}

// enable (dw || deform) == false: a pass-through of h x w pixels. h x w is the input grid;
// the output grid is ((h-1)/s + 1) x ((w-1)/s + 1).
template <int P, int B, int WB, int ACC_BITS, int MAXC, int MAX_H, int MAX_W, int MAX_LINE, int NR>
void spatial_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out,
                   hls::stream<ap_uint<8> >& dil_in, bool dw, bool deform, bool stride2, int h, int w,
                   int c, int d_max, int shift, int act_max, const ap_int<WB> wsp[9][MAXC],
                   const rq_mult_t mult[MAXC], const rq_wide_t bias[MAXC]) {
  HLS_PRAGMA(INLINE off)
  constexpr int MAX_CT = ceil_div(MAXC, P);
  static ap_uint<B> line[NR][MAX_LINE];
  static ap_uint<8> dline[NR][MAX_W];
  HLS_PRAGMA(ARRAY_PARTITION variable = line cyclic factor = P dim = 2)
  const int nct = ceil_div(c, P);
  if (!dw && !deform) {
    pass_through<STAGE_SPATIAL, P, B, MAXC, MAX_H, MAX_W>(in, out, h, w, c);
    return;
  }
  const int s = stride2 ? 2 : 1;
  const int reach = deform ? d_max : 1;
  const int ho = h > 0 ? (h - 1) / s + 1 : 0;
  const int wo = w > 0 ? (w - 1) / s + 1 : 0;
  const ap_uint<B> amax = act_max;
  int next = 0;  // the next input row to read
rows:
  for (int oy = 0; oy < MAX_H; ++oy) {
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_H)
    if (oy >= ho) break;
    const int need = cmin(h - 1, oy * s + reach);
  fill:  // input rows next .. need into the ring
    for (int r = 0; r < MAX_H; ++r) {
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 0 max = MAX_H)
      if (next > need) break;
      const int slot = next % NR;
    fill_cols:
      for (int x = 0; x < MAX_W; ++x) {
        HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_W)
        if (x >= w) break;
        if (deform) dline[slot][x] = dil_in.read();
      fill_vectors:
        for (int k = 0; k < MAX_CT; ++k) {
          HLS_PRAGMA(PIPELINE II = 1)
          HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_CT)
          if (k >= nct) break;
          const vec_t<P, B> v = in.read();
          for (int i = 0; i < P; ++i) {
            HLS_PRAGMA(UNROLL)
            const int ch = k * P + i;
            if (ch < c) line[slot][x * c + ch] = v.v[i];
          }
        }
      }
      ++next;
    }
  cols:
    for (int ox = 0; ox < MAX_W; ++ox) {
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_W)
      if (ox >= wo) break;
      const int cy = oy * s, cx = ox * s;
      int dil = 1;
      if (deform) {
        const int dv = dline[cy % NR][cx];
        dil = dv < d_max ? dv : d_max;  // the range limit R (a no-op on a valid dilation map)
      }
    vectors:
      for (int k = 0; k < MAX_CT; ++k) {
        HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_CT)
        if (k >= nct) break;
        ap_int<ACC_BITS> acc[P];
        HLS_PRAGMA(ARRAY_PARTITION variable = acc complete)
        for (int i = 0; i < P; ++i) {
          HLS_PRAGMA(UNROLL)
          acc[i] = 0;
        }
      taps:  // one tap of P channels per cycle
        for (int t = 0; t < 9; ++t) {
          HLS_PRAGMA(PIPELINE II = 1)
          const int ty = cy + (t / 3 - 1) * dil;
          const int tx = cx + (t % 3 - 1) * dil;
          const bool inside = ty >= 0 && ty < h && tx >= 0 && tx < w;
          const int slot = inside ? ty % NR : 0;
          const int base = inside ? tx * c : 0;
          for (int i = 0; i < P; ++i) {
            HLS_PRAGMA(UNROLL)
            const int ch = k * P + i;
            if (inside && ch < c) acc[i] += wsp[t][ch] * line[slot][base + ch];
          }
        }
        vec_t<P, B> y;
      requant_lanes:
        for (int i = 0; i < P; ++i) {
          HLS_PRAGMA(UNROLL)
          const int ch = k * P + i;
          y.v[i] = ch < c ? requant<ACC_BITS, B>(acc[i], mult[ch], bias[ch], shift, amax) : ap_uint<B>(0);
        }
        out.write(y);
      }
    }
  }
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_SPATIAL_H
