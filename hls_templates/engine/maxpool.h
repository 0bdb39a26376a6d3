// 2x2 max-pool, stride 2, floor mode (docs/integer-contract.md, "Max-pool"), on a pixel stream.
//
// Pixels arrive in raster order, each as nct = ceil(C/P) vectors of P channel values (zero beyond
// C). A line buffer of one output row keeps the running max of the current 2x2 windows, one
// packed word (all P lanes) per vector, at (x/2)*nct + k; a window is emitted at its
// bottom-right pixel. The trailing odd column and row are read and dropped. One flat pipelined
// loop over h*w*nct input vectors: one vector per cycle.
//
// Line buffer depth: (w/2)*nct words <= ((w/2)*C + (w/2)*(P-1)) / P, so (W/2) x C <= MAX_LINE
// (the engine's and the scheduler's check, in values) bounds it with (MAX_W/2)*(P-1)/P words of
// slack for the padding of the last vector of each pixel.
//
// Ports: one read and one write of `line` per cycle, at the same address. The odd column reads
// what the even column wrote nct vectors before: for nct <= 2 that is forwarded from registers
// (the histogram idiom), so the inter-iteration dependence on `line` left to the memory is at
// distance >= 3, which the read -> max -> write path (at most 2 cycles) meets.
#ifndef CODESIGN_ENGINE_MAXPOOL_H
#define CODESIGN_ENGINE_MAXPOOL_H

#include "cycles.h"
#include "inventory.h"
#include "types.h"

// II of the pool loop (its PIPELINE pragma and the cycle count, cycles.h).
#define CODESIGN_II_POOL 1

namespace codesign {

CODESIGN_CSIM_BEGIN

// Pipeline depth of the pool loop: stream read + BRAM read, compare/select, write + stream write.
constexpr int DEPTH_POOL = 3;

// Words of the pool's line buffer: one output row of (w/2) pixels x nct vectors (see above).
template <int P, int MAXC, int MAX_W, int MAX_LINE>
struct pool_line_words {
  static constexpr int value =
      cmax(1, cmin((MAX_W / 2) * ceil_div(MAXC, P), ceil_div(MAX_LINE + (MAX_W / 2) * (P - 1), P)));
};

// STAGE: the cycles.h stage this instance counts to (STAGE_POOL after the MAC array,
// STAGE_PREPOOL before it). enable == false: a pass-through of h x w pixels.
#if CODESIGN_SIGNED_ACTS
// sgn: the values are two's complement (the maximum compares them signed).
template <int STAGE, int P, int B, int MAXC, int MAX_H, int MAX_W, int MAX_LINE>
void maxpool2x2_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out, bool enable,
                      int h, int w, int c, bool sgn = false) {
#else
template <int STAGE, int P, int B, int MAXC, int MAX_H, int MAX_W, int MAX_LINE>
void maxpool2x2_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out, bool enable,
                      int h, int w, int c) {
#endif
  HLS_PRAGMA(INLINE off)
  typedef ap_uint<P * B> word_t;
  constexpr int LW = pool_line_words<P, MAXC, MAX_W, MAX_LINE>::value;
  constexpr int MAX_N = MAX_H * MAX_W * ceil_div(MAXC, P);
  static word_t line[LW];
  CODESIGN_MEMORY(line);
  if (!enable) {
    pass_through<STAGE, P, B, MAXC, MAX_H, MAX_W>(in, out, h, w, c);
    return;
  }
  const int nct = ceil_div(c, P);
  const int n = h * w * nct;
  const int hp = (h / 2) * 2;  // rows / columns that belong to a window
  const int wp = (w / 2) * 2;
  int k = 0, x = 0, y = 0;
  int xb = 0;        // (x / 2) * nct
  word_t fwd1 = 0, fwd2 = 0;  // the words written 1 and 2 iterations ago (forwarding)
  CODESIGN_LOOP_COUNTER(trips);
  CODESIGN_LOOP_COUNTER(quiet);  // trips of the rows that close no window (no output)
vectors:
  for (int j = 0; j < MAX_N; ++j) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_POOL)
    HLS_PRAGMA(DEPENDENCE variable = line inter false)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_N)
    if (j >= n) break;  // one flat loop, run-time extent
    CODESIGN_TRIP(trips);
    if (y % 2 == 0 || y >= hp) CODESIGN_TRIP(quiet);
    const vec_t<P, B> v = in.read();
    const bool inside = y < hp && x < wp;
    const bool first = (y % 2 == 0) && (x % 2 == 0);  // top-left: starts the window
    const bool last = (y % 2 == 1) && (x % 2 == 1);   // bottom-right: emits it
    const int a = xb + k;
    word_t old = line[a];
    if (x % 2 == 1 && nct <= 2) old = nct == 1 ? fwd1 : fwd2;  // written 1 or 2 iterations ago
    word_t m = 0;
  lanes:
    for (int i = 0; i < P; ++i) {
      HLS_PRAGMA(UNROLL)
      const ap_uint<B> o = old.range(i * B + B - 1, i * B);
#if CODESIGN_SIGNED_ACTS
      m.range(i * B + B - 1, i * B) = (first || act_value<B>(v.v[i], sgn) > act_value<B>(o, sgn)) ? v.v[i] : o;
#else
      m.range(i * B + B - 1, i * B) = (first || v.v[i] > o) ? v.v[i] : o;
#endif
    }
    if (inside) {
      line[a] = m;
      fwd2 = fwd1;
      fwd1 = m;
      if (last) {
        vec_t<P, B> r;
        for (int i = 0; i < P; ++i) {
          HLS_PRAGMA(UNROLL)
          r.v[i] = m.range(i * B + B - 1, i * B);
        }
        out.write(r);
      }
    }
    // next vector: k, then x, then y
    if (++k == nct) {
      k = 0;
      if (++x == w) {
        x = 0;
        xb = 0;
        ++y;
      } else if (x % 2 == 0) {
        xb += nct;
      }
    }
  }
  CODESIGN_LOOP_DONE(STAGE, trips, CODESIGN_II_POOL, DEPTH_POOL);
  CODESIGN_STARVE(STAGE, quiet);
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_MAXPOOL_H
