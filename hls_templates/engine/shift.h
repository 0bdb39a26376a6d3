// Dirac5 shift (docs/integer-contract.md, "Shift") on a pixel stream.
//
// Channel c of output pixel (r, x) reads, by c mod 5: 0 x[r-1, x], 1 x[r, x-1], 2 x[r, x],
// 3 x[r, x+1], 4 x[r+1, x]; reads outside the image are 0.
//
// Pixels arrive in raster order, each as nct = ceil(C/P) vectors of P channel values (zero beyond
// C). Two rows are kept in line buffers of packed words (all P lanes of a vector in one word, at
// x*nct + k), one memory per row slot: while input row r+1 streams in, output row r is emitted,
// vector by vector. One flat pipelined loop over (h+1) x w x nct (the last pass is the flush of
// output row h-1, with zeros from below): one vector per cycle.
//
// Per cycle, the slot of row r (cur) is read twice: centre at x and right neighbour at x+1; the
// slot of row r-1 (nxt) is read once (above, at x) and then overwritten with input (r+1, x) at
// the same address. The left neighbour is the centre of the previous pixel, from a delay line of
// nct words (`left`). So each memory sees at most 2 accesses per cycle, and only constant
// indices reach the partitioned slot dimension. Read-after-write at short distances is
// forwarded from registers: `line` at distance 1 (tiny images, w*nct <= 2; its writes take the
// stream input, 1 cycle), `left` at distance 1 and 2 (nct <= 2; its writes follow a BRAM read,
// <= 2 cycles); what is left to the memories meets their write paths, hence the DEPENDENCE
// pragmas.
//
// Line buffer depth: w*nct words <= (W*C + W*(P-1)) / P per slot, so W x C <= MAX_LINE (the
// engine's and the scheduler's check, in values) bounds it with MAX_W*(P-1)/P words of slack
// for the padding of the last vector of each pixel.
#ifndef CODESIGN_ENGINE_SHIFT_H
#define CODESIGN_ENGINE_SHIFT_H

#include "cycles.h"
#include "inventory.h"
#include "types.h"

// II of the shift loop (its PIPELINE pragma and the cycle count, cycles.h).
#define CODESIGN_II_SHIFT 1

