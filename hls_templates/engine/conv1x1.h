// The PI x PO MAC array: 1x1 convolution of a pixel stream into accumulators (requantized by the
// requant process, requant.h), and the pass-through copy of calls without CONV.
//
// Passes (MAC_BITS = MB, the multipliers' operand width): x (8-bit image or A-bit activations,
// unsigned) is cut into px = ceil(xbits / MB) slices, w (signed, w_bits wide, sign-extended to
// pw * MB bits) into pw = ceil(w_bits / MB) slices, the top one signed, the others unsigned.
// Pass (sx, sw) adds (sum_i x_sx[i] * w_sw[i]) << MB*(sx + sw) to the accumulator, which is
// exactly sum_i x[i] * w[i] once every pass has run (two's complement wrap-around in ACC_BITS
// cancels).
//
// Weights (docs/engine.md, "Weights") are stored as those slices, MB bits each: in wmem, per
// output channel c, pw rows of Cin slices (row sw holds slice sw of W[c][0..Cin)), each row padded
// to whole bus words, lowest bits first. They are loaded per call, as they are, into an on-chip
// buffer of PI-lane words, one memory per output lane o:
//
//   wbuf[o][(ct * pw + sw) * nci + it] lanes i = slice sw of W[ct*PO + o][it*PI + i]
//
// (nci = ceil(cin / PI); dim 1 completely partitioned, lanes packed into one PI*MB-bit word:
// lanes64_t), so the unrolled o loop reads a whole PO x PI slice tile in one cycle, and an entry
// is as wide as the multipliers use (an 8-bit weight on a 4-bit array takes two entries, a 4-bit
// weight one). Lanes beyond cin hold whatever followed in wmem (never initialised values): they
// always multiply a zero input lane.
//
// Per call the array runs ONE flat pipelined loop over pixels x output tiles x passes x input
// tiles; the accumulator is reset at the first (pass, input tile) and sent to the requant
// process at the last. A pixel's input vectors are read from the stream on their first use
// (output tile 0, pass 0) and kept, packed, in xbuf for the later output tiles and passes.
#ifndef CODESIGN_ENGINE_CONV1X1_H
#define CODESIGN_ENGINE_CONV1X1_H

#include "cycles.h"
#include "inventory.h"
#include "packing.h"
#ifndef __SYNTHESIS__
#include <cassert>
#endif
#include "requant.h"
#include "types.h"

// IIs of the pipelined loops here (their PIPELINE pragmas and the cycle count, cycles.h).
#define CODESIGN_II_WREAD 1
#define CODESIGN_II_WPACK 1
#define CODESIGN_II_MAC 1
#define CODESIGN_II_COPY 1

