// The engine: one layer processor that runs a table of descriptors (docs/engine.md).
//
// Per descriptor ("call"):
//
//   load weights + requant constants (CONV; spatial weights + constants for DW / DEFORM)
//   DATAFLOW: read words (DEFORM: + the dilation map) -> unpack the input view -> PREPOOL
//             | k x k window (KXK, window.h) -> MAC array | copy -> requant (a copy passes through) -> POOL -> SHIFT
//             -> dw3x3 (stride 1|2) | deform3x3 + requant -> pack the output view
//             -> write words (UPSAMPLE: each pixel to 2x2), merged with the old words the
//             prefetch reads when the output view leaves lanes of a word to other tensors
//
// (read / unpack / pack / prefetch / write: io.h)
//
// with hls::stream between the stages. Stages that a call does not use pass their stream on.
//
// Config (a struct generated from config.h.j2) provides, as static constexpr int:
//   PI, PO, A_BITS, W_BITS, ACC_BITS, BUS_BITS, MAX_C, MAX_H, MAX_W, MAX_LINE, MAX_WEIGHTS,
//   MAX_WTILES, MAX_DESC, MAC_BITS, AXI_LATENCY and (optional, default 7) MAX_DILATION,
//   (optional, default 0: no window unit) MAX_KERNEL and WINDOW_LINE.
// descriptor.h (generated from codesign/hw/descriptor.py) provides DESC_WORDS, DESC_<FIELD>
// word offsets and FLAG_<NAME> bit masks.
#ifndef CODESIGN_ENGINE_ENGINE_H
#define CODESIGN_ENGINE_ENGINE_H

#include "conv1x1.h"
#include "cycles.h"
#include "inventory.h"
#include "descriptor.h"
#include "io.h"
#include "maxpool.h"
#include "packing.h"
#include "requant.h"
#include "shift.h"
#include "spatial.h"
#include "types.h"
#include "window.h"

#ifndef __SYNTHESIS__
#include <cstdint>
#include <cstdio>
#endif

// II of the descriptor fetch loop (its PIPELINE pragma and the cycle count, cycles.h).
#define CODESIGN_II_FETCH 1

