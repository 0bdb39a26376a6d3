// Descriptor word offsets and flag bits of the codesign engine (docs/engine.md, "Descriptor").
// GENERATED from codesign/hw/descriptor.py by hls_templates/engine/descriptor.h.j2: do not edit.
//
// Template variables:
//   fields:     list of (name, word index), e.g. [("FLAGS", 0), ("IN_ADDR", 1), ...]
//   flags:      list of (name, bit) or a mapping name -> bit, e.g. {"PREPOOL": 0, "CONV": 1}
//   desc_words: words per descriptor (optional, default 16; `words` is accepted too)
// Names are upper-cased: DESC_<FIELD>, FLAG_<NAME>. The engine uses the fields and flags of
// docs/engine.md (FLAGS, IN_ADDR, ..., ACT_MAX, IN_STRIDE, ..., S_ACT_MAX; PREPOOL, CONV, POOL,
// SHIFT, IN8, DW, DEFORM, STRIDE2, UPSAMPLE).
#ifndef CODESIGN_DESCRIPTOR_H
#define CODESIGN_DESCRIPTOR_H

namespace codesign {

constexpr int DESC_WORDS = 27;

constexpr int DESC_FLAGS = 0;
constexpr int DESC_IN_ADDR = 1;
constexpr int DESC_IN_H = 2;
constexpr int DESC_IN_W = 3;
constexpr int DESC_IN_CBUF = 4;
constexpr int DESC_IN_ROT = 5;
constexpr int DESC_CIN = 6;
constexpr int DESC_OUT_ADDR = 7;
constexpr int DESC_OUT_CBUF = 8;
constexpr int DESC_OUT_ROT = 9;
constexpr int DESC_COUT = 10;
constexpr int DESC_W_ADDR = 11;
constexpr int DESC_Q_ADDR = 12;
constexpr int DESC_SHIFT = 13;
constexpr int DESC_ACT_MAX = 14;
constexpr int DESC_WINDOW = 15;
constexpr int DESC_IN_STRIDE = 16;
constexpr int DESC_OUT_STRIDE = 17;
constexpr int DESC_D_ADDR = 18;
constexpr int DESC_D_CBUF = 19;
constexpr int DESC_D_ROT = 20;
constexpr int DESC_D_MAX = 21;
constexpr int DESC_SW_ADDR = 22;
constexpr int DESC_SQ_ADDR = 23;
constexpr int DESC_S_SHIFT = 24;
constexpr int DESC_S_ACT_MAX = 25;
constexpr int DESC_W_BITS = 26;

constexpr unsigned FLAG_PREPOOL = 1u << 0;
constexpr unsigned FLAG_CONV = 1u << 1;
constexpr unsigned FLAG_POOL = 1u << 2;
constexpr unsigned FLAG_SHIFT = 1u << 3;
constexpr unsigned FLAG_IN8 = 1u << 4;
constexpr unsigned FLAG_DW = 1u << 5;
constexpr unsigned FLAG_DEFORM = 1u << 6;
constexpr unsigned FLAG_STRIDE2 = 1u << 7;
constexpr unsigned FLAG_UPSAMPLE = 1u << 8;
constexpr unsigned FLAG_KXK = 1u << 9;
constexpr unsigned FLAG_HALF_EVEN = 1u << 10;
constexpr unsigned FLAG_S_HALF_EVEN = 1u << 11;
constexpr unsigned FLAG_IN_SIGNED = 1u << 12;
constexpr unsigned FLAG_SIGNED = 1u << 13;
constexpr unsigned FLAG_S_SIGNED = 1u << 14;

}  // namespace codesign

#endif  // CODESIGN_DESCRIPTOR_H
