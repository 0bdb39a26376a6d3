// Self-test of the HLS engine (hls_templates/engine) in C-simulation against a plain scalar
// reference of docs/integer-contract.md and docs/engine.md (int64 arithmetic, bit-level packing
// written independently of the engine's).
//
//   engine_selftest                 explicit cases + random tables on four configurations
//   engine_selftest --bench [res]   a DiracDeltaNet frame (default 224) on the default config:
//                                   C-sim time, MAC/s, checked against the reference
//   engine_selftest --export DIR    a small DiracDeltaNet-like table as testbench vectors in DIR
//                                   (and DIR_bad: one expected value changed)
//
// Every check compares the whole fmem arena after the engine with the reference, so writes
// outside a view, lost channels of a read-modify-write and stray writes all fail.
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "config.h"
#include "engine.h"

using codesign::max_weight_tiles;

// ---- configurations --------------------------------------------------------------------------

// Small array, 64-bit bus, lanes never straddle a 64-bit part.
struct CfgA {
  static constexpr int PI = 4, PO = 8, A_BITS = 4, W_BITS = 8, ACC_BITS = 32, BUS_BITS = 64;
  static constexpr int MAX_C = 48, MAX_H = 12, MAX_W = 12, MAX_LINE = 12 * 48;
  static constexpr int MAX_WEIGHTS = 48 * 48, MAX_DESC = 64;
  static constexpr int MAC_BITS = 4, AXI_LATENCY = 50;  // 8-bit weights and IN8: 2 x 2 passes
  static constexpr int MAX_WTILES = max_weight_tiles(PI, PO, MAX_C, MAX_WEIGHTS, codesign::ceil_div(W_BITS, MAC_BITS));
};
// A = 3 and W = 5: lanes straddle the 64-bit parts of a 128-bit word; PI > PO; 24-bit acc.
struct CfgB {
  static constexpr int PI = 8, PO = 4, A_BITS = 3, W_BITS = 5, ACC_BITS = 24, BUS_BITS = 128;
  static constexpr int MAX_C = 40, MAX_H = 10, MAX_W = 11, MAX_LINE = 11 * 40;
  static constexpr int MAX_WEIGHTS = 40 * 40, MAX_DESC = 64;
  static constexpr int MAC_BITS = 2, AXI_LATENCY = 50;  // W5 in 3 slices, A3 in 2, IN8 in 4
  static constexpr int MAX_WTILES = max_weight_tiles(PI, PO, MAX_C, MAX_WEIGHTS, codesign::ceil_div(W_BITS, MAC_BITS));
};
// A = 8 (IN8 copies allowed), 4-bit weights.
struct CfgC {
  static constexpr int PI = 16, PO = 16, A_BITS = 8, W_BITS = 4, ACC_BITS = 32, BUS_BITS = 128;
  static constexpr int MAX_C = 64, MAX_H = 9, MAX_W = 9, MAX_LINE = 9 * 64;
  static constexpr int MAX_WEIGHTS = 64 * 64, MAX_DESC = 64;
  static constexpr int MAC_BITS = 8, AXI_LATENCY = 50;  // one pass, full products
  static constexpr int MAX_WTILES = max_weight_tiles(PI, PO, MAX_C, MAX_WEIGHTS, codesign::ceil_div(W_BITS, MAC_BITS));
};
// The default (DiracDeltaNet) configuration rendered from config.h.j2.
typedef codesign::Config CfgD;

// ---- memory model: little-endian bytes of BUS-bit words ----------------------------------------

struct Mem {
  int bus_bytes;
  std::vector<uint8_t> b;
  explicit Mem(int bytes = 16) : bus_bytes(bytes) {}
  uint64_t words() const { return b.size() / bus_bytes; }
  uint64_t get(uint64_t word, int bit, int n) const {
    uint64_t v = 0;
    const uint64_t base = word * bus_bytes * 8 + bit;
    for (int i = 0; i < n; ++i) v |= uint64_t((b[(base + i) / 8] >> ((base + i) % 8)) & 1) << i;
    return v;
  }
  void set(uint64_t word, int bit, int n, uint64_t v) {
    const uint64_t base = word * bus_bytes * 8 + bit;
    for (int i = 0; i < n; ++i) {
      uint8_t& byte = b[(base + i) / 8];
      const uint8_t m = uint8_t(1u << ((base + i) % 8));
      byte = ((v >> i) & 1) ? uint8_t(byte | m) : uint8_t(byte & ~m);
    }
  }
};

// ---- a call, host side ------------------------------------------------------------------------

struct Call {
  std::string name;
  bool prepool = false, conv = false, pool = false, shift = false, in8 = false;
  int in_addr = 0, in_h = 1, in_w = 1, in_cbuf = 1, in_rot = 0, cin = 1;
  int out_addr = 0, out_cbuf = 1, out_rot = 0, cout = 1;
  int w_addr = 0, q_addr = 0, S = 1, act_max = 15;
  std::vector<int> W;             // [cout][cin]
  std::vector<int64_t> M, B;      // [cout]
  int h1() const { return prepool ? in_h / 2 : in_h; }
  int w1() const { return prepool ? in_w / 2 : in_w; }
  int h2() const { return pool ? h1() / 2 : h1(); }
  int w2() const { return pool ? w1() / 2 : w1(); }
};

