"""Physical parameters of the performance and resource model, with their sources.

Every number the model uses that is not in the `HardwareConfig` or the board file lives here, with
where it comes from (see docs/estimator.md for the discussion). Two presets:

- `ModelParams()` / `ResourceParams()`: our engine (hls_templates/engine, docs/engine.md) driven
  by the descriptor table;
- `SYNETGY_TIMING` / `SYNETGY_RESOURCES` with `synetgy_config()`: a Synetgy-like design point (FPGA'19)
  used to validate the model against published numbers. It is *our* model with Synetgy's
  engine parameters and host flow, not a copy of Synetgy's (unpublished) hardware.

No parameter here is fitted to a published frame rate: they are measurements reported by the
papers (register read, DDR bandwidth, ARM stem time) or textbook FPGA costs (LUTs per adder
bit, BRAM geometry). The few that are assumptions are marked as such.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..hw.config import HardwareConfig
from ..hw.interface import M_AXI_BUNDLES


@dataclass(frozen=True)
class ModelParams:
    """Timing parameters (engine microarchitecture, DDR, PYNQ control, ARM host)."""

    # ---- engine microarchitecture -------------------------------------------------------------
    # Operand width of the MAC array's multipliers; wider activations and weights run in passes.
    # 0: the hardware config's mac_bits (the engine as written); the paper presets set their own
    # (Synetgy's array took 4-bit activations, CoDeNet's 8-bit).
    mac_in_bits: int = 0
    # "engine": the loops of hls_templates/engine as written, stage by stage as the counting C-simulation
    # counts them (hls_templates/engine/cycles.h; tests/test_cycles.py holds this model to the count).
    # "ideal": every dataflow stage moves one PI/PO-wide vector or one bus word per cycle (a design
    # target that no code implements; not for headlines). "codenet": the loops of CoDeNet's published
    # HLS (hqjenny/CoDeNet hls/top, CODENET_TIMING): every stage loops over pixels and pays its
    # pipelined inner loops' depth per pixel (docs/estimator.md).
    microarch: str = "engine"
    # Adder-tree + requant depth drained per output tile in the "codenet" microarchitecture (the
    # input-tile loop is pipelined, the output-tile loop is not).
    tile_drain_cycles: int = 8
    # "codenet" only: cycles the 3×3 line buffer's pixel loop spends per input pixel beyond its
    # words (loop iteration + the read loop's pipeline depth), and per 3×3 output pixel beyond its
    # vectors (the window loop's depth: 9 reads with a modulo-(2R+1) row index).
    linebuf_pixel_cycles: int = 0
    window_pixel_cycles: int = 0
    # "codenet" only: every call runs the 1×1 *and* the depthwise 3×3, deformable addressing off — what
    # CoDeNet's artifact notebook does (its conv() wrapper passes skip1 = skip3 = deform = 0 to every
    # call, hqjenny/CoDeNet sw/codenet.ipynb). False: 1×1-only and 3×3-only calls skip the other stage
    # (skip1/skip3, as the HLS allows).
    full_calls: bool = False
    # Initiation interval of the MAC array: cycles per PI×PO tile. 1 is the design target (one
    # weight tile per cycle from a fully parallel weight memory); 2 when the weight memory has
    # half the ports it needs — a common HLS outcome. Synetgy preset: see SYNETGY_TIMING.
    mac_ii: int = 1
    # Pipeline depth of one call's dataflow region (read latency is separate): stream FIFOs,
    # adder tree, requant, pool/shift registers, write-response handshake. Estimate.
    pipeline_depth_cycles: int = 40
    # Weights of a call are loaded before its dataflow region starts (engine.h: load_weights,
    # load_requant, then run_call); True models a double-buffered weight memory instead.
    overlap_weight_load: bool = False
    # Layer-major batching: the engine keeps a layer's weights for all frames of a batch (one
    # weight load per layer per batch). Our descriptor table is frame-major (each descriptor
    # loads its weights). Synetgy processed a batch layer by layer.
    reuse_weights_in_batch: bool = False
    # The spatial unit (dwconv3x3 / deform3x3, docs/engine.md): channels per cycle (0: PO) and 3×3
    # taps per cycle per channel. Our C++ (hls_templates/engine) does one tap per cycle per
    # PO-vector (9 cycles per output vector); CoDeNet's unit was 16 channels × 9 taps (one output
    # vector per cycle; CODENET_TIMING).
    spatial_lanes: int = 0
    spatial_taps_per_cycle: int = 1
    # Whether the engine has a spatial unit at all (resources only; Synetgy's had a shift unit only).
    spatial_unit: bool = True
    # Whether the engine has the 2×2 max-pool (and shift) stage. Without it (CoDeNet), a call that only
    # pools runs on the ARM, and no pool/shift line buffers are built.
    pool_unit: bool = True
    # Most output channels one call may produce (0: no limit). CoDeNet's weight buffer holds 512
    # output channels; its host split wider layers into calls of ≤ 512, each re-reading its input.
    max_call_cout: int = 0
    # Requantization: "multiplier" (our M/B/S requant, DSPs) or "threshold" (Synetgy's
    # 2^A - 1 comparisons per output).
    requant: str = "multiplier"

    # ---- DDR ------------------------------------------------------------------------------------
    # None: the board file's ddr_gbps (Ultra96: 6 GB/s, measured by Synetgy from the PL).
    ddr_gbps: float | None = None
    # First-word latency of a PL read from DDR through an HP port. Zynq UltraScale+ PL→DDR read
    # round trips are reported at ~150–250 ns; 200 ns assumed. Paid once per non-overlapped burst
    # sequence (descriptor fetch, weight load, start of the feature-map stream).
    ddr_latency_ns: float = 200.0

    # ---- PYNQ control (host ↔ engine over AXI-Lite) ---------------------------------------------
    # One control-register read from PYNQ on Ultra96: ~0.40 ms (measured by Synetgy, DESIGN.md §6).
    # A read blocks the (single) Python thread for the round trip and the MMIO call path.
    reg_read_ms: float = 0.40
    # One register write: writes are posted (the CPU does not wait for the AXI response), so only
    # the Python MMIO call path is paid. Assumed 10 µs (PYNQ MMIO.write on a Cortex-A53).
    reg_write_ms: float = 0.010
    # Per-layer control: argument writes per layer call — the 15 descriptor fields as AXI-Lite
    # registers + ap_start. Reads: the done-poll, at least one per call (see docs/estimator.md).
    per_layer_arg_writes: int = 16
    # Descriptor-table control: one start per batch = 3 base addresses + descriptor count + ap_start.
    table_start_writes: int = 5
    # Fixed cost of every engine start beyond its register accesses: the driver's call path and the
    # engine's dataflow start-up and drain. 0 (not modelled) except CoDeNet's, fitted to its per-call times.
    start_overhead_ms: float = 0.0

    # ---- ARM host (Cortex-A53, NumPy) --------------------------------------------------------
    # Effective NumPy throughput of a convolution/FC on the A53, everything included (matmul,
    # requant, pooling). Source: CoDeNet (same board, same group) measured its ARM stem, config b
    # (3×3 s2 conv 3→24 + max-pool at 256²: 128²·27·24 = 10.6 M MACs) at 7.9 ms → 1.34 GMAC/s.
    arm_gmacs: float = 1.34
    # ARM copy rate between PYNQ contiguous buffers (pynq.allocate; non-cacheable by default, so
    # reads miss every time), bytes per second moved (read once + written once). Assumed 0.28 GB/s:
    # uncached Cortex-A53 reads stream at a few hundred MB/s. (With Synetgy's per-block shuffle
    # sizes this gives their published 1.53 → 4.41 ms block-time effect at batch 16; see docs.)
    arm_copy_gbps: float = 0.28
    # CenterNet decode of a head's output on the ARM: a 3×3 max (peak test) per output element,
    # counted as 9 operations at arm_gmacs (assumption; top-k over the peaks is negligible).
    arm_decode_ops_per_elem: int = 9
    # Python + NumPy call overhead per host operation (array views, ufunc dispatch) on the A53.
    arm_op_overhead_ms: float = 0.05
    # The first engine call (the 8-bit image stem) runs on the ARM instead (Synetgy preset: its
    # 4-bit MAC array cannot take 8-bit pixels; see docs/estimator.md).
    stem_on_cpu: bool = False
    # The k×k convs on the image (CoDeNet's stem conv2d, and a pool after it) run on the ARM, as
    # CoDeNet's published flow ran them; default: on the engine's window unit.
    window_on_host: bool = False
    # The detection heads' last 1×1 convs (`conv1x1_head`) run as engine calls, and the host reads back
    # only their outputs for the decode (CoDeNet's notebook runs them on the accelerator). Default: on
    # the ARM, which reads back their inputs.
    head_on_engine: bool = False

    def with_(self, **changes: Any) -> "ModelParams":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResourceParams:
    """Resource-cost parameters (UltraScale+ CLB / BRAM / DSP48E2)."""

    # Operand widths at or below which a multiplier is built from LUTs (both operands ≤ 4 bits);
    # wider ones use DSP48E2 slices.
    lut_mac_max_bits: int = 4
    # LUT multiplier: ~1 LUT6 per partial-product bit (a×b) — Xilinx's LUT-based multiplier
    # (PG108) costs about a·b LUTs for small operands; adder-tree share per MAC: one LUT per sum
    # bit (UG574: one LUT + carry-chain bit per adder bit); a tree of PI inputs has PI − 1 adders
    # whose width grows from a + b to a + b + log2(PI) bits.
    lut_per_pp_bit: float = 1.0
    # Flip-flops per LUT-MAC: product register + pipelined adder tree + weight operand register.
    ff_per_mac_extra: float = 4.0
    # DSP MACs: two multiplies with a shared activation packed per DSP48E2 when both operands are
    # ≤ 8 bits (Xilinx WP486, INT8 packing), else one; accumulation on the DSP cascade. LUT/FF per
    # DSP-MAC for operand routing and the packing correction.
    dsp_mac_pack_bits: int = 8
    lut_per_dsp_mac: float = 6.0
    ff_per_dsp_mac: float = 12.0
    # Requant "multiplier": acc (ACC_BITS) × M (24 bits) + B needs two DSP48E2 per output lane
    # (27×18 multipliers, post-adder for B) plus ~60 LUT of rounding/shift/clamp.
    dsp_per_requant_lane: int = 2
    lut_per_requant_lane: float = 60.0
    # (Requant "threshold": 2^A − 1 comparators of ACC bits per output lane, 1 LUT per bit each,
    # thresholds in LUTRAM.)
    # Address arithmetic in DSPs (reader/writer/line-buffer/weight-load index products): HLS binds
    # 32-bit integer multiplies to DSP48E2 (3 DSPs per 32×32 product); our template has ~8 such
    # products.
    dsp_addr_base: int = 24
    # Address DSPs per output lane (index computations replicated per lane by unrolling). Ours: 0.
    dsp_addr_per_lane: float = 0.0
    # Fixed infrastructure: AXI-Lite control, processor reset, descriptor decode (base), and per AXI
    # master (HLS m_axi adapter with its burst FIFOs + its SmartConnect/interconnect port to an HP
    # port). Order of magnitude of HLS m_axi + SmartConnect IP reports (~2.5–5 k LUT per master with
    # interconnect); BRAM: m_axi read/write data FIFOs (≈ 1 BRAM36 per master direction). Our
    # engine's masters are its m_axi bundles (hw/interface.py); CoDeNet's has six.
    axi_masters: int = len(M_AXI_BUNDLES)
    lut_base: int = 1500
    ff_base: int = 3000
    bram_base: float = 0.0
    lut_per_axi_master: int = 2500
    ff_per_axi_master: int = 3000
    bram_per_axi_master: float = 2.0
    # The deformable line buffer's window: each tap a spatial lane reads per cycle selects one of the
    # 2R + 1 rows — a (2R + 1):1 multiplexer per bit, ⌈(2R + 1)/4⌉ LUT6 each (a LUT6 is a 4:1 mux
    # with MUXF7/F8 combining, UG574) — and is registered.
    lut_per_row_mux_input: float = 0.25
    # Datapath outside the MAC array per PO output lane (pool, shift line-buffer muxes, write
    # packing, requant registers): LUT and FF per lane per activation bit.
    lut_per_lane_bit: float = 40.0
    ff_per_lane_bit: float = 40.0
    # Per PI input lane (reader unpack/merge, prepool max, stream registers) per stored bit.
    lut_per_in_lane_bit: float = 12.0
    ff_per_in_lane_bit: float = 12.0
    # Memories smaller than this many bits are built from LUTRAM/registers, not BRAM (HLS default
    # heuristics map small arrays to distributed RAM).
    lutram_max_bits: int = 2048
    # Weight buffer copies (2 = double buffering to overlap the next call's weight load).
    weight_buffers: int = 1

    def with_(self, **changes: Any) -> "ResourceParams":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- Synetgy-like design point -------------------------------------------------------------------

# Synetgy's engine: 4-bit activations into a 32×32 LUT MAC array, per-channel threshold requant
# (15 thresholds for 4-bit outputs), PYNQ per-layer control, the channel shuffle as an ARM memcpy,
# the 8-bit stem on the ARM, batches processed layer by layer (weights loaded once per batch).
# Its reported compute time, ~0.15 ms per block at batch 1 (DESIGN.md §3), is twice what an II = 1
# array needs for DiracDeltaNet's blocks (0.07 ms on average, this model): modelled as II = 2.
SYNETGY_TIMING = ModelParams(mac_in_bits=4, mac_ii=2, requant="threshold", reuse_weights_in_batch=True,
                             stem_on_cpu=True, spatial_unit=False, microarch="ideal")
# Synetgy reports 360 DSPs "for address arithmetic only". How many address products its HLS code
# replicated per lane is not published: three 32-bit index products per output lane (feature-map,
# pool and shift buffer addressing) at 3.5 DSP48E2 each is a structural guess that reproduces the
# count, so the DSP comparison is a calibration, not a validation (docs/estimator.md).
# Its masters: feature maps, weights, descriptors (the three our engine had when this was calibrated).
SYNETGY_RESOURCES = ResourceParams(dsp_addr_per_lane=10.5, axi_masters=3)


def synetgy_config(max_line: int = 7168, max_weights: int = 512 * 1024) -> HardwareConfig:
    """32×32 4-bit MACs at 250 MHz on the Ultra96, sized for DiracDeltaNet 224²."""
    return HardwareConfig(board="ultra96v2", pi=32, po=32, act_bits=4, weight_bits=4, acc_bits=17, bus_bits=128,
                          max_channels=1024, max_width=224, max_line=max_line, max_weights=max_weights,
                          clock_mhz=250.0)


# ---- CoDeNet-like design point (FPGA'21) ----------------------------------------------------------

# CoDeNet's engine on the Ultra96 at 250 MHz, as its published HLS builds it (hqjenny/CoDeNet hls/top):
# one dataflow call = 1×1 conv (16×16 MACs, 4-bit weights × 8-bit activations, DSP48E2) → 3×3
# depthwise/deformable (16 channels × 9 taps per cycle, 15-row line buffer), either skippable; no
# pool or shift unit; a host split of layers wider than 512 output channels. Its loops pay a
# pipeline depth per pixel and per output tile (microarch="codenet"). The five numbers the paper
# does not give — tile drain, line-buffer and window cycles per pixel, the register read of the
# done-poll, the fixed start cost — are the best fit (lowest RMS relative error, every point of a
# grid searched) to the 16 per-call times of the authors' notebook (bench/estimate_codenet_fit.py,
# reference.CODENET_CALLS_MS), never to the frame rates; near-equal fits and the frame rates they
# give are printed by that script (docs/estimator.md). The host flow is the notebook's: its timers
# run from the ap_start write to the done-poll (the 16 argument writes come before it:
# per_layer_arg_writes = 1); every call runs the 1×1 and the 3×3 (its conv() passes skip1 = skip3 =
# deform = 0: full_calls); its frame adds the ARM's concat + channel interleave of every block
# (shuffle_on_cpu=True) and runs the heads' last 1×1 on the accelerator. The stem conv and max-pool
# run on the ARM.
CODENET_TIMING = ModelParams(mac_in_bits=8, mac_ii=1, spatial_lanes=16, spatial_taps_per_cycle=9,
                             microarch="codenet", tile_drain_cycles=11, linebuf_pixel_cycles=41,
                             window_pixel_cycles=33, reg_read_ms=0.085, start_overhead_ms=0.045,
                             per_layer_arg_writes=1, full_calls=True,
                             max_call_cout=512, pool_unit=False, head_on_engine=True, window_on_host=True)
# Six m_axi masters (fmap, out, k0_1, k0_3, quant, offsets: the INTERFACE pragmas of deform.cpp).
CODENET_RESOURCE_PARAMS = ResourceParams(axi_masters=6)


def codenet_config(graph=None, **changes: Any) -> HardwareConfig:
    """16×16 W4A8 MACs at 250 MHz on the Ultra96.

    Without `graph`: the one bitstream that ran configs a–e — weights for the largest call the
    artifact notebook makes (1024 × 512 = 2048 × 256 weights; wider layers are split by the host at
    512 output channels), a 3×3 line buffer for the widest 3×3 call (config e's stage 2 entry,
    128 pixels × 128 channels). With `graph`: buffers sized exactly for it (`sized_for`).
    """
    hw = HardwareConfig(**{**dict(board="ultra96v2", pi=16, po=16, act_bits=8, weight_bits=4, acc_bits=32,
                                  bus_bits=128, max_channels=2048, max_width=128, max_line=128 * 128,
                                  max_weights=1024 * 512, clock_mhz=250.0), **changes})
    if graph is not None:
        from ..hw.limits import sized_for
        hw = sized_for(graph, hw)
    return hw