namespace codesign {

CODESIGN_CSIM_BEGIN

// Pipeline depth of the descriptor fetch: one m_axi read each word, the burst latency apart.
constexpr int DEPTH_FETCH = 2;

// Bits of an input value on the reader -> MAC stream: the image is 8-bit, activations A-bit.
constexpr int IN_BITS = 8;

// Config::MAX_DILATION when the config defines it, else CoDeNet's R = 7.
template <class C, class = void>
struct max_dilation_of {
  static constexpr int value = 7;
};
template <class C>
struct max_dilation_of<C, decltype(void(C::MAX_DILATION))> {
  static constexpr int value = C::MAX_DILATION;
};

// Config::SPATIAL when the config defines it, else true: whether the engine has the spatial unit
// (depthwise / deformable 3x3). Without it the stage is a pass-through and its memories and
// multipliers are not built (the scheduler refuses DW / DEFORM calls for such an engine).
template <class C, class = void>
struct spatial_of {
  static constexpr bool value = true;
};
template <class C>
struct spatial_of<C, decltype(void(C::SPATIAL))> {
  static constexpr bool value = C::SPATIAL;
};

// Config::HALF_EVEN when the config defines it, else false: whether the requants have the
// round-half-to-even tie logic (HALF_EVEN / S_HALF_EVEN calls; without it check() refuses them
// and the compiler prunes the logic, requant.h).
template <class C, class = void>
struct half_even_of {
  static constexpr bool value = false;
};
template <class C>
struct half_even_of<C, decltype(void(C::HALF_EVEN))> {
  static constexpr bool value = C::HALF_EVEN;
};

// Config::MAX_KERNEL / WINDOW_LINE when the config defines them, else 0: the window unit of k x k
// convs (KXK calls) takes kernels up to MAX_KERNEL and input rows of WINDOW_LINE values
// (W x ceil(C/PI) x PI); without it (0) none of it is built and KXK calls are refused.
template <class C, class = void>
struct window_of {
  static constexpr int kernel = 0, line = 0;
};
template <class C>
struct window_of<C, decltype(void(C::MAX_KERNEL))> {
  static constexpr int kernel = C::MAX_KERNEL, line = C::WINDOW_LINE;
};

// The window unit (window.h) of an engine built with it; HAS = false: nothing (check() refuses
// KXK calls), so the process before the MAC array is the PREPOOL stage alone.
template <bool HAS, class C>
struct window_unit_t;

// The spatial unit, or (HAS = false) its pass-through: the choice is made by the template, so an
// engine without the unit instantiates none of it.
template <bool HAS, class C, int NR>
struct spatial_unit_t;

// A descriptor's channel stride (1, 2, 4, 8; 0 means 1) as its log2, or -1.
inline int stride_log2(unsigned stride) {
  HLS_PRAGMA(INLINE)
  return stride <= 1 ? 0 : stride == 2 ? 1 : stride == 4 ? 2 : stride == 8 ? 3 : -1;
}

#ifndef __SYNTHESIS__
// C-simulation only: descriptors the engine rejected (and skipped) since the last reset.
inline int& csim_rejected() {
  static int n = 0;
  return n;
}
#endif

template <class C>
struct engine_t {
  static constexpr int PI = C::PI, PO = C::PO, A = C::A_BITS, WB = C::W_BITS, MB = C::MAC_BITS;
  static constexpr int BUS = C::BUS_BITS, MAXC = C::MAX_C;
  static constexpr int MAX_CI_T = ceil_div(MAXC, PI), MAX_CO_T = ceil_div(MAXC, PO);
  static constexpr int MAX_PIX = C::MAX_H * C::MAX_W;
  static constexpr int MAXT = C::MAX_WTILES;
  static constexpr int MAXR = max_dilation_of<C>::value;
  static constexpr int NR = 2 * MAXR + 1;  // rows of the spatial unit's line buffer
  static constexpr bool SPATIAL = spatial_of<C>::value;
  static constexpr int SP_T = SPATIAL ? MAX_CO_T : 1;  // the spatial constants' depth (1: no unit)
  typedef spatial_unit_t<SPATIAL, C, NR> SP;
  static constexpr bool HALF_EVEN = half_even_of<C>::value;  // the requants' tie logic is built
  static constexpr int KMAX = window_of<C>::kernel;
  typedef window_unit_t<(KMAX > 0), C> WIN;
  // stream depths between the stages: two pixels in flight
  static constexpr int IN_DEPTH = 2 * MAX_CI_T, OUT_DEPTH = 2 * MAX_CO_T;

  static_assert(A >= 1 && A <= 8, "act_bits must be in 1..8");
  static_assert(WB >= 2 && WB <= 16, "weight_bits must be in 2..16");
  static_assert(BUS % 64 == 0, "bus_bits must be a multiple of 64");
  static_assert(PI >= 1 && PO >= 1, "MAC array must be non-empty");
  static_assert(MB >= 1 && MB <= 16, "mac_bits must be in 1..16");
  static_assert(MAXR >= 1 && MAXR <= 127, "max_dilation must be in 1..127");

  typedef ap_uint<BUS> word_t;
  typedef io_t<C> IO;
  typedef vec_t<PI, IN_BITS> in_vec;
  typedef vec_t<PO, A> out_vec;
  typedef acc_vec_t<PO, C::ACC_BITS> acc_vec;
  typedef lanes64_t<PI, MB> wword_t;  // one MB-bit slice of PI weights of an output lane (conv1x1.h)

