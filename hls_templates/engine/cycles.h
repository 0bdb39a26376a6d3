// Cycle counting of the C-simulation (docs/engine.md, "Cycle count"; DESIGN §8 "cycle-counted").
//
// Every pipelined loop of the engine counts its iterations while it runs in C-simulation and
// reports, when it ends, trips x II + depth cycles to the dataflow process (stage) it belongs
// to. The II is the macro its PIPELINE pragma uses (CODESIGN_II_* in the unit's header), so a
// pragma and its count cannot drift apart; the depth is the unit's stated pipeline depth. An
// m_axi burst adds the AXI latency (Config::AXI_LATENCY, from the board file) on top of its
// beats, which the loop that moves the words counts (one word per trip).
//
// Per call:  cycles = DESC + LOAD + max over the dataflow stages of their coupled cycles + the
// fill of the others (each other stage's pipeline depth: the time its first result takes to
// reach the next stage). DESC (descriptor fetch) and LOAD (weights and constants before the
// dataflow region) run sequentially.
//
// Coupling: the streams between the stages hold a few vectors, so a phase of at least a row in
// which a stage does not read its input (STALL: the second copy of an UPSAMPLE row, the shift's
// and spatial unit's last rows, the window unit's emit phases) stops every stage upstream of it,
// and a phase in which it writes no output (STARVE: PREPOOL / POOL on the rows that close no
// window, the shift's and spatial unit's first rows, the dilation bursts of DEFORM, the window
// unit's row reads) idles every stage downstream. Each stage's coupled cycles are its own plus the STALL phases of the stages after
// it and the STARVE phases of the stages before it: an upper bound, as if no stream absorbed any
// of it. A figure from this count assumes the pragma IIs are met by the synthesis tool.
//
// For synthesis the counting macros expand to nothing.
#ifndef CODESIGN_ENGINE_CYCLES_H
#define CODESIGN_ENGINE_CYCLES_H

#include "types.h"

#ifndef __SYNTHESIS__
#include <cstdint>
#include <vector>
#endif

namespace codesign {

// The processes a call's cycles are counted for; STAGE_DESC and STAGE_LOAD run before the
// dataflow region, the others inside it, concurrently.
enum stage_t {
  STAGE_DESC = 0,   // descriptor fetch
  STAGE_LOAD,       // weight tiles + requant constants (conv, spatial)
  STAGE_READ,       // m_axi reader: feature-map (and dilation-map) bursts
  STAGE_UNPACK,     // bus words -> PI-wide vectors of the input view
  STAGE_PREPOOL,    // 2x2 max-pool before the MAC array
  STAGE_WINDOW,     // the k x k window unit before the MAC array (KXK; in PREPOOL's process)
  STAGE_MAC,        // the PI x PO MAC array (or the copy)
  STAGE_REQUANT,    // requantization of the accumulators
  STAGE_POOL,       // 2x2 max-pool
  STAGE_SHIFT,      // Dirac5 shift
  STAGE_SPATIAL,    // depthwise / deformable 3x3 + requant
  STAGE_PACK,       // PO-wide vectors -> bus words of the output view
  STAGE_PREFETCH,   // m_axi reader of the old output words (read-modify-write)
  STAGE_WRITE,      // m_axi writer
  NUM_STAGES
};

#ifndef __SYNTHESIS__

CODESIGN_CSIM_BEGIN

inline const char* stage_name(int s) {
  static const char* const names[NUM_STAGES] = {
      "desc", "load", "read", "unpack", "prepool", "window", "mac", "requant", "pool", "shift", "spatial", "pack", "prefetch", "write"};
  return s >= 0 && s < NUM_STAGES ? names[s] : "?";
}

// One call's count.
struct call_cycles_t {
  uint64_t stage[NUM_STAGES];   // cycles of each process
  uint64_t fill[NUM_STAGES];    // its largest pipeline depth (its contribution to the fill)
  uint64_t stall[NUM_STAGES];   // of stage[]: phases that read no input (stop the stages before)
  uint64_t starve[NUM_STAGES];  // of stage[]: phases that write no output (idle the stages after)
  uint64_t coupling;            // what the coupling adds to the slowest stage's own cycles
  uint64_t total;               // the call, as the formula above
};

// The counts of the calls run since the last reset (C-simulation only).
struct cycle_log_t {
  std::vector<call_cycles_t> calls;
  call_cycles_t cur;

