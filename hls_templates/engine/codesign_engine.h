// Prototype of the engine's top function (defined in top.cpp, rendered from top.cpp.j2).
// Needs config.h (CODESIGN_BUS_BITS) first on the include path.
#ifndef CODESIGN_ENGINE_TOP_H
#define CODESIGN_ENGINE_TOP_H

#include "config.h"
#include "types.h"

void codesign_engine(const ap_uint<32>* desc, ap_uint<32> n_desc,
                     const ap_uint<CODESIGN_BUS_BITS>* wmem, const ap_uint<CODESIGN_BUS_BITS>* fmem_rd,
                     const ap_uint<CODESIGN_BUS_BITS>* fmem_old, ap_uint<CODESIGN_BUS_BITS>* fmem_wr);

#endif  // CODESIGN_ENGINE_TOP_H
