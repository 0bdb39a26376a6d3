// The window unit: the taps of a dense k x k convolution (KXK calls, docs/engine.md "Window
// unit"), fed to the 1x1 MAC array as one conv of k*k*nct*P inputs per output pixel.
//
// Pixels arrive in raster order, each as nct = ceil(C/P) vectors of P channel values (zero beyond
// C). Per output pixel (oy, ox) the unit sends the taps t = ky*k + kx in order, each as the nct
// vectors of input pixel (oy*s - pad + ky, ox*s - pad + kx), zero outside the image (zero padding:
// the value 0 of the unsigned input). The MAC array's weights are stored in the same order
// (codesign/hw/layout.py window_weights), so it runs the k x k conv as a 1x1 conv of
// k*k*nct*P inputs.
//
// Line buffer: a ring of k rows of w*nct packed vectors (one word holds all P lanes, no
// partitioning), input row y in slot y mod k, at slot*LW + x*nct + ct. One flat pipelined loop
// alternates two phases: it reads an input row (one vector per cycle, a write), then emits every
// output row whose window that row completes (one vector per cycle, a read), so the ring needs
// only k rows: output row oy needs rows oy*s - pad .. oy*s - pad + k - 1, and the next row read
// overwrites a row no later output row needs. A memory access per cycle (read or write, never
// both): one port.
//
// Cycles: h*w*nct reads + ho*wo*k*k*nct emits. The read phases write no output (starve the MAC
// array) and the emit phases read no input (stall the reader): cycles.h's coupling.
#ifndef CODESIGN_ENGINE_WINDOW_H
#define CODESIGN_ENGINE_WINDOW_H

#include "cycles.h"
#include "inventory.h"
#include "types.h"

// II of the window loop (its PIPELINE pragma and the cycle count, cycles.h).
#define CODESIGN_II_WINDOW 1

namespace codesign {

CODESIGN_CSIM_BEGIN

// Pipeline depth of the window loop: stream read / address, ring read or write, select + stream
// write.
constexpr int DEPTH_WINDOW = 3;

// KMAX: the largest kernel (the ring's rows); LINE: values of one ring row (W x ceil(C/P) x P of
// the widest input row); MAX_CT: the most vectors per output pixel (the MAC array's input buffer).
template <int P, int B, int KMAX, int LINE, int MAX_H, int MAX_W, int MAX_CT>
void window_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out, int h, int w, int c,
                  int k, int s, int pad) {
  HLS_PRAGMA(INLINE off)
  typedef ap_uint<P * B> word_t;
  constexpr int LW = cmax(1, LINE / P);  // vectors of one ring row
  // reads: every input vector; emits: (h + 2 pad - k + 1) x (w + ...) output pixels at most
  // (stride 1, pad < k) of at most MAX_CT vectors
  constexpr int MAX_N = MAX_H * MAX_W * MAX_CT + (MAX_H + KMAX) * (MAX_W + KMAX) * MAX_CT;
  static word_t ring[KMAX * LW];
  CODESIGN_MEMORY(ring);
  const int nct = ceil_div(c, P);
  const int ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1;
  const int row = w * nct;
  const int sk = s % k;  // the ring slot advances by s mod k per output row
  const int n = h * row + ho * wo * k * k * nct;
  // reading: vector rx of input row ry into slot ws (base wb = ws * LW)
  int rx = 0, ry = 0, ws = 0, wb = 0;
  // emitting: vector ct of tap (ky, kx) of output pixel (oy, ox); iy0 / ix0 the window's top-left
  // input pixel, s0 the slot of row iy0 (mod k, also when iy0 < 0), ts the slot of row iy0 + ky,
  // ix = ix0 + kx, need = iy0 + k - 1 the last row output row oy reads
  bool emitting = false;
  int oy = 0, ox = 0, ky = 0, kx = 0, ct = 0;
  int iy0 = -pad, ix0 = -pad, ix = -pad, need = k - 1 - pad;
  int s0 = pad == 0 ? 0 : k - pad, ts = s0;
  forward_t<word_t> fw;  // the previous iteration's ring write
  CODESIGN_LOOP_COUNTER(trips);
  CODESIGN_LOOP_COUNTER(reads);  // trips that send nothing on
vectors:
  for (int j = 0; j < MAX_N; ++j) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_WINDOW)
    HLS_PRAGMA(DEPENDENCE variable = ring inter false)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_N)
    if (j >= n) break;  // one flat loop, run-time extent
    CODESIGN_TRIP(trips);
    forward_t<word_t> nf;
    if (!emitting) {
      CODESIGN_TRIP(reads);
      const vec_t<P, B> v = in.read();
      word_t wv = 0;
      for (int i = 0; i < P; ++i) {
        HLS_PRAGMA(UNROLL)
        wv.range(i * B + B - 1, i * B) = v.v[i];
      }
      nf.write(ring, wb + rx, wv);
      if (++rx == row) {  // row ry is in: emit the output rows it completes
        rx = 0;
        ++ry;
        ws = ws + 1 == k ? 0 : ws + 1;
        wb = ws * LW;
        emitting = oy < ho && (need < ry || ry == h);
      }
    } else {
      const int iy = iy0 + ky;
      const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
      const word_t rv = fw.read(ring, inside ? ts * LW + ix * nct + ct : 0);
      vec_t<P, B> o;
      for (int i = 0; i < P; ++i) {
        HLS_PRAGMA(UNROLL)
        o.v[i] = inside ? ap_uint<B>(rv.range(i * B + B - 1, i * B)) : ap_uint<B>(0);
      }
      out.write(o);
      // next vector: ct, then kx, then ky, then ox, then oy
      if (++ct == nct) {
        ct = 0;
        ++ix;
        if (++kx == k) {
          kx = 0;
          ix = ix0;
          ts = ts + 1 == k ? 0 : ts + 1;
          if (++ky == k) {  // the output pixel is out
            ky = 0;
            ts = s0;
            ix0 += s;
            ix = ix0;
            if (++ox == wo) {  // the output row is out: the next one, if its rows are in
              ox = 0;
              ix0 = -pad;
              ix = ix0;
              ++oy;
              iy0 += s;
              need += s;
              const int t = s0 + sk;  // s0, sk < k: one wrap at most
              s0 = t >= k ? t - k : t;
              ts = s0;
              emitting = oy < ho && (need < ry || ry == h);
            }
          }
        }
      }
    }
    fw = nf;
  }
  CODESIGN_LOOP_DONE(STAGE_WINDOW, trips, CODESIGN_II_WINDOW, DEPTH_WINDOW);
  CODESIGN_STARVE(STAGE_WINDOW, reads);
  CODESIGN_STALL(STAGE_WINDOW, trips - reads);
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_WINDOW_H