namespace codesign {

CODESIGN_CSIM_BEGIN

// Upper bound on the weight buffer entries of one call with Cin, Cout <= MAXC, Cin x Cout <= MAXW
// and at most pw slices per weight: pw ceil(a/PI) ceil(b/PO) <= pw (ab/(PI PO) + a/PI + b/PO + 1).
constexpr int max_weight_tiles(int pi, int po, int maxc, int maxw, int pw) {
  return pw * (ceil_div(maxw, pi * po) + ceil_div(maxc, pi) + ceil_div(maxc, po) + 1);
}

// Slices of a w_bits-wide weight on MB-bit multipliers (w_bits 0 or beyond WB: WB).
// codesign/hw/layout.py weight_slices is the same rule.
constexpr int weight_slices(int w_bits, int wb, int mb) {
  return ceil_div(w_bits <= 0 || w_bits > wb ? wb : w_bits, mb);
}

// Compile-time helpers (bounded loops: the sources must not hold while loops or recursion).
constexpr int cgcd(int a, int b) {
  for (int k = 0; k < 64; ++k) {  // Euclid on ints takes fewer than 64 steps
    if (b == 0) break;
    const int t = a % b;
    a = b;
    b = t;
  }
  return a;
}

constexpr int clog2(int n) {
  for (int b = 0; b < 31; ++b)
    if ((1 << b) >= n) return b;
  return 31;
}

// Pipeline depth of the weight load: m_axi beat into the stream 1, merge into the reservoir 1,
// tile write 1.
constexpr int DEPTH_WPACK = 3;
// Pipeline depth of the copy: stream read, lane placement, stream write.
constexpr int DEPTH_COPY = 3;

// Pipeline depth of the MAC loop: xbuf / wbuf read 2, slice select 1, multiplier (LUT 1, DSP 3),
// adder tree of PI products (two levels per cycle), shift select + accumulate 1, stream write 1.
template <int PI, int MB>
struct mac_depth {
  static constexpr int value = 2 + 1 + (MB <= 4 ? 1 : 3) + ceil_div(clog2(PI), 2) + 1 + 1;
};

// One slice product: (MB+1)-bit signed weight slice x MB-bit unsigned activation slice. A 4 x 4
// product is a LUT multiplier; wider ones take a DSP.
// The operand and product types of a slice product. Synthesis sees the widths ((MB+1)-bit signed
// weight slice, MB-bit unsigned activation slice): the multiplier is sized by them. C-simulation
// multiplies the same values (masked to those ranges by the caller) as native ints: an ap_int
// product costs ~10 ns in g++ and the array makes PI x PO of them per cycle.
#ifdef __SYNTHESIS__
template <int MB> using slice_w_t = ap_int<MB + 1>;
#if CODESIGN_SIGNED_ACTS
// signed activations: a signed input's top slice is signed, so the activation operand is (MB+1)-bit
// signed as the weight's (its lower slices, 0..2^MB - 1, fit it too)
template <int MB> using slice_x_t = ap_int<MB + 1>;
template <int MB> using slice_prod_t = ap_int<2 * MB + 2>;
#else
template <int MB> using slice_x_t = ap_uint<MB>;
template <int MB> using slice_prod_t = ap_int<2 * MB + 1>;
#endif
#else
template <int MB> using slice_w_t = int;
template <int MB> using slice_x_t = int;
template <int MB> using slice_prod_t = int;
#endif

template <int MB, bool FABRIC = (MB <= 4)>
struct slice_mul;
template <int MB>
struct slice_mul<MB, true> {
  static int mul(int w, int x) {
    HLS_PRAGMA(INLINE)
    const slice_prod_t<MB> p = slice_w_t<MB>(w) * slice_x_t<MB>(x);
    HLS_PRAGMA(BIND_OP variable = p op = mul impl = fabric)
    return p;
  }
};
template <int MB>
struct slice_mul<MB, false> {
  static int mul(int w, int x) {
    HLS_PRAGMA(INLINE)
    const slice_prod_t<MB> p = slice_w_t<MB>(w) * slice_x_t<MB>(x);
    HLS_PRAGMA(BIND_OP variable = p op = mul impl = dsp)
    return p;
  }
};

// N lanes of B bits, lane l at bits [l*B, +B), held as native 64-bit parts: the MAC array's
// weight tile words (wbuf) and its buffered input vectors. In hardware this is one N*B-bit word
// (a lane index is a constant after unrolling: wiring); in C-simulation the parts avoid the
// generic path of wide ap_uint (range / shift of a 256-bit word: ~100 ns).
template <int N, int B>
struct lanes64_t {
  static_assert(B >= 1 && B <= 32, "lane width must be in 1..32");
  static constexpr int NP = ceil_div(N * B, 64);  // parts
  static constexpr int BITS = N * B;              // the hardware word
  static constexpr unsigned long long MASK = (1ULL << B) - 1;
  ap_uint<64> p[NP];

  void clear() {
    HLS_PRAGMA(INLINE)
    for (int k = 0; k < NP; ++k) {
      HLS_PRAGMA(UNROLL)
      p[k] = 0;
    }
  }
  // lane l (a constant after unrolling), zero-extended
  unsigned lane(int l) const {
    HLS_PRAGMA(INLINE)
    const int lo = l * B, k = lo / 64, off = lo % 64;
    unsigned long long v = p[k].to_uint64() >> off;
    if (off + B > 64) v |= p[k + 1].to_uint64() << (64 - off);  // straddles two parts
    return unsigned(v & MASK);
  }
  // ORs v (< 2^B) into lane l of a cleared word
  void set(int l, unsigned long long v) {
    HLS_PRAGMA(INLINE)
    const int lo = l * B, k = lo / 64, off = lo % 64;
    p[k] = p[k].to_uint64() | (v << off);
    if (off + B > 64) p[k + 1] = p[k + 1].to_uint64() | (v >> (64 - off));
  }
};

// The bus words of a call's weights (cout rows of wpr words, consecutive) as one burst.
template <int BUS, int MAXW>
void read_weight_words(const ap_uint<BUS>* wmem, int w_addr, int n, int axi_latency,
                       hls::stream<ap_uint<BUS> >& out) {
  HLS_PRAGMA(INLINE off)
  // Counted: the burst's latency. Its beats are not: the packer runs concurrently (DATAFLOW)
  // and takes at least one step per word, so its count covers them.
  CODESIGN_BURST(STAGE_LOAD, axi_latency);
wread:
  for (int k = 0; k < n; ++k) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_WREAD)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAXW)
    out.write(wmem[w_addr + k]);
  }
  CODESIGN_LOOP_OVERLAPPED(CODESIGN_II_WREAD);
}

