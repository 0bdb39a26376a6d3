// The engine's on-chip memories as the compiler sees them (docs/estimator.md, "Code-derived
// resources"): every static array and every dataflow stream registers its element width and its
// dimensions (or FIFO depth) beside its declaration, evaluated by the compiler from the same
// constants the hardware is built from. The resource model (codesign/estimate/fit.py) reads the
// list from the C-simulation library and maps each memory to BRAM, LUTRAM or registers, with the
// banks its ARRAY_PARTITION pragmas make (read from the rendered source).
//
// Registration happens when the library loads, for every template instance the engine
// instantiates (a local type per declaration site, odr-used as a template argument), whether or
// not a run reaches it: synthesis builds every instance too. For synthesis the macros are only
// the STREAM pragma / nothing.
#ifndef CODESIGN_ENGINE_INVENTORY_H
#define CODESIGN_ENGINE_INVENTORY_H

#include "types.h"

#ifndef __SYNTHESIS__
#include <string>
#include <type_traits>
#include <vector>
#endif

namespace codesign {

// Bits of one element: W for ap_uint<W> / ap_int<W>, else the type's BITS (its hardware width).
template <class T>
struct bits_of {
  static constexpr int value = T::BITS;
};
template <int W>
struct bits_of<ap_uint<W> > {
  static constexpr int value = W;
};
template <int W>
struct bits_of<ap_int<W> > {
  static constexpr int value = W;
};

#ifndef __SYNTHESIS__

CODESIGN_CSIM_BEGIN

// One memory: where it is declared, its element width, and its dimensions (a stream: its depth).
struct memory_rec_t {
  std::string file, var;
  bool stream;
  int bits;
  std::vector<long> dims;
};

inline std::vector<memory_rec_t>& memory_inventory() {
  static std::vector<memory_rec_t> list;
  return list;
}

template <class A>
void note_array(const char* file, const char* var) {
  std::vector<long> dims;
  if (std::rank<A>::value >= 1) dims.push_back(long(std::extent<A, 0>::value));
  if (std::rank<A>::value >= 2) dims.push_back(long(std::extent<A, 1>::value));
  if (std::rank<A>::value >= 3) dims.push_back(long(std::extent<A, 2>::value));
  static_assert(std::rank<A>::value >= 1 && std::rank<A>::value <= 3, "arrays of 1 to 3 dimensions");
  memory_inventory().push_back(
      {file, var, false, bits_of<typename std::remove_all_extents<A>::type>::value, dims});
}

template <class T>
struct stream_elem;
template <class T>
struct stream_elem<hls::stream<T> > {
  typedef T type;
};

template <class S>
void note_stream(const char* file, const char* var, long depth) {
  memory_inventory().push_back({file, var, true, bits_of<typename stream_elem<S>::type>::value, {depth}});
}

// Runs T::note() once when the library loads, for every T the code names.
template <class T>
struct at_load {
  static const bool done;
};
template <class T>
const bool at_load<T>::done = (T::note(), true);

CODESIGN_CSIM_END

#define CODESIGN_MEMORY(var)                                                                  \
  struct codesign_mem_##var {                                                                 \
    static void note() { ::codesign::note_array<decltype(var)>(__FILE__, #var); }             \
  };                                                                                          \
  (void)::codesign::at_load<codesign_mem_##var>::done
#define CODESIGN_STREAM(var, depth_)                                                          \
  HLS_PRAGMA(STREAM variable = var depth = depth_)                                            \
  struct codesign_fifo_##var {                                                                \
    static void note() { ::codesign::note_stream<decltype(var)>(__FILE__, #var, (depth_)); } \
  };                                                                                          \
  (void)::codesign::at_load<codesign_fifo_##var>::done

#else  // synthesis: the pragma only

#define CODESIGN_MEMORY(var)
#define CODESIGN_STREAM(var, depth_) HLS_PRAGMA(STREAM variable = var depth = depth_)

#endif

}  // namespace codesign

#endif  // CODESIGN_ENGINE_INVENTORY_H