  static call_t decode(const ap_uint<32> dw[DESC_WORDS]) {
    HLS_PRAGMA(INLINE)
    call_t c;
    const unsigned flags = dw[DESC_FLAGS].to_uint();
    c.prepool = flags & FLAG_PREPOOL;
    c.conv = flags & FLAG_CONV;
    c.pool = flags & FLAG_POOL;
    c.shift = flags & FLAG_SHIFT;
    c.in8 = flags & FLAG_IN8;
    c.dw = flags & FLAG_DW;
    c.deform = flags & FLAG_DEFORM;
    c.stride2 = flags & FLAG_STRIDE2;
    c.upsample = flags & FLAG_UPSAMPLE;
    c.kxk = flags & FLAG_KXK;
    c.half_even = flags & FLAG_HALF_EVEN;
    c.s_half_even = flags & FLAG_S_HALF_EVEN;
#if CODESIGN_SIGNED_ACTS
    c.in_signed = flags & FLAG_IN_SIGNED;
    c.sgn = flags & FLAG_SIGNED;
    c.s_sgn = flags & FLAG_S_SIGNED;
#endif
    const unsigned win = dw[DESC_WINDOW].to_uint();
    c.kernel = c.kxk ? int(win & 0xFF) : 1;
    c.kstride = c.kxk ? int((win >> 8) & 0xFF) : 1;
    c.pad = c.kxk ? int((win >> 16) & 0xFF) : 0;
    c.in_addr = dw[DESC_IN_ADDR].to_uint();
    c.in_h = dw[DESC_IN_H].to_uint();
    c.in_w = dw[DESC_IN_W].to_uint();
    c.in_cbuf = dw[DESC_IN_CBUF].to_uint();
    c.in_rot = dw[DESC_IN_ROT].to_uint();
    c.cin = dw[DESC_CIN].to_uint();
    c.out_addr = dw[DESC_OUT_ADDR].to_uint();
    c.out_cbuf = dw[DESC_OUT_CBUF].to_uint();
    c.out_rot = dw[DESC_OUT_ROT].to_uint();
    c.cout = dw[DESC_COUT].to_uint();
    c.w_addr = dw[DESC_W_ADDR].to_uint();
    c.q_addr = dw[DESC_Q_ADDR].to_uint();
    c.shift_s = dw[DESC_SHIFT].to_uint();
    c.act_max = dw[DESC_ACT_MAX].to_uint();
    c.w_bits = dw[DESC_W_BITS].to_uint();
    c.in_sh = stride_log2(dw[DESC_IN_STRIDE].to_uint());
    c.out_sh = stride_log2(dw[DESC_OUT_STRIDE].to_uint());
    c.d_addr = dw[DESC_D_ADDR].to_uint();
    c.d_cbuf = dw[DESC_D_CBUF].to_uint();
    c.d_rot = dw[DESC_D_ROT].to_uint();
    c.d_max = dw[DESC_D_MAX].to_uint();
    c.sw_addr = dw[DESC_SW_ADDR].to_uint();
    c.sq_addr = dw[DESC_SQ_ADDR].to_uint();
    c.s_shift = dw[DESC_S_SHIFT].to_uint();
    c.s_act_max = dw[DESC_S_ACT_MAX].to_uint();
    c.h1 = c.prepool ? c.in_h / 2 : c.in_h;
    c.w1 = c.prepool ? c.in_w / 2 : c.in_w;
    c.cin_mac = c.cin;
    if (c.kxk && c.kstride >= 1 && c.kernel >= 1) {  // the window's output grid (check() refuses the rest)
      c.h1 = (c.in_h + 2 * c.pad - c.kernel) / c.kstride + 1;
      c.w1 = (c.in_w + 2 * c.pad - c.kernel) / c.kstride + 1;
      c.cin_mac = c.kernel * c.kernel * ceil_div(c.cin, PI) * PI;
    }
    c.h2 = c.pool ? c.h1 / 2 : c.h1;
    c.w2 = c.pool ? c.w1 / 2 : c.w1;
    const bool halve = c.dw && c.stride2;
    c.h3 = halve && c.h2 > 0 ? (c.h2 - 1) / 2 + 1 : c.h2;
    c.w3 = halve && c.w2 > 0 ? (c.w2 - 1) / 2 + 1 : c.w2;
    c.h4 = c.upsample ? 2 * c.h3 : c.h3;
    c.w4 = c.upsample ? 2 * c.w3 : c.w3;
    return c;
  }

