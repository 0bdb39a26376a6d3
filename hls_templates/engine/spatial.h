// The spatial unit's 3x3 ops (docs/integer-contract.md): depthwise 3x3 (zero padding 1, stride 1
// or 2) and CoDeNet's limited-range square deformable depthwise 3x3, each followed by requant,
// on a pixel stream.
//
//   dw:     out[y, x, c] = requant(sum_k W[k][c] * in[y*s + ky, x*s + kx, c])
//   deform: out[y, x, c] = requant(sum_k W[k][c] * in[y + ky*d, x + kx*d, c]),  d = d(y, x) <= R
//
// taps k = 3*(ky+1) + (kx+1), reads outside the image are 0. Pixels arrive in raster order, each
// as nct = ceil(C/P) vectors of P channel values (zero beyond C); the dilation map arrives on its
// own stream, one value per input pixel (the reader reads it through the call's second input view).
//
// A ring of NR + 1 = 2*MAX_DILATION + 2 rows holds the input rows around the output row (the
// 2R + 1 rows of the taps and the row being written ahead of them: with R = MAX_DILATION and
// w <= 2R the writes of row y+R+1 would reach columns row y-R still has to give), one memory
// per row (the partitioned dimension, reached only by an unrolled loop over the rows), each
// row w*nct packed words (all P lanes of a vector in one word, at x*nct + k). Input pixel p (raster
// index) is written while output pixel q = p - L is computed, L = (reach)*w + reach the raster
// distance to the last input it needs (reach 1 for dw, the layer's R for deform): one flat
// pipelined loop over (h*w + L) x nct input slots fills the ring and computes at once, the last L
// pixels with no input (the flush). Every ring memory sees at most one read and one write per cycle.
//
// dw (one output vector of all 9 taps x P lanes per cycle, one input vector in per cycle): a
// sliding 3x3 window. Each cycle the column of input pixel p enters it: rows py-2, py-1 read from
// the ring at (px, k), row py the input itself; the centre and left columns are that column one
// and two pixels earlier, from delay lines of nct words (`win1`, `win2`). Output (y, x) is the
// window at p = (y+1)*w + x + 1. Stride 2 computes every stride-1 position and emits the even
// ones: the stage stays at one input vector per cycle, which is its input rate anyway.
//
// deform: the tap columns x-d, x, x+d move with the per-pixel d, so they are read from the ring,
// not slid. Reading all 9 taps per cycle needs 3 reads of each of 3 rows per cycle: 3 copies of
// the ring (3 x NR rows of the widest line) beside the write port. We read one tap column (3 taps,
// one read of 3 row memories at one address) per cycle instead: 3 cycles per output vector, with
// one input vector written every 3rd cycle (every cycle while the first L pixels fill the ring).
// The choice keeps the ring at 1x memory, the largest buffer of the engine (16 rows for R = 7),
// for layers that are few in CoDeNet (3 of config b's 65 calls).
//
// Read-after-write at short distances is forwarded from registers (the DEPENDENCE pragmas leave
// longer ones to the memories, whose write paths take at most 2 cycles): the ring's row being
// written is read back at distance 1 only for w*nct == 1 (dw), and at distance 0..2 for the
// pixel being read itself (deform, d = R); the window delay lines at distance 1 and 2 (nct <= 2).
//
// Weights [9][C] and the requant constants are loaded per call (wmem at sw_addr, sq_addr), in
// the layouts of the 1x1 conv's weights (rows padded to whole words) and requant constants, in
// flat burst loops, to one memory per (tap, lane) and per lane, each read at k: all 9 taps x P
// lanes of a vector in one cycle.
//
// Ring depth: w*nct words per row <= (W*C + W*(P-1)) / P, so W x C <= MAX_LINE (the engine's and
// the scheduler's check, in values) bounds it with MAX_W*(P-1)/P words of slack for the padding of
// the last vector of each pixel.
#ifndef CODESIGN_ENGINE_SPATIAL_H
#define CODESIGN_ENGINE_SPATIAL_H

#include "cycles.h"
#include "inventory.h"
#include "packing.h"
#include "requant.h"
#include "shift.h"
#include "types.h"

// IIs of the spatial unit's loops (their PIPELINE pragmas and the cycle count, cycles.h).
#define CODESIGN_II_SPW_LOAD 1
#define CODESIGN_II_DW 1
#define CODESIGN_II_DEFORM 1