void encode(const Call& c, std::vector<uint32_t>& d) {
  using namespace codesign;
  uint32_t w[DESC_WORDS] = {0};
  w[DESC_FLAGS] = (c.prepool ? FLAG_PREPOOL : 0) | (c.conv ? FLAG_CONV : 0) |
                  (c.pool ? FLAG_POOL : 0) | (c.shift ? FLAG_SHIFT : 0) | (c.in8 ? FLAG_IN8 : 0);
  w[DESC_IN_ADDR] = c.in_addr;
  w[DESC_IN_H] = c.in_h;
  w[DESC_IN_W] = c.in_w;
  w[DESC_IN_CBUF] = c.in_cbuf;
  w[DESC_IN_ROT] = c.in_rot;
  w[DESC_CIN] = c.cin;
  w[DESC_OUT_ADDR] = c.out_addr;
  w[DESC_OUT_CBUF] = c.out_cbuf;
  w[DESC_OUT_ROT] = c.out_rot;
  w[DESC_COUT] = c.cout;
  w[DESC_W_ADDR] = c.w_addr;
  w[DESC_Q_ADDR] = c.q_addr;
  w[DESC_SHIFT] = c.S;
  w[DESC_ACT_MAX] = c.act_max;
  d.insert(d.end(), w, w + DESC_WORDS);
}

// ---- the scalar reference ---------------------------------------------------------------------

struct Tensor {
  int h = 0, w = 0, c = 0;
  std::vector<int64_t> v;
  Tensor(int h_, int w_, int c_) : h(h_), w(w_), c(c_), v(size_t(h_) * w_ * c_, 0) {}
  int64_t& at(int y, int x, int ch) { return v[(size_t(y) * w + x) * c + ch]; }
  int64_t at(int y, int x, int ch) const { return v[(size_t(y) * w + x) * c + ch]; }
};

Tensor ref_read(const Mem& m, int addr, int h, int w, int cbuf, int rot, int n, int sb) {
  const int lanes = m.bus_bytes * 8 / sb, wpp = (cbuf + lanes - 1) / lanes;
  Tensor t(h, w, n);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int j = 0; j < n; ++j) {
        const int p = (rot + j) % cbuf;
        t.at(y, x, j) = int64_t(m.get(uint64_t(addr) + (y * w + x) * wpp + p / lanes, (p % lanes) * sb, sb));
      }
  return t;
}

void ref_write(Mem& m, int addr, const Tensor& t, int cbuf, int rot, int sb) {
  const int lanes = m.bus_bytes * 8 / sb, wpp = (cbuf + lanes - 1) / lanes;
  for (int y = 0; y < t.h; ++y)
    for (int x = 0; x < t.w; ++x)
      for (int j = 0; j < t.c; ++j) {
        const int p = (rot + j) % cbuf;
        m.set(uint64_t(addr) + (y * t.w + x) * wpp + p / lanes, (p % lanes) * sb, sb, uint64_t(t.at(y, x, j)));
      }
}

Tensor ref_pool(const Tensor& x) {
  Tensor t(x.h / 2, x.w / 2, x.c);
  for (int y = 0; y < t.h; ++y)
    for (int xx = 0; xx < t.w; ++xx)
      for (int c = 0; c < x.c; ++c) {
        int64_t m = x.at(2 * y, 2 * xx, c);
        m = std::max(m, x.at(2 * y, 2 * xx + 1, c));
        m = std::max(m, x.at(2 * y + 1, 2 * xx, c));
        m = std::max(m, x.at(2 * y + 1, 2 * xx + 1, c));
        t.at(y, xx, c) = m;
      }
  return t;
}

Tensor ref_shift(const Tensor& x) {
  static const int dy[5] = {-1, 0, 0, 0, 1}, dx[5] = {0, -1, 0, 1, 0};
  Tensor t(x.h, x.w, x.c);
  for (int y = 0; y < x.h; ++y)
    for (int xx = 0; xx < x.w; ++xx)
      for (int c = 0; c < x.c; ++c) {
        const int sy = y + dy[c % 5], sx = xx + dx[c % 5];
        t.at(y, xx, c) = (sy >= 0 && sy < x.h && sx >= 0 && sx < x.w) ? x.at(sy, sx, c) : 0;
      }
  return t;
}

int64_t floor_shift(int64_t t, int s) {  // floor(t / 2^s) without relying on >> of negatives
  const int64_t d = int64_t(1) << s;
  return t >= 0 ? t / d : -((-t + d - 1) / d);
}

int64_t ref_requant(int64_t acc, int64_t m, int64_t b, int s, int64_t amax) {
  const int64_t y = floor_shift(acc * m + b + (int64_t(1) << (s - 1)), s);
  return y < 0 ? 0 : (y > amax ? amax : y);
}

Tensor ref_conv(const Tensor& x, const Call& c) {
  Tensor t(x.h, x.w, c.cout);
  std::vector<int64_t> acc(c.cout);
  for (int y = 0; y < x.h; ++y)
    for (int xx = 0; xx < x.w; ++xx) {
      const int64_t* px = &x.v[(size_t(y) * x.w + xx) * x.c];
      for (int o = 0; o < c.cout; ++o) {
        const int* wr = &c.W[size_t(o) * c.cin];
        int64_t a = 0;
        for (int i = 0; i < c.cin; ++i) a += int64_t(wr[i]) * px[i];
        t.at(y, xx, o) = ref_requant(a, c.M[o], c.B[o], c.S, c.act_max);
      }
    }
  return t;
}

void ref_call(const Call& c, Mem& f, int a_bits) {
  Tensor x = ref_read(f, c.in_addr, c.in_h, c.in_w, c.in_cbuf, c.in_rot, c.cin, c.in8 ? 8 : a_bits);
  if (c.prepool) x = ref_pool(x);
  if (c.conv) x = ref_conv(x, c);
  if (c.pool) x = ref_pool(x);
  if (c.shift) x = ref_shift(x);
  ref_write(f, c.out_addr, x, c.out_cbuf, c.out_rot, a_bits);
}