  // 0 when the call fits the hardware, else a code (the engine skips the call). Every value is
  // read from a uint32 descriptor word, so "negative" means >= 2^31.
  static int check(const call_t& c) {
    HLS_PRAGMA(INLINE)
    if (c.in_h < 1 || c.in_h > C::MAX_H || c.in_w < 1 || c.in_w > C::MAX_W) return 1;
    if (c.in_cbuf < 1 || c.in_rot < 0 || c.in_rot >= c.in_cbuf) return 2;
    if (c.cin < 1 || c.cin > c.in_cbuf || c.cin > MAXC) return 3;
    if (c.out_cbuf < 1 || c.out_rot < 0 || c.out_rot >= c.out_cbuf) return 4;
    if (c.cout < 1 || c.cout > c.out_cbuf || c.cout > MAXC) return 5;
    if (c.in_addr < 0 || c.out_addr < 0 || c.w_addr < 0 || c.q_addr < 0) return 6;
    if ((c.half_even || c.s_half_even) && !HALF_EVEN) return 32;  // built without the tie logic
#if CODESIGN_SIGNED_ACTS
    // a signed output's -(act_max + 1) must fit A bits
    if ((c.sgn && c.act_max > (1 << (A - 1)) - 1) || (c.s_sgn && c.s_act_max > (1 << (A - 1)) - 1)) return 33;
#endif
    if (c.kxk) {  // the window unit: a k x k conv, any stride, padding < k, no PREPOOL / DEFORM
      if (KMAX == 0) return 28;  // built without the window unit
      if (!c.conv || c.prepool || c.deform || c.kernel < 1 || c.kernel > KMAX || c.kstride < 1 ||
          c.pad >= c.kernel || c.in_h + 2 * c.pad < c.kernel || c.in_w + 2 * c.pad < c.kernel)
        return 29;
      if (c.h1 > C::MAX_H || c.w1 > C::MAX_W) return 1;  // the grid after the window (padding grows it)
      if (c.in_w * ceil_div(c.cin, PI) * PI > window_of<C>::line) return 30;  // the ring's rows
      if (c.kernel * c.kernel * ceil_div(c.cin, PI) > MAX_CI_T) return 31;  // the MAC's input buffer
    }
    if (c.conv) {
      if (ceil_div(c.cin_mac, PI) * ceil_div(c.cout, PO) * weight_slices(c.w_bits, WB, MB) > MAXT) return 7;
      if (c.shift_s < 1 || c.shift_s > 46) return 8;
      if (c.act_max < 0 || c.act_max > (1 << A) - 1) return 9;
    } else {
      if (c.cin != c.cout) return 10;
      if (c.in8 && A < 8) return 11;  // a copy does not requantize: 8-bit values need A = 8
    }
    if (c.pool && (c.w1 / 2) * c.cout > C::MAX_LINE) return 12;
    if (c.prepool && (c.in_w / 2) * c.cin > C::MAX_LINE) return 25;  // the prepool line buffer
    if (c.upsample && c.w3 * IO::wpp_out(c) > IO::ROW_WORDS) return 26;  // the writer's row
    if (c.shift && c.w2 * c.cout > C::MAX_LINE) return 13;
    // channel strides and the channels a strided view spans
    if (c.in_sh < 0 || c.out_sh < 0) return 14;
    if (((c.cin - 1) << c.in_sh) + 1 > c.in_cbuf) return 15;
    if (((c.cout - 1) << c.out_sh) + 1 > c.out_cbuf) return 16;
    // the spatial unit: one of shift, dw, deform
    if (int(c.shift) + int(c.dw) + int(c.deform) > 1) return 17;
    if (c.stride2 && !c.dw) return 18;
    if (c.dw || c.deform) {
      if (!SPATIAL) return 27;  // built without the spatial unit
      if (c.w2 * c.cout > C::MAX_LINE) return 19;
      if (c.s_shift < 1 || c.s_shift > 46) return 20;
      if (c.s_act_max < 0 || c.s_act_max > (1 << A) - 1) return 21;
      if (c.sw_addr < 0 || c.sq_addr < 0) return 6;
    }
    if (c.deform) {
      if (c.pool) return 22;  // the dilation map is read on the grid before POOL
      if (c.d_max < 0 || c.d_max > MAXR) return 23;
      if (c.d_cbuf < 1 || c.d_rot < 0 || c.d_rot >= c.d_cbuf || c.d_addr < 0) return 24;
    }
    return 0;
  }

  // Stage 2 without CONV: the pass-through copy (cin == cout), PI-wide to PO-wide vectors, as
  // accumulator vectors that the requant process passes through.
  static void copy(hls::stream<in_vec>& in, hls::stream<acc_vec>& out, int npix, int ch) {
    HLS_PRAGMA(INLINE)
    copy_stage<PI, PO, C::ACC_BITS, IN_BITS, MAXC, MAX_PIX>(in, out, npix, ch);
  }