namespace codesign {

CODESIGN_CSIM_BEGIN

// Pipeline depths: the loads (AXI read, lane select, write); dw (ring read, window mux, 9-tap
// multiply, adder tree ~log2(9), requant multiply + add + shift + clamp, stream write); deform
// (the same with 3 taps per cycle and the accumulate).
constexpr int DEPTH_SPW_LOAD = 3;
constexpr int DEPTH_DW = 10;
constexpr int DEPTH_DEFORM = 10;

// The weights of a spatial call: 9 rows (taps) of c values in wmem, each row padded to whole
// words, to wsp[tap][lane][k] (channel k*P + lane). A word of LW lanes goes in ceil(LW/P) trips
// of at most P lanes each, so every (tap, lane) memory takes at most one write per cycle.
template <int BUS, int WB, int P, int MAXC, int AXI_LAT>
void load_spatial_weights(const ap_uint<BUS>* wmem, int sw_addr, int c,
                          ap_int<WB> wsp[9][P][ceil_div(MAXC, P)]) {
  HLS_PRAGMA(INLINE off)
  typedef lanes_t<BUS, WB> L;
  constexpr int LW = L::LANES;
  constexpr int SUBS = ceil_div(LW, P);  // trips per word
  constexpr int MAX_N = 9 * ceil_div(MAXC, LW) * SUBS;
  const int wpr = ceil_div(c, LW);
  const int n = 9 * wpr * SUBS;
  int t = 0, j = 0, sub = 0;  // tap, word of the row, part of the word
  int wi = 0;                 // t*wpr + j: the words, consecutive (one burst)
  int cb = 0;                 // the channel of the part's first lane: j*LW + sub*P
  ap_uint<WB> lane[LW];
  HLS_PRAGMA(ARRAY_PARTITION variable = lane complete)
  CODESIGN_BURST(STAGE_LOAD, AXI_LAT);
  CODESIGN_LOOP_COUNTER(trips);
words:
  for (int it = 0; it < MAX_N; ++it) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_SPW_LOAD)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 9 max = MAX_N)
    if (it >= n) break;  // one flat loop, run-time extent
    CODESIGN_TRIP(trips);
    if (sub == 0) L::unpack(wmem[sw_addr + wi], lane);
    const int r0 = cb % P, k0 = cb / P;
  lanes:  // memory (t, i) takes lane l = (i - r0) mod P of this part: a rotation
    for (int i = 0; i < P; ++i) {
      HLS_PRAGMA(UNROLL)
      const int l = i >= r0 ? i - r0 : i - r0 + P;
      const int k = i >= r0 ? k0 : k0 + 1;
      const int src = sub * P + l;
      if (src < LW && k * P + i < c) {
        for (int tt = 0; tt < 9; ++tt) {
          HLS_PRAGMA(UNROLL)
          if (tt == t) wsp[tt][i][k] = ap_int<WB>(lane[src]);
        }
      }
    }
    cb += P;
    if (++sub == SUBS) {
      sub = 0;
      ++wi;
      cb = (j + 1) * LW;
      if (++j == wpr) {
        j = 0;
        cb = 0;
        ++t;
      }
    }
  }
  CODESIGN_LOOP_DONE(STAGE_LOAD, trips, CODESIGN_II_SPW_LOAD, DEPTH_SPW_LOAD);
}

// enable (dw || deform) == false: a pass-through of h x w pixels. h x w is the input grid;
// the output grid is ((h-1)/s + 1) x ((w-1)/s + 1).
// HE: the engine has the requant's tie logic; half_even: this call's requant rounds ties to even.
#if CODESIGN_SIGNED_ACTS
// in_sgn: the input values are two's complement (sign-extended at the taps' multipliers: one more
// bit); out_sgn: the requant's output is signed (requant's sgn).
template <int P, int B, int WB, int ACC_BITS, int MAXC, int MAX_H, int MAX_W, int MAX_LINE, int NR,
          bool HE = false>