// ---- the engine under test ----------------------------------------------------------------------

template <class C>
std::vector<ap_uint<C::BUS_BITS> > to_words(const Mem& m) {
  std::vector<ap_uint<C::BUS_BITS> > w(m.words() + 1);
  for (uint64_t i = 0; i < m.words(); ++i)
    for (int p = 0; p < C::BUS_BITS / 64; ++p) {
      uint64_t v = 0;
      std::memcpy(&v, &m.b[i * m.bus_bytes + p * 8], 8);  // little-endian host
      w[i].range(64 * p + 63, 64 * p) = v;
    }
  return w;
}

template <class C>
void from_words(const std::vector<ap_uint<C::BUS_BITS> >& w, Mem& m) {
  for (uint64_t i = 0; i < m.words(); ++i)
    for (int p = 0; p < C::BUS_BITS / 64; ++p) {
      const uint64_t v = w[i].range(64 * p + 63, 64 * p).to_uint64();
      std::memcpy(&m.b[i * m.bus_bytes + p * 8], &v, 8);
    }
}

// Runs the table; returns the number of descriptors the engine rejected, or -1 when one reaches
// outside the memories. *seconds: time of the engine call alone.
template <class C>
int run_engine(const std::vector<uint32_t>& desc, const Mem& wmem, Mem& fmem, double* seconds = nullptr) {
  const uint32_t n = uint32_t(desc.size() / codesign::DESC_WORDS);
  if (codesign::engine_t<C>::out_of_range(desc.data(), n, wmem.words(), fmem.words()) >= 0) return -1;
  std::vector<ap_uint<32> > d(desc.size() + 1);
  for (size_t i = 0; i < desc.size(); ++i) d[i] = desc[i];
  std::vector<ap_uint<C::BUS_BITS> > w = to_words<C>(wmem), f = to_words<C>(fmem);
  codesign::csim_rejected() = 0;
  const auto t0 = std::chrono::steady_clock::now();
  codesign::engine_run<C>(d.data(), ap_uint<32>(n), w.data(), f.data(), f.data(), f.data());
  const auto t1 = std::chrono::steady_clock::now();
  if (seconds) *seconds = std::chrono::duration<double>(t1 - t0).count();
  from_words<C>(f, fmem);
  return codesign::csim_rejected();
}

// ---- building tables ----------------------------------------------------------------------------

template <class C>
struct Builder {
  static constexpr int BB = C::BUS_BITS / 8;
  Mem f, w;
  std::mt19937_64 rng;
  std::vector<Call> calls;
  explicit Builder(uint64_t seed) : f(BB), w(BB), rng(seed) {}