  // The process before the MAC array: the k x k window (KXK) or PREPOOL (or its pass-through).
  static void before_mac(hls::stream<in_vec>& in, hls::stream<in_vec>& out, const call_t c) {
    HLS_PRAGMA(INLINE off)
    if (c.kxk)
      WIN::run(in, out, c);
    else
#if CODESIGN_SIGNED_ACTS
      maxpool2x2_stage<STAGE_PREPOOL, PI, IN_BITS, MAXC, C::MAX_H, C::MAX_W, C::MAX_LINE>(
          in, out, c.prepool, c.in_h, c.in_w, c.cin, c.in_signed);
#else
      maxpool2x2_stage<STAGE_PREPOOL, PI, IN_BITS, MAXC, C::MAX_H, C::MAX_W, C::MAX_LINE>(
          in, out, c.prepool, c.in_h, c.in_w, c.cin);
#endif
  }

  // Stage 2: the MAC array (CONV) or the copy; one dataflow process either way. Its accumulators
  // go to the requant process (stage 3).
  static void mac(hls::stream<in_vec>& in, hls::stream<acc_vec>& out, const call_t c,
                  const wword_t wbuf[PO][MAXT]) {
    HLS_PRAGMA(INLINE off)
    const int npix = c.h1 * c.w1;
    if (c.conv)
#if CODESIGN_SIGNED_ACTS
      conv1x1_stage<PI, PO, WB, MB, C::ACC_BITS, IN_BITS, MAXC, MAXT, MAX_PIX>(
          in, out, npix, c.cin_mac, c.cout, c.in8 ? IN_BITS : A, c.w_bits, wbuf, c.in_signed);
#else
      conv1x1_stage<PI, PO, WB, MB, C::ACC_BITS, IN_BITS, MAXC, MAXT, MAX_PIX>(
          in, out, npix, c.cin_mac, c.cout, c.in8 ? IN_BITS : A, c.w_bits, wbuf);
#endif
    else
      copy(in, out, npix, c.cin);
  }

#ifndef __SYNTHESIS__
  // C-simulation only: the first descriptor (index) whose memory ranges fall outside wmem /
  // fmem of the given sizes in words, or -1. Run before the engine so that a bad table fails
  // cleanly instead of corrupting the host's memory. Rejected calls (check() != 0) are
  // skipped by the engine and not checked here.
  static long out_of_range(const uint32_t* desc, uint32_t n_desc, uint64_t wmem_words,
                           uint64_t fmem_words) {
    for (uint32_t d = 0; d < n_desc; ++d) {
      ap_uint<32> dw[DESC_WORDS];
      for (int i = 0; i < DESC_WORDS; ++i) dw[i] = desc[uint64_t(d) * DESC_WORDS + i];
      const call_t c = decode(dw);
      if (check(c)) continue;
      const uint64_t in_wpp = ceil_div(c.in_cbuf, c.in8 ? BUS / 8 : BUS / A);
      const uint64_t out_wpp = ceil_div(c.out_cbuf, BUS / A);
      bool bad = uint64_t(c.in_addr) + uint64_t(c.in_h) * c.in_w * in_wpp > fmem_words ||
                 uint64_t(c.out_addr) + uint64_t(c.h4) * c.w4 * out_wpp > fmem_words;
      if (c.deform)
        bad = bad || uint64_t(c.d_addr) + uint64_t(c.h1) * c.w1 * ceil_div(c.d_cbuf, BUS / A) > fmem_words;
      if (c.dw || c.deform)
        bad = bad || uint64_t(c.sw_addr) + 9 * uint64_t(ceil_div(c.cout, BUS / WB)) > wmem_words ||
              uint64_t(c.sq_addr) + 2 * uint64_t(c.cout) > wmem_words;
      if (c.conv)
        bad = bad ||
              uint64_t(c.w_addr) + uint64_t(c.cout) * weight_slices(c.w_bits, WB, MB) * ceil_div(c.cin_mac, BUS / MB) >
                  wmem_words ||
              uint64_t(c.q_addr) + 2 * uint64_t(c.cout) > wmem_words;
      if (bad) return long(d);
    }
    return -1;
  }
#endif

