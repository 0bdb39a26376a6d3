// The engine's memory side (docs/engine.md, "Feature-map layout"): five dataflow processes
//
//   read   (STAGE_READ)   m_axi bursts of whole bus words: the call's input region in one burst;
//                         DEFORM: per row a burst of the row's dilation words, then of its pixels
//   unpack (STAGE_UNPACK) words -> PI-vectors of the input view (a word-level rotate)
//   pack   (STAGE_PACK)   PO-vectors -> words of the output view + the lanes the view covers
//   prefetch (STAGE_PREFETCH) when the view leaves some lanes of a word to other tensors: the
//                         region's old words, one burst through a read-only port of its own
//   write  (STAGE_WRITE)  one m_axi burst over the region; partly covered words merged with their
//                         old value, so channels outside the view are preserved
//
// unpack / pack keep one pixel in a small memory (ping-pong: the next pixel loads while the
// current one is emitted) and build each output element from one source element per cycle:
// a PI-vector costs as many cycles as distinct words it touches (1 for a word-aligned view
// with PI <= lanes), an output word as many as distinct PO-vectors it needs (at least 1).
// Per pixel a process takes max(elements in, steps out) cycles.
#ifndef CODESIGN_ENGINE_IO_H
#define CODESIGN_ENGINE_IO_H

#include "cycles.h"
#include "inventory.h"
#include "packing.h"
#include "types.h"

// IIs of the memory-side loops (their PIPELINE pragmas and the cycle count, cycles.h).
#define CODESIGN_II_READ 1
#define CODESIGN_II_UNPACK 1
#define CODESIGN_II_PACK 1
#define CODESIGN_II_WRITE 1
#define CODESIGN_II_PREFETCH 1

namespace codesign {

CODESIGN_CSIM_BEGIN

// m_axi beat -> stream (the burst latency is counted apart): address + data register.
constexpr int DEPTH_READ = 2;
// buffer read, lane select mux, vector register -> stream.
constexpr int DEPTH_UNPACK = 3;
// buffer read, lane select mux, word register -> stream.
constexpr int DEPTH_PACK = 3;
// stream / buffer read, merge with the mask, m_axi beat.
constexpr int DEPTH_WRITE = 3;
// the step plans (a few adds, compares and a division by a constant lane count).
constexpr int DEPTH_PLAN = 4;

template <class C>
struct io_t {
  static constexpr int PI = C::PI, PO = C::PO, A = C::A_BITS, BUS = C::BUS_BITS, MAXC = C::MAX_C;
  static constexpr int MAX_CI_T = ceil_div(MAXC, PI), MAX_CO_T = ceil_div(MAXC, PO);
  static constexpr int LA = BUS / A;  // lanes of an activation word
  static constexpr int MAX_PIX = C::MAX_H * C::MAX_W;
  // words of the input view one pixel touches, at most (the most with the narrowest lanes: 8 bits)
  static constexpr int MAX_TOUCH = ceil_div(MAXC << MAX_VIEW_SH, BUS / 8) + 2;
  // Depth of the word streams into unpack / out of pack and the prefetch: every process on them
  // takes a word per cycle whenever it has one (none waits for a whole pixel), so a few words of
  // slack suffice, and 32 fit a shift-register FIFO.
  static constexpr int WORD_FIFO = 32;
  // UPSAMPLE: one input row of output words held to write it twice (check(): w3 * wpp <= ROW_WORDS)
  static constexpr int ROW_WORDS = ceil_div(C::MAX_LINE, LA) + C::MAX_W;

  typedef ap_uint<BUS> word_t;
  typedef vec_t<PI, 8> in_vec;
  typedef vec_t<PO, A> out_vec;
  // an output word and the bits of the lanes it sets (the rest keep the old word's bits)
  struct mword_t {
    static constexpr int BITS = 2 * BUS;
    word_t w, m;
  };

  static int wpp_in(const call_t& c) { return ceil_div(c.in_cbuf, c.in8 ? BUS / 8 : LA); }
  static int wpp_out(const call_t& c) { return ceil_div(c.out_cbuf, LA); }
  // does the output view cover every word of a pixel (then no word needs its old value)?
  static bool out_full(const call_t& c) { return c.out_sh == 0 && c.cout >= c.out_cbuf; }