namespace codesign {

CODESIGN_CSIM_BEGIN

// Pipeline depth of the shift loop: stream read + BRAM reads, lane select, BRAM/stream write.
constexpr int DEPTH_SHIFT = 3;

// Words of one row of a line buffer of packed P-lane vectors: w*nct (see above).
template <int P, int MAXC, int MAX_W, int MAX_LINE>
struct row_words {
  static constexpr int value =
      cmax(1, cmin(MAX_W * ceil_div(MAXC, P), ceil_div(MAX_LINE + MAX_W * (P - 1), P)));
};

// enable == false: a pass-through of h x w pixels.
template <int P, int B, int MAXC, int MAX_H, int MAX_W, int MAX_LINE>
void shift_dirac5_stage(hls::stream<vec_t<P, B> >& in, hls::stream<vec_t<P, B> >& out,
                        bool enable, int h, int w, int c) {
  HLS_PRAGMA(INLINE off)
  typedef ap_uint<P * B> word_t;
  constexpr int MAX_CT = ceil_div(MAXC, P);
  constexpr int LW = row_words<P, MAXC, MAX_W, MAX_LINE>::value;
  constexpr int MAX_N = (MAX_H + 1) * MAX_W * MAX_CT;
  static word_t line[2][LW];
  static word_t left[MAX_CT];
  HLS_PRAGMA(ARRAY_PARTITION variable = line complete dim = 1)
  CODESIGN_MEMORY(line);
  CODESIGN_MEMORY(left);
  if (!enable) {
    pass_through<STAGE_SHIFT, P, B, MAXC, MAX_H, MAX_W>(in, out, h, w, c);
    return;
  }
  const int nct = ceil_div(c, P);
  const int n = h > 0 ? (h + 1) * w * nct : 0;
  // ry: the input row being read (ry == h: flush); output row ry - 1 is emitted meanwhile.
  int k = 0, x = 0, ry = 0;
  int a = 0;     // x * nct + k
  int mod5 = 0;  // (k * P) mod 5
  // the previous iteration's write of `line` (for forwarding) and centre (nct == 1: left)
  bool fw_on = false;
  int fw_s = 0, fw_a = 0;
  word_t fw_v = 0, ctr1 = 0, ctr2 = 0;  // ctr1, ctr2: the centres of 1 and 2 iterations ago
  CODESIGN_LOOP_COUNTER(trips);
vectors:
  for (int j = 0; j < MAX_N; ++j) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_SHIFT)
    HLS_PRAGMA(DEPENDENCE variable = line inter false)
    HLS_PRAGMA(DEPENDENCE variable = left inter false)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 2 max = MAX_N)
    if (j >= n) break;  // one flat loop, run-time extent
    CODESIGN_TRIP(trips);
    const bool reading = ry < h;
    const bool emitting = ry >= 1;
    const int nxt = ry % 2;  // slot of row ry - 2 (above), overwritten by row ry
    const bool has_right = x + 1 < w;
    const int ar = has_right ? a + nct : a;
    word_t v = 0;
    if (reading) {
      const vec_t<P, B> iv = in.read();
      for (int i = 0; i < P; ++i) {
        HLS_PRAGMA(UNROLL)
        v.range(i * B + B - 1, i * B) = iv.v[i];
      }
    }
    word_t at_a[2], at_ar = 0;
  slots:
    for (int s = 0; s < 2; ++s) {
      HLS_PRAGMA(UNROLL)
      const bool fwd_a = fw_on && fw_s == s && fw_a == a;
      at_a[s] = fwd_a ? fw_v : line[s][a];  // nxt: above; cur: centre
      if (s != nxt) {
        const bool fwd_r = fw_on && fw_s == s && fw_a == ar;
        at_ar = fwd_r ? fw_v : line[s][ar];  // right
      } else if (reading) {
        line[s][a] = v;
      }
    }
    fw_on = reading;
    fw_s = nxt;
    fw_a = a;
    fw_v = v;
    const word_t above = ry >= 2 ? at_a[nxt] : word_t(0);
    const word_t ctr = at_a[1 - nxt];
    const word_t rgt = has_right ? at_ar : word_t(0);
    word_t lft = 0;
    if (x >= 1) lft = nct == 1 ? ctr1 : nct == 2 ? ctr2 : left[k];
    left[k] = ctr;
    ctr2 = ctr1;
    ctr1 = ctr;
    if (emitting) {
      vec_t<P, B> o;
    lanes:
      for (int i = 0; i < P; ++i) {
        HLS_PRAGMA(UNROLL)
        const int lo = i * B, hi = i * B + B - 1;
        ap_uint<B> r;
        switch ((mod5 + i) % 5) {
          case 0: r = above.range(hi, lo); break;
          case 1: r = lft.range(hi, lo); break;
          case 2: r = ctr.range(hi, lo); break;
          case 3: r = rgt.range(hi, lo); break;
          default: r = v.range(hi, lo); break;  // below: the vector being read (0 on the flush)
        }
        o.v[i] = r;
      }
      out.write(o);
    }
    // next vector: k, then x, then the row
    ++a;
    mod5 = (mod5 + P) % 5;
    if (++k == nct) {
      k = 0;
      mod5 = 0;
      if (++x == w) {
        x = 0;
        a = 0;
        ++ry;
      }
    }
  }
  CODESIGN_LOOP_DONE(STAGE_SHIFT, trips, CODESIGN_II_SHIFT, DEPTH_SHIFT);
  if (n) {
    CODESIGN_STARVE(STAGE_SHIFT, uint64_t(w) * nct);  // the first row: read, nothing out
    CODESIGN_STALL(STAGE_SHIFT, uint64_t(w) * nct);   // the flush row: out, nothing read
  }
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_SHIFT_H
