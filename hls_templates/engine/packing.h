// Packing of feature-map pixels into bus words, and views (docs/engine.md, "Feature-map layout").
//
// A buffer holds H x W pixels of C_buf channels, HWC. A pixel occupies wpp = ceil(C_buf / lanes)
// consecutive words, lanes = BUS / SB (SB = store bits: A for activations, 8 for the image).
// Channel c is in word c / lanes, bits [(c mod lanes) * SB, +SB). Unused lanes are zero.
//
// A view (cbuf, rot, n, sh) reads or writes n logical channels: logical j <-> physical
// (rot + j * 2^sh) mod cbuf (a channel stride 2^sh: ShuffleNet's interleave). Requires
// 0 <= rot < cbuf, 0 <= sh <= MAX_VIEW_SH and (n - 1) * 2^sh + 1 <= cbuf (checked by the engine).
// The processes that move views between words and vectors are in io.h.
#ifndef CODESIGN_ENGINE_PACKING_H
#define CODESIGN_ENGINE_PACKING_H

#include "types.h"

namespace codesign {

CODESIGN_CSIM_BEGIN

// Lane access to one bus word. The word is handled as BUS/64 native 64-bit parts: every lane
// index is a constant after unrolling (pure wiring in hardware), and in C-simulation the parts
// avoid the slow generic path of ap_uint<128>::range (measured ~9x faster).
template <int BUS, int SB>
struct lanes_t {
  static_assert(BUS % 64 == 0, "bus width must be a multiple of 64 bits");
  static_assert(SB >= 1 && SB <= 32, "store bits must be in 1..32");
  static constexpr int LANES = BUS / SB;
  static constexpr int PARTS = BUS / 64;

  static void unpack(const ap_uint<BUS>& word, ap_uint<SB> out[LANES]) {
    HLS_PRAGMA(INLINE)
    ap_uint<64> part[PARTS];
    HLS_PRAGMA(ARRAY_PARTITION variable = part complete)
  split:
    for (int p = 0; p < PARTS; ++p) {
      HLS_PRAGMA(UNROLL)
      part[p] = word.range(64 * p + 63, 64 * p);
    }
  lanes:
    for (int l = 0; l < LANES; ++l) {
      HLS_PRAGMA(UNROLL)
      const int lo = l * SB;
      const int pi = lo / 64;
      const int off = lo % 64;
      if (off + SB <= 64) {
        out[l] = part[pi].range(off + SB - 1, off);
      } else {  // the lane straddles two parts (SB does not divide 64)
        const int nlo = 64 - off;
        ap_uint<SB> v = part[pi].range(63, off);
        ap_uint<SB> hi = part[pi + 1].range(SB - nlo - 1, 0);
        out[l] = v | (hi << nlo);
      }
    }
  }

  static ap_uint<BUS> pack(const ap_uint<SB> in[LANES]) {
    HLS_PRAGMA(INLINE)
    ap_uint<64> part[PARTS];
    HLS_PRAGMA(ARRAY_PARTITION variable = part complete)
  clear:
    for (int p = 0; p < PARTS; ++p) {
      HLS_PRAGMA(UNROLL)
      part[p] = 0;
    }
  lanes:
    for (int l = 0; l < LANES; ++l) {
      HLS_PRAGMA(UNROLL)
      const int lo = l * SB;
      const int pi = lo / 64;
      const int off = lo % 64;
      if (off + SB <= 64) {
        part[pi].range(off + SB - 1, off) = in[l];
      } else {
        const int nlo = 64 - off;
        part[pi].range(63, off) = in[l].range(nlo - 1, 0);
        part[pi + 1].range(SB - nlo - 1, 0) = in[l].range(SB - 1, nlo);
      }
    }
    ap_uint<BUS> word = 0;
  join:
    for (int p = 0; p < PARTS; ++p) {
      HLS_PRAGMA(UNROLL)
      word.range(64 * p + 63, 64 * p) = part[p];
    }
    return word;
  }
};

// Largest log2 channel stride of a view (strides 1, 2, 4, 8).
constexpr int MAX_VIEW_SH = 3;

// A view of a buffer's channels; the physical channels it spans are one or two intervals:
// [rot, e1) and, when it wraps, [0, e2). With a stride (sh > 0) only every 2^sh-th of them
// belongs to the view.
struct view_t {
  int cbuf, rot, n;
  int sh;  // log2 of the channel stride (0 when omitted in an initializer)
  int span() const { return n > 0 ? ((n - 1) << sh) + 1 : 0; }
  int e1() const { return rot + span() < cbuf ? rot + span() : cbuf; }
  int e2() const { return rot + span() > cbuf ? rot + span() - cbuf : 0; }
  // physical channel p (0 <= p < cbuf) -> logical index, or -1 when outside the view
  int logical(int p) const {
    int j = p - rot;
    if (j < 0) j += cbuf;
    if (j & ((1 << sh) - 1)) return -1;
    j >>= sh;
    return j < n ? j : -1;
  }
  // does the view cover every physical channel of [lo, hi)? (never, with a stride)
  bool covers(int lo, int hi) const {
    return sh == 0 && (n >= cbuf || (lo >= rot && hi <= e1()) || hi <= e2());
  }
  // The words (of `lanes` channels) the view touches, as a sequence t = 0 .. count-1:
  // word k1 + t for t < n1 ([rot, e1)), then word t - n1 ([0, e2), when the view wraps).
  // A word holding both ends of a wrapping view appears twice. count <= ceil(span/lanes) + 2.
  struct words_t {
    int k1, n1, count;
    int word(int t) const { return t < n1 ? k1 + t : t - n1; }
  };
  words_t words(int lanes) const {
    words_t w;
    w.k1 = rot / lanes;
    w.n1 = n > 0 ? (e1() - 1) / lanes - w.k1 + 1 : 0;
    w.count = w.n1 + (e2() > 0 ? (e2() - 1) / lanes + 1 : 0);
    return w;
  }
};

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_PACKING_H
