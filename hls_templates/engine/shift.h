// Dirac5 shift (docs/integer-contract.md, "Shift") on a pixel stream.
//
// Channel c of output pixel (r, x) reads, by c mod 5: 0 x[r-1, x], 1 x[r, x-1], 2 x[r, x],
// 3 x[r, x+1], 4 x[r+1, x]; reads outside the image are 0.
//
// Two rows are kept in a line buffer (flat, indexed x*C + c, so W x C <= MAX_LINE): while
// input row r+1 streams in, output row r is emitted, pixel by pixel. Input pixel (r+1, x)
// overwrites the slot of (r-1, x) after output (r, x) has read it; output row H-1 is flushed
// after the last input row with zeros from below.
#ifndef CODESIGN_ENGINE_SHIFT_H
#define CODESIGN_ENGINE_SHIFT_H

#include "types.h"

namespace codesign {

CODESIGN_CSIM_BEGIN

// enable == false: a pass-through of h x w pixels.
template <int P, int B, int MAXC, int MAX_H, int MAX_W, int MAX_LINE>
void shift_dirac5_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out,
                        bool enable, int h, int w, int c) {
  HLS_PRAGMA(INLINE off)
  constexpr int MAX_CT = ceil_div(MAXC, P);
  static ap_uint<B> line[2][MAX_LINE];
  HLS_PRAGMA(ARRAY_PARTITION variable = line complete dim = 1)
  HLS_PRAGMA(ARRAY_PARTITION variable = line cyclic factor = P dim = 2)
  const int nct = ceil_div(c, P);
  if (!enable) {
    pass_through<P, B, MAXC, MAX_H, MAX_W>(in, out, h, w, c);
    return;
  }
  // ry: the input row being read (ry == h: flush); output row ry - 1 is emitted meanwhile.
rows:
  for (int ry = 0; ry < MAX_H + 1; ++ry) {
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 2 max = MAX_H + 1)
    if (ry > h) break;
    const bool reading = ry < h;
    const bool emitting = ry >= 1;
    const int cur = (ry + 1) % 2;  // slot of row ry - 1 (the output row)
    const int nxt = ry % 2;        // slot of row ry (being read), held row ry - 2 (above)
  cols:
    for (int x = 0; x < MAX_W; ++x) {
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_W)
      if (x >= w) break;
      int mod5 = 0;  // (k * P) mod 5
    vectors:
      for (int k = 0; k < MAX_CT; ++k) {
        HLS_PRAGMA(PIPELINE II = 1)
        HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_CT)
        if (k >= nct) break;
        vec_t<P, B> v;
        if (reading) {
          v = in.read();
        } else {
          for (int i = 0; i < P; ++i) {
            HLS_PRAGMA(UNROLL)
            v.v[i] = 0;
          }
        }
        vec_t<P, B> o;
      lanes:
        for (int i = 0; i < P; ++i) {
          HLS_PRAGMA(UNROLL)
          const int ch = k * P + i;
          const int idx = x * c + ch;
          ap_uint<B> r = 0;
          if (ch < c && emitting) {
            switch ((mod5 + i) % 5) {
              case 0:  // above: row ry - 2
                r = ry >= 2 ? line[nxt][idx] : ap_uint<B>(0);
                break;
              case 1:  // left
                r = x >= 1 ? line[cur][idx - c] : ap_uint<B>(0);
                break;
              case 2:
                r = line[cur][idx];
                break;
              case 3:  // right
                r = x + 1 < w ? line[cur][idx + c] : ap_uint<B>(0);
                break;
              default:  // below: the pixel being read (0 past the last row)
                r = v.v[i];
                break;
            }
          }
          o.v[i] = r;
          if (ch < c && reading) line[nxt][idx] = v.v[i];
        }
        if (emitting) out.write(o);
        mod5 = (mod5 + P) % 5;
      }
    }
  }
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_SHIFT_H