  int64_t uni(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
  bool coin(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
  double real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }

  // words of random garbage (a gap of 0..2 garbage words first)
  int alloc(Mem& m, uint64_t words) {
    const uint64_t gap = uint64_t(uni(0, 2));
    const uint64_t addr = m.words() + gap;
    const size_t old = m.b.size();
    m.b.resize(size_t(addr + words) * BB);
    for (size_t i = old; i < m.b.size(); ++i) m.b[i] = uint8_t(rng());
    return int(addr);
  }
  // an H x W x cbuf buffer holding random sb-bit values, unused lanes zero (docs/engine.md)
  int buffer(int h, int wd, int cbuf, int sb) {
    const int lanes = C::BUS_BITS / sb, wpp = (cbuf + lanes - 1) / lanes;
    const int addr = alloc(f, uint64_t(h) * wd * wpp);
    for (int px = 0; px < h * wd; ++px)
      for (int k = 0; k < wpp; ++k) {
        std::memset(&f.b[size_t(addr + px * wpp + k) * BB], 0, BB);
        for (int l = 0; l < lanes && k * lanes + l < cbuf; ++l)
          f.set(addr + px * wpp + k, l * sb, sb, uint64_t(uni(0, (1 << sb) - 1)));
      }
    return addr;
  }
  // random weights and requant constants for c (c.cin, c.cout, c.in8, c.act_max set), packed
  // into wmem; padding lanes and unused bits are random garbage the engine must ignore.
  // mode 0: outputs spread over 0..act_max; 1: extreme S/M/B; 2: all M < 0; 3: saturate high;
  // 4: saturate low.
  void weights(Call& c, int mode = 0) {
    const int wmax = (1 << (C::W_BITS - 1)) - 1;
    const int64_t xmax = c.in8 ? 255 : (1 << C::A_BITS) - 1;
    c.W.resize(size_t(c.cout) * c.cin);
    for (int& v : c.W) v = int(uni(-wmax, wmax));
    const double maxacc = double(c.cin) * xmax * wmax;
    const double typ = std::sqrt(double(c.cin)) * xmax * wmax / 4 + 1;
    c.M.resize(c.cout);
    c.B.resize(c.cout);
    c.S = int(uni(10, 24));
    if (mode == 1) c.S = coin(0.5) ? 1 : 46;
    for (int o = 0; o < c.cout; ++o) {
      const double two_s = std::ldexp(1.0, c.S);
      double m = two_s * c.act_max / (2 * typ) * real(-0.6, 1.6);
      double b = two_s * c.act_max * real(-0.3, 0.8);
      if (mode == 1) {
        m = coin(0.5) ? real(-8, 8) : (coin(0.5) ? 1 : -1) * real(0.5, 1.0) * ((1 << 23) - 1);
        b = (coin(0.5) ? 1 : -1) * real(0, 1) * (std::ldexp(1.0, 40) - 1);
      } else if (mode == 2) {
        m = -std::fabs(m) - 1;
        b = two_s * c.act_max * real(0.5, 1.5);
      } else if (mode == 3) {
        b = two_s * (c.act_max + 2) + std::fabs(m) * maxacc;
      } else if (mode == 4) {
        b = -two_s * 2 - std::fabs(m) * maxacc;
      }
      m = std::max(-double((1 << 23) - 1), std::min(double((1 << 23) - 1), std::round(m)));
      // the contract's bounds: |B| < 2^40 and |acc*M| + |B| + 2^(S-1) < 2^47
      b = std::max(-std::ldexp(1.0, 40) + 1, std::min(std::ldexp(1.0, 40) - 1, std::round(b)));
      while (maxacc * std::fabs(m) + std::fabs(b) + std::ldexp(1.0, c.S - 1) >= std::ldexp(1.0, 47))
        m = std::trunc(m / 2);
      c.M[o] = int64_t(m);
      c.B[o] = int64_t(b);
    }
    // per output channel pw rows of MAC_BITS-wide slices (docs/engine.md, "Weights")
    const int mb = C::MAC_BITS, pw = (C::W_BITS + mb - 1) / mb;
    const int lw = C::BUS_BITS / mb, wpr = (c.cin + lw - 1) / lw;
    c.w_addr = alloc(w, uint64_t(c.cout) * pw * wpr);
    for (int o = 0; o < c.cout; ++o)
      for (int sw = 0; sw < pw; ++sw)
        for (int i = 0; i < c.cin; ++i)
          w.set(c.w_addr + (o * pw + sw) * wpr + i / lw, (i % lw) * mb, mb,
                uint64_t(c.W[size_t(o) * c.cin + i] >> (mb * sw)) & ((1u << mb) - 1));
    c.q_addr = alloc(w, 2 * uint64_t(c.cout));
    for (int o = 0; o < c.cout; ++o) {
      const uint64_t b = uint64_t(c.B[o]);
      w.set(c.q_addr + 2 * o, 0, 32, uint64_t(c.M[o]) & 0xffffffffu);
      w.set(c.q_addr + 2 * o, 32, 32, b & 0xffffffffu);
      w.set(c.q_addr + 2 * o + 1, 0, 64, uint64_t(int64_t(c.B[o]) >> 32));  // sign-extended
    }
  }
  std::vector<uint32_t> table() const {
    std::vector<uint32_t> d;
    for (const Call& c : calls) encode(c, d);
    return d;
  }
};

// ---- checking -----------------------------------------------------------------------------------

int g_cases = 0, g_failures = 0;

// Runs b's table through the engine and through the reference; compares the whole arena.
template <class C>
bool check(const std::string& name, Builder<C>& b, int expect_rejected = 0, Mem* final_ref = nullptr) {
  ++g_cases;
  Mem ref = b.f, dut = b.f;
  if (!expect_rejected)  // (a rejected call must leave memory as it was)
    for (const Call& c : b.calls) ref_call(c, ref, C::A_BITS);
  const int rejected = run_engine<C>(b.table(), b.w, dut);
  bool ok = rejected == expect_rejected;
  if (!ok) std::printf("FAIL %s: engine rejected %d descriptors, expected %d\n", name.c_str(), rejected, expect_rejected);
  if (ok && ref.b != dut.b) {
    ok = false;
    for (size_t i = 0; i < ref.b.size(); ++i)
      if (ref.b[i] != dut.b[i]) {
        std::printf("FAIL %s: fmem differs first at word %zu byte %zu: expected 0x%02x got 0x%02x\n", name.c_str(),
                    i / ref.bus_bytes, i % ref.bus_bytes, ref.b[i], dut.b[i]);
        for (const Call& c : b.calls)
          std::printf("   call %s: flags p%d c%d P%d s%d i8%d in@%d %dx%dx[%d rot %d n %d] out@%d [%d rot %d n %d] S=%d amax=%d\n",
                      c.name.c_str(), c.prepool, c.conv, c.pool, c.shift, c.in8, c.in_addr, c.in_h, c.in_w,
                      c.in_cbuf, c.in_rot, c.cin, c.out_addr, c.out_cbuf, c.out_rot, c.cout, c.S, c.act_max);
        break;
      }
  }
  if (!ok) ++g_failures;
  if (final_ref) *final_ref = ref;
  return ok;
}

// A call reading a fresh input buffer and writing into a fresh, pre-filled output buffer.
template <class C>
Call make_call(Builder<C>& b, const std::string& name, unsigned flags, int h, int w, int cin, int cout,
               int in_extra = 0, int in_rot = 0, int out_extra = 0, int out_rot = 0, int mode = 0) {
  Call c;
  c.name = name;
  c.prepool = flags & 1;
  c.conv = flags & 2;
  c.pool = flags & 4;
  c.shift = flags & 8;
  c.in8 = flags & 16;
  c.in_h = h;
  c.in_w = w;
  c.cin = cin;
  c.in_cbuf = cin + in_extra;
  c.in_rot = in_rot % c.in_cbuf;
  c.cout = c.conv ? cout : cin;
  c.out_cbuf = c.cout + out_extra;
  c.out_rot = out_rot % c.out_cbuf;
  c.act_max = (1 << C::A_BITS) - 1;
  c.in_addr = b.buffer(h, w, c.in_cbuf, c.in8 ? 8 : C::A_BITS);
  c.out_addr = b.buffer(std::max(c.h2(), 1), std::max(c.w2(), 1), c.out_cbuf, C::A_BITS);
  if (c.conv) b.weights(c, mode);
  b.calls.push_back(c);
  return c;
}

enum { PREPOOL = 1, CONV = 2, POOL = 4, SHIFT = 8, IN8 = 16 };

// Values of the reference output of a one-call table (for sanity checks of the cases).
template <class C>
Tensor ref_output(Builder<C>& b) {
  Mem ref = b.f;
  const Call& c = b.calls.back();
  ref_call(c, ref, C::A_BITS);
  return ref_read(ref, c.out_addr, c.h2(), c.w2(), c.out_cbuf, c.out_rot, c.cout, C::A_BITS);
}

template <class C>
void explicit_cases(const char* cfg) {
  const std::string p = std::string(cfg) + ": ";
  const int m = codesign::cmin(2 * codesign::cmax(C::PI, C::PO), C::MAX_C);  // a multiple of PI and PO
  { Builder<C> b(1); make_call(b, "conv", CONV, 4, 5, m, m); check(p + "conv only", b); }
  { Builder<C> b(2); make_call(b, "cps", CONV | POOL | SHIFT, 6, 8, 12, 10); check(p + "conv+pool+shift", b); }
  { Builder<C> b(3); make_call(b, "pc", PREPOOL | CONV, 6, 6, 9, 7); check(p + "prepool+conv", b); }
  { Builder<C> b(4); make_call(b, "copy", POOL, 6, 4, 11, 0); check(p + "copy+pool", b); }
  { Builder<C> b(5); make_call(b, "copy_s", SHIFT, 5, 7, 13, 0); check(p + "copy+shift", b); }
  { Builder<C> b(6); make_call(b, "copy_pps", PREPOOL | POOL | SHIFT, 9, 9, 7, 0); check(p + "copy prepool+pool+shift", b); }
  { Builder<C> b(7); make_call(b, "in8", IN8 | CONV | POOL | SHIFT, 8, 8, 3, 7); check(p + "IN8 conv (stem)", b); }
  { Builder<C> b(8); make_call(b, "in8p", IN8 | PREPOOL | CONV, 5, 7, 5, 6); check(p + "IN8 prepool conv", b); }
  {  // rotated, wrapping read view; partial, rotated, wrapping write view into a full buffer
    Builder<C> b(9);
    make_call(b, "views", CONV | SHIFT, 4, 3, 7, 9, 5, 9, 6, 13);
    check(p + "views rot/partial (RMW)", b);
  }
  {  // the two halves of one buffer written by two calls (a concat by address, rotated)
    Builder<C> b(10);
    Call c1 = make_call(b, "half1", CONV, 3, 4, 6, 5, 0, 0, 5, 7);
    Call c2 = make_call(b, "half2", CONV, 3, 4, 8, 5);
    b.calls.back().out_addr = c1.out_addr;
    b.calls.back().out_cbuf = c1.out_cbuf;
    b.calls.back().out_rot = (c1.out_rot + 5) % c1.out_cbuf;
    (void)c2;
    check(p + "concat by views", b);
  }
  { Builder<C> b(11); make_call(b, "odd", CONV | POOL | SHIFT, 7, 5, 5, 11); check(p + "odd H/W + non-multiple C", b); }
  { Builder<C> b(12); make_call(b, "odd_pp", PREPOOL | CONV | POOL, 9, 7, 3, 2); check(p + "odd prepool+pool floor", b); }
  { Builder<C> b(13); make_call(b, "tiny", PREPOOL | POOL | SHIFT | CONV, 3, 3, 1, 1); check(p + "1x1 pixel, 1 channel", b); }
  { Builder<C> b(14); make_call(b, "empty", PREPOOL | CONV, 1, 5, 4, 4); check(p + "prepool of 1 row (empty)", b); }
  {
    Builder<C> b(15);
    make_call(b, "negM", CONV, 4, 4, 9, 6, 0, 0, 0, 0, 2);
    const Tensor t = ref_output(b);
    bool nonzero = false;
    for (int64_t v : t.v) nonzero |= v > 0;
    if (!nonzero) std::printf("WARN %snegative-M case has only zeros\n", p.c_str());
    check(p + "negative M", b);
  }
  for (int mode = 3; mode <= 4; ++mode) {
    Builder<C> b(16 + mode);
    make_call(b, "sat", CONV, 3, 3, 6, 6, 0, 0, 0, 0, mode);
    const Tensor t = ref_output(b);
    const int64_t want = mode == 3 ? (1 << C::A_BITS) - 1 : 0;
    for (int64_t v : t.v)
      if (v != want) {
        std::printf("WARN %ssaturation case not saturated\n", p.c_str());
        break;
      }
    check(p + (mode == 3 ? "saturation high" : "saturation low"), b);
  }
  { Builder<C> b(20); make_call(b, "extreme", CONV | SHIFT, 3, 4, 7, 9, 0, 0, 0, 0, 1); check(p + "extreme S/M/B", b); }
  {
    Builder<C> b(21);  // act_max below 2^A - 1 (a narrower output quantizer)
    make_call(b, "amax", CONV, 3, 3, 5, 5);
    Call& c = b.calls.back();
    c.act_max = (1 << (C::A_BITS - 1)) - 1;
    check(p + "act_max < 2^A-1", b);
  }
  for (int conv = 0; conv <= 1; ++conv) {  // in place: read channels of a buffer, write others
    Builder<C> b(22 + conv);
    const int cb = 17;
    Call c;
    c.name = "inplace";
    c.conv = conv;
    c.in_h = 4;
    c.in_w = 5;
    c.in_cbuf = c.out_cbuf = cb;
    c.in_rot = 12;  // reads physical 12..16, 0..2 (wraps)
    c.cin = 8;
    c.out_rot = 3;  // writes physical 3..10
    c.cout = conv ? 8 : c.cin;
    c.act_max = (1 << C::A_BITS) - 1;
    c.in_addr = c.out_addr = b.buffer(4, 5, cb, C::A_BITS);
    if (conv) b.weights(c);
    b.calls.push_back(c);
    check(p + (conv ? "in-place conv (disjoint channels)" : "in-place copy (disjoint channels)"), b);
  }
  {  // buffers wider than MAX_C channels (views are bounded by MAX_C, buffers are not)
    Builder<C> b(24);
    make_call(b, "widebuf", CONV, 2, 3, 5, 4, C::MAX_C + 3, 2, C::MAX_C + 7, C::MAX_C + 5);
    check(p + "cbuf > MAX_C", b);
  }
  {  // rejected descriptors are skipped and do not touch memory
    Builder<C> b(25);
    make_call(b, "bad", CONV, 2, 2, 4, 4);
    b.calls.back().S = 0;
    check(p + "rejected descriptor (S = 0)", b, 1);
  }
}

template <class C>
void random_tables(const char* cfg, int tables, uint64_t seed) {
  for (int t = 0; t < tables; ++t) {
    Builder<C> b(seed + t);
    const int ncalls = int(b.uni(1, 4));
    for (int k = 0; k < ncalls; ++k) {
      for (int attempt = 0; attempt < 100; ++attempt) {
        unsigned flags = 0;
        if (b.coin(0.3)) flags |= PREPOOL;
        if (b.coin(0.7)) flags |= CONV;
        if (b.coin(0.4)) flags |= POOL;
        if (b.coin(0.4)) flags |= SHIFT;
        if (b.coin(0.25) && ((flags & CONV) || C::A_BITS == 8)) flags |= IN8;
        const int h = int(b.uni(1, codesign::cmin(C::MAX_H, 9))), w = int(b.uni(1, codesign::cmin(C::MAX_W, 9)));
        const int cmax = codesign::cmin(C::MAX_C, 70);
        const int cin = int(b.uni(1, cmax)), cout = int(b.uni(1, cmax));
        const int co = (flags & CONV) ? cout : cin;
        const int w1 = (flags & PREPOOL) ? w / 2 : w, w2 = (flags & POOL) ? w1 / 2 : w1;
        if ((flags & PREPOOL) && (w / 2) * cin > C::MAX_LINE) continue;
        if ((flags & POOL) && (w1 / 2) * co > C::MAX_LINE) continue;
        if ((flags & SHIFT) && w2 * co > C::MAX_LINE) continue;
        const int ie = b.coin(0.5) ? 0 : int(b.uni(1, 20)), oe = b.coin(0.5) ? 0 : int(b.uni(1, 20));
        make_call(b, "r" + std::to_string(k), flags, h, w, cin, cout, ie, int(b.uni(0, 1000)), oe,
                  int(b.uni(0, 1000)), b.coin(0.15) ? int(b.uni(1, 4)) : 0);
        break;
      }
    }
    check(std::string(cfg) + ": random table " + std::to_string(t), b);
  }
}

// ---- DiracDeltaNet as a descriptor table --------------------------------------------------------

// The network mapped the way a scheduler can: concat + rotation by views, blocks in place.
// Returns the number of MACs of the conv calls.
template <class C>
double build_dirac(Builder<C>& b, int res, const int stem[2], const int stages[3], const int blocks[3], int head) {
  const int A = C::A_BITS, amax = (1 << A) - 1;
  double macs = 0;
  auto conv = [&](const std::string& name, unsigned flags, int in_addr, int h, int w, int cbuf, int rot, int cin,
                  int out_addr, int ocbuf, int orot, int cout) {
    Call c;
    c.name = name;
    c.prepool = flags & PREPOOL;
    c.conv = true;
    c.pool = flags & POOL;
    c.shift = flags & SHIFT;
    c.in8 = flags & IN8;
    c.in_addr = in_addr;
    c.in_h = h;
    c.in_w = w;
    c.in_cbuf = cbuf;
    c.in_rot = rot;
    c.cin = cin;
    c.out_addr = out_addr;
    c.out_cbuf = ocbuf;
    c.out_rot = orot;
    c.cout = cout;
    c.act_max = amax;
    b.weights(c);
    b.calls.push_back(c);
    macs += double(c.h1()) * c.w1() * cin * cout;
  };
  auto buf = [&](int h, int w, int c) { return b.buffer(h, w, c, A); };
  const int img = b.buffer(res, res, 3, 8);
  int h = res;
  const int s1 = buf(h / 2, h / 2, stem[0]);
  conv("stem1", IN8 | POOL | SHIFT, img, h, h, 3, 0, 3, s1, stem[0], 0, stem[0]);
  h /= 2;
  int x = buf(h / 2, h / 2, stem[1]);
  conv("stem2", POOL | SHIFT, s1, h, h, stem[0], 0, stem[0], x, stem[1], 0, stem[1]);
  h /= 2;
  int cx = stem[1], rho = 0;  // buffer x: cx channels, logical c at physical (rho + c) mod cx
  for (int s = 0; s < 3; ++s) {
    const int c = stages[s], r = c / 4;
    const std::string sn = "stage" + std::to_string(s + 1);
    // down block: skip = prepool + 1x1 (cx -> c/2); main = 1x1 (cx -> c) + pool + shift, 1x1 (c -> c/2)
    const int y = buf(h / 2, h / 2, c), t = buf(h / 2, h / 2, c);
    conv(sn + "_0.skip", PREPOOL, x, h, h, cx, rho, cx, y, c, 0, c / 2);
    conv(sn + "_0.expand", POOL | SHIFT, x, h, h, cx, rho, cx, t, c, 0, c);
    conv(sn + "_0.project", 0, t, h / 2, h / 2, c, 0, c, y, c, c / 2, c / 2);
    h /= 2;
    x = y;
    cx = c;
    rho = r;
    const int tb = buf(h, h, c);
    for (int k = 1; k < blocks[s]; ++k) {
      const std::string bn = sn + "_" + std::to_string(k);
      const int branch = (rho + c / 2) % c;  // logical channels [c/2, c)
      conv(bn + ".expand", SHIFT, x, h, h, c, branch, c / 2, tb, c, 0, c);
      conv(bn + ".project", 0, tb, h, h, c, 0, c, x, c, branch, c / 2);
      rho = (rho + r) % c;
    }
  }
  const int hb = buf(h, h, head);
  conv("head", 0, x, h, h, cx, rho, cx, hb, head, 0, head);
  return macs;
}

int bench(int res) {
  Builder<CfgD> b(2024);
  const int stem[2] = {32, 64}, stages[3] = {128, 256, 512}, blocks[3] = {4, 8, 4};
  const double macs = build_dirac(b, res, stem, stages, blocks, 1024);
  std::printf("DiracDeltaNet %dx%d: %zu calls, %.2f M MACs, fmem %.1f MB, wmem %.1f MB\n", res, res,
              b.calls.size(), macs / 1e6, b.f.b.size() / 1e6, b.w.b.size() / 1e6);
  Mem ref = b.f, dut = b.f;
  auto t0 = std::chrono::steady_clock::now();
  for (const Call& c : b.calls) ref_call(c, ref, CfgD::A_BITS);
  auto t1 = std::chrono::steady_clock::now();
  double secs = 0;
  const int rej = run_engine<CfgD>(b.table(), b.w, dut, &secs);
  std::printf("reference %.2f s; engine C-sim %.2f s per frame = %.1f M MAC/s (PI=%d PO=%d)\n",
              std::chrono::duration<double>(t1 - t0).count(), secs, macs / secs / 1e6, CfgD::PI, CfgD::PO);
  // how informative the data is: the head's output distribution
  const Call& hc = b.calls.back();
  const Tensor t = ref_read(ref, hc.out_addr, hc.h2(), hc.w2(), hc.out_cbuf, hc.out_rot, hc.cout, CfgD::A_BITS);
  int zeros = 0, sat = 0;
  for (int64_t v : t.v) zeros += v == 0, sat += v == 15;
  std::printf("head output: %.0f%% zero, %.0f%% saturated\n", 100.0 * zeros / t.v.size(), 100.0 * sat / t.v.size());
  const bool ok = rej == 0 && ref.b == dut.b;
  std::printf("%s\n", ok ? "bench: engine == reference" : "bench: FAIL engine != reference");
  return ok ? 0 : 1;
}

// ---- testbench vectors --------------------------------------------------------------------------

bool write_file(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(n));
  return bool(f);
}