  // ---- read ----------------------------------------------------------------------------------

  // `n` words from mem[base ..] to `out`: one burst.
  static void burst_in(const word_t* mem, int base, int n, hls::stream<word_t>& out) {
    HLS_PRAGMA(INLINE)
    CODESIGN_BURST(STAGE_READ, C::AXI_LATENCY);
    CODESIGN_LOOP_COUNTER(n_rd);
  words:
    for (int i = 0; i < n; ++i) {
      HLS_PRAGMA(PIPELINE II = CODESIGN_II_READ)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_PIX * MAX_TOUCH)
      CODESIGN_TRIP(n_rd);
      out.write(mem[base + i]);
    }
    CODESIGN_LOOP_DONE(STAGE_READ, n_rd, CODESIGN_II_READ, DEPTH_READ);
  }

  // The input region (whole pixels, in_h x in_w) to `words`; DEFORM: the dilation of each
  // pixel of the h1 x w1 grid (channel d_rot of the A-bit d_cbuf-channel map) to `dil`, each
  // row's before the input rows it belongs to (one m_axi port: a single process reads both).
  static void read_words(const word_t* fmem, const call_t c, hls::stream<word_t>& words,
                   hls::stream<ap_uint<8> >& dil) {
    HLS_PRAGMA(INLINE off)
    const int wpp = wpp_in(c);
    if (!c.deform) {
      burst_in(fmem, c.in_addr, c.in_h * c.in_w * wpp, words);
      return;
    }
    typedef lanes_t<BUS, A> LD;
    const int d_wpp = ceil_div(c.d_cbuf, LD::LANES);
    const int d_word = c.d_rot / LD::LANES, d_lane = c.d_rot % LD::LANES;
    const int row = c.in_w * wpp;
  rows:
    for (int iy = 0; iy < c.in_h; ++iy) {
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = C::MAX_H)
      const int dy = c.prepool ? iy / 2 : iy;
      if ((!c.prepool || iy % 2 == 0) && dy < c.h1) {
        CODESIGN_BURST(STAGE_READ, C::AXI_LATENCY);
        CODESIGN_LOOP_COUNTER(n_dil);
        const int n = c.w1 * d_wpp;
        int k = 0;  // word of the pixel
      dwords:
        for (int i = 0; i < n; ++i) {
          HLS_PRAGMA(PIPELINE II = CODESIGN_II_READ)
          HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = C::MAX_W)
          CODESIGN_TRIP(n_dil);
          const word_t w = fmem[c.d_addr + dy * c.w1 * d_wpp + i];
          if (k == d_word) {
            ap_uint<A> lane[LD::LANES];
            HLS_PRAGMA(ARRAY_PARTITION variable = lane complete)
            LD::unpack(w, lane);
            dil.write(ap_uint<8>(lane[d_lane]));  // a mux on a per-call constant
          }
          if (++k == d_wpp) k = 0;
        }
        CODESIGN_LOOP_DONE(STAGE_READ, n_dil, CODESIGN_II_READ, DEPTH_READ);
        CODESIGN_STARVE(STAGE_READ, n_dil + C::AXI_LATENCY);  // no pixel words meanwhile
      }
      burst_in(fmem, c.in_addr + iy * row, row, words);
    }
  }

  // ---- unpack --------------------------------------------------------------------------------

  // The words vector k of the view touches (store lanes L): words [wf, wf + n1), then, when
  // the vector wraps past cbuf, [0, n - n1).
  struct vplan_t {
    int wf, n1, n;
  };
  static int phys(const view_t& v, int j) {
    int p = v.rot + (j << v.sh);
    return p >= v.cbuf ? p - v.cbuf : p;
  }
  template <int L>
  static vplan_t vplan(const view_t& v, int k) {
    HLS_PRAGMA(INLINE)
    vplan_t r;
    const int j0 = k * PI;
    const int jl = (j0 + PI < v.n ? j0 + PI : v.n) - 1;
    const int p0 = phys(v, j0), pl = phys(v, jl);
    r.wf = p0 / L;
    if (pl >= p0) {
      r.n1 = pl / L - r.wf + 1;
      r.n = r.n1;
    } else {  // wraps: the last channel below cbuf, then from word 0 (a stride < lanes)
      const int pe = p0 + (((v.cbuf - 1 - p0) >> v.sh) << v.sh);
      r.n1 = pe / L - r.wf + 1;
      r.n = r.n1 + pl / L + 1;
    }
    return r;
  }

  // The pixel buffer keeps only the words the view touches: slot of word w, or -1.
  static int slot(const view_t::words_t& tw, int w) {
    HLS_PRAGMA(INLINE)
    return (w >= tw.k1 && w < tw.k1 + tw.n1) ? w - tw.k1 : w < tw.count - tw.n1 ? tw.n1 + w : -1;
  }

  // Words of npix whole pixels (store bits SB) -> ceil(cin / PI) vectors per pixel of the view,
  // zero-extended to 8 bits, zero beyond cin.
  template <int SB>
  static void unpack_sb(hls::stream<word_t>& in, hls::stream<in_vec>& out, const call_t& c, int npix) {
    HLS_PRAGMA(INLINE)
    typedef lanes_t<BUS, SB> LS;
    constexpr int L = LS::LANES;
    const view_t view = {c.in_cbuf, c.in_rot, c.cin, c.in_sh};
    const view_t::words_t tw = view.words(L);
    const int wpp = ceil_div(c.in_cbuf, L);
    const int nci = ceil_div(c.cin, PI);
    // steps per pixel
    int steps = 0;
    CODESIGN_LOOP_COUNTER(n_plan);
  plan:
    for (int k = 0; k < nci; ++k) {
      HLS_PRAGMA(PIPELINE II = CODESIGN_II_UNPACK)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_CI_T)
      CODESIGN_TRIP(n_plan);
      steps += vplan<L>(view, k).n;
    }
    CODESIGN_LOOP_DONE(STAGE_UNPACK, n_plan, CODESIGN_II_UNPACK, DEPTH_PLAN);
    const int period = wpp > steps ? wpp : steps;

    static word_t buf[2 * MAX_TOUCH];  // ping-pong pixel buffer: one write + one read per cycle
    CODESIGN_MEMORY(buf);
    // When a pixel's period equals its word count, the word loaded last is read back one
    // iteration later (the next pixel's first step): that distance-1 read-after-write is
    // forwarded from registers (forward_t), hence `DEPENDENCE inter false` in the loop.
    forward_t<word_t> fw;
    int lw[PI], lo[PI];  // per lane of the current vector: word and lane of its channel
    bool lv[PI];
    HLS_PRAGMA(ARRAY_PARTITION variable = lw complete)
    HLS_PRAGMA(ARRAY_PARTITION variable = lo complete)
    HLS_PRAGMA(ARRAY_PARTITION variable = lv complete)
    in_vec acc;
    HLS_PRAGMA(ARRAY_PARTITION variable = acc.v complete)
    vplan_t vp = {0, 0, 0};
    int ph = 0, px = 0, k = 0, s = 0;
    const int trips = (npix + 1) * period;
    CODESIGN_LOOP_COUNTER(n_un);
  steps_loop:
    for (int it = 0; it < trips; ++it) {
      HLS_PRAGMA(PIPELINE II = CODESIGN_II_UNPACK)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = (MAX_PIX + 1) * MAX_TOUCH)
      HLS_PRAGMA(DEPENDENCE variable = buf inter false)
      CODESIGN_TRIP(n_un);
      forward_t<word_t> wr;  // this iteration's buffer write
      if (px < npix && ph < wpp) {  // load word ph of pixel px
        const word_t w = in.read();
        const int sl = slot(tw, ph);
        if (sl >= 0) wr.write(buf, (px & 1) * MAX_TOUCH + sl, w);
      }
      if (px > 0 && ph < steps) {  // emit step s of vector k of pixel px - 1
        if (s == 0) {
          vp = vplan<L>(view, k);
          for (int i = 0; i < PI; ++i) {
            HLS_PRAGMA(UNROLL)
            const int j = k * PI + i;
            const int p = phys(view, j);
            lv[i] = j < c.cin;
            lw[i] = p / L;
            lo[i] = p % L;
            acc.v[i] = 0;
          }
        }
        const int wi = s < vp.n1 ? vp.wf + s : s - vp.n1;
        ap_uint<SB> lane[L];
        HLS_PRAGMA(ARRAY_PARTITION variable = lane complete)
        const int ra = ((px - 1) & 1) * MAX_TOUCH + slot(tw, wi);
        LS::unpack(fw.read(buf, ra), lane);
        for (int i = 0; i < PI; ++i) {
          HLS_PRAGMA(UNROLL)
          if (lv[i] && lw[i] == wi) acc.v[i] = lane[lo[i]];  // a run-time lane: an L-input mux
        }
        if (++s == vp.n) {
          out.write(acc);
          s = 0;
          if (++k == nci) k = 0;
        }
      }
      fw = wr;
      if (++ph == period) {
        ph = 0;
        ++px;
      }
    }
    CODESIGN_LOOP_DONE(STAGE_UNPACK, n_un, CODESIGN_II_UNPACK, DEPTH_UNPACK);
  }

  // The in_h x in_w grid of the input view (8-bit image lanes when IN8, else A-bit).
  static void unpack_view(hls::stream<word_t>& in, hls::stream<in_vec>& out, const call_t c) {
    HLS_PRAGMA(INLINE off)
    const int npix = c.in_h * c.in_w;
    if (c.in8)
      unpack_sb<8>(in, out, c, npix);
    else
      unpack_sb<A>(in, out, c, npix);
  }

  // ---- pack ----------------------------------------------------------------------------------

  // The PO-vectors output word w needs (lanes LA): [b0, b0 + nb) for its channels at or above
  // rot, then [a0, a0 + na) for those below rot (a wrapping view's high logical channels).
  struct wplan_t {
    int b0, nb, a0, na;
    int steps() const { return nb + na > 0 ? nb + na : 1; }
  };
  static wplan_t wplan(const view_t& v, int w) {
    HLS_PRAGMA(INLINE)
    wplan_t r = {0, 0, 0, 0};
    const int lo = w * LA, hi = lo + LA < v.cbuf ? lo + LA : v.cbuf;
    const int m = (1 << v.sh) - 1;
    {  // [max(lo, rot), min(hi, e1)) -> logical (p - rot) >> sh
      const int a = lo > v.rot ? lo : v.rot, b = hi < v.e1() ? hi : v.e1();
      if (a < b) {
        const int j0 = (a - v.rot + m) >> v.sh, j1 = (b - 1 - v.rot) >> v.sh;
        if (j0 <= j1) r.b0 = j0 / PO, r.nb = j1 / PO - j0 / PO + 1;
      }
    }
    {  // [lo, min(hi, e2)) -> logical (p + cbuf - rot) >> sh
      const int b = hi < v.e2() ? hi : v.e2();
      if (lo < b) {
        const int j0 = (lo + v.cbuf - v.rot + m) >> v.sh, j1 = (b - 1 + v.cbuf - v.rot) >> v.sh;
        if (j0 <= j1) r.a0 = j0 / PO, r.na = j1 / PO - j0 / PO + 1;
      }
    }
    return r;
  }

  // h x w pixels of ceil(cout / PO) vectors -> wpp words per pixel of the output view with the
  // bits each sets (the view's lanes; a word the view covers completely also zeroes its
  // unused lanes, as an unread write would).
  static void pack_view(hls::stream<out_vec>& in, hls::stream<mword_t>& out, const call_t c) {
    HLS_PRAGMA(INLINE off)
    typedef lanes_t<BUS, A> LS;
    const view_t view = {c.out_cbuf, c.out_rot, c.cout, c.out_sh};
    const int wpp = wpp_out(c);
    const int nco = ceil_div(c.cout, PO);
    const int npix = c.h3 * c.w3;
    int steps = 0;
    CODESIGN_LOOP_COUNTER(n_plan);
  plan:
    for (int w = 0; w < wpp; ++w) {
      HLS_PRAGMA(PIPELINE II = CODESIGN_II_PACK)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_TOUCH)
      CODESIGN_TRIP(n_plan);
      steps += wplan(view, w).steps();
    }
    CODESIGN_LOOP_DONE(STAGE_PACK, n_plan, CODESIGN_II_PACK, DEPTH_PLAN);
    const int period = nco > steps ? nco : steps;

    static out_vec vbuf[2 * MAX_CO_T];  // ping-pong pixel buffer, one vector per address
    HLS_PRAGMA(AGGREGATE variable = vbuf)
    CODESIGN_MEMORY(vbuf);
    // The same distance-1 read-after-write as unpack's buffer (word 0 needing the vector loaded
    // last) is forwarded from registers (forward_t); see unpack_sb.
    forward_t<out_vec> fw;
    int lvec[LA], lsub[LA];  // per lane of the current word: vector and lane of its channel
    bool lv[LA];
    HLS_PRAGMA(ARRAY_PARTITION variable = lvec complete)
    HLS_PRAGMA(ARRAY_PARTITION variable = lsub complete)
    HLS_PRAGMA(ARRAY_PARTITION variable = lv complete)
    ap_uint<A> lane[LA], mask[LA];
    HLS_PRAGMA(ARRAY_PARTITION variable = lane complete)
    HLS_PRAGMA(ARRAY_PARTITION variable = mask complete)
    wplan_t wp = {0, 0, 0, 0};
    int ph = 0, px = 0, w = 0, s = 0;
    const int trips = (npix + 1) * period;
    CODESIGN_LOOP_COUNTER(n_pk);
  steps_loop:
    for (int it = 0; it < trips; ++it) {
      HLS_PRAGMA(PIPELINE II = CODESIGN_II_PACK)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = (MAX_PIX + 1) * MAX_TOUCH)
      HLS_PRAGMA(DEPENDENCE variable = vbuf inter false)
      CODESIGN_TRIP(n_pk);
      forward_t<out_vec> wr;  // this iteration's buffer write
      if (px < npix && ph < nco) wr.write(vbuf, (px & 1) * MAX_CO_T + ph, in.read());
      if (px > 0 && ph < steps) {  // step s of word w of pixel px - 1
        if (s == 0) {
          wp = wplan(view, w);
          const int lo = w * LA, hi = lo + LA < view.cbuf ? lo + LA : view.cbuf;
          const bool full = view.covers(lo, hi);
          for (int l = 0; l < LA; ++l) {
            HLS_PRAGMA(UNROLL)
            const int p = lo + l;
            const int j = p < view.cbuf ? view.logical(p) : -1;
            lv[l] = j >= 0;
            lvec[l] = j / PO;
            lsub[l] = j % PO;
            lane[l] = 0;
            mask[l] = (j >= 0 || full) ? ap_uint<A>(-1) : ap_uint<A>(0);
          }
        }
        if (wp.nb + wp.na > 0) {
          const int v = s < wp.nb ? wp.b0 + s : wp.a0 + s - wp.nb;
          const int ra = ((px - 1) & 1) * MAX_CO_T + v;
          const out_vec src = fw.read(vbuf, ra);
          for (int l = 0; l < LA; ++l) {
            HLS_PRAGMA(UNROLL)
            if (lv[l] && lvec[l] == v) lane[l] = src.v[lsub[l]];  // a PO-input mux per lane
          }
        }
        if (++s == wp.steps()) {
          mword_t o;
          o.w = LS::pack(lane);
          o.m = LS::pack(mask);
          out.write(o);
          s = 0;
          if (++w == wpp) w = 0;
        }
      }
      fw = wr;
      if (++ph == period) {
        ph = 0;
        ++px;
      }
    }
    CODESIGN_LOOP_DONE(STAGE_PACK, n_pk, CODESIGN_II_PACK, DEPTH_PACK);
  }

  // ---- prefetch (read-modify-write) -----------------------------------------------------------

  // The old words of the output region, in the order write_words writes them, when the view does
  // not cover every word (else nothing): one burst through a read-only port of its own, so that
  // the writer merges and writes one word per cycle and reads and writes overlap. The writer only
  // writes a word after it has taken its old value from this stream, so every read precedes the
  // write of its address.
  static void prefetch_old(const word_t* mem, const call_t c, hls::stream<word_t>& out) {
    HLS_PRAGMA(INLINE off)
    if (out_full(c)) return;
    const int n = out_words(c);
    if (n <= 0) return;
    CODESIGN_BURST(STAGE_PREFETCH, C::AXI_LATENCY);
    CODESIGN_LOOP_COUNTER(n_old);
  words:
    for (int i = 0; i < n; ++i) {
      HLS_PRAGMA(PIPELINE II = CODESIGN_II_PREFETCH)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_PIX * MAX_TOUCH)
      CODESIGN_TRIP(n_old);
      out.write(mem[c.out_addr + i]);
    }
    CODESIGN_LOOP_DONE(STAGE_PREFETCH, n_old, CODESIGN_II_PREFETCH, DEPTH_READ);
  }

  // ---- write ---------------------------------------------------------------------------------

  // Words of the output region: h3 x w3 pixels, UPSAMPLE h4 x w4 (each pixel to its 2 x 2).
  static int out_words(const call_t& c) { return (c.upsample ? c.h4 * c.w4 : c.h3 * c.w3) * wpp_out(c); }

  // The output region in one burst over consecutive addresses, one word per cycle. A word the view
  // covers completely is written as it comes; any other is merged with its old value (the
  // prefetch stream) by the mask. UPSAMPLE: output rows 2y and 2y+1 repeat input row y with every
  // pixel twice; row 2y takes each input pixel's words from the stream (and keeps them in `row`),
  // the second copy of the pixel and row 2y+1 take them from `row`.
  static void write_words(hls::stream<mword_t>& in, hls::stream<word_t>& old, word_t* mem, const call_t c) {
    HLS_PRAGMA(INLINE off)
    static mword_t row[ROW_WORDS];
    HLS_PRAGMA(AGGREGATE variable = row)
    CODESIGN_MEMORY(row);
    const int wpp = wpp_out(c);
    const bool full = out_full(c);
    const int n = out_words(c);
    const int w_out = c.upsample ? c.w4 : c.w3;
    // `row` is read back at distance wpp (the pixel's second copy): distance 1 (wpp == 1) is
    // forwarded from registers (forward_t), longer ones meet the memory's 1-cycle write.
    forward_t<mword_t> fw;
    int k = 0, x = 0, y = 0;  // word of the pixel, output column, output row
    if (n > 0) CODESIGN_BURST(STAGE_WRITE, C::AXI_LATENCY);
    CODESIGN_LOOP_COUNTER(n_wr);
    CODESIGN_LOOP_COUNTER(n_quiet);  // UPSAMPLE: the trips of the second row copies (no stream read)
  words:
    for (int i = 0; i < n; ++i) {
      HLS_PRAGMA(PIPELINE II = CODESIGN_II_WRITE)
      HLS_PRAGMA(LOOP_TRIPCOUNT min = 1 max = MAX_PIX * MAX_TOUCH)
      HLS_PRAGMA(DEPENDENCE variable = row inter false)
      CODESIGN_TRIP(n_wr);
      const bool fresh = !c.upsample || (y % 2 == 0 && x % 2 == 0);  // from the stream
      if (c.upsample && y % 2 == 1) CODESIGN_TRIP(n_quiet);
      const int ra = (x >> 1) * wpp + k;
      forward_t<mword_t> wr;  // this iteration's row write
      mword_t nw;
      if (fresh) {
        nw = in.read();
        if (c.upsample) wr.write(row, ra, nw);
      } else {
        nw = fw.read(row, ra);
      }
      fw = wr;
      const word_t o = full ? word_t(0) : old.read();
      mem[c.out_addr + i] = full ? nw.w : word_t((o & ~nw.m) | (nw.w & nw.m));
      if (++k == wpp) {
        k = 0;
        if (++x == w_out) {
          x = 0;
          ++y;
        }
      }
    }
    CODESIGN_LOOP_DONE(STAGE_WRITE, n_wr, CODESIGN_II_WRITE, DEPTH_WRITE);
    CODESIGN_STALL(STAGE_WRITE, n_quiet);
  }
};

CODESIGN_CSIM_END

}  // namespace codesign

#endif  // CODESIGN_ENGINE_IO_H