// Rows of wpr words -> slice tile words of PI lanes (wbuf[o][t], see the file header). A row is
// one slice of one output channel's weights: cin values of MB bits, LW = BUS / MB per word. A
// word enters a reservoir register: a step reads a word when the reservoir holds less than a
// tile (and the row has words left) and writes a tile when it holds one (or the row's words are
// all in: the row's last, partial tile). Shifts are by multiples of G = gcd(tile bits, BUS),
// written as a mux of constant shifts. Rows come in wmem order: output channel-major, then
// slice, so row (o, sw) of output tile ct fills wbuf[o][(ct * pw + sw) * nci + 0..nci).
template <int BUS, int MB, int PI, int PO, int MAXC, int PWM, int MAXT>
void pack_weight_tiles(hls::stream<ap_uint<BUS> >& in, int cin, int cout, int pw,
                       lanes64_t<PI, MB> wbuf[PO][MAXT]) {
  HLS_PRAGMA(INLINE off)
  constexpr int LW = BUS / MB;         // slices per word
  constexpr int TB = PI * MB;          // bits of a tile word
  constexpr int G = cgcd(TB, BUS);     // reservoir fill is a multiple of G bits
  constexpr int TU = TB / G, UU = BUS / G;
  constexpr int RB = TB + BUS;         // reservoir bits: < TB before a read, < TB + BUS after
  constexpr int TNP = lanes64_t<PI, MB>::NP;  // parts of a tile word
  constexpr int MAX_STEPS = MAXC * PWM * (ceil_div(MAXC, LW) + ceil_div(MAXC, PI));
  (void)MAX_STEPS;  // read by the TRIPCOUNT pragma only
  const int wpr = ceil_div(cin, LW);
  const int nci = ceil_div(cin, PI);
  // Steps per row. A word of at least a tile: every step writes a tile (reading first when the
  // reservoir is short), nci steps. A smaller word: every step reads while the row has words,
  // the greedy writes floor(j * UU / TU) tiles in the first j steps and one more at the row's
  // last word, then one tile per step.
  const int row_steps = UU >= TU ? nci : wpr + nci - ((wpr - 1) * UU / TU + 1);
  const int n = cout * pw * row_steps;
  ap_uint<RB> res = 0;
  int nu = 0;          // reservoir fill in units of G bits
  int wleft = wpr;     // words of this row not yet read
  int tleft = nci;     // tiles of this row not yet written
  int o = 0, sw = 0, t = 0, tbase = 0;
  CODESIGN_LOOP_COUNTER(n_pack);
wpack:
  for (int k = 0; k < n; ++k) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_WPACK)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_STEPS)
    CODESIGN_TRIP(n_pack);
    if (wleft > 0 && nu < TU) {
      const ap_uint<RB> wv = ap_uint<RB>(in.read());
      for (int q = 0; q < TU; ++q) {
        HLS_PRAGMA(UNROLL)
        if (nu == q) res |= wv << (q * G);
      }
      nu += UU;
      --wleft;
    }
    if (nu >= TU || wleft == 0) {
      lanes64_t<PI, MB> tile;
      for (int q = 0; q < TNP; ++q) {
        HLS_PRAGMA(UNROLL)
        tile.p[q] = res.range(cmin(64 * q + 63, TB - 1), 64 * q);
      }
      for (int l = 0; l < PO; ++l) {
        HLS_PRAGMA(UNROLL)
        if (l == o) wbuf[l][t] = tile;
      }
      res >>= TB;
      nu = nu >= TU ? nu - TU : 0;
      ++t;
      if (--tleft == 0) {  // the row is complete (its words are all read): next row
        res = 0;
        nu = 0;
        wleft = wpr;
        tleft = nci;
        if (++sw == pw) {  // the output channel's slices are all in: next output lane
          sw = 0;
          if (++o == PO) {
            o = 0;
            tbase += nci * pw;
          }
          t = tbase;
        }
      }
    }
  }
  CODESIGN_LOOP_DONE(STAGE_LOAD, n_pack, CODESIGN_II_WPACK, DEPTH_WPACK);