  // One call's pipeline.
  static void run_call(const call_t c, const word_t* fmem_rd, const word_t* fmem_old, word_t* fmem_wr,
                       const wword_t wbuf[PO][MAXT], const rq_mult_t mult[PO][MAX_CO_T],
                       const rq_wide_t bias[PO][MAX_CO_T], const ap_int<WB> wsp[9][PO][SP_T],
                       const rq_mult_t smult[PO][SP_T], const rq_wide_t sbias[PO][SP_T]) {
    HLS_PRAGMA(INLINE off)
    HLS_PRAGMA(DATAFLOW)
    hls::stream<word_t> s_rd("s_rd");
    hls::stream<in_vec> s_un("s_un"), s_in("s_in");
    hls::stream<acc_vec> s_acc("s_acc");
    hls::stream<out_vec> s_mac("s_mac"), s_pool("s_pool"), s_shift("s_shift"), s_sp("s_sp");
    hls::stream<typename IO::mword_t> s_wr("s_wr");
    hls::stream<word_t> s_old("s_old");
    hls::stream<ap_uint<8> > s_dil("s_dil");
    CODESIGN_STREAM(s_rd, IO::WORD_FIFO);
    CODESIGN_STREAM(s_un, IN_DEPTH);
    CODESIGN_STREAM(s_in, IN_DEPTH);
    CODESIGN_STREAM(s_acc, OUT_DEPTH);
    CODESIGN_STREAM(s_mac, OUT_DEPTH);
    CODESIGN_STREAM(s_pool, OUT_DEPTH);
    CODESIGN_STREAM(s_shift, OUT_DEPTH);
    CODESIGN_STREAM(s_sp, OUT_DEPTH);
    CODESIGN_STREAM(s_wr, IO::WORD_FIFO);
    CODESIGN_STREAM(s_old, IO::WORD_FIFO);
    CODESIGN_STREAM(s_dil, C::MAX_W);
    IO::read_words(fmem_rd, c, s_rd, s_dil);
    IO::unpack_view(s_rd, s_un, c);
    before_mac(s_un, s_in, c);
    mac(s_in, s_acc, c, wbuf);
#if CODESIGN_SIGNED_ACTS
    // the values after the MAC array: the conv's requant output, or (a copy) the input's
    const bool mac_sgn = c.conv ? c.sgn : c.in_signed;
    requant_stage<PO, C::ACC_BITS, A, MAX_CO_T, MAX_PIX, HALF_EVEN>(s_acc, s_mac, c.h1, c.w1, c.cout, c.conv,
                                                                    mult, bias, c.shift_s, c.act_max,
                                                                    c.half_even, c.sgn);
    maxpool2x2_stage<STAGE_POOL, PO, A, MAXC, C::MAX_H, C::MAX_W, C::MAX_LINE>(s_mac, s_pool, c.pool,
                                                                                c.h1, c.w1, c.cout, mac_sgn);
#else
    requant_stage<PO, C::ACC_BITS, A, MAX_CO_T, MAX_PIX, HALF_EVEN>(s_acc, s_mac, c.h1, c.w1, c.cout, c.conv,
                                                                    mult, bias, c.shift_s, c.act_max,
                                                                    c.half_even);
    maxpool2x2_stage<STAGE_POOL, PO, A, MAXC, C::MAX_H, C::MAX_W, C::MAX_LINE>(s_mac, s_pool, c.pool,
                                                                                c.h1, c.w1, c.cout);
#endif
    shift_dirac5_stage<PO, A, MAXC, C::MAX_H, C::MAX_W, C::MAX_LINE>(s_pool, s_shift, c.shift,
                                                                     c.h2, c.w2, c.cout);
    SP::run(s_shift, s_sp, s_dil, c, wsp, smult, sbias);
    IO::pack_view(s_sp, s_wr, c);
    IO::prefetch_old(fmem_old, c, s_old);
    IO::write_words(s_wr, s_old, fmem_wr, c);
  }