void spatial_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out,
                   hls::stream<ap_uint<8> >& dil_in, bool dw, bool deform, bool stride2, int h, int w,
                   int c, int d_max, int shift, int act_max,
                   const ap_int<WB> wsp[9][P][ceil_div(MAXC, P)],
                   const rq_mult_t mult[P][ceil_div(MAXC, P)],
                   const rq_wide_t bias[P][ceil_div(MAXC, P)], bool half_even = false, bool in_sgn = false,
                   bool out_sgn = false) {
#else
template <int P, int B, int WB, int ACC_BITS, int MAXC, int MAX_H, int MAX_W, int MAX_LINE, int NR,
          bool HE = false>
void spatial_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out,
                   hls::stream<ap_uint<8> >& dil_in, bool dw, bool deform, bool stride2, int h, int w,
                   int c, int d_max, int shift, int act_max,
                   const ap_int<WB> wsp[9][P][ceil_div(MAXC, P)],
                   const rq_mult_t mult[P][ceil_div(MAXC, P)],
                   const rq_wide_t bias[P][ceil_div(MAXC, P)], bool half_even = false) {
#endif
  HLS_PRAGMA(INLINE off)
  typedef ap_uint<P * B> word_t;     // one vector, all lanes
  typedef ap_uint<3 * P * B> col_t;  // one window column: rows y-1, y, y+1
  constexpr int MAX_CT = ceil_div(MAXC, P);
  constexpr int LW = row_words<P, MAXC, MAX_W, MAX_LINE>::value;
  constexpr int MAXR = (NR - 1) / 2;
  constexpr int NRING = NR + 1;  // + the row being written while the top row is still read
  constexpr int MAX_DW = (MAX_H * MAX_W + MAX_W + 1) * MAX_CT;
  constexpr int MAX_DF = (3 * MAX_H * MAX_W + MAXR * MAX_W + MAXR) * MAX_CT;
  static word_t ring[NRING][LW];
  static col_t win1[MAX_CT], win2[MAX_CT];
  static ap_uint<8> dring[NRING * MAX_W];
  HLS_PRAGMA(ARRAY_PARTITION variable = ring complete dim = 1)
  CODESIGN_MEMORY(ring);
  CODESIGN_MEMORY(win1);
  CODESIGN_MEMORY(win2);
  CODESIGN_MEMORY(dring);
  if (!dw && !deform) {
    pass_through<STAGE_SPATIAL, P, B, MAXC, MAX_H, MAX_W>(in, out, h, w, c);
    return;
  }
  const int nct = ceil_div(c, P);
  const int npix = h * w;
  const ap_uint<B> amax = act_max;
  const int reach = deform ? (d_max < MAXR ? d_max : MAXR) : 1;
  const int lag = reach * w + reach;  // L: raster distance from an output to its last input
  // input pixel p = (py, px), vector k; slots of rows py, py-1, py-2 in the ring
  int px = 0, py = 0, k = 0, pa = 0, s0 = 0, s1 = NRING - 1, s2 = NRING - 2;
  int p = 0;
  // output pixel q = p - lag = (cy, cx) once p >= lag; cs: the slot of row cy
  int cx = 0, cy = 0, cs = 0;
  bool fw_on = false;  // the previous iteration's ring write (dw forwarding)
  int fw_s = 0, fw_a = 0;
  word_t fw_v = 0;
  col_t e1 = 0, e2 = 0, m1 = 0, m2 = 0;  // entered / centre columns 1 and 2 iterations ago

  if (dw) {
    const int n = npix > 0 ? (npix + lag) * nct : 0;
    CODESIGN_LOOP_COUNTER(trips);
  dw_vectors:
    for (int it = 0; it < MAX_DW; ++it) {
      HLS_PRAGMA(PIPELINE II = CODESIGN_II_DW)
      HLS_PRAGMA(DEPENDENCE variable = ring inter false)
      HLS_PRAGMA(DEPENDENCE variable = win1 inter false)
      HLS_PRAGMA(DEPENDENCE variable = win2 inter false)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_DW)
      if (it >= n) break;  // one flat loop, run-time extent
      CODESIGN_TRIP(trips);
      const bool reading = p < npix;
      word_t v = 0;
      if (reading) {
        const vec_t<P, B> iv = in.read();
        for (int i = 0; i < P; ++i) {
          HLS_PRAGMA(UNROLL)
          v.range(i * B + B - 1, i * B) = iv.v[i];
        }
      }
      // the ring: every row memory read at (px, k); row py's written there
      word_t rd[NRING];
      HLS_PRAGMA(ARRAY_PARTITION variable = rd complete)
    dw_rows:
      for (int s = 0; s < NRING; ++s) {
        HLS_PRAGMA(UNROLL)
        rd[s] = (fw_on && fw_s == s && fw_a == pa) ? fw_v : ring[s][pa];
        if (reading && s == s0) ring[s][pa] = v;
      }
      fw_on = reading;
      fw_s = s0;
      fw_a = pa;
      fw_v = v;
      // the column entering the window: rows py-2, py-1 (0 outside the image), py
      col_t e = 0;
      if (py >= 2 && py - 2 < h) e.range(P * B - 1, 0) = rd[s2];
      if (py >= 1 && py - 1 < h) e.range(2 * P * B - 1, P * B) = rd[s1];
      e.range(3 * P * B - 1, 2 * P * B) = v;
      const col_t ctr = nct == 1 ? e1 : nct == 2 ? e2 : win1[k];
      const col_t lft = nct == 1 ? m1 : nct == 2 ? m2 : win2[k];
      win1[k] = e;
      win2[k] = ctr;
      e2 = e1;
      e1 = e;
      m2 = m1;
      m1 = ctr;
      if (p >= lag) {
        const bool has_l = cx >= 1, has_r = cx + 1 < w;
        ap_uint<B> tap[9][P];
        HLS_PRAGMA(ARRAY_PARTITION variable = tap complete dim = 0)
      dw_taps:
        for (int ky = 0; ky < 3; ++ky) {
          HLS_PRAGMA(UNROLL)
          for (int i = 0; i < P; ++i) {
            HLS_PRAGMA(UNROLL)
            const int lo = ky * P * B + i * B;
            tap[3 * ky + 0][i] = has_l ? ap_uint<B>(lft.range(lo + B - 1, lo)) : ap_uint<B>(0);
            tap[3 * ky + 1][i] = ctr.range(lo + B - 1, lo);
            tap[3 * ky + 2][i] = has_r ? ap_uint<B>(e.range(lo + B - 1, lo)) : ap_uint<B>(0);
          }
        }
        if (!stride2 || (cy % 2 == 0 && cx % 2 == 0)) {
          vec_t<P, B> y;
        dw_lanes:
          for (int i = 0; i < P; ++i) {
            HLS_PRAGMA(UNROLL)
            ap_int<ACC_BITS> acc = 0;
            for (int t = 0; t < 9; ++t) {
              HLS_PRAGMA(UNROLL)
#if CODESIGN_SIGNED_ACTS
              acc += wsp[t][i][k] * act_value<B>(tap[t][i], in_sgn);
#else
              acc += wsp[t][i][k] * tap[t][i];
#endif
            }
#if CODESIGN_SIGNED_ACTS
            y.v[i] = k * P + i < c ? requant<ACC_BITS, B, HE>(acc, mult[i][k], bias[i][k], shift, amax, half_even,
                                                              out_sgn)
                                   : ap_uint<B>(0);  // zero beyond c (stale constants there)
#else
            y.v[i] = k * P + i < c ? requant<ACC_BITS, B, HE>(acc, mult[i][k], bias[i][k], shift, amax, half_even)
                                   : ap_uint<B>(0);  // zero beyond c (stale constants there)
#endif
          }
          out.write(y);
        }
      }
      // next vector: k, then the input pixel (and the output pixel)
      ++pa;
      if (++k == nct) {
        k = 0;
        ++p;
        if (++px == w) {
          px = 0;
          pa = 0;
          ++py;
          s2 = s1;
          s1 = s0;
          s0 = s0 == NRING - 1 ? 0 : s0 + 1;
        }
        if (p > lag && ++cx == w) {
          cx = 0;
          ++cy;
        }
      }
    }
    CODESIGN_LOOP_DONE(STAGE_SPATIAL, trips, CODESIGN_II_DW, DEPTH_DW);
    if (n) {
      CODESIGN_STARVE(STAGE_SPATIAL, uint64_t(lag) * nct);  // the fill: read, nothing out
      CODESIGN_STALL(STAGE_SPATIAL, uint64_t(lag) * nct);   // the last lag pixels: out, nothing read
    }
    return;
  }

  // deform: 3 iterations (tap columns tc = 0, 1, 2) per vector slot that computes, 1 per slot of
  // the fill (the first `lag` pixels, input only)
  const int n = npix > 0 ? (lag + 3 * npix) * nct : 0;
  int tc = 0, dil = 0;
  word_t vin = 0;  // the input vector of this slot
  ap_int<ACC_BITS> acc[P];
  HLS_PRAGMA(ARRAY_PARTITION variable = acc complete)
  CODESIGN_LOOP_COUNTER(trips);