int export_vectors(const std::string& dir) {
  Builder<CfgD> b(7);
  const int stem[2] = {8, 16}, stages[3] = {32, 64, 128}, blocks[3] = {2, 2, 2};
  build_dirac(b, 32, stem, stages, blocks, 256);
  Mem ref = b.f;
  for (const Call& c : b.calls) ref_call(c, ref, CfgD::A_BITS);
  const std::vector<uint32_t> desc = b.table();
  // regions.txt as codesign/hls/project.py writes it: name word_addr h w cbuf rot n store_bits
  std::string regions = "# name word_addr h w cbuf rot n store_bits\n";
  for (const Call& c : b.calls)
    regions += c.name + " " + std::to_string(c.out_addr) + " " + std::to_string(c.h2()) + " " +
               std::to_string(c.w2()) + " " + std::to_string(c.out_cbuf) + " " + std::to_string(c.out_rot) + " " +
               std::to_string(c.cout) + " " + std::to_string(CfgD::A_BITS) + "\n";
  for (int bad = 0; bad <= 1; ++bad) {
    const std::string d = bad ? dir + "_bad" : dir;
    mkdir(d.c_str(), 0755);
    Mem e = ref;
    if (bad) {  // the first call's logical channel 0 at pixel (0, 0), lowest bit
      const Call& c = b.calls.front();
      const int lanes = CfgD::BUS_BITS / CfgD::A_BITS;
      e.set(c.out_addr + c.out_rot / lanes, (c.out_rot % lanes) * CfgD::A_BITS, 1,
            e.get(c.out_addr + c.out_rot / lanes, (c.out_rot % lanes) * CfgD::A_BITS, 1) ^ 1);
    }
    if (!write_file(d + "/desc.bin", desc.data(), desc.size() * 4) ||
        !write_file(d + "/wmem.bin", b.w.b.data(), b.w.b.size()) ||
        !write_file(d + "/fmem_in.bin", b.f.b.data(), b.f.b.size()) ||
        !write_file(d + "/expected.bin", e.b.data(), e.b.size()) ||
        !write_file(d + "/regions.txt", regions.data(), regions.size())) {
      std::fprintf(stderr, "cannot write %s\n", d.c_str());
      return 2;
    }
  }
  std::printf("exported %zu calls to %s (and %s_bad)\n", b.calls.size(), dir.c_str(), dir.c_str());
  return 0;
}