#ifndef __SYNTHESIS__
  // the step count above is exact: every row complete, every word read
  assert(cout <= 0 || (wleft == wpr && tleft == nci && sw == 0 &&
                       tbase / (nci * pw) * PO + o == cout && in.empty()));
#endif
}

// Load a call's weights into wbuf (see the file header): one burst, packed at a tile per cycle.
// w_bits: the layer's weight width (descriptor), which sets the slices per weight.
template <int BUS, int WB, int MB, int PI, int PO, int MAXC, int MAXT>
void load_weights(const ap_uint<BUS>* wmem, int w_addr, int cin, int cout, int w_bits,
                  int axi_latency, lanes64_t<PI, MB> wbuf[PO][MAXT]) {
  HLS_PRAGMA(INLINE off)
  HLS_PRAGMA(DATAFLOW)
  constexpr int LW = BUS / MB;
  constexpr int PWM = ceil_div(WB, MB);
  const int pw = weight_slices(w_bits, WB, MB);
  hls::stream<ap_uint<BUS> > words("wload_words");
  CODESIGN_STREAM(words, 4);
  read_weight_words<BUS, MAXC * PWM * ceil_div(MAXC, LW)>(wmem, w_addr, cout * pw * ceil_div(cin, LW),
                                                          axi_latency, words);
  pack_weight_tiles<BUS, MB, PI, PO, MAXC, PWM, MAXT>(words, cin, cout, pw, wbuf);
}

// The MAC process of a CONV call: npix pixels of cin channels (ceil(cin/PI) vectors of PI values
// each, zero beyond cin) in; npix x ceil(cout/PO) accumulator vectors out. xbits: the width of
// the input values (8: the image, else A); w_bits: the layer's weight width (0: WB).
#if CODESIGN_SIGNED_ACTS
// x_signed: the input values are two's complement in xbits (sign-extended, their top slice signed).
template <int PI, int PO, int WB, int MB, int ACC_BITS, int IB, int MAXC, int MAXT, int MAXPIX>
void conv1x1_stage(hls::stream<vec_t<PI, IB> >& in, hls::stream<acc_vec_t<PO, ACC_BITS> >& out,
                   int npix, int cin, int cout, int xbits, int w_bits,
                   const lanes64_t<PI, MB> wbuf[PO][MAXT], bool x_signed = false) {
#else
template <int PI, int PO, int WB, int MB, int ACC_BITS, int IB, int MAXC, int MAXT, int MAXPIX>
void conv1x1_stage(hls::stream<vec_t<PI, IB> >& in, hls::stream<acc_vec_t<PO, ACC_BITS> >& out,
                   int npix, int cin, int cout, int xbits, int w_bits,
                   const lanes64_t<PI, MB> wbuf[PO][MAXT]) {
#endif
  HLS_PRAGMA(INLINE off)
  constexpr int MAX_CI_T = ceil_div(MAXC, PI);
  constexpr int MAX_CO_T = ceil_div(MAXC, PO);
  (void)MAX_CO_T;  // read by the TRIPCOUNT pragma only
  constexpr int DEPTH = mac_depth<PI, MB>::value;
  constexpr unsigned SMASK = (1u << MB) - 1;
  typedef ap_int<ACC_BITS> acc_t;
  const int nci = ceil_div(cin, PI);
  const int nco = ceil_div(cout, PO);
  const int xb = xbits <= 0 || xbits > IB ? IB : xbits;
  const int px = ceil_div(xb, MB), pw = weight_slices(w_bits, WB, MB);
  const long long n = (long long)npix * nco * px * pw * nci;
  lanes64_t<PI, IB> xbuf[MAX_CI_T];  // the pixel's input vectors, packed
  acc_t acc[PO];
  HLS_PRAGMA(ARRAY_PARTITION variable = acc complete)
  int it = 0, t = 0, tbase = 0, sx = 0, sw = 0, ct = 0;
  CODESIGN_LOOP_COUNTER(n_mac);
mac:
  for (long long k = 0; k < n; ++k) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_MAC)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAXPIX * MAX_CO_T * MAX_CI_T)
    CODESIGN_TRIP(n_mac);
    const bool first_pass = sx == 0 && sw == 0;
    lanes64_t<PI, IB> xw;
    if (ct == 0 && first_pass) {  // first use of this input vector: from the stream
      const vec_t<PI, IB> v = in.read();
      xw.clear();
      for (int i = 0; i < PI; ++i) {
        HLS_PRAGMA(UNROLL)
        xw.set(i, v.v[i].to_uint64());
      }
      xbuf[it] = xw;
    } else {
      xw = xbuf[it];
    }
    // this pass's activation slices, once for all output lanes
