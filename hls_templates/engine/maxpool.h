// 2x2 max-pool, stride 2, floor mode (docs/integer-contract.md, "Max-pool"), on a pixel stream.
//
// Pixels arrive in raster order, each as ceil(C/P) vectors of P channel values. A line buffer
// of one output row, flat and indexed (w/2)*C + c (so (W/2) x C <= MAX_LINE), keeps the
// running max of the current 2x2 windows; a window is emitted at its bottom-right pixel. The
// trailing odd column and row are read and dropped.
#ifndef CODESIGN_ENGINE_MAXPOOL_H
#define CODESIGN_ENGINE_MAXPOOL_H

#include "types.h"

namespace codesign {

CODESIGN_CSIM_BEGIN

// enable == false: a pass-through of h x w pixels.
template <int P, int B, int MAXC, int MAX_H, int MAX_W, int MAX_LINE>
void maxpool2x2_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out, bool enable,
                      int h, int w, int c) {
  HLS_PRAGMA(INLINE off)
  constexpr int MAX_CT = ceil_div(MAXC, P);
  static ap_uint<B> line[MAX_LINE];
  HLS_PRAGMA(ARRAY_PARTITION variable = line cyclic factor = P)
  const int nct = ceil_div(c, P);
  const int hp = (h / 2) * 2;  // rows / columns that belong to a window
  const int wp = (w / 2) * 2;
rows:
  for (int y = 0; y < MAX_H; ++y) {
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_H)
    if (y >= h) break;
  cols:
    for (int x = 0; x < MAX_W; ++x) {
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_W)
      if (x >= w) break;
      const bool inside = y < hp && x < wp;
      const bool first = (y % 2 == 0) && (x % 2 == 0);
      const bool last = (y % 2 == 1) && (x % 2 == 1);
      const int base = (x / 2) * c;
    vectors:
      for (int k = 0; k < MAX_CT; ++k) {
        HLS_PRAGMA(PIPELINE II = 1)
        HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_CT)
        if (k >= nct) break;
        const vec_t<P, B> v = in.read();
        if (!enable) {
          out.write(v);
          continue;
        }
        if (!inside) continue;  // floor mode: dropped
        vec_t<P, B> m;
      lanes:
        for (int i = 0; i < P; ++i) {
          HLS_PRAGMA(UNROLL)
          const int ch = k * P + i;
          ap_uint<B> r = 0;
          if (ch < c) {
            const ap_uint<B> old = line[base + ch];
            r = (first || v.v[i] > old) ? v.v[i] : old;
            line[base + ch] = r;
          }
          m.v[i] = r;
        }
        if (last) out.write(m);
      }
    }
  }
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_MAXPOOL_H