// requant<..., HE> against the integer contract: with half_even a tie ((acc*M + B) mod 2^S = 2^(S-1))
// whose rounded-up result is odd gives one less; without the flag (or without HE) it rounds up.
void requant_half_even_cases() {
  int ties = 0, bad = 0;
  const int64_t mults[] = {1, 2, 3, 5, -1, -3, 4096, (1 << 23) - 1};
  for (int s = 1; s <= 46; s += (s < 6 ? 1 : 8))
    for (int64_t m : mults)
      for (int64_t b = -40; b <= 40; b += 3)
        for (int64_t acc = -300; acc <= 300; ++acc) {
          const int64_t bias = b * (int64_t(1) << (s > 8 ? s - 8 : 0));
          const int64_t t = acc * m + bias, d = int64_t(1) << s;
          const bool tie = ((t % d) + d) % d == d / 2;
          int64_t r = floor_shift(t + d / 2, s);
          const int64_t up = r < 0 ? 0 : (r > 255 ? 255 : r);
          if (tie && (r & 1)) r -= 1;
          const int64_t even = r < 0 ? 0 : (r > 255 ? 255 : r);
          ties += tie;
          const ap_int<32> a = acc;
          const codesign::rq_mult_t mm = m;
          const codesign::rq_wide_t bb = bias;
          const ap_uint<8> amax = 255;
          bad += int64_t(codesign::requant<32, 8, true>(a, mm, bb, s, amax, true)) != even;
          bad += int64_t(codesign::requant<32, 8, true>(a, mm, bb, s, amax, false)) != up;
          bad += int64_t(codesign::requant<32, 8, false>(a, mm, bb, s, amax, true)) != up;  // no tie logic built
        }
  ++g_cases;
  if (bad || ties == 0) ++g_failures;
  std::printf("%s: requant round half to even (%d ties, %d wrong)\n", bad || !ties ? "FAIL" : "ok", ties, bad);
}