#if CODESIGN_SIGNED_ACTS
    // a signed value, sign-extended from xb bits, is cut like a weight: the top slice signed
    const bool x_top = x_signed && sx == px - 1;
    int xs[PI];
    HLS_PRAGMA(ARRAY_PARTITION variable = xs complete)
    for (int i = 0; i < PI; ++i) {
      HLS_PRAGMA(UNROLL)
      const unsigned u = xw.lane(i);
      const int xv = x_signed && ((u >> (xb - 1)) & 1) ? int(u) - (1 << xb) : int(u);
      const int sl = (xv >> (MB * sx)) & int(SMASK);
      xs[i] = x_top && (sl >> (MB - 1)) ? sl - (1 << MB) : sl;
    }
#else
    unsigned xs[PI];
    HLS_PRAGMA(ARRAY_PARTITION variable = xs complete)
    for (int i = 0; i < PI; ++i) {
      HLS_PRAGMA(UNROLL)
      xs[i] = (xw.lane(i) >> (MB * sx)) & SMASK;
    }
#endif
    const bool w_top = sw == pw - 1;  // the weight's top slice is signed
    const int shs = sx + sw;          // the partial sum is shifted by MB * shs
    acc_vec_t<PO, ACC_BITS> y;
  mac_o:
    for (int o = 0; o < PO; ++o) {
      HLS_PRAGMA(UNROLL)
      const lanes64_t<PI, MB> ww = wbuf[o][t];  // slice sw of the tile
      int prod[PI];
      HLS_PRAGMA(ARRAY_PARTITION variable = prod complete)
    mac_i:
      for (int i = 0; i < PI; ++i) {
        HLS_PRAGMA(UNROLL)
        const unsigned ws = ww.lane(i);
        // the slice, signed for the top one
        const int wop = w_top && (ws >> (MB - 1)) ? int(ws) - (1 << MB) : int(ws);
        prod[i] = slice_mul<MB>::mul(wop, int(xs[i]));
      }
      int s = 0;  // the adder tree: 2 MB + 1 + log2(PI) bits
    mac_sum:
      for (int i = 0; i < PI; ++i) {
        HLS_PRAGMA(UNROLL)
        s += prod[i];
      }
      const long long prev = first_pass && it == 0 ? 0LL : (long long)acc[o].to_int64();
      // wraps to ACC_BITS (two's complement), as the sum of all passes needs
      const acc_t a = acc_t(prev + (long long)s * (1LL << (MB * shs)));
      acc[o] = a;
      y.v[o] = a;
    }
    if (sx == px - 1 && w_top && it == nci - 1) out.write(y);
    // next (pixel, ct, sx, sw, it): t runs through the output tile's pw x nci entries once per
    // activation slice
    ++t;
    if (++it == nci) {
      it = 0;
      if (++sw == pw) {
        sw = 0;
        if (++sx == px) {
          sx = 0;
          if (++ct == nco) {
            ct = 0;
            tbase = 0;
          } else {
            tbase += nci * pw;
          }
        }
        t = tbase;
      }
    }
  }
  CODESIGN_LOOP_DONE(STAGE_MAC, n_mac, CODESIGN_II_MAC, DEPTH);
}