deform_vectors:
  for (int it = 0; it < MAX_DF; ++it) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_DEFORM)
    HLS_PRAGMA(DEPENDENCE variable = ring inter false)
    HLS_PRAGMA(DEPENDENCE variable = dring inter false)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 3 max = MAX_DF)
    if (it >= n) break;  // one flat loop, run-time extent
    CODESIGN_TRIP(trips);
    const bool reading = p < npix;
    const bool computing = p >= lag;
    if (tc == 0) {
      vin = 0;
      if (reading) {
        const vec_t<P, B> iv = in.read();
        for (int i = 0; i < P; ++i) {
          HLS_PRAGMA(UNROLL)
          vin.range(i * B + B - 1, i * B) = iv.v[i];
        }
        if (k == 0) dring[s0 * MAX_W + px] = dil_in.read();
      }
      if (computing) {
        const int dv = dring[cs * MAX_W + cx];
        dil = dv < reach ? dv : reach;  // the range limit R (a no-op on a valid dilation map)
      }
    }
    // tap column tc: x = cx + (tc-1)*d, rows cy-d, cy, cy+d (slots cs-d, cs, cs+d)
    const int tx = cx + (tc - 1) * dil;
    const bool col_in = tx >= 0 && tx < w;
    const int ta = col_in ? tx * nct + k : 0;
    const int su = cs >= dil ? cs - dil : cs - dil + NRING;
    const int sd = cs + dil < NRING ? cs + dil : cs + dil - NRING;
    word_t rd[NRING];
    HLS_PRAGMA(ARRAY_PARTITION variable = rd complete)
  deform_rows:
    for (int s = 0; s < NRING; ++s) {
      HLS_PRAGMA(UNROLL)
      rd[s] = ring[s][ta];
      if (tc == 0 && reading && s == s0) ring[s][pa] = vin;
    }
    word_t row[3];
    row[0] = col_in && cy - dil >= 0 ? rd[su] : word_t(0);
    row[1] = col_in ? rd[cs] : word_t(0);
    row[2] = col_in && cy + dil < h ? rd[sd] : word_t(0);
    if (col_in && tx == px) {  // the pixel being written: d = R (row 2), or R = 0 (all rows)
      if (cy + dil == py) row[2] = vin;
      if (cy == py) row[1] = vin;
      if (cy - dil == py) row[0] = vin;
    }
    if (computing) {
    deform_lanes:
      for (int i = 0; i < P; ++i) {
        HLS_PRAGMA(UNROLL)
        ap_int<ACC_BITS> sum = tc == 0 ? ap_int<ACC_BITS>(0) : acc[i];
        for (int ky = 0; ky < 3; ++ky) {
          HLS_PRAGMA(UNROLL)
          const ap_int<WB> wt = tc == 0 ? wsp[3 * ky][i][k] : tc == 1 ? wsp[3 * ky + 1][i][k] : wsp[3 * ky + 2][i][k];
          const ap_uint<B> x = row[ky].range(i * B + B - 1, i * B);
#if CODESIGN_SIGNED_ACTS
          sum += wt * act_value<B>(x, in_sgn);
#else
          sum += wt * x;
#endif
        }
        acc[i] = sum;
      }
      if (tc == 2) {
        vec_t<P, B> y;
      deform_requant:
        for (int i = 0; i < P; ++i) {
          HLS_PRAGMA(UNROLL)
#if CODESIGN_SIGNED_ACTS
          y.v[i] = k * P + i < c ? requant<ACC_BITS, B, HE>(acc[i], mult[i][k], bias[i][k], shift, amax, half_even,
                                                            out_sgn)
                                 : ap_uint<B>(0);  // zero beyond c (stale constants there)
#else
          y.v[i] = k * P + i < c ? requant<ACC_BITS, B, HE>(acc[i], mult[i][k], bias[i][k], shift, amax, half_even)
                                 : ap_uint<B>(0);  // zero beyond c (stale constants there)
#endif
        }
        out.write(y);
      }
    }
    // next: the tap column (none to compute while the ring fills), then k, then the input pixel
    if (++tc == 3 || !computing) {
      tc = 0;
      ++pa;
      if (++k == nct) {
        k = 0;
        ++p;
        if (++px == w) {
          px = 0;
          pa = 0;
          ++py;
          s0 = s0 == NRING - 1 ? 0 : s0 + 1;
        }
        if (p > lag && ++cx == w) {
          cx = 0;
          ++cy;
          cs = cs == NRING - 1 ? 0 : cs + 1;
        }
      }
    }
  }
  CODESIGN_LOOP_DONE(STAGE_SPATIAL, trips, CODESIGN_II_DEFORM, DEPTH_DEFORM);
  if (n) {
    CODESIGN_STARVE(STAGE_SPATIAL, uint64_t(lag) * nct);    // the fill: read, nothing out
    CODESIGN_STALL(STAGE_SPATIAL, 3 * uint64_t(lag) * nct);  // the last lag pixels: out, nothing read
  }
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_SPATIAL_H