#if CODESIGN_SIGNED_ACTS
// The signed path (built with -DCODESIGN_SIGNED_ACTS=1): requant<...>(..., sgn) against the
// contract's signed clamp [-(act_max + 1), act_max] stored as the low A bits, for every A; and
// act_value's reading of stored bits (two's complement when signed, else unsigned).
void requant_signed_cases() {
  int bad = 0, n = 0;
  const int64_t mults[] = {1, 3, -1, -7, 4096, -(1 << 22)};
  for (int s = 1; s <= 30; s += 3)
    for (int64_t m : mults)
      for (int64_t b = -50; b <= 50; b += 7)
        for (int64_t acc = -400; acc <= 400; acc += 3) {
          const int64_t bias = b * (int64_t(1) << (s > 4 ? s - 4 : 0));
          const int64_t r = floor_shift(acc * m + bias + (int64_t(1) << (s - 1)), s);
          for (int sgn = 0; sgn < 2; ++sgn) {
            const int64_t hi = sgn ? 31 : 63, lo = sgn ? -32 : 0;  // a 6-bit tensor in 8-bit lanes
            const int64_t want = (r < lo ? lo : r > hi ? hi : r) & 0xFF;
            const ap_uint<8> got = codesign::requant<32, 8, false>(ap_int<32>(acc), codesign::rq_mult_t(m),
                                                                   codesign::rq_wide_t(bias), s, ap_uint<8>(hi),
                                                                   false, sgn);
            bad += int64_t(got.to_uint()) != want;
            ++n;
          }
        }
  for (int v = 0; v < 256; ++v) {
    bad += int(codesign::act_value<8>(ap_uint<8>(v), true)) != (v < 128 ? v : v - 256);
    bad += int(codesign::act_value<8>(ap_uint<8>(v), false)) != v;
  }
  ++g_cases;
  if (bad) ++g_failures;
  std::printf("%s: signed requant and act_value (%d values, %d wrong)\n", bad ? "FAIL" : "ok", n, bad);
}
#endif

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--bench") return bench(argc >= 3 ? std::atoi(argv[2]) : 224);
  if (argc == 3 && std::string(argv[1]) == "--export") return export_vectors(argv[2]);
  if (argc != 1) {
    std::fprintf(stderr, "usage: %s [--bench [res] | --export DIR]\n", argv[0]);
    return 2;
  }
  requant_half_even_cases();
#if CODESIGN_SIGNED_ACTS
  requant_signed_cases();
#endif
  explicit_cases<CfgA>("A(4x8,A4,W8,bus64)");
  explicit_cases<CfgB>("B(8x4,A3,W5,bus128)");
  explicit_cases<CfgC>("C(16x16,A8,W4,bus128)");
  explicit_cases<CfgD>("D(default)");
  random_tables<CfgA>("A", 150, 1000);
  random_tables<CfgB>("B", 150, 2000);
  random_tables<CfgC>("C", 100, 3000);
  random_tables<CfgD>("D", 40, 4000);
  {  // a small DiracDeltaNet on every configuration that fits it
    Builder<CfgD> b(99);
    const int stem[2] = {8, 16}, stages[3] = {32, 64, 128}, blocks[3] = {2, 3, 2};
    build_dirac(b, 32, stem, stages, blocks, 256);
    check("D: DiracDeltaNet-like 32x32 table", b);
  }
  std::printf("%s: %d cases, %d failures\n", g_failures ? "FAIL" : "PASS", g_cases, g_failures);
  return g_failures ? 1 : 0;
}