// The MAC process of a call without CONV: a copy (cin == cout = ch) of PI-vectors to PO-vectors,
// npix pixels, as accumulator vectors for the requant process to pass through. One step per
// segment of the channel range cut at every multiple of PI and of PO (max(nci, nco) steps when
// one of PI, PO divides the other): it reads an input vector when the segment starts one and
// writes an output vector when the segment ends one. Lanes move by d = ct*PO - it*PI, a multiple
// of G = gcd(PI, PO): a mux of constant shifts of the packed vectors.
template <int PI, int PO, int ACC_BITS, int IB, int MAXC, int MAXPIX>
void copy_stage(hls::stream<vec_t<PI, IB> >& in, hls::stream<acc_vec_t<PO, ACC_BITS> >& out,
                int npix, int ch) {
  HLS_PRAGMA(INLINE off)
  constexpr int G = cgcd(PI, PO);
  constexpr int NU_IN = PI / G, NU_OUT = PO / G;  // d / G in (-NU_OUT, NU_IN)
  constexpr int MAX_SEG = ceil_div(MAXC, PI) + ceil_div(MAXC, PO);
  (void)MAX_SEG;  // read by the TRIPCOUNT pragma only
  constexpr int XB = (PI + PO) * IB;
  // segments per pixel: the distinct multiples of PI or PO in (0, ch), plus one
  const int nci = ceil_div(ch, PI), nco = ceil_div(ch, PO);
  const int l = PI / G * PO;  // lcm(PI, PO)
  const int nseg = nci + nco - ceil_div(ch, l);
  const long long n = (long long)npix * nseg;
  ap_uint<PI * IB> xw = 0;
  ap_uint<PO * IB> ow = 0;
  int in_lo = 0, out_lo = 0;  // first channel of the current input / output vector
  CODESIGN_LOOP_COUNTER(n_copy);
copy:
  for (long long k = 0; k < n; ++k) {
    HLS_PRAGMA(PIPELINE II = CODESIGN_II_COPY)
    HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAXPIX * MAX_SEG)
    CODESIGN_TRIP(n_copy);
    const int lo = in_lo > out_lo ? in_lo : out_lo;  // the segment's first channel
    if (lo == in_lo) {  // a new input vector
      const vec_t<PI, IB> v = in.read();
      for (int i = 0; i < PI; ++i) {
        HLS_PRAGMA(UNROLL)
        xw.range(IB * i + IB - 1, IB * i) = v.v[i];
      }
    }
    // the input vector's lanes at their output-lane positions: lane i to i - d; every lane of
    // the input inside this output vector belongs to it (lanes beyond ch are zero)
    const int du = (out_lo - in_lo) / G;
    ap_uint<XB> placed = 0;
    for (int u = -(NU_OUT - 1); u < NU_IN; ++u) {
      HLS_PRAGMA(UNROLL)
      if (du == u) {
        const ap_uint<XB> wide = ap_uint<XB>(xw) << (IB * PO);  // lane i at PO + i
        placed = wide >> (IB * (PO + u * G));                   // lane i at i - d
      }
    }
    const ap_uint<PO * IB> mask_new = placed.range(PO * IB - 1, 0);
    const ap_uint<PO * IB> cur = lo == out_lo ? ap_uint<PO * IB>(0) : ow;
    const ap_uint<PO * IB> nw = cur | mask_new;
    const int in_hi = in_lo + PI, out_hi = out_lo + PO;
    const int hi = in_hi < out_hi ? in_hi : out_hi;  // the segment's end
    const bool last = hi >= ch;
    if (hi == out_hi || last) {
      acc_vec_t<PO, ACC_BITS> y;
      for (int o = 0; o < PO; ++o) {
        HLS_PRAGMA(UNROLL)
        y.v[o] = ap_int<ACC_BITS>(ap_uint<IB>(nw.range(IB * o + IB - 1, IB * o)));
      }
      out.write(y);
    }
    ow = nw;
    if (last) {
      in_lo = 0;
      out_lo = 0;
    } else {
      if (hi == in_hi) in_lo = in_hi;
      if (hi == out_hi) out_lo = out_hi;
    }
  }
  CODESIGN_LOOP_DONE(STAGE_MAC, n_copy, CODESIGN_II_COPY, DEPTH_COPY);
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_CONV1X1_H