  static void run(const ap_uint<32>* desc, ap_uint<32> n_desc, const word_t* wmem,
                  const word_t* fmem_rd, const word_t* fmem_old, word_t* fmem_wr) {
    HLS_PRAGMA(INLINE)
    // MAC array weights: one memory of PI-lane words per output lane; requant constants per lane
    // of an output tile (conv1x1.h, requant.h). Loaded before the call's dataflow region.
    static wword_t wbuf[PO][MAXT];
    HLS_PRAGMA(ARRAY_PARTITION variable = wbuf complete dim = 1)
    CODESIGN_MEMORY(wbuf);
    static rq_mult_t mult[PO][MAX_CO_T];
    static rq_wide_t bias[PO][MAX_CO_T];
    HLS_PRAGMA(ARRAY_PARTITION variable = mult complete dim = 1)
    HLS_PRAGMA(ARRAY_PARTITION variable = bias complete dim = 1)
    CODESIGN_MEMORY(mult);
    CODESIGN_MEMORY(bias);
    // the spatial unit's weights and constants: one memory per (tap, lane) / lane, read at k
    static ap_int<WB> wsp[9][PO][SP_T];
    static rq_mult_t smult[PO][SP_T];
    static rq_wide_t sbias[PO][SP_T];
    HLS_PRAGMA(ARRAY_PARTITION variable = wsp complete dim = 1)
    HLS_PRAGMA(ARRAY_PARTITION variable = wsp complete dim = 2)
    HLS_PRAGMA(ARRAY_PARTITION variable = smult complete dim = 1)
    HLS_PRAGMA(ARRAY_PARTITION variable = sbias complete dim = 1)
    CODESIGN_MEMORY(wsp);
    CODESIGN_MEMORY(smult);
    CODESIGN_MEMORY(sbias);
    const int n = n_desc.to_uint() > unsigned(C::MAX_DESC) ? C::MAX_DESC : int(n_desc.to_uint());
  calls:
    for (int d = 0; d < C::MAX_DESC; ++d) {
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = C::MAX_DESC)
      if (d >= n) break;
      ap_uint<32> dw[DESC_WORDS];
      HLS_PRAGMA(ARRAY_PARTITION variable = dw complete)
#ifndef __SYNTHESIS__
      cycle_log().begin_call();
#endif
      CODESIGN_BURST(STAGE_DESC, C::AXI_LATENCY);
      CODESIGN_LOOP_COUNTER(n_fetch);
    fetch:
      for (int i = 0; i < DESC_WORDS; ++i) {
        HLS_PRAGMA(PIPELINE II = CODESIGN_II_FETCH)
        CODESIGN_TRIP(n_fetch);
        dw[i] = desc[d * DESC_WORDS + i];
      }
      CODESIGN_LOOP_DONE(STAGE_DESC, n_fetch, CODESIGN_II_FETCH, DEPTH_FETCH);
      const call_t c = decode(dw);
      const int err = check(c);
      if (err) {
#ifndef __SYNTHESIS__
        std::fprintf(stderr, "codesign_engine: descriptor %d rejected (check %d)\n", d, err);
        ++csim_rejected();
#endif
        continue;
      }
      if (c.conv) {
        load_weights<BUS, WB, MB, PI, PO, MAXC, MAXT>(wmem, c.w_addr, c.cin_mac, c.cout, c.w_bits,
                                                  C::AXI_LATENCY, wbuf);
        load_requant<BUS, PO, MAX_CO_T>(wmem, c.q_addr, c.cout, C::AXI_LATENCY, mult, bias);
      }
      if (c.dw || c.deform) SP::load(wmem, c, wsp, smult, sbias);
      run_call(c, fmem_rd, fmem_old, fmem_wr, wbuf, mult, bias, wsp, smult, sbias);
#ifndef __SYNTHESIS__
      cycle_log().end_call();
#endif
    }
#ifndef __SYNTHESIS__
    if (n_desc.to_uint() > unsigned(C::MAX_DESC)) {
      std::fprintf(stderr, "codesign_engine: %u descriptors, MAX_DESC is %d\n", n_desc.to_uint(),
                   C::MAX_DESC);
      ++csim_rejected();
    }
#endif
  }
};