  void reset() { calls.clear(); }
  void begin_call() {
    for (int s = 0; s < NUM_STAGES; ++s) cur.stage[s] = cur.fill[s] = cur.stall[s] = cur.starve[s] = 0;
    cur.coupling = cur.total = 0;
  }
  // A pipelined loop that ran `trips` iterations at initiation interval `ii` and pipeline depth
  // `depth`; a loop that did not iterate costs nothing.
  void loop(int s, uint64_t trips, int ii, int depth) {
    if (!trips) return;
    cur.stage[s] += trips * uint64_t(ii) + uint64_t(depth);
    if (uint64_t(depth) > cur.fill[s]) cur.fill[s] = uint64_t(depth);
  }
  // An m_axi burst request: its latency (its beats are counted by the loop moving the words).
  void burst(int s, int latency) { cur.stage[s] += uint64_t(latency); }
  // Cycles of stage s (already counted by its loops) in which it reads no input / writes no output.
  void stall(int s, uint64_t cycles) { cur.stall[s] += cycles; }
  void starve(int s, uint64_t cycles) { cur.starve[s] += cycles; }
  void end_call() {
    uint64_t mx = 0, fill = 0;
    int arg = -1;
    for (int s = STAGE_READ; s < NUM_STAGES; ++s) {
      if (!cur.stage[s]) continue;
      uint64_t coupled = cur.stage[s];
      for (int t = STAGE_READ; t < NUM_STAGES; ++t) coupled += t > s ? cur.stall[t] : t < s ? cur.starve[t] : 0;
      if (coupled > mx) mx = coupled, arg = s;
    }
    for (int s = STAGE_READ; s < NUM_STAGES; ++s)
      if (s != arg) fill += cur.fill[s];
    cur.coupling = arg >= 0 ? mx - cur.stage[arg] : 0;
    cur.total = cur.stage[STAGE_DESC] + cur.stage[STAGE_LOAD] + mx + fill;
    calls.push_back(cur);
  }
};

inline cycle_log_t& cycle_log() {
  static cycle_log_t log;
  return log;
}

CODESIGN_CSIM_END

#define CODESIGN_LOOP_COUNTER(var) uint64_t var = 0
#define CODESIGN_TRIP(var) (++(var))
#define CODESIGN_LOOP_DONE(stage, var, ii, depth) ::codesign::cycle_log().loop((stage), (var), (ii), (depth))
#define CODESIGN_BURST(stage, latency) ::codesign::cycle_log().burst((stage), (latency))
#define CODESIGN_STALL(stage, cycles) ::codesign::cycle_log().stall((stage), (cycles))
#define CODESIGN_STARVE(stage, cycles) ::codesign::cycle_log().starve((stage), (cycles))

#else  // synthesis: no counting

#define CODESIGN_LOOP_COUNTER(var)
#define CODESIGN_TRIP(var)
#define CODESIGN_LOOP_DONE(stage, var, ii, depth)
#define CODESIGN_BURST(stage, latency)
#define CODESIGN_STALL(stage, cycles)
#define CODESIGN_STARVE(stage, cycles)

#endif

}  // namespace codesign

// A pipelined loop that runs concurrently (DATAFLOW) with a counted loop of the same stage that
// takes at least as many cycles, e.g. a burst feeding a packer: its cycles are inside that count.
// Names the loop's II so that every PIPELINE II is accounted for (tests/test_cycles.py).
#define CODESIGN_LOOP_OVERLAPPED(ii)

#endif  // CODESIGN_ENGINE_CYCLES_H