// The spatial unit of engine_t<C> (spatial.h) and its constants' loads.
template <class C, int NR>
struct spatial_unit_t<true, C, NR> {
  typedef engine_t<C> E;
  template <class IN, class OUT, class DIL>
  static void run(IN& in, OUT& out, DIL& dil, const call_t& c, const ap_int<E::WB> wsp[9][E::PO][E::SP_T],
                  const rq_mult_t smult[E::PO][E::SP_T], const rq_wide_t sbias[E::PO][E::SP_T]) {
    HLS_PRAGMA(INLINE)
#if CODESIGN_SIGNED_ACTS
    spatial_stage<E::PO, E::A, E::WB, C::ACC_BITS, E::MAXC, C::MAX_H, C::MAX_W, C::MAX_LINE, NR, E::HALF_EVEN>(
        in, out, dil, c.dw, c.deform, c.stride2, c.h2, c.w2, c.cout, c.d_max, c.s_shift, c.s_act_max, wsp,
        smult, sbias, c.s_half_even, c.conv ? c.sgn : c.in_signed, c.s_sgn);
#else
    spatial_stage<E::PO, E::A, E::WB, C::ACC_BITS, E::MAXC, C::MAX_H, C::MAX_W, C::MAX_LINE, NR, E::HALF_EVEN>(
        in, out, dil, c.dw, c.deform, c.stride2, c.h2, c.w2, c.cout, c.d_max, c.s_shift, c.s_act_max, wsp,
        smult, sbias, c.s_half_even);
#endif
  }
  static void load(const ap_uint<E::BUS>* wmem, const call_t& c, ap_int<E::WB> wsp[9][E::PO][E::SP_T],
                   rq_mult_t smult[E::PO][E::SP_T], rq_wide_t sbias[E::PO][E::SP_T]) {
    HLS_PRAGMA(INLINE)
    load_spatial_weights<E::BUS, E::WB, E::PO, E::MAXC, C::AXI_LATENCY>(wmem, c.sw_addr, c.cout, wsp);
    load_requant<E::BUS, E::PO, E::SP_T>(wmem, c.sq_addr, c.cout, C::AXI_LATENCY, smult, sbias);
  }
};

// An engine without the spatial unit: the stage passes its stream on (check() refuses DW / DEFORM).
template <class C, int NR>
struct spatial_unit_t<false, C, NR> {
  typedef engine_t<C> E;
  template <class IN, class OUT, class DIL>
  static void run(IN& in, OUT& out, DIL&, const call_t& c, const ap_int<E::WB>[9][E::PO][E::SP_T],
                  const rq_mult_t[E::PO][E::SP_T], const rq_wide_t[E::PO][E::SP_T]) {
    HLS_PRAGMA(INLINE off)  // a dataflow process of its own, as spatial_stage is
    pass_through<STAGE_SPATIAL, E::PO, E::A, E::MAXC, C::MAX_H, C::MAX_W>(in, out, c.h2, c.w2, c.cout);
  }
  static void load(const ap_uint<E::BUS>*, const call_t&, ap_int<E::WB>[9][E::PO][E::SP_T],
                   rq_mult_t[E::PO][E::SP_T], rq_wide_t[E::PO][E::SP_T]) {}
};

// The window unit of engine_t<C> (window.h).
template <class C>
struct window_unit_t<true, C> {
  typedef engine_t<C> E;
  template <class S>
  static void run(S& in, S& out, const call_t& c) {
    HLS_PRAGMA(INLINE)
    window_stage<E::PI, IN_BITS, window_of<C>::kernel, window_of<C>::line, C::MAX_H, C::MAX_W, E::MAX_CI_T>(
        in, out, c.in_h, c.in_w, c.cin, c.kernel, c.kstride, c.pad);
  }
};

// An engine without the window unit: check() refuses KXK calls, so this never runs.
template <class C>
struct window_unit_t<false, C> {
  template <class S>
  static void run(S&, S&, const call_t&) {}
};

// The engine as one function template:
// engine_run<Config>(desc, n_desc, wmem, fmem_rd, fmem_old, fmem_wr); the three fmem ports are one
// buffer to the host (docs/engine.md, "Memories and ports").
template <class C>
void engine_run(const ap_uint<32>* desc, ap_uint<32> n_desc, const ap_uint<C::BUS_BITS>* wmem,
                const ap_uint<C::BUS_BITS>* fmem_rd, const ap_uint<C::BUS_BITS>* fmem_old,
                ap_uint<C::BUS_BITS>* fmem_wr) {
  HLS_PRAGMA(INLINE)
  engine_t<C>::run(desc, n_desc, wmem, fmem_rd, fmem_old, fmem_wr);
}

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_ENGINE_H
